"""The part of btgym that runs inside the Blender process (never imports torch).

``Scene`` is imported on first use (PEP 562), so that the numpy-only modules
(:mod:`blender_side.geometry`, :mod:`blender_side.image_stats`, :mod:`blender_side.exr`)
import without Blender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blender_side.scene import Scene


def __getattr__(name: str) -> Any:
    if name == "Scene":
        from blender_side.scene import Scene

        return Scene
    raise AttributeError(f"module 'blender_side' has no attribute {name!r}")


__all__ = ["Scene"]
