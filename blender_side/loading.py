"""Find a scene class from a spec: ``package.module:Class`` or ``path/to/file.py:Class``."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from typing import Any

from blender_side.scene import Scene, checked_limit
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
        scenes = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, Scene) and value is not Scene
        )
        close = difflib.get_close_matches(class_name, scenes, n=1)
        hint = f"; did you mean {module_name}:{close[0]}?" if close else ""
        found = f"; its scenes: {scenes}" if scenes else "; it defines no Scene subclass"
        raise TypeError(
            f"expected {spec!r} to name a blender_side.Scene subclass, got {cls!r}{hint}{found}"
        )
    return cls


_MISSING_KEY = re.compile(r'bpy_prop_collection\[key\]: key "(?P<key>.*)" not found')


def build_scene(scene: Scene) -> None:
    """``scene.build()``; a name missing from the open file names what the file has.

    ``bpy.data.objects["Cubee"]`` raises a bare ``KeyError`` naming only the key: this
    adds the file's objects and the closest names of any kind.
    """
    try:
        scene.build()
    except KeyError as exc:
        match = _MISSING_KEY.search(str(exc))
        if match is None:
            raise
        raise KeyError(missing_name_message(match["key"])) from exc


def missing_name_message(key: str) -> str:
    """What the open file holds instead of ``key``: its objects, and close names of any kind."""
    import bpy

    kinds = ("objects", "meshes", "materials", "collections", "cameras", "lights", "worlds")
    close = []
    for kind in kinds:
        names = [block.name for block in getattr(bpy.data, kind)]
        close += [f"{c!r} ({kind})" for c in difflib.get_close_matches(key, names, n=2)]
    objects = sorted(o.name for o in bpy.data.objects)
    shown = objects[:40] + ([f"... {len(objects) - 40} more"] if len(objects) > 40 else [])
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    where = bpy.data.filepath or "the factory scene (no .blend file open)"
    return f"expected {key!r} in {where}, found none{hint}; its objects: {shown}"


def scene_from(scene: Scene | str, scene_kwargs: dict[str, Any]) -> Scene:
    """A scene object as given, or built from a spec with ``scene_kwargs`` (only then).

    ``max_episode_steps`` (what ``register_scene`` and ``gymnasium.make`` pass) goes to
    the constructor where it takes one, else onto the built scene: the limit holds
    either way.
    """
    if isinstance(scene, str):
        cls = load_scene_class(scene)
        kwargs = dict(scene_kwargs)
        if "max_episode_steps" in kwargs and not _takes(cls, "max_episode_steps"):
            limit = checked_limit(kwargs.pop("max_episode_steps"))
            built = construct(cls, kwargs)
            built.max_episode_steps = limit
            return built
        return construct(cls, kwargs)
    if scene_kwargs:
        raise TypeError(
            "expected scene kwargs only with a scene spec, got a scene object and "
            f"{sorted(scene_kwargs)}"
        )
    return scene


def construct(scene_class: type[Scene], kwargs: dict[str, Any]) -> Scene:
    """``scene_class(**kwargs)``; an unknown keyword names the closest accepted ones."""
    try:
        return scene_class(**kwargs)
    except TypeError as exc:
        parameters = inspect.signature(scene_class).parameters.values()
        accepted = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        unknown = [key for key in kwargs if key not in accepted]
        if not unknown or any(p.kind is p.VAR_KEYWORD for p in parameters):
            raise
        hints = [
            f"{key!r}: did you mean {close[0]!r}?"
            for key in unknown
            if (close := difflib.get_close_matches(key, accepted, n=1))
        ]
        raise TypeError(
            f"{scene_class.__name__}() got unexpected keyword arguments {unknown}, expected some "
            f"of {accepted}" + ("; " + "; ".join(hints) if hints else "")
        ) from exc


def _takes(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` accepts the keyword ``name`` (by name or ``**kwargs``)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


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
