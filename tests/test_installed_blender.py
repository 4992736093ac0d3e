"""A real Blender executable (Debian's ``blender`` package in CI): background and UI mode."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from btgym import BlenderEnv
from btgym._launch_config import LaunchConfig
from btgym.blender_python import probe

BLENDER = shutil.which("blender")
pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(
        BLENDER is None, reason="no Blender executable on PATH (apt-get install blender)"
    ),
    pytest.mark.timeout(300),
]
SMALL = {"width": 96, "height": 72}


def test_an_installed_blender_serves_the_built_in_cube_with_no_set_up():
    info = probe(BLENDER)
    assert info["blender"][0] >= 3 and info["python"][0] == 3
    with BlenderEnv("envs.cube:CubeScene", blender=BLENDER, **SMALL) as env:
        obs, info0 = env.reset(seed=0)
        again, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs, again)
        assert obs.shape == (72, 96, 3) and obs.std() > 5
        for _ in range(3):
            obs, *_ = env.step(np.full(3, 0.5, np.float32))
        assert obs.std() > 5 and info0["xy"].shape == (8, 2)


def test_an_installed_blender_gives_parts_with_masks_depth_and_normals():
    # The passes build their compositors for Blender 3.x/4.x (scene.node_tree) and 5.
    kwargs = {**SMALL, "masks": True, "depth": True, "normals": True, "max_objects": 6}
    with BlenderEnv("envs.parts:PartsScene", blender=BLENDER, **kwargs) as env:
        _, info = env.reset(seed=0)
    normals, mask, depth = info["normals"], info["mask"], info["depth"]
    assert 0 < mask.max() <= info["num_objects"]
    seen = np.linalg.norm(normals, axis=-1) > 0
    np.testing.assert_array_equal(seen, depth > 0)  # a surface has both, the sky neither
    np.testing.assert_allclose(np.linalg.norm(normals[seen], axis=-1), 1.0, atol=1e-5)
    # The ground (id 0 but seen) faces straight up, in the camera frame of cam_pose.
    up = np.diag([1.0, -1.0, -1.0]) @ info["cam_pose"][:3, :3].T @ np.array([0.0, 0.0, 1.0])
    ground = normals[seen & (mask == 0)]
    assert len(ground) > 0 and np.median(ground @ up) > 0.9999


def screenshot(display: str, path) -> np.ndarray:
    from PIL import Image

    subprocess.run(
        ["import", "-display", display, "-window", "root", str(path)], check=True, timeout=60
    )
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def coloured_fraction(image: np.ndarray) -> float:
    """Share of pixels with a clearly saturated colour (Blender's UI is grey)."""
    return float(((image.max(axis=2) - image.min(axis=2)) > 60).mean())


def test_the_ui_mode_shows_the_scene_live_in_blenders_window(xvfb_display, tmp_path):
    launch = LaunchConfig(blender=BLENDER, ui=True, timeout=60.0)
    with BlenderEnv("envs.cube:CubeScene", launch=launch, **SMALL) as env:
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.full(3, 1.0, np.float32))
        # Blender draws between requests: wait until the window shows the cube...
        first = shot_until(xvfb_display, tmp_path, lambda s: coloured_fraction(s) > 0.02)
        for _ in range(3):
            env.step(np.full(3, 1.0, np.float32))
        # ...and until it has redrawn the changed scene.
        second = shot_until(xvfb_display, tmp_path, lambda s: changed(first, s) > 0.005)
        assert env.ping()["served"] >= 8
    assert coloured_fraction(first) > 0.02, "the cube is not in the window"
    assert changed(first, second) > 0.005, "the window did not redraw after the scene changed"


def test_the_ui_mode_shows_a_scene_with_an_id_pass_in_its_own_colours(xvfb_display, tmp_path):
    # Parts-v0 renders an id pass (flat object colours = ids: near-black) for every frame;
    # the window must show the scene's own look, as the frame does: its ground's colour
    # over a large share of the screen (measured ~18 %), not an id-black camera view.
    launch = LaunchConfig(blender=BLENDER, ui=True, timeout=60.0)
    kwargs = {"width": 160, "height": 120, "masks": True, "max_objects": 8}
    with BlenderEnv("envs.parts:PartsScene", launch=launch, **kwargs) as env:
        frame, info = env.reset(seed=0)
        assert info["mask"].max() > 0  # the id pass ran for this frame
        ground = np.median(frame.reshape(-1, 3), axis=0)
        assert ground.max() > 40  # the frame's ground is not near-black

        def share_like_ground(shot: np.ndarray) -> float:
            return float((np.abs(shot - ground).max(axis=2) <= 8).mean())

        shot = shot_until(xvfb_display, tmp_path, lambda s: share_like_ground(s) > 0.08)
    near_black = float((shot.max(axis=2) < 25).mean())
    assert share_like_ground(shot) > 0.08, "the window does not show the scene's own colours"
    assert near_black < 0.05, f"{near_black:.1%} of the window is near-black (the id pass?)"


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ clearly between two screenshots."""
    return float((np.abs(a - b).max(axis=2) > 30).mean())


def shot_until(display: str, directory, condition, timeout: float = 60.0) -> np.ndarray:
    """Screenshots until one meets ``condition`` (or ``timeout``); the last one taken."""
    deadline = time.monotonic() + timeout
    while True:
        shot = screenshot(display, directory / "ui.png")
        if condition(shot) or time.monotonic() > deadline:
            return shot


def test_an_installed_blender_runs_a_users_blend_and_script(tmp_path):
    from tests.test_your_scene import SCRIPT, make_blend

    blend = make_blend(tmp_path / "shelf.blend", BLENDER)  # saved by that Blender itself
    with BlenderEnv(SCRIPT, blender=BLENDER, blend_file=blend, **SMALL) as env:
        obs, info = env.reset(seed=1)
        assert obs.shape == (72, 96, 3) and obs.std() > 5
        obs, _, _, _, info = env.step(np.array([1.0], np.float32))
        assert info["locations"].shape == (3, 3)
