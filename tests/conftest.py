"""Shared fixtures: real Blender instances started through the launcher."""

from __future__ import annotations

import os
import sys
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
