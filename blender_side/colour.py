"""Blender's own view transform as a 65,536-entry table, for exact half-float read-back.

Workbench renders into a half-float buffer; written as an uncompressed half EXR, every
pixel is one of 65,536 bit patterns. Passing each pattern once through Blender's colour
management (``Image.save_render`` with the scene's view settings, dither 0) gives the
8-bit value Blender itself would have written to a TIFF: indexing that table by a
pixel's bits reproduces the TIFF exactly, at a fraction of the cost of writing it
(``docs/benchmarks.md``, issue 16). The textbook sRGB formula differs on 9 of the
63,488 finite halves, so the table always comes from Blender, and is rebuilt whenever
the view settings change.

A 1-D table is exact only for per-channel view transforms: ``Standard`` and ``Raw``
with no look and no curve mapping. Others (AgX, Filmic looks, curves) mix channels or
are not checked here; the renderer then keeps the TIFF path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from blender_side.tiff import read_tiff_rgb8
from btgym.errors import ConfigError

#: View transforms whose display transform acts on each channel alone.
PER_CHANNEL_VIEWS = frozenset({"Standard", "Raw"})
_SIDE = 256  # a 256 x 256 image holds every half bit pattern once


def settings_key(scene: Any) -> tuple[Any, ...] | None:
    """What the table depends on, or None where a 1-D table cannot be exact."""
    view, display = scene.view_settings, scene.display_settings
    if view.view_transform not in PER_CHANNEL_VIEWS or view.look not in ("None", ""):
        return None
    if view.use_curve_mapping or scene.render.dither_intensity != 0.0:
        return None
    return (
        view.view_transform,
        view.look,
        round(float(view.exposure), 9),
        round(float(view.gamma), 9),
        display.display_device,
    )


def build_table(scene: Any, scratch_path: str) -> np.ndarray:
    """The 8-bit output of Blender's colour management for every half bit pattern.

    Renders nothing: a float image holding all 65,536 halves is saved through the
    scene's view settings as an 8-bit TIFF (~2 ms) and read back. Non-finite halves
    (never produced by a render) map to the values of the largest finite ones.
    """
    import bpy

    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    halves = np.nan_to_num(halves, nan=0.0, posinf=65504.0, neginf=-65504.0)
    pixels = np.ones((1 << 16, 4), np.float32)
    pixels[:, :3] = halves[:, None]
    image = bpy.data.images.new("btgym-view-table", _SIDE, _SIDE, alpha=True, float_buffer=True)
    settings = scene.render.image_settings
    saved = (settings.file_format, settings.color_mode, settings.color_depth)
    try:
        image.pixels.foreach_set(pixels.ravel())
        settings.file_format, settings.color_mode, settings.color_depth = "TIFF", "RGB", "8"
        image.save_render(scratch_path, scene=scene)
        # Blender images are stored bottom row first; the TIFF is written top row first.
        table = read_tiff_rgb8(scratch_path)[::-1].reshape(-1, 3)
    finally:
        settings.file_format, settings.color_mode, settings.color_depth = saved
        bpy.data.images.remove(image)
        if os.path.exists(scratch_path):
            os.remove(scratch_path)
    if not (np.array_equal(table[:, 0], table[:, 1]) and np.array_equal(table[:, 0], table[:, 2])):
        raise ConfigError("expected a view transform that treats R, G and B alike")
    return np.ascontiguousarray(table[:, 0])


def apply_table(table: np.ndarray, planes: np.ndarray, order: list[str], out: np.ndarray) -> None:
    """Write ``table[planes]`` as ``(H, W, 3)`` RGB into ``out``; ``order`` names the planes."""
    converted = np.take(table, planes)  # (H, C, W), one gather
    for channel, name in enumerate("RGB"):
        out[:, :, channel] = converted[:, order.index(name)]


__all__ = ["PER_CHANNEL_VIEWS", "apply_table", "build_table", "settings_key"]
