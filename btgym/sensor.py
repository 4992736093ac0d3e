"""A camera sensor model for rendered frames: the randomization renderers leave out.

Renderers draw clean frames; real cameras blur, vignette, expose, add shot and read
noise, apply a tone curve and compress. :class:`SensorModel` does that to ``uint8``
``(H, W, 3)`` frames in numpy, after the render, on the trainer side (in ``DataLoader``
workers for a :class:`~btgym.data.StreamDataset`, in the process of a
:class:`SensorWrapper`), so it works for any scene and engine and costs Blender nothing::

    sensor = SensorModel({"read_noise_max": 0.02, "blur_max": 2.0})
    frame, values = sensor.apply(frame, sensor.frame_rng(seed, step))
    sensor.to_dict(values)          # {"exposure": 1.0, ..., "read_noise": 0.013, ...}

Its randomization parameters are a :class:`~btgym.wire.params.ParamSpace` of ranges,
``<effect>_min`` and ``<effect>_max`` for each effect in :data:`SENSOR_EFFECTS`; every
frame draws each effect uniformly from its range (the per-frame values are echoed with the
frame: ``item["sensor"]`` / ``info["sensor"]``, in :data:`SENSOR_NAMES` order). At the
defaults every effect is off and frames pass unchanged. A frame's random numbers come from
its own generator (:meth:`SensorModel.frame_rng`, seeded from the stream's seed and the
frame's place in it): the same seed gives the same frames, and every frame gets fresh
noise, never a stored pattern.

The model, in linear light (frames decoded from sRGB):

1. ``blur``: defocus, a separable box of standard deviation ``blur`` pixels (two box
   widths blended for fractional sizes);
2. ``vignetting``: the fraction of light lost in the corners, falling off with the
   squared distance from the centre;
3. ``exposure``: a gain on the light;
4. ``shot_noise`` and ``read_noise``: Gaussian noise of standard deviation
   ``sqrt(shot_noise**2 * s + read_noise**2)`` at signal ``s`` (full scale 1; drawn as
   one of 256 equally likely normal quantiles per pixel and channel, tails cut at 2.9):
   ``shot_noise = 1 / sqrt(full-well electrons at white)`` and ``read_noise = read-noise
   electrons / full-well electrons`` (EMVA 1288 terms);
5. clipping, 16-bit quantization, sRGB encoding, the tone curve ``x**(1/gamma)`` and
   8 bits; steps 3-5 are one table per frame (light level x noise quantile -> output),
   so that a frame costs a few integer passes plus the optics it uses;
6. ``jpeg_quality`` below 100: a JPEG round trip (needs Pillow, ``btgym[torch]``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import gymnasium as gym
import numpy as np

from btgym.errors import ConfigError
from btgym.wire.params import ParamSpace

#: ``(effect, low, high, off)``: the bounds of each effect's range and the value that
#: leaves frames unchanged (the default of both ``<effect>_min`` and ``<effect>_max``).
SENSOR_EFFECTS: tuple[tuple[str, float, float, float], ...] = (
    ("exposure", 0.1, 4.0, 1.0),
    ("gamma", 0.4, 2.5, 1.0),
    ("blur", 0.0, 8.0, 0.0),
    ("vignetting", 0.0, 0.9, 0.0),
    ("shot_noise", 0.0, 0.2, 0.0),
    ("read_noise", 0.0, 0.1, 0.0),
    ("jpeg_quality", 5.0, 100.0, 100.0),
)
#: The per-frame values a frame echoes, in this order.
SENSOR_NAMES: tuple[str, ...] = tuple(effect for effect, *_ in SENSOR_EFFECTS)
#: Levels of the analogue-to-digital converter (16 bits, in linear light).
ADC_LEVELS = 1 << 16
#: Levels of light (on a square-root scale) between the optics and the sensor's table.
OPTICS_LEVELS = 1024
#: Blur below this standard deviation (pixels) is none.
BLUR_OFF = 0.05
#: Blur from this standard deviation (pixels) on runs at half resolution.
HALF_RES_BLUR = 2.0
_OFF = np.array([off for *_, off in SENSOR_EFFECTS], np.float32)


def sensor_param_space() -> ParamSpace:
    """The sensor's randomization parameters: ``<effect>_min`` and ``<effect>_max``."""
    return ParamSpace(
        {
            f"{effect}_{end}": (low, high, off)
            for effect, low, high, off in SENSOR_EFFECTS
            for end in ("min", "max")
        }
    )


