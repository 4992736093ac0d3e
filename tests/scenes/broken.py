"""Scenes that fail on purpose, for launcher tests."""

from blender_side import Scene


class FailsToBuild(Scene):
    def build(self):
        raise RuntimeError("this scene cannot be built: missing asset 'gear.obj'")
