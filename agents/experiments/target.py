"""Experiment 2, rebuilt (issue 17): the neutral target, fixed before any training.

The target is data (:data:`TARGET`, a frozen :class:`TargetSpec`), committed as
``agents/experiments/target_spec.json`` on :data:`FIXED_ON`; ``tests/test_target.py``
checks that the two agree, so the target cannot change silently. It is rendered by a
path no training condition uses: EEVEE (soft shadows, horizon-scan ambient occlusion
and global illumination, screen-space reflections, AgX view), grey plastic parts on a
textured table under one of two light set-ups, then the effects of a real sensor in
numpy (slight defocus, vignetting, shot and read noise).
:class:`~agents.experiments.target_scene.TargetScene` is Parts-v0 with that look;
:func:`render_target` renders the set once into tar shards (:mod:`btgym.recording`).

    python -m agents.experiments.target                 # render the target set (cached)
    python -m agents.experiments.target --write-spec    # dump TARGET (only when fixing it)
    python -m agents.experiments.target --v3            # the fresh held-out target (issue 27)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FIXED_ON = "2026-12-01"
SPEC_FILE = Path(__file__).with_name("target_spec.json")
SCENE = "agents.experiments.target_scene:TargetScene"
Range = tuple[float, float]
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Eevee:
    """EEVEE (Blender 5.0, ``scene.eevee``) settings; costs measured in ``docs/detection.md``."""

    samples: int = 4  # taa_render_samples (anti-aliasing; jittered shadows accumulate over them)
    shadows: bool = True  # use_shadows: virtual shadow maps
    shadow_ray_count: int = 2  # shadow-map ray tracing: soft shadows from the lights' sizes
    shadow_step_count: int = 6
    shadow_jitter: bool = False  # lights' use_shadow_jitter: exact but ~20 % dearer, noisy at 4
    raytracing: bool = True  # use_raytracing: screen-space reflections and refractions
    ray_tracing_method: str = "SCREEN"
    trace_max_roughness: float = 0.5  # rougher surfaces get the horizon scan instead
    fast_gi: bool = True  # horizon scan: ambient occlusion plus short-range bounced light
    fast_gi_method: str = "GLOBAL_ILLUMINATION"
    fast_gi_distance: float = 2.0
    view_transform: str = "AgX"  # a camera-like tone curve (training renders use Standard)
    exposure: float = 0.0


@dataclass(frozen=True)
class Plastic:
    """Grey plastic parts: Principled BSDF, one colour per part (display sRGB HSV)."""

    value: Range = (0.35, 0.7)
    saturation_max: float = 0.04
    roughness: Range = (0.3, 0.6)
    specular_ior_level: Range = (0.4, 0.6)
    ior: float = 1.49  # ABS / PP
    bump_strength: float = 0.03  # faint moulding texture (noise bump)
    bump_scale: float = 40.0


@dataclass(frozen=True)
class TableFinish:
    """One table surface: noise between two sRGB colours, stretched along x by ``stretch``."""

    name: str
    dark: RGB
    light: RGB
    stretch: float


@dataclass(frozen=True)
class Table:
    """The textured table: a procedural noise texture (colour and bump) on the ground."""

    finishes: tuple[TableFinish, ...] = (
        TableFinish("wood", (0.30, 0.21, 0.14), (0.52, 0.39, 0.27), 8.0),
        TableFinish("grey laminate", (0.30, 0.30, 0.31), (0.46, 0.46, 0.47), 1.0),
        TableFinish("green ESD mat", (0.16, 0.27, 0.22), (0.24, 0.37, 0.31), 1.0),
    )
    noise_scale: Range = (0.8, 2.5)  # per scene unit (a part is ~1 unit)
    noise_detail: float = 6.0
    roughness: Range = (0.45, 0.8)
    bump_strength: float = 0.15


@dataclass(frozen=True)
class AreaRig:
    """Light set-up 1, a studio: an area key light, a larger, weaker fill opposite, a room."""

    key_power: Range = (600.0, 1200.0)  # watts
    key_size: Range = (2.0, 4.0)
    key_distance: Range = (8.0, 12.0)
    key_elevation: Range = (35.0, 70.0)  # degrees
    fill_ratio: Range = (0.15, 0.35)  # fill power / key power
    fill_size: float = 6.0
    world_colour: RGB = (0.55, 0.56, 0.58)
    world_strength: Range = (0.2, 0.5)


@dataclass(frozen=True)
class SunRig:
    """Light set-up 2, a window: a soft sun and a bluish sky."""

    sun_strength: Range = (2.5, 4.5)
    sun_angle: Range = (2.0, 8.0)  # degrees of the sun's disc: the shadows' softness
    sun_elevation: Range = (30.0, 70.0)
    sky_colour: RGB = (0.55, 0.65, 0.80)
    sky_strength: Range = (0.4, 0.9)


@dataclass(frozen=True)
class Lights:
    """The two set-ups and the probability of the first (drawn per arrangement)."""

    area: AreaRig = field(default_factory=AreaRig)
    sun: SunRig = field(default_factory=SunRig)
    area_probability: float = 0.5


@dataclass(frozen=True)
class Camera:
    """Camera on a hemisphere around the pile (Parts-v0's ``random_view``)."""

    radius: Range = (7.0, 11.0)
    elevation: Range = (25.0, 70.0)  # degrees
    lens: float = 50.0  # mm, 36 mm sensor width (Blender's default)


@dataclass(frozen=True)
class Sensor:
    """Applied in numpy after the render, in linear light (sRGB ~ gamma 2.2), in this order:
    defocus (Gaussian blur), vignetting (``1 - k r^2``, r = 1 at the corners), shot noise
    (Poisson, ``full_well`` electrons at white), read noise (Gaussian), 8-bit rounding."""

    blur_sigma: Range = (0.4, 0.8)  # pixels
    vignetting: Range = (0.25, 0.4)
    full_well: Range = (300.0, 1000.0)
    read_noise: Range = (0.002, 0.006)
    gamma: float = 2.2


@dataclass(frozen=True)
class Contents:
    """What lies on the table: Parts-v0's parameters (no supershape distractors)."""

    count: tuple[int, int] = (6, 12)
    occluder_prob: float = 0.0


@dataclass(frozen=True)
class TargetSpec:
    """The whole target: size, frames, seed, date and every look parameter."""

    fixed_on: str = FIXED_ON
    seed: int = 20_261_201
    width: int = 160
    height: int = 128
    frames: int = 300
    views: int = 4  # camera views per arrangement (75 arrangements)
    num_classes: int = 6
    min_visibility: float = 0.1  # objects less visible are not ground truth
    eevee: Eevee = field(default_factory=Eevee)
    plastic: Plastic = field(default_factory=Plastic)
    table: Table = field(default_factory=Table)
    lights: Lights = field(default_factory=Lights)
    camera: Camera = field(default_factory=Camera)
    sensor: Sensor = field(default_factory=Sensor)
    contents: Contents = field(default_factory=Contents)


TARGET = TargetSpec()


# -- the fresh held-out target (issue 27), fixed before any v3 training range ----------------
FIXED_V3_ON = "2026-12-07"
SPEC_V3_FILE = Path(__file__).with_name("target_v3_spec.json")


@dataclass(frozen=True)
class OverheadRig:
    """Light set-up 3, a workshop ceiling: a 2x2 grid of panel lights straight above the
    table, cool white, in a dim room (neither v2 set-up lights from straight above)."""

    panel_power: Range = (150.0, 400.0)  # watts each
    panel_size: Range = (1.0, 2.0)
    height: Range = (5.0, 8.0)  # above the table
    spacing: Range = (3.0, 6.0)  # between neighbouring panels
    colour: RGB = (0.90, 0.95, 1.0)  # ~6,500 K fluorescent / LED panels
    world_colour: RGB = (0.45, 0.46, 0.48)
    world_strength: Range = (0.1, 0.3)


@dataclass(frozen=True)
class LightsV3:
    """Three set-ups, drawn per arrangement with ``probabilities`` (area, sun, overhead)."""

    area: AreaRig = field(default_factory=AreaRig)
    sun: SunRig = field(default_factory=SunRig)
    overhead: OverheadRig = field(default_factory=OverheadRig)
    probabilities: tuple[float, float, float] = (0.3, 0.3, 0.4)


@dataclass(frozen=True)
class TableV3(Table):
    """Tables none of the v2 target's finishes resemble."""

    finishes: tuple[TableFinish, ...] = (
        TableFinish("light oak", (0.55, 0.42, 0.29), (0.74, 0.60, 0.44), 6.0),
        TableFinish("blue ESD mat", (0.10, 0.17, 0.30), (0.18, 0.27, 0.44), 1.0),
        TableFinish("black rubber mat", (0.04, 0.04, 0.05), (0.12, 0.12, 0.13), 1.0),
        TableFinish("brushed steel", (0.36, 0.38, 0.41), (0.56, 0.58, 0.61), 14.0),
    )


@dataclass(frozen=True)
class SensorV3(Sensor):
    """A machine-vision camera at moderate gain, every range from published sensor data:

    - ``full_well`` 2,000-8,000 electrons at white: a large-pixel (5.86 um) sensor saturates
      at ~32,700 e- (Sony IMX174, EMVA 1288 data as reported by fhotolab.fherb.de, 2016,
      "Sony Exmor Sensoren: Datenblattrekonstruktion IMX157"); at 12-24 dB analogue gain
      (x4-x16), or with 2-3 um pixels (full well scales with pixel area), that is ~2,000-8,000.
    - ``read_noise`` 0.0003-0.003 of full scale: 2-7 e- (IMX174: 6.8 e-; R. N. Clark,
      clarkvision.com, "Digital Camera Sensor Performance Summary": read noise of modern
      sensors mostly under ~2 e-, rarely above ~15 e-) over that full well.
    - ``vignetting`` 0.15-0.35: the cos^4 law gives 29 % less light in the corners of a
      50 mm lens on a 36 mm sensor (23.4 degrees off axis); lens design and stopping down
      reduce it, a wide aperture adds mechanical vignetting.
    - ``blur_sigma`` 0.5-1.0 px: the optical low-pass filter and demosaicing of a Bayer
      sensor (colour sampled every 2 px) spread a point over about one pixel.
    """

    blur_sigma: Range = (0.5, 1.0)
    vignetting: Range = (0.15, 0.35)
    full_well: Range = (2000.0, 8000.0)
    read_noise: Range = (0.0003, 0.003)


@dataclass(frozen=True)
class TargetSpecV3(TargetSpec):
    """The fresh held-out target: a new seed, new tables, a third light set-up, a sensor
    from real-camera ranges; the rest (parts, camera, EEVEE) as the v2 target."""

    fixed_on: str = FIXED_V3_ON
    seed: int = 20_261_207
    table: Table = field(default_factory=TableV3)
    lights: LightsV3 = field(default_factory=LightsV3)  # type: ignore[assignment]
    sensor: Sensor = field(default_factory=SensorV3)


TARGET_V3 = TargetSpecV3()


# -- the spec as data ------------------------------------------------------------------------
def spec_dict(spec: TargetSpec = TARGET) -> dict[str, Any]:
    """The spec as JSON-shaped data (tuples as lists), what the scene and the file hold."""
    return json.loads(json.dumps(asdict(spec)))


def load_spec(path: Path = SPEC_FILE) -> dict[str, Any]:
    """The committed spec."""
    return json.loads(path.read_text())


def write_spec(path: Path = SPEC_FILE, spec: TargetSpec = TARGET) -> None:
    """Dump the spec (only when the target is fixed; the test compares file and code)."""
    text = json.dumps(spec_dict(spec), indent=2)
    flat = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: f"[{' '.join(m.group(1).split())}]", text)
    path.write_text(flat + "\n")


