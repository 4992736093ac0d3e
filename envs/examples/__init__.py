"""Example user scenes: a ``.blend`` plus a short script, as a BlendTorch user brings them.

See ``docs/your-scene.md``.
"""
