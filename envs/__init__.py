"""btgym's scenes. Each module defines a :class:`blender_side.Scene` subclass."""