def scene_params(spec: dict[str, Any]) -> dict[str, Any]:
    """Parts-v0 parameters the target uses (its look replaces the scene's material draws)."""
    k = spec["num_classes"]
    low, high = spec["contents"]["count"]
    return {
        "class_probs": [1.0 / k] * k,
        "count_min": float(low),
        "count_max": float(high),
        "occluder_prob": float(spec["contents"]["occluder_prob"]),
        "radius_min": float(spec["camera"]["radius"][0]),
        "radius_max": float(spec["camera"]["radius"][1]),
        "elevation_min": float(spec["camera"]["elevation"][0]),
        "elevation_max": float(spec["camera"]["elevation"][1]),
    }


def scene_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`~agents.experiments.target_scene.TargetScene`."""
    return {"width": spec["width"], "height": spec["height"], "views": spec["views"], "spec": spec}


# -- sensor effects (numpy) ------------------------------------------------------------------
def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an ``(H, W, C)`` float image, edges reflected."""
    if sigma <= 0:
        return image
    radius = max(1, math.ceil(3.0 * sigma))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    height, width = image.shape[:2]
    padded = np.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
    rows = sum(w * padded[i : i + height] for i, w in enumerate(kernel))
    padded = np.pad(rows, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    return sum(w * padded[:, i : i + width] for i, w in enumerate(kernel))


def vignette(height: int, width: int, strength: float) -> np.ndarray:
    """Gain ``1 - strength * r^2`` per pixel, ``r`` = 0 at the centre and 1 at the corners."""
    y = (np.arange(height) + 0.5 - height / 2) / (height / 2)
    x = (np.arange(width) + 0.5 - width / 2) / (width / 2)
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2.0
    return 1.0 - strength * r2


def draw_sensor(sensor: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
    """One frame's sensor values, drawn from the spec's ranges."""
    names = ("blur_sigma", "vignetting", "full_well", "read_noise")
    drawn = {name: float(rng.uniform(*sensor[name])) for name in names}
    return drawn | {"gamma": float(sensor["gamma"])}


def apply_sensor(
    frame: np.ndarray, drawn: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """A rendered ``(H, W, 3) uint8`` frame as a sensor with ``drawn`` values records it
    (:class:`Sensor`: blur, vignetting, shot and read noise in linear light; a new array)."""
    gamma = drawn["gamma"]
    light = (frame.astype(np.float64) / 255.0) ** gamma
    light = gaussian_blur(light, drawn["blur_sigma"])
    light = light * vignette(*frame.shape[:2], drawn["vignetting"])[..., None]
    full_well = drawn["full_well"]
    light = rng.poisson(np.clip(light, 0.0, None) * full_well) / full_well
    light = light + rng.normal(0.0, drawn["read_noise"], light.shape)
    out = np.clip(light, 0.0, 1.0) ** (1.0 / gamma) * 255.0
    return np.rint(out).astype(np.uint8)


# -- rendering the set -----------------------------------------------------------------------
def target_action(spec: dict[str, Any]) -> np.ndarray:
    """The Parts-v0 action vector of the target's parameters."""
    from envs.parts_params import parts_param_space

    space = parts_param_space(spec["num_classes"])
    return space.to_action(scene_params(spec)).astype(np.float64)


def render_target(directory: Path, spec: dict[str, Any] | None = None, frames: int | None = None):
    """The target set, rendered once into tar shards under ``directory`` (reused when its
    ``meta.json`` matches); ``frames`` renders fewer (tests). Returns a ``ReplayDataset``."""
    from agents.experiments.shards import cached_shards, rendered
    from btgym.data import StreamDataset

    spec = spec or spec_dict()
    count = int(frames if frames is not None else spec["frames"])
    meta = {"count": count, "spec": spec, "scene": SCENE}
    action = target_action(spec)

    def items():
        # One instance: EEVEE on llvmpipe already uses both cores. One step (its views) a
        # request: bpy 5.3's EEVEE takes ~20 s a step here (5.0: ~11 s), and a request
        # queued behind another waits for both.
        dataset = StreamDataset(
            SCENE, 1, seed=spec["seed"], params=action, env_kwargs=scene_kwargs(spec),
            start_timeout=300, timeout=300, frames_per_request=1,
        )  # fmt: skip
        return rendered(iter(dataset), action)  # the scene starts with it too: a safeguard

    return cached_shards(directory, meta, count, items)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/detection/cache/target-eevee"))
    parser.add_argument("--frames", type=int, default=None, help="fewer frames (a trial)")
    parser.add_argument("--write-spec", action="store_true", help=f"dump TARGET to {SPEC_FILE}")
    parser.add_argument("--v3", action="store_true", help="the fresh held-out target (issue 27)")
    args = parser.parse_args(argv)
    spec_file, spec = (SPEC_V3_FILE, TARGET_V3) if args.v3 else (SPEC_FILE, TARGET)
    if args.write_spec:
        write_spec(spec_file, spec)
        print(f"wrote {spec_file}")
        return
    started = time.perf_counter()
    out = args.out.with_name(args.out.name + "-v3") if args.v3 else args.out
    replay = render_target(out, spec_dict(spec), frames=args.frames)
    print(f"{len(replay)} target frames in {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
