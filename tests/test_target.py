"""Experiment 2's neutral target (issue 17): the committed spec equals the code, the sensor
model does what it says, and real target frames (EEVEE, the spec's size) carry the sensor's
vignetting and noise and valid Parts-v0 annotations, through the scene and the shards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.experiments import target
from envs.parts_params import parts_param_space

ROOT = Path(__file__).resolve().parent.parent
SPEC = target.load_spec()
WIDTH, HEIGHT = SPEC["width"], SPEC["height"]
DRAWN = {"blur_sigma": 0.6, "vignetting": 0.3, "full_well": 500.0, "read_noise": 0.004}
DRAWN |= {"gamma": 2.2}


def test_committed_spec_is_the_code_and_was_fixed_on_the_date():
    assert target.spec_dict() == SPEC, "target_spec.json and TARGET differ: the target is fixed"
    assert SPEC["fixed_on"] == target.FIXED_ON == "2026-12-01"
    assert (WIDTH, HEIGHT) == (160, 128) and SPEC["frames"] >= 300
    assert SPEC["frames"] % SPEC["views"] == 0
    assert SPEC["eevee"]["view_transform"] != "Standard"  # no training render uses it


def test_target_parameters_are_valid_parts_parameters():
    space = parts_param_space(SPEC["num_classes"])
    named = space.to_dict(target.target_action(SPEC))
    assert named["class_probs"] == pytest.approx([1 / 6] * 6)
    assert (named["radius_min"], named["radius_max"]) == tuple(SPEC["camera"]["radius"])
    assert named["occluder_prob"] == 0.0


def corner_and_centre(image: np.ndarray) -> tuple[float, float]:
    h, w = image.shape[:2]
    corners = [image[:16, :16], image[:16, -16:], image[-16:, :16], image[-16:, -16:]]
    centre = image[h // 2 - 16 : h // 2 + 16, w // 2 - 16 : w // 2 + 16]
    return float(np.mean([c.mean() for c in corners])), float(centre.mean())


def high_pass(image: np.ndarray) -> np.ndarray:
    smooth = target.gaussian_blur(image.astype(np.float64), 1.5)
    return image.astype(np.float64) - smooth


def test_sensor_darkens_corners_blurs_and_adds_noise_reproducibly():
    flat = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    out = target.apply_sensor(flat, DRAWN, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == flat.shape
    corners, centre = corner_and_centre(out)
    assert corners < centre - 10
    assert 1.5 < high_pass(out[40:90, 50:110]).std() < 10  # per-pixel noise, a few levels
    again = target.apply_sensor(flat, DRAWN, np.random.default_rng(0))
    assert np.array_equal(out, again)
    constant = np.full((8, 9, 3), 0.3)
    assert np.allclose(target.gaussian_blur(constant, 0.6), 0.3)
    edge = np.zeros((8, 16, 1))
    edge[:, 8:] = 1.0
    blurred = target.gaussian_blur(edge, 0.6)[0, :, 0]
    assert 0 < blurred[7] < 0.5 < blurred[8] < 1 and blurred[0] == pytest.approx(0, abs=1e-9)
    drawn = target.draw_sensor(SPEC["sensor"], np.random.default_rng(1))
    for name in ("blur_sigma", "vignetting", "full_well", "read_noise"):
        low, high = SPEC["sensor"][name]
        assert low <= drawn[name] <= high


def check_annotations(info: dict) -> int:
    """Parts-v0 annotations of one frame are consistent; returns objects >= 10 % visible."""
    classes = np.asarray(info["class_id"]).reshape(-1)
    boxes = np.asarray(info["bbox_visib"], np.float64).reshape(-1, 4)
    visible = np.asarray(info["visib_fract"], np.float64).reshape(-1)
    assert len(classes) == len(boxes) == len(visible) >= SPEC["contents"]["count"][0]
    assert classes.min() >= 0 and classes.max() < SPEC["num_classes"]
    assert ((visible >= 0) & (visible <= 1)).all()
    seen = visible > 0
    assert (boxes[seen, 0] >= 0).all() and (boxes[seen, 2] <= WIDTH).all()
    assert (boxes[seen, 1] >= 0).all() and (boxes[seen, 3] <= HEIGHT).all()
    assert (boxes[seen, 2] > boxes[seen, 0]).all() and (boxes[seen, 3] > boxes[seen, 1]).all()
    assert info["light_setup"] in ("area", "sun")
    assert set(info["sensor"]) == set(DRAWN)
    return int((visible >= SPEC["min_visibility"]).sum())


# Renders one target view, the same view again without the sensor, and a second view.
SCRIPT = """
import sys
import numpy as np
from blender_side.testing import SceneEnv
from agents.experiments import target
spec = target.load_spec()
env = SceneEnv(target.SCENE, **target.scene_kwargs(spec))
recorded, info = env.reset(seed=spec["seed"])
clean = env.scene.renderer.render()
second, *_, info2 = env.step(env.scene._params)
np.savez(sys.argv[1], recorded=recorded, clean=clean, second=second,
         visib=np.asarray(info["visib_fract"]), classes=np.asarray(info["class_id"]),
         boxes=np.asarray(info["bbox_visib"]), light=info["light_setup"],
         **{f"sensor_{k}": v for k, v in info["sensor"].items()})
