"""Shared fixtures: real Blender instances started through the launcher."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))
# Debug mode for every server the tests start: observations are checked against spaces.
os.environ["BTGYM_CHECK_OBSERVATIONS"] = "1"

ECHO_SCENE = "tests.scenes.echo:EchoScene"
SMALL_CUBE = {"width": 160, "height": 128}


@pytest.fixture(scope="module")
def echo_launcher():
    from btgym.launcher import Launcher

    with Launcher(ECHO_SCENE, 1, seed=7) as launcher:
        yield launcher


@pytest.fixture(scope="module")
def echo_env(echo_launcher):
    from btgym import BlenderEnv

    env = BlenderEnv(address=echo_launcher.addresses[0], timeout=20)
    yield env
    env.close()


@pytest.fixture(scope="module")
def cube_env():
    import gymnasium as gym

    import btgym  # noqa: F401  (registers the env ids)

    env = gym.make("btgym/Cube-v0", render_mode="rgb_array", **SMALL_CUBE)
    yield env
    env.close()


@pytest.fixture
def xvfb_display(monkeypatch):
    """A private Xvfb display as ``DISPLAY`` for Blender's UI mode (skipped without one)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None or shutil.which("blender") is None or shutil.which("import") is None:
        pytest.skip(
            "Blender's UI mode needs Blender, Xvfb and ImageMagick (apt-get install blender "
            "xvfb imagemagick; .ci/run installs them)"
        )
    taken = lambda n: any(  # noqa: E731
        os.path.exists(path) for path in (f"/tmp/.X11-unix/X{n}", f"/tmp/.X{n}-lock")
    )
    number = next(n for n in range(90, 200) if not taken(n))
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/tmp/.X11-unix/X{number}") and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the condition: the display's socket
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield f":{number}"
    server.terminate()
    server.wait(10)
