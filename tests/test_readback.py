"""Both read-backs give the same pixels: half-float EXR + Blender's view table == TIFF."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_side.exr import scanline_planes  # noqa: E402
from blender_side.render import Renderer  # noqa: E402
from blender_side.testing import SceneEnv  # noqa: E402
from btgym.errors import RenderError  # noqa: E402


@pytest.fixture(scope="module")
def cube():
    env = SceneEnv("envs.cube:CubeScene", width=96, height=80)
    env.reset(seed=0)
    yield env.scene
    env.close()


def test_exr_frames_are_bit_identical_to_tiff_frames_with_dither_0(cube):
    exr = Renderer(96, 80, readback="exr")
    tiff = Renderer(96, 80, readback="tiff")
    assert exr.uses_exr and not tiff.uses_exr
    rng = np.random.default_rng(4)
    for _ in range(12):
        cube.cube.rotation_euler = rng.uniform(-3.0, 3.0, 3).tolist()
        cube.cube.color = (*rng.uniform(0.0, 1.0, 3).tolist(), 1.0)
        a, b = exr.render(), tiff.render()
        assert a.shape == b.shape == (80, 96, 3) and a.std() > 0
        np.testing.assert_array_equal(a, b)
        assert not a.flags.writeable and a.flags.c_contiguous  # travels by reference


def test_the_view_table_follows_the_view_settings(cube):
    exr = Renderer(96, 80, readback="exr")
    first = exr.render().copy()
    scene = bpy.context.scene
    scene.view_settings.exposure = 1.0
    try:
        brighter = exr.render()
        reference = Renderer(96, 80, readback="tiff").render()
        np.testing.assert_array_equal(brighter, reference)
        assert brighter.mean() > first.mean()
    finally:
        scene.view_settings.exposure = 0.0


def test_exr_refuses_a_view_that_mixes_channels(cube):
    exr = Renderer(96, 80, readback="exr")
    scene = bpy.context.scene
    scene.view_settings.view_transform = "AgX"
    try:
        with pytest.raises(RenderError, match="per-channel view"):
            exr.render()
    finally:
        scene.view_settings.view_transform = "Standard"


def test_the_scanline_reader_refuses_what_it_cannot_view():
    with pytest.raises(ValueError, match="OpenEXR"):
        scanline_planes(np.zeros(64, np.uint8), 4, 4)