env.close()
"""


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_target_frames_carry_vignetting_and_noise(tmp_path):
    out = tmp_path / "frames.npz"
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, check=True, timeout=170,
        capture_output=True,
    )  # fmt: skip
    data = np.load(out)
    recorded, clean, second = data["recorded"], data["clean"], data["second"]
    assert recorded.shape == second.shape == (HEIGHT, WIDTH, 3) == clean.shape
    assert recorded.dtype == np.uint8 and not np.array_equal(recorded, second)
    assert clean.std() > 5  # a rendered scene, not an empty frame
    drawn = {k: float(data[f"sensor_{k}"]) for k in DRAWN}
    gamma = drawn["gamma"]
    gain = ((recorded / 255.0) ** gamma + 1e-3) / ((clean / 255.0) ** gamma + 1e-3)
    corners, centre = corner_and_centre(gain)
    assert corners < centre - 0.1, (corners, centre, drawn)
    # What the sensor gives without noise: the recorded frame differs by per-pixel noise.
    noiseless = drawn | {"full_well": 1e12, "read_noise": 0.0}
    expected = target.apply_sensor(clean, noiseless, np.random.default_rng(0))
    residual = recorded.astype(np.float64) - expected
    assert abs(residual.mean()) < 1.0 and 1.0 < residual.std() < 12.0, residual.std()
    assert high_pass(residual).std() > 0.8 * residual.std()  # uncorrelated pixel to pixel
    info = {
        "class_id": data["classes"], "bbox_visib": data["boxes"], "visib_fract": data["visib"],
        "light_setup": str(data["light"]), "sensor": DRAWN,
    }  # fmt: skip
    assert check_annotations(info) >= 1


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_target_set_through_shards_is_annotated_and_cached(tmp_path):
    directory = tmp_path / "target"
    replay = target.render_target(directory, frames=2)
    assert len(replay) == 2
    for item in (replay[0], replay[1]):
        assert item["obs"].shape == (HEIGHT, WIDTH, 3) and item["obs"].dtype == np.uint8
        assert np.allclose(item["params"], target.target_action(SPEC), atol=1e-5)
        assert check_annotations(item["info"]) >= 1
    first = replay[0]["obs"]
    shards = sorted(directory.glob("shard-*.tar"))
    again = target.render_target(directory, frames=2)  # meta.json matches: nothing rendered
    assert len(again) == 2 and sorted(directory.glob("shard-*.tar")) == shards
    assert np.array_equal(again[0]["obs"], first)


# -- the fresh held-out target (issue 27) -------------------------------------------------------
SPEC_V3 = target.load_spec(target.SPEC_V3_FILE)


def test_held_out_v3_spec_is_committed_and_new_in_seed_tables_lights_and_sensor():
    assert target.spec_dict(target.TARGET_V3) == SPEC_V3, "target_v3_spec.json and code differ"
    assert SPEC_V3["fixed_on"] == target.FIXED_V3_ON == "2026-12-07"
    assert SPEC_V3["seed"] != SPEC["seed"]
    old = {f["name"] for f in SPEC["table"]["finishes"]}
    assert old.isdisjoint(f["name"] for f in SPEC_V3["table"]["finishes"])
    lights = SPEC_V3["lights"]
    assert set(lights) == {"area", "sun", "overhead", "probabilities"}
    assert sum(lights["probabilities"]) == pytest.approx(1.0) and min(lights["probabilities"]) > 0
    sensor = SPEC_V3["sensor"]  # within the cited real-camera ranges (SensorV3's docstring)
    assert 1_000 <= sensor["full_well"][0] < sensor["full_well"][1] <= 33_000
    electrons = np.array(sensor["read_noise"]) * np.array(sensor["full_well"])[::-1]
    assert electrons.min() >= 0.5 and electrons.max() <= 25  # read noise in electrons
    # The v2 target stays as it was: a second test.
    assert target.spec_dict() == SPEC and "overhead" not in SPEC["lights"]


SCRIPT_V3 = """
import sys
import numpy as np
from blender_side.testing import SceneEnv
from agents.experiments import target
spec = target.load_spec(target.SPEC_V3_FILE)
spec["lights"]["probabilities"] = [0.0, 0.0, 1.0]  # the new set-up, for sure
env = SceneEnv(target.SCENE, **target.scene_kwargs(spec))
frame, info = env.reset(seed=spec["seed"])
np.savez(sys.argv[1], frame=frame, light=info["light_setup"], table=info["table"],
         visib=np.asarray(info["visib_fract"]))
env.close()
"""


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_v3_target_renders_under_the_overhead_panels_on_a_new_table(tmp_path):
    out = tmp_path / "v3.npz"
    subprocess.run(
        [sys.executable, "-c", SCRIPT_V3, str(out)], cwd=ROOT, check=True, timeout=170,
        capture_output=True,
    )  # fmt: skip
    data = np.load(out)
    assert str(data["light"]) == "overhead"
    assert str(data["table"]) in {f["name"] for f in SPEC_V3["table"]["finishes"]}
    frame = data["frame"]
    assert frame.shape == (HEIGHT, WIDTH, 3) and frame.std() > 5 and (data["visib"] > 0).any()
