"""The first render's EGL_BAD_MATCH noise is dropped; any other stderr output is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from blender_side.stderr_noise import stderr_filtered
from tests.conftest import ROOT


def test_the_filter_drops_the_noise_and_keeps_everything_else(capfd):
    with stderr_filtered():
        os.write(2, b"EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent\n")
        os.write(2, b"a real error\n")
        print("to stderr from Python", file=sys.stderr)
    err = capfd.readouterr().err
    assert "EGL_BAD_MATCH" not in err
    assert "a real error\n" in err and "to stderr from Python\n" in err


@pytest.mark.blender
def test_a_fresh_bpy_process_renders_without_the_egl_noise():
    code = "from blender_side.render import Renderer; print(Renderer(32, 24).render().shape)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(24, 32, 3)" in done.stdout
    assert "EGL_BAD_MATCH" not in done.stderr, done.stderr[-2000:]
