"""Extra passes rendered from the frame's own scene, so they show what the frame showed.

A pass (instance ids, depth, normals) renders the scene the frame came from, at the same
frame, through Blender's own evaluation of it, with a few settings switched for that one
render and switched back right after (:func:`overridden`). Whatever the scene did before
(rigid bodies simulated with ``frame_set``, constraints, drivers, keyframes, modifiers,
objects outside the annotated collection that hide others) the pass draws the same
geometry as the frame: its labels describe that frame by construction. A second scene
sharing the objects would not: it evaluates them on its own (no rigid-body world, its own
frame), which is how masks of settled piles once showed the objects' drop poses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import bpy

from blender_side.render import stdout_silenced

#: Object types Workbench draws (their ``color`` is what the id pass reads).
DRAWN_TYPES = frozenset(
    {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}
)

#: ``(struct, attribute, value)``: one setting of a pass's render.
Override = tuple[Any, str, Any]


def _plain(value: Any) -> Any:
    """A comparable copy of an RNA value (arrays as tuples)."""
    if hasattr(value, "__len__") and not isinstance(value, str) and not hasattr(value, "bl_rna"):
        return tuple(value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to float32 precision (what Blender stores)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float | int):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return bool(a == b)


@contextlib.contextmanager
def overridden(overrides: Iterable[Override]) -> Iterator[None]:
    """Set each ``(struct, attribute, value)`` in order, and put the old values back after.

    Only settings that differ are touched (each change makes Blender re-evaluate
    something), and they are put back in the order they were set (an enum such as a
    look or a colour depth depends on the one set before it).
    """
    saved: list[Override] = []
    seen: set[tuple[int, str]] = set()
    try:
        for struct, name, value in overrides:
            old = _plain(getattr(struct, name))
            if _same(old, _plain(value)):
                continue
            key = (struct.as_pointer(), name)
            if key not in seen:  # the first old value is the one to put back
                seen.add(key)
                saved.append((struct, name, old))
            setattr(struct, name, value)
        yield
    finally:
        for struct, name, old in saved:
            setattr(struct, name, old)


def image_output(scene: Any, path: str, kind: str, color_mode: str) -> list[Override]:
    """Overrides that make a render of ``scene`` write ``path`` uncompressed: ``"TIFF"``
    (8 bits a channel) or ``"EXR"`` (32-bit float), as ``color_mode`` (``RGB``, ``RGBA``).
    """
    render, settings = scene.render, scene.render.image_settings
    out: list[Override] = [(render, "filepath", path), (render, "use_file_extension", False)]
    if hasattr(settings, "media_type"):  # Blender 5: a .blend saved for video output
        out.append((settings, "media_type", "IMAGE"))
    if kind == "TIFF":
        out += [(settings, "file_format", "TIFF"), (settings, "tiff_codec", "NONE")]
        return [*out, (settings, "color_mode", color_mode), (settings, "color_depth", "8")]
    out += [(settings, "file_format", "OPEN_EXR"), (settings, "exr_codec", "NONE")]
    return [*out, (settings, "color_mode", color_mode), (settings, "color_depth", "32")]


def drawn_objects(scene: Any) -> list[Any]:
    """The scene's objects of a type a render draws (hidden ones included)."""
    return [obj for obj in scene.objects if obj.type in DRAWN_TYPES]


def render_still(scene: Any) -> None:
    """Render ``scene`` once into its output path (as its output settings say), quietly."""
    with stdout_silenced(True):
        bpy.ops.render.render(write_still=True, scene=scene.name)


__all__ = ["image_output", "DRAWN_TYPES", "Override", "drawn_objects", "overridden", "render_still"]
