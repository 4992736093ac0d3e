"""The part of btgym that runs inside the Blender process (never imports torch)."""

from blender_side.scene import Scene

__all__ = ["Scene"]
