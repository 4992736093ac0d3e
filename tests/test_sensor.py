"""The sensor model (btgym.sensor): effects measured on frames, seeding, and its place in
streams and envs (in-process servers, and real Blender instances)."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from btgym.data import StreamDataset, collate
from btgym.errors import ConfigError, ParamValueError, UnknownParamError
from btgym.sensor import SENSOR_NAMES, SensorModel, SensorWrapper, apply_sensor
from tests.conftest import thread_servers

FRAME_SCENE = "tests.scenes.frames:FrameScene"


def effects(**values: float) -> np.ndarray:
    """Per-frame values: every effect off but those given."""
    off = SensorModel().draw(np.random.default_rng(0))
    for name, value in values.items():
        off[SENSOR_NAMES.index(name)] = value
    return off


def fixed(**values: float) -> SensorModel:
    """A model whose ranges are the single values given."""
    return SensorModel({f"{n}_{end}": v for n, v in values.items() for end in ("min", "max")})


def decode(level: float) -> float:
    """sRGB to linear light (IEC 61966-2-1)."""
    v = level / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def encode(light: float) -> float:
    """Linear light to sRGB levels."""
    v = light * 12.92 if light <= 0.0031308 else 1.055 * light ** (1 / 2.4) - 0.055
    return 255 * v


def flat(level: int, shape=(128, 160, 3)) -> np.ndarray:
    return np.full(shape, level, np.uint8)


def checker(shape=(128, 160, 3), cell=8) -> np.ndarray:
    y, x = np.indices(shape[:2])
    board = ((y // cell + x // cell) % 2 * 160 + 48).astype(np.uint8)
    return np.repeat(board[:, :, None], shape[2], axis=2)


def noise_sigma(frame: np.ndarray) -> float:
    """Noise of a frame of a flat or piecewise-flat image: MAD of horizontal differences."""
    d = np.diff(np.asarray(frame, np.float64), axis=1).ravel()
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def sharpness(frame: np.ndarray) -> float:
    """Mean squared gradient."""
    f = np.asarray(frame, np.float64).mean(axis=2)
    return float((np.diff(f, axis=0) ** 2).mean() + (np.diff(f, axis=1) ** 2).mean())


def test_every_effect_off_leaves_the_frame_as_it_is():
    frame = checker()
    out, values = SensorModel().apply(frame, np.random.default_rng(0))
    assert out is frame
    assert SensorModel().to_dict(values) == {
        "exposure": 1.0,
        "gamma": 1.0,
        "blur": 0.0,
        "vignetting": 0.0,
        "shot_noise": 0.0,
        "read_noise": 0.0,
        "jpeg_quality": 100.0,
    }


def test_read_noise_has_the_sigma_the_model_predicts():
    for read in (0.005, 0.02):
        out = apply_sensor(flat(128), effects(read_noise=read), np.random.default_rng(1))
        s = decode(128)  # linear light of grey 128
        slope = (encode(s + 1e-4) - encode(s - 1e-4)) / 2e-4  # d(output DN) / d(light)
        assert out.astype(np.float64).std() == pytest.approx(slope * read, rel=0.08)
        assert abs(out.astype(np.float64).mean() - 128) < 0.5


def test_noise_after_blur_or_vignetting_keeps_the_level():
    # The optics path indexes the sensor's table by 1,024 light levels x 256 noise values.
    for values in (effects(blur=3.0, read_noise=0.01), effects(vignetting=0.01, shot_noise=0.02)):
        out = apply_sensor(flat(128), values, np.random.default_rng(4)).astype(np.float64)
        assert abs(out.mean() - 128) < 1.0 and 2 < out.std() < 12


def test_shot_noise_grows_with_the_signal_and_read_noise_does_not():
    def sigma_in_light(level: int, **values: float) -> float:
        out = apply_sensor(flat(level), effects(**values), np.random.default_rng(2))
        light = np.vectorize(decode)(out.astype(np.float64))
        return float(light.std())

    dark, bright = sigma_in_light(60, shot_noise=0.05), sigma_in_light(220, shot_noise=0.05)
    s_dark, s_bright = decode(60), decode(220)
    assert bright / dark == pytest.approx(np.sqrt(s_bright / s_dark), rel=0.15)
    read_dark, read_bright = (sigma_in_light(level, read_noise=0.01) for level in (60, 220))
    assert read_bright / read_dark == pytest.approx(1.0, rel=0.15)


def test_blur_drops_sharpness_step_by_step_and_spreads_a_point_by_sigma():
    board = checker()
    sharp = [
        sharpness(apply_sensor(board, effects(blur=b), np.random.default_rng(0)))
        for b in (0, 0.5, 1, 2, 4)
    ]
    assert all(a > b for a, b in zip(sharp, sharp[1:], strict=False))
    assert sharp[-1] < 0.2 * sharp[0]
    point = np.zeros((61, 61, 3), np.uint8)
    point[30, 30] = 255
    out = apply_sensor(point, effects(blur=2.5), np.random.default_rng(0))
    light = np.vectorize(decode)(out[:, :, 0].astype(np.float64))
    rows = light.sum(axis=1)
    spread = (rows * (np.arange(61) - 30) ** 2).sum() / rows.sum()
    assert spread == pytest.approx(2.5**2, rel=0.15)


def test_vignetting_exposure_and_gamma_move_levels_as_they_should():
    out = apply_sensor(flat(128), effects(vignetting=0.5), np.random.default_rng(0))
    centre, corner = float(out[64, 80, 0]), float(out[0, 0, 0])
    assert corner == pytest.approx(encode(0.5 * decode(128)), abs=1.0)
    assert centre == pytest.approx(128, abs=1.0)
    brighter = apply_sensor(flat(100), effects(exposure=2.0), np.random.default_rng(0))
    assert float(brighter.mean()) == pytest.approx(encode(2 * decode(100)), abs=1.0)
    lifted = apply_sensor(flat(100), effects(gamma=2.0), np.random.default_rng(0))
    assert float(lifted.mean()) == pytest.approx(255 * (100 / 255) ** 0.5, abs=1.0)


def test_jpeg_loses_more_at_lower_quality_and_alpha_is_kept():
    board = checker(cell=3)
    errors = [
        np.abs(
            apply_sensor(board, effects(jpeg_quality=q), np.random.default_rng(0)).astype(int)
            - board
        ).mean()
        for q in (95, 40, 10)
    ]
    assert 0 < errors[0] < errors[1] < errors[2]
    rgba = np.dstack([checker(), np.full((128, 160), 77, np.uint8)])
    out = apply_sensor(rgba, effects(read_noise=0.01), np.random.default_rng(0))
    assert out.shape == rgba.shape and (out[..., 3] == 77).all()


def test_the_same_seed_gives_the_same_frame_and_every_frame_new_noise():
    sensor = fixed(read_noise=0.02, shot_noise=0.02, blur=1.0)
    board = checker()
    a, va = sensor.apply(board, sensor.frame_rng(5, 0))
    b, vb = sensor.apply(board, sensor.frame_rng(5, 0))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(va, vb)
    c, _ = sensor.apply(board, sensor.frame_rng(5, 1))
    other = SensorModel(sensor.get_params(), seed=1)
    other_seed, _ = other.apply(board, other.frame_rng(5, 0))
    assert (a != c).mean() > 0.5 and not np.array_equal(a, other_seed)
    # Fresh noise: two frames' noise is uncorrelated, and so are a frame's tiles.
    grey = flat(128, (256, 256, 3))
    n1, n2 = (
        sensor.apply(grey, sensor.frame_rng(5, k))[0].astype(np.float64) - 128 for k in (0, 1)
    )
    n1, n2 = (n - n.mean() for n in (n1, n2))
    assert abs(np.corrcoef(n1.ravel(), n2.ravel())[0, 1]) < 0.02
    tiles = n1[:128, :128].ravel(), n1[128:, 128:].ravel()
    assert abs(np.corrcoef(*tiles)[0, 1]) < 0.03


def test_ranges_are_named_bounded_and_drawn_per_frame():
    sensor = SensorModel({"read_noise_min": 0.01, "read_noise_max": 0.03, "jpeg_quality_min": 50})
    draws = np.array([sensor.draw(sensor.frame_rng(0, k)) for k in range(200)])
    noise = draws[:, SENSOR_NAMES.index("read_noise")]
    assert 0.01 <= noise.min() < 0.012 and 0.028 < noise.max() <= 0.03
    quality = draws[:, SENSOR_NAMES.index("jpeg_quality")]
    assert quality.min() >= 50 and (quality == np.round(quality)).all() and len(set(quality)) > 20
    with pytest.raises(UnknownParamError, match="read_noise_max"):
        sensor.set_params({"read_noise_mx": 0.1})
    with pytest.raises(ParamValueError, match="blur_max=99"):
        sensor.set_params({"blur_max": 99})
    with pytest.raises(ConfigError, match=r"uint8 frame .* float32 \(4, 4\)"):
        sensor.apply(np.zeros((4, 4), np.float32), sensor.frame_rng(0))


def test_the_wrapper_echoes_values_and_replays_by_seed():
    from blender_side.testing import SceneEnv

    env = SensorWrapper(SceneEnv(FRAME_SCENE, side=32), {"read_noise_max": 0.05})
    first, info = env.reset(seed=3)
    assert info["sensor"].shape == (len(SENSOR_NAMES),) and 0 <= info["sensor"][5] <= 0.05
    steps = [env.step(0)[0] for _ in range(2)]
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(steps[0], steps[1])
    env.set_sensor_params({"read_noise_max": 0.0})
    assert env.get_sensor_params()["read_noise_max"] == 0.0
    clean, info = env.reset(seed=3)
    assert (clean == 0).all() and info["sensor"][5] == 0.0
    env.close()


def test_a_stream_senses_in_its_workers_reproducibly_and_follows_new_ranges():
    sensor = {"read_noise_min": 0.01, "read_noise_max": 0.01}
    with thread_servers(2, scene=FRAME_SCENE, transport="ipc", side=32) as servers:
        addresses = [s.address for s in servers]

        def stream(workers: int):
            dataset = StreamDataset(addresses=addresses, items=8, seed=4, sensor=sensor)
            return dataset, list(
                DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate)
            )

        _, here = stream(0)
        _, there = stream(2)
        for batches in (here, there):
            for batch in batches:
                assert batch["sensor"].shape == (4, len(SENSOR_NAMES))
                assert np.allclose(batch["sensor"][:, 5].numpy(), 0.01)
                for obs, step in zip(batch["obs"].numpy(), batch["step"].numpy(), strict=True):
                    # flat frames of value `step` (dark: the noise clips), plus noise
                    assert noise_sigma(obs) > 5 and abs(obs.astype(float).mean() - step) < 30
        key = lambda b: [(int(e), int(s)) for e, s in zip(b["env_id"], b["step"], strict=True)]  # noqa: E731
        by_key = {k: o for b in here for k, o in zip(key(b), b["obs"].numpy(), strict=True)}
        shared = 0
        for b in there:  # the same seed: the same noisy frames, in workers or not
            for k, obs in zip(key(b), b["obs"].numpy(), strict=True):
                if k in by_key:
                    np.testing.assert_array_equal(obs, by_key[k])
                    shared += 1
        assert shared >= 4
        dataset = StreamDataset(addresses=addresses, seed=4, sensor=sensor)
        items = iter(DataLoader(dataset, batch_size=None, num_workers=1))
        next(items)
        dataset.set_sensor_params({"read_noise_min": 0.0, "read_noise_max": 0.0})
        later = [next(items) for _ in range(20)][-1]  # past what was queued before
        assert later["sensor"][5] == 0.0 and noise_sigma(later["obs"]) == 0.0
        del items
    with pytest.raises(ConfigError, match="sensor="):
        StreamDataset(addresses=addresses).set_sensor_params({"blur_max": 1.0})


@pytest.mark.blender
def test_a_blender_stream_with_a_sensor_is_noisy_blurred_and_reproducible():
    tiny = {"width": 96, "height": 64}
    clean = next(iter(StreamDataset("btgym/Cube-v0", 1, items=1, seed=2, env_kwargs=tiny)))
    sensor = {"read_noise_min": 0.03, "read_noise_max": 0.03, "blur_min": 1.5, "blur_max": 1.5}
    runs = [
        list(StreamDataset("btgym/Cube-v0", 1, items=3, seed=2, env_kwargs=tiny, sensor=sensor))
        for _ in range(2)
    ]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a["obs"], b["obs"])
    first = runs[0][0]["obs"]
    assert first.shape == clean["obs"].shape and first.dtype == np.uint8
    assert noise_sigma(clean["obs"]) < 0.5 < 2.0 < noise_sigma(first)
    smooth = SensorModel({"blur_min": 1.5, "blur_max": 1.5})
    assert sharpness(smooth.sense_item(clean)["obs"]) < 0.7 * sharpness(clean["obs"])
    assert not np.array_equal(runs[0][1]["obs"], runs[0][2]["obs"])
