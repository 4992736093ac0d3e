"""Find a scene class from a spec: ``package.module:Class`` or ``path/to/file.py:Class``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from blender_side.scene import Scene
from btgym.errors import ConfigError


def load_scene_class(spec: str) -> type[Scene]:
    """Import the scene class named by ``spec``; a file path is imported as a module."""
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(f"expected a scene spec 'module:Class' or 'file.py:Class', got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = os.path.abspath(module_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"expected a scene script at {path}, found none")
        name = "btgym_user_scene_" + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    cls: Any = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Scene)):
        raise TypeError(f"expected {spec!r} to name a blender_side.Scene subclass, got {cls!r}")
    return cls


def open_blend_file(path: str) -> None:
    """Replace the current Blender data with a user's ``.blend`` file."""
    import bpy

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected a .blend file at {path}, found none")
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
