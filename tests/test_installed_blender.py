"""A real Blender executable (Debian's ``blender`` package in CI): background and UI mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from btgym import BlenderEnv
from btgym.blender_python import probe
from btgym.launch_config import LaunchConfig

BLENDER = shutil.which("blender")
pytestmark = [
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


@pytest.fixture
def display(monkeypatch):
    xvfb = shutil.which("Xvfb")
    if xvfb is None or shutil.which("import") is None:
        pytest.skip(
            "UI mode needs Xvfb and ImageMagick's import (apt-get install xvfb imagemagick)"
        )
    for number in range(90, 130):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(
            f"/tmp/.X{number}-lock"
        ):
            break
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/tmp/.X11-unix/X{number}") and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield f":{number}"
    server.terminate()
    server.wait(10)


def screenshot(display: str, path) -> np.ndarray:
    from PIL import Image

    subprocess.run(
        ["import", "-display", display, "-window", "root", str(path)], check=True, timeout=60
    )
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def coloured_fraction(image: np.ndarray) -> float:
    """Share of pixels with a clearly saturated colour (Blender's UI is grey)."""
    return float(((image.max(axis=2) - image.min(axis=2)) > 60).mean())


def test_the_ui_mode_shows_the_scene_live_in_blenders_window(display, tmp_path):
    launch = LaunchConfig(blender=BLENDER, ui=True, timeout=60.0)
    with BlenderEnv("envs.cube:CubeScene", launch=launch, **SMALL) as env:
        env.reset(seed=0)
        shots = []
        for k in range(2):
            for _ in range(3):
                env.step(np.full(3, 1.0, np.float32))
            time.sleep(0.5)  # a few of Blender's redraws (it draws between requests)
            shots.append(screenshot(display, tmp_path / f"ui-{k}.png"))
        assert env.ping()["served"] >= 8
    first, second = shots
    assert coloured_fraction(first) > 0.02, "the cube is not in the window"
    changed = (np.abs(first - second).max(axis=2) > 30).mean()
    assert changed > 0.005, "the window did not redraw after the scene changed"


def test_an_installed_blender_runs_a_users_blend_and_script(tmp_path):
    from tests.test_your_scene import SCRIPT, make_blend

    blend = make_blend(tmp_path / "shelf.blend", BLENDER)  # saved by that Blender itself
    with BlenderEnv(SCRIPT, blender=BLENDER, blend_file=blend, **SMALL) as env:
        obs, info = env.reset(seed=1)
        assert obs.shape == (72, 96, 3) and obs.std() > 5
        obs, _, _, _, info = env.step(np.array([1.0], np.float32))
        assert info["locations"].shape == (3, 3)
