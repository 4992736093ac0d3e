"""Old import paths, back for one release: each warns (:class:`DeprecationWarning`) and
says what replaced it (``CHANGELOG.md`` lists them).

Modules that moved are served by a finder on ``sys.meta_path`` (``import btgym``
installs it): ``import btgym.security`` gives a copy of ``btgym.wire.security``'s names.
Names that moved out of a module are served by that module's ``__getattr__`` through
:func:`moved_attribute`. Targets are imported by name when first asked for, so nothing
here imports the modules it points at.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: Old module -> (the module whose names it serves, what to use instead).
MOVED_MODULES: dict[str, tuple[str, str]] = {
    "btgym.registration": (
        "btgym._registry",
        "btgym.register_scene and btgym.BUILTIN_SCENES (import btgym registers the built-ins)",
    ),
    "btgym.security": ("btgym.wire.security", "btgym.wire.security"),
    "btgym.protocol": ("btgym.wire.protocol", "btgym.wire.protocol"),
    "btgym.validation": ("btgym.wire.validation", "btgym.wire.validation"),
    "btgym.space_codec": ("btgym.wire.space_codec", "btgym.wire.space_codec"),
    "btgym.frame_files": ("btgym.wire.frame_files", "btgym.wire.frame_files"),
    "btgym.private_files": (
        "btgym.wire._private_files",
        "nothing: the private files are internal to the protocol (btgym.wire._private_files)",
    ),
    "btgym.wire.private_files": (
        "btgym.wire._private_files",
        "nothing: the private files are internal to the protocol (btgym.wire._private_files)",
    ),
    "btgym.launch_config": (
        "btgym._launch_config",
        "btgym.LaunchConfig (the module is private now)",
    ),
    "btgym.ray_backend": (
        "btgym._ray_backend",
        "btgym.LaunchConfig(backend='ray') (the module is private now)",
    ),
    "btgym.connection": (
        "btgym._connection",
        "btgym.BlenderEnv / btgym.BlenderVectorEnv / btgym.data.StreamDataset (which take "
        "launch= and addresses=) or btgym.Launcher; the module is private now",
    ),
}

#: (old module, name) -> ("module:name" that serves it, what to use instead).
MOVED_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("btgym.cli", "load_launch_info"): (
        "btgym._launch_info:load_launch_info_dict",
        "btgym.LaunchInfo.read(path) (its .addresses, .server_public_key, ...)",
    ),
    ("btgym.client", "remote_exception"): (
        "btgym.peer:remote_exception",
        "btgym.peer.remote_exception",
    ),
    ("btgym.cli", "CommandError"): (
        "btgym.cli._output:CommandError",
        "ValueError (what it subclasses; the class is private now)",
    ),
    ("btgym.cli", "SceneTarget"): (
        "btgym._registry:SceneTarget",
        "btgym.cli.resolve_scene(name) (what it returns; the class is private now)",
    ),
    ("btgym.cli", "btgym_ids"): (
        "btgym._registry:btgym_ids",
        "'btgym list' (the helper is private now)",
    ),
    ("btgym.cli", "is_btgym_spec"): (
        "btgym._registry:is_btgym_spec",
        "'btgym list' (the helper is private now)",
    ),
    ("btgym.env", "pop_events"): (
        "btgym._env_shared:pop_events",
        "the pop_events() method of BlenderEnv, BlenderVectorEnv and StreamDataset",
    ),
    ("btgym.env", "not_picklable"): (
        "btgym._env_shared:not_picklable",
        "btgym.errors.NotPicklableError (the helper is private now)",
    ),
    ("btgym.env", "check_render_mode"): (
        "btgym._env_shared:check_render_mode",
        "BlenderEnv(render_mode=...), which checks it (the helper is private now)",
    ),
    ("btgym.vector_env", "add_info"): (
        "btgym._vector_info:add_info",
        "the infos BlenderVectorEnv batches itself (the helper is private now)",
    ),
}


def warn_moved(old: str, replacement: str) -> None:
    """The :class:`DeprecationWarning` for ``old``, attributed to the code that used it."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: use {replacement} "
        "(see CHANGELOG.md)",
        DeprecationWarning,
        stacklevel=_user_stacklevel(),
    )


def moved_attribute(module: str, name: str) -> Any:
    """What a module's ``__getattr__`` returns for a name that moved (with the warning);
    an :class:`AttributeError` for any other name.
    """
    moved = MOVED_NAMES.get((module, name))
    if moved is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    target, replacement = moved
    warn_moved(f"{module}.{name}", replacement)
    where, _, attribute = target.partition(":")
    return getattr(importlib.import_module(where), attribute)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths in :data:`MOVED_MODULES` and loads them as aliases."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a plain module, filled by exec_module

    def exec_module(self, module: types.ModuleType) -> None:
        new, replacement = MOVED_MODULES[module.__name__]
        warn_moved(f"module {module.__name__}", replacement)
        target = importlib.import_module(new)
        names = {k: v for k, v in vars(target).items() if not k.startswith("__")}
        module.__dict__.update(names)
        module.__doc__ = f"Deprecated alias of {new}: use {replacement}."
        if hasattr(target, "__all__"):
            module.__dict__["__all__"] = list(target.__all__)


_FINDER = _MovedModules()
#: Frames of ``importlib.import_module`` are the import machinery's, not the user's.
_IMPORTLIB = os.path.dirname(importlib.__file__)


def install() -> None:
    """Put the finder of old module paths first on ``sys.meta_path`` (once): the old paths
    are never files, so no other finder (an editable install's, say) should answer them.
    """
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)


def _user_stacklevel() -> int:
    """The ``stacklevel`` (for a ``warn`` in this module's caller) of the first frame
    outside this module and the import machinery: the code that used the old path.
    """
    frame = sys._getframe(2)  # the caller of warn_moved
    level = 2
    while frame is not None and (
        frame.f_code.co_filename == __file__
        or frame.f_code.co_filename.startswith(("<frozen", _IMPORTLIB))
        or frame.f_code.co_name == "__getattr__"  # a module's, serving a moved name
    ):
        if not _skipped_by_warnings(frame.f_code.co_filename):
            level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level


def _skipped_by_warnings(filename: str) -> bool:
    """Whether ``warnings.warn`` skips this frame when it counts ``stacklevel`` (it skips
    the import system's own frames).
    """
    return "importlib" in filename and "_bootstrap" in filename


__all__ = ["MOVED_MODULES", "MOVED_NAMES", "install", "moved_attribute", "warn_moved"]
