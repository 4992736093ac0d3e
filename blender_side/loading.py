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


def scene_from(scene: Scene | str, scene_kwargs: dict[str, Any]) -> Scene:
    """A scene object as given, or built from a spec with ``scene_kwargs`` (only then)."""
    if isinstance(scene, str):
        return load_scene_class(scene)(**scene_kwargs)
    if scene_kwargs:
        raise TypeError(
            "expected scene kwargs only with a scene spec, got a scene object and "
            f"{sorted(scene_kwargs)}"
        )
    return scene


def open_blend_file(path: str) -> None:
    """Replace the current Blender data with a user's ``.blend`` file.

    A file saved by a newer Blender than this one is refused before Blender tries it
    (Blender 3.x/4.x would only say "not a blend file" for 5.x files), naming both
    versions and what to do.
    """
    import bpy

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected a .blend file at {path}, found none")
    saved_by = blend_file_version(path)
    running = tuple(bpy.app.version[:2])
    if saved_by is not None and saved_by > running:
        newer, ours = ".".join(map(str, saved_by)), ".".join(map(str, running))
        raise ConfigError(
            f"expected a .blend file that Blender {ours} (this instance) can read, got {path} "
            f"saved by Blender {newer}: run the instances with Blender {newer} or newer "
            f"(the bpy wheel of that version, or LaunchConfig(blender=...) naming such a "
            f"Blender executable), or save the file again with Blender {ours}'s version line"
        )
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)


#: Compressed .blend files: gzip (Blender 2.x-2.9x) and Zstandard (3.0 on).
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


def blend_file_version(path: str) -> tuple[int, int] | None:
    """``(major, minor)`` of the Blender that saved ``path``, or None where unknown.

    Reads the file header in both layouts: ``BLENDER_v304`` (pointer size, endianness,
    3 digits; up to 4.x) and ``BLENDER17-01v0500`` (header size, format, 4 digits; 5.0
    on), also inside a gzip or Zstandard compressed file (the latter needs the
    ``zstandard`` module, which bpy wheels bring; without it: None).
    """
    with open(path, "rb") as f:
        head = f.read(32)
        if head.startswith(_GZIP):
            import gzip

            f.seek(0)
            head = gzip.GzipFile(fileobj=f).read(32)
        elif head.startswith(_ZSTD):
            try:
                import zstandard
            except ImportError:
                return None
            f.seek(0)
            head = zstandard.ZstdDecompressor().stream_reader(f).read(32)
    return parse_blend_header(head)


def parse_blend_header(head: bytes) -> tuple[int, int] | None:
    """The ``(major, minor)`` version in a .blend header's first bytes, None if not one."""
    if not head.startswith(b"BLENDER"):
        return None
    rest = head[7:]
    if rest[:1] in (b"_", b"-") and rest[1:2] in (b"v", b"V"):  # BLENDER_v304
        digits = rest[2:5]
    elif rest[:2].isdigit() and rest[2:3] == b"-":  # BLENDER17-01v0500
        digits = rest[6:10]
    else:
        return None
    if not digits.isdigit():
        return None
    number = int(digits)
    return number // 100, number % 100
