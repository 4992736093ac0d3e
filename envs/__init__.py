"""btgym's scenes: each module defines a :class:`blender_side.Scene` subclass, except
:mod:`envs.parts_params` (Parts-v0's named action, importable without Blender).
"""