class SensorModel:
    """Randomized sensor effects for ``uint8`` RGB(A) frames (see the module docstring).

    ``params``: ranges by name (``{"blur_max": 2.0}``; unnamed ones keep their defaults,
    every effect off). ``seed``: mixed into every frame's generator, so that two sensor
    models on one stream draw differently.
    """

    def __init__(self, params: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        self.param_space = sensor_param_space()
        self.seed = int(seed)
        self._ranges = self.param_space.to_action(params or {})

    # -- parameters ------------------------------------------------------------------------
    def get_params(self) -> dict[str, float]:
        """The ranges by name."""
        return self.param_space.to_dict(self._ranges)

    def set_params(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Change some ranges (names as in :meth:`get_params`); returns all of them."""
        self._ranges = self.param_space.to_action(params, base=self._ranges)
        return self.get_params()

    @property
    def ranges(self) -> np.ndarray:
        """The ranges as one ``float32`` row (``param_space`` order), a copy."""
        return self._ranges.copy()

    @ranges.setter
    def ranges(self, row: np.ndarray) -> None:
        self._ranges = self.param_space.check(row)

    def to_dict(self, values: np.ndarray) -> dict[str, float]:
        """Per-frame ``values`` (as echoed) by effect name."""
        return {n: float(v) for n, v in zip(SENSOR_NAMES, values, strict=True)}

    # -- frames ----------------------------------------------------------------------------
    def frame_rng(self, *entropy: int) -> np.random.Generator:
        """The generator of one frame, from the model's seed and the frame's ``entropy``
        (e.g. episode seed and step): the same numbers give the same frame.
        """
        words = [self.seed, *(int(e) & 0xFFFFFFFFFFFFFFFF for e in entropy)]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One frame's effect values, each uniform in its range (``float32``)."""
        pairs = self._ranges.reshape(-1, 2).astype(np.float64)
        low, high = pairs.min(axis=1), pairs.max(axis=1)
        values = rng.uniform(low, high).astype(np.float32)
        quality, gamma = SENSOR_NAMES.index("jpeg_quality"), SENSOR_NAMES.index("gamma")
        values[quality] = np.round(values[quality])
        values[gamma] = np.round(values[gamma], 2)  # a tone curve per 0.01: cached tables
        return values

    def apply(self, frame: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``frame`` seen through a sensor drawn from the ranges, and the values drawn."""
        values = self.draw(rng)
        return apply_sensor(frame, values, rng), values

    def sense_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """A stream item (``obs``, ``env_id``, ``seed``, ``episode``, ``step``) with its
        ``obs`` through the sensor and the values drawn as ``item["sensor"]``; the frame's
        generator comes from those four numbers. What :class:`~btgym.data.StreamDataset`
        does with ``sensor=``; a ``transform`` for :class:`~btgym.data.ReplayDataset`.
        """
        place = (item["env_id"], item["seed"], item["episode"], item["step"])
        obs, values = self.apply(item["obs"], self.frame_rng(*map(int, place)))
        return {**item, "obs": obs, "sensor": values}


def apply_sensor(
    frame: np.ndarray, values: Sequence[float] | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``frame`` (``uint8``, ``(H, W, 3)`` or ``(H, W, 4)``: alpha kept) through the sensor
    effects ``values`` (:data:`SENSOR_NAMES` order); noise from ``rng``. A new array,
    or ``frame`` itself when every effect is off.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ConfigError(
            f"expected a uint8 frame of shape (H, W, 3) or (H, W, 4) for the sensor model, "
            f"got {frame.dtype} {frame.shape}"
        )
    v = dict(zip(SENSOR_NAMES, map(float, values), strict=True))
    if np.array_equal(np.asarray(values, np.float32), _OFF):
        return frame
    rgb = frame[..., :3]
    if v["blur"] > BLUR_OFF or v["vignetting"] > 0:  # optics: per-pixel work in linear light
        light = _optics(np.take(_decode_lut(), rgb), v["blur"], v["vignetting"])
        # Index by sqrt(light) on OPTICS_LEVELS levels: fine steps in the dark.
        np.sqrt(light, out=light)
        light *= OPTICS_LEVELS - 1
        light += 0.5
        level = light.astype(np.int32)
        levels = (np.arange(OPTICS_LEVELS) / (OPTICS_LEVELS - 1)) ** 2
    else:
        level = rgb.astype(np.int32)
        levels = _decode_lut().astype(np.float64)
    # The rest is one table: (level, noise quantile) -> output, built for this frame.
    noisy = v["shot_noise"] > 0 or v["read_noise"] > 0
    table = _response_table(levels, v, noisy)
    if noisy:  # the table's row (level) and column (one of 256 noise quantiles)
        level <<= 8
        level |= _random_bytes(rng, level.shape)
    out = np.take(table, level)
    if v["jpeg_quality"] < 100:
        out = _jpeg(out, int(v["jpeg_quality"]))
    if frame.shape[2] == 4:
        return np.concatenate([out, frame[..., 3:]], axis=2)
    return out


# -- the pieces ------------------------------------------------------------------------------
def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function's inverse (IEC 61966-2-1), values in [0, 1]."""
    values = np.asarray(values, np.float64)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1), values in [0, 1]."""
    values = np.asarray(values, np.float64)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


@lru_cache(maxsize=1)
def _decode_lut() -> np.ndarray:
    return srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


@lru_cache(maxsize=64)
def _encode_lut(gamma: float) -> np.ndarray:
    """``ADC_LEVELS`` linear levels -> ``uint8``: sRGB, then the tone curve ``x**(1/gamma)``."""
    encoded = linear_to_srgb(np.arange(ADC_LEVELS) / (ADC_LEVELS - 1)) ** (1.0 / gamma)
    return (encoded * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """256 equally likely standard-normal values (quantiles at bin centres, scaled to unit
    variance; tails cut at 2.9 sigma): a random byte per pixel picks one.
    """
    dist = NormalDist()
    values = np.array([dist.inv_cdf((k + 0.5) / 256) for k in range(256)], np.float64)
    return values / values.std()


def _random_bytes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fresh random ``uint8`` of ``shape`` from ``rng``'s raw bits (no per-value call)."""
    count = int(np.prod(shape))
    words = np.asarray(rng.bit_generator.random_raw((count + 7) // 8), np.uint64)
    return words.view(np.uint8)[:count].reshape(shape)


def _response_table(levels: np.ndarray, v: Mapping[str, float], noisy: bool) -> np.ndarray:
    """The sensor after the optics, as a table: ``uint8`` output for each linear light
    level (and, ``noisy``, each of the 256 noise quantiles, the last index): exposure,
    shot and read noise, clipping, ``ADC_LEVELS`` quantization, sRGB and the tone curve.
    """
    signal = levels * v["exposure"]
    if noisy:
        sigma = np.sqrt(v["shot_noise"] ** 2 * signal + v["read_noise"] ** 2)
        signal = signal[:, None] + sigma[:, None] * _normal_quantiles()[None, :]
    adc = np.clip(signal, 0.0, 1.0) * (ADC_LEVELS - 1) + 0.5
    return np.take(_encode_lut(v["gamma"]), adc.astype(np.int64)).reshape(-1)


@lru_cache(maxsize=8)
def _radius2(height: int, width: int) -> np.ndarray:
    """Squared distance from the frame's centre, 1 in the corners, ``(H, W, 1)``."""
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (height / 2)
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (width / 2)
    return ((y[:, None] ** 2 + x[None, :] ** 2) / 2)[:, :, None]


def _optics(light: np.ndarray, blur: float, vignetting: float) -> np.ndarray:
    """Defocus blur and vignetting of linear ``light`` ``(H, W, 3)``.

    From ``blur`` :data:`HALF_RES_BLUR` on (and even sizes), the blur runs at half
    resolution: a 2x2 mean, the box blur, bilinear 2x up-sampling, their variances adding
    up to ``blur**2`` (the frame has no detail left at that scale; a quarter of the work).
    """
    height, width = light.shape[:2]
    half = blur >= HALF_RES_BLUR and height % 2 == 0 and width % 2 == 0
    if half:
        rows = light.reshape(height // 2, 2, width, 3)  # pairs of rows: contiguous halves
        pairs = np.add(rows[:, 0], rows[:, 1]).reshape(height // 2, width // 2, 2, 3)
        light = np.add(pairs[:, :, 0], pairs[:, :, 1])
        light *= np.float32(0.25)
        # Variances at full resolution: 2x2 mean 0.25, bilinear 2x up-sampling 0.75.
        sigma = float(np.sqrt(blur * blur - 1.0) / 2.0)
    else:
        sigma = blur
    if sigma > BLUR_OFF:
        light = _box_blur(_box_blur(light, sigma, 0), sigma, 1)
    if vignetting > 0:
        light *= 1.0 - np.float32(vignetting) * _radius2(*light.shape[:2])
    if half:
        light = _upsample2(_upsample2(light, 0), 1)
    return light


def _upsample2(image: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear 2x up-sampling along ``axis`` (0 or 1 of ``(H, W, C)``), pixel centres
    aligned, edges repeated: output ``2i`` is ``0.75 x[i] + 0.25 x[i-1]``, ``2i+1`` is
    ``0.75 x[i] + 0.25 x[i+1]``.
    """
    near, far = image * np.float32(0.75), image * np.float32(0.25)
    n = image.shape[axis]
    shape = list(image.shape)
    shape.insert(axis + 1, 2)
    out = np.empty(shape, np.float32)  # (.., n, 2, ..): the pair of outputs of each input

    def at(*index: Any) -> tuple[Any, ...]:
        return (slice(None),) * axis + index

    np.add(near[at(slice(1, None))], far[at(slice(0, n - 1))], out=out[at(slice(1, None), 0)])
    np.add(near[at(slice(0, n - 1))], far[at(slice(1, None))], out=out[at(slice(0, n - 1), 1)])
    out[at(0, 0)] = image[at(0)]
    out[at(n - 1, 1)] = image[at(n - 1)]
    shape = list(image.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)


def _box_blur(image: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """A box filter of standard deviation ``sigma`` along ``axis`` (edges repeated): the
    blend of the two odd widths around it whose variances straddle ``sigma**2``.

    Window sums by doubling (sums of 1, 2, 4, ... neighbours, combined by the width's
    bits): a few whole-array additions, no running sum (``np.cumsum`` costs ~40x an add).
    """
    target = sigma * sigma
    radius = int(np.floor((np.sqrt(12.0 * target + 1.0) - 1.0) / 2.0))
    width = 2 * radius + 1
    var_lo, var_hi = (width**2 - 1) / 12.0, ((width + 2) ** 2 - 1) / 12.0
    blend = (target - var_lo) / (var_hi - var_lo)
    n, pad = image.shape[axis], radius + 1

    def part(array: np.ndarray, start: int, length: int) -> np.ndarray:
        return array[(slice(None),) * axis + (slice(start, start + length),)]

    first, last = part(image, 0, 1), part(image, n - 1, 1)
    padded = np.concatenate(
        [np.repeat(first, pad, axis), image, np.repeat(last, pad, axis)], axis=axis
    )
    # The window of output i starts at padded index i + 1 and is `width` long.
    total: np.ndarray | None = None
    offset, power, run = 1, 1, padded
    while True:
        if width & power:
            piece = part(run, offset, n)
            total = piece.copy() if total is None else np.add(total, piece, out=total)
            offset += power
        if power * 2 > width:
            break
        size = run.shape[axis] - power
        run = part(run, 0, size) + part(run, power, size)
        power *= 2
    assert total is not None
    total *= np.float32((1 - blend) / width + blend / (width + 2))
    if blend > 0:
        edges = part(padded, 0, n) + part(padded, width + 1, n)
        edges *= np.float32(blend / (width + 2))
        total += edges
    return total


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with btgym[torch]
        raise ConfigError(
            "expected Pillow for jpeg_quality < 100 (pip install 'btgym[torch]'), got none"
        ) from None
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


# -- a Gymnasium wrapper -------------------------------------------------------------------
class SensorWrapper(gym.Wrapper):
    """An env whose image observations pass through a :class:`SensorModel`.

    Every observation (reset and step) is a new frame of the sensor; ``info["sensor"]``
    echoes the values drawn for it (:data:`SENSOR_NAMES` order). ``reset(seed=s)`` makes
    the sensor's draws reproducible: frame ``k`` after it uses generator ``(s, k)``.
    ``set_sensor_params`` changes the ranges (e.g. from a curriculum).
    """

    def __init__(
        self, env: gym.Env, params: Mapping[str, Any] | None = None, seed: int = 0
    ) -> None:
        super().__init__(env)
        self.sensor = SensorModel(params, seed)
        self._episode_seed = int(np.random.SeedSequence().entropy % (1 << 63))  # type: ignore[operator]
        self._frame = 0

    def set_sensor_params(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Change the sensor's ranges (names as :meth:`SensorModel.get_params`)."""
        return self.sensor.set_params(params)

    def get_sensor_params(self) -> dict[str, float]:
        """The sensor's ranges by name."""
        return self.sensor.get_params()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env; ``seed`` also fixes the sensor's draws for the episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._episode_seed = int(seed)
        else:  # unseeded: continue the sequence with new, still seed-determined entropy
            self._episode_seed = int(self.sensor.frame_rng(self._episode_seed, -1).integers(2**62))
        self._frame = 0
        return self._sense(obs, info)

    def step(self, action: Any):
        """Step the env; the observation is a new sensor frame."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._sense(obs, info)
        return obs, reward, terminated, truncated, info

    def _sense(self, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        rng = self.sensor.frame_rng(self._episode_seed, self._frame)
        self._frame += 1
        obs, values = self.sensor.apply(obs, rng)
        return obs, {**info, "sensor": values}


__all__ = [
    "SENSOR_EFFECTS",
    "SENSOR_NAMES",
    "SensorModel",
    "SensorWrapper",
    "apply_sensor",
    "linear_to_srgb",
    "sensor_param_space",
    "srgb_to_linear",
]
