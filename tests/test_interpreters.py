"""Instances in a Blender of another Python than the trainer's: an installed Blender, or a
Python interpreter that has the bpy module (for a trainer on Python 3.12, which has no bpy
wheel). This file needs no bpy in the trainer: CI also runs it on Python 3.12."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from btgym import BlenderEnv, LaunchConfig
from btgym.blender_python import kind_of, probe, requirement
from btgym.errors import LaunchError

SMALL = {"width": 96, "height": 72}
BLENDER = shutil.which("blender")


def interpreter_with_bpy() -> str | None:
    """``BTGYM_BPY_PYTHON`` (CI's 3.12 leg points it at the 3.11 venv), else this Python
    if it has bpy."""
    given = os.environ.get("BTGYM_BPY_PYTHON")
    if given:
        return given
    has_bpy = subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True)
    return sys.executable if has_bpy.returncode == 0 else None


BPY_PYTHON = interpreter_with_bpy()


def test_numpy_for_blenders_python_has_a_wheel_for_its_version():
    assert requirement("numpy", (3, 11)) == "numpy<2"  # Debian's Blender 3.4, bpy 5.0's Python
    assert requirement("numpy", (3, 13)) == "numpy>=2"  # Blender 5.1+ executables: no 1.x wheel
    assert requirement("zmq", (3, 13)) == "pyzmq"


def test_the_kind_of_an_executable_is_told_by_its_version_line(tmp_path):
    assert kind_of(sys.executable) == "python"
    fake = tmp_path / "fake-blender"
    fake.write_text("#!/bin/sh\necho 'Blender 9.9.0'\n")
    fake.chmod(0o755)
    assert kind_of(str(fake)) == "blender"
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho 'GNU bash 5.2'\n")
    other.chmod(0o755)
    with pytest.raises(LaunchError, match="Blender executable or a Python interpreter") as err:
        kind_of(str(other))
    assert "GNU bash 5.2" in str(err.value)


@pytest.mark.blender
@pytest.mark.skipif(BPY_PYTHON is None, reason="needs a Python with bpy (BTGYM_BPY_PYTHON)")
@pytest.mark.timeout(300)
def test_a_python_interpreter_with_bpy_serves_the_cube():
    assert BPY_PYTHON is not None
    info = probe(BPY_PYTHON)
    assert info["kind"] == "python" and info["blender"][0] >= 4
    with BlenderEnv("envs.cube:CubeScene", launch=LaunchConfig(blender=BPY_PYTHON), **SMALL) as env:
        obs, first = env.reset(seed=0)
        again, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs, again)
        assert obs.shape == (72, 96, 3) and obs.std() > 5 and first["xy"].shape == (8, 2)
        obs, *_ = env.step(np.full(3, 0.5, np.float32))
        assert obs.std() > 5
        blender = env.unwrapped.remote["blender"]
    assert blender["version"].split(".")[:2] == [str(n) for n in info["blender"][:2]]
    assert blender["gpu_backend"] == "OPENGL"  # "auto" on a host without a GPU


@pytest.mark.blender
@pytest.mark.skipif(BPY_PYTHON is None, reason="needs a Python with bpy (BTGYM_BPY_PYTHON)")
def test_a_python_interpreter_has_no_window_for_ui_mode(monkeypatch):
    assert BPY_PYTHON is not None
    monkeypatch.setenv("DISPLAY", ":404")  # past the display check: never opened
    with pytest.raises(LaunchError, match="whose bpy module has no window"):
        BlenderEnv("envs.cube:CubeScene", launch=LaunchConfig(blender=BPY_PYTHON, ui=True))


@pytest.mark.blender
@pytest.mark.skipif(BLENDER is None, reason="no Blender executable (apt-get install blender)")
@pytest.mark.timeout(300)
def test_an_installed_blender_reports_its_version_and_backend():
    assert BLENDER is not None
    info = probe(BLENDER)
    assert info["kind"] == "blender"
    with BlenderEnv("envs.cube:CubeScene", blender=BLENDER, **SMALL) as env:
        obs, _ = env.reset(seed=1)
        blender = env.unwrapped.remote["blender"]
    assert obs.std() > 5
    assert blender["version"].startswith(".".join(map(str, info["blender"][:2])))
    assert blender["gpu_backend"] == "OPENGL"
