"""``LaunchConfig``: how Blender instances are started and reached, with one set of defaults.

:class:`~btgym.BlenderEnv`, :class:`~btgym.BlenderVectorEnv`,
:class:`~btgym.data.StreamDataset` (and the connection layer beneath them) all take
``launch=LaunchConfig(...)``::

    launch = LaunchConfig(timeout=10, backend="ray", num_cpus=2)
    envs = BlenderVectorEnv("envs.cube:CubeScene", 8, launch=launch)

Their older keyword arguments (``seed=``, ``timeout=``, ``curve=``, ...) still work: a
keyword that is given replaces that field of ``launch``. ``launch_options={...}`` is a
deprecated alias whose keys are this class's fields (see :func:`resolve_launch`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from btgym.errors import ConfigError
from btgym.wire.gpu_backend import check_choice as check_gpu_backend
from btgym.wire.security import ClientKeys

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")
#: Fields each Ray actor chooses itself, and fields only the Ray backend reads.
_LOCAL_ONLY = ("bind", "log_dir", "curve_secret", "curve_clients")
_RAY_ONLY = ("num_cpus", "num_gpus", "actor_max_restarts")


@dataclass(frozen=True)
class LaunchConfig:
    """Everything about starting instances and talking to them, apart from the scene.

    Processes: ``blender`` (a Blender executable, or a Python interpreter that has the
    ``bpy`` module; default ``BTGYM_BLENDER`` or the pip ``bpy`` module of this
    interpreter), ``gpu_backend`` (``"auto"``: OpenGL on a host without a GPU, where it
    is faster and correct, else Blender's choice; ``"opengl"``; ``"vulkan"``: Blender's
    own choice; see :mod:`btgym.wire.gpu_backend`), ``ui`` (Blender's UI mode: watch
    the scene live in Blender's window; needs a Blender executable and a display),
    ``blend_file`` (opened before the scene is built), ``seed``
    (instance ``i`` gets ``seed + i``; random when None), ``env`` (extra environment
    variables), ``log_dir`` / ``keep_logs`` (where logs go, and whether a temporary log
    directory outlives ``close()``), ``max_message_bytes`` (the largest message a
    server accepts), ``max_server_bytes`` (most bytes a server's queues hold for all its
    peers together; default 2 GiB), ``bind`` (the address servers listen on; default a private IPC
    socket).

    Waiting: ``timeout`` bounds every request (seconds), ``start_timeout`` an
    instance's start-up.

    Security: ``curve`` (client keys for CURVE servers), ``curve_secret`` /
    ``curve_clients`` (the server key and allow-list directory for launched servers).

    Restarts of a dead or hung instance: at most ``max_restarts`` within
    ``restart_window`` seconds and ``max_lifetime_restarts`` in all.

    ``backend``: ``"local"`` (child processes of the trainer) or ``"ray"`` (each server
    in a Ray actor; needs ``btgym[ray]``). Ray only: ``num_cpus`` / ``num_gpus`` (each
    actor's resources) and ``actor_max_restarts`` (how often Ray recreates a dead
    actor). Ray actors choose their own address and keys, so ``bind``, ``log_dir``,
    ``curve_secret`` and ``curve_clients`` stay unset with it.
    """

    blender: str | None = None
    gpu_backend: str = "auto"
    ui: bool = False
    blend_file: str | None = None
    seed: int | None = None
    timeout: float = 30.0
    start_timeout: float = 120.0
    curve: ClientKeys | None = None
    curve_secret: str | os.PathLike[str] | None = None
    curve_clients: str | os.PathLike[str] | None = None
    backend: Backend = "local"
    bind: str | None = None
    max_restarts: int = 5
    restart_window: float = 300.0
    max_lifetime_restarts: int | None = 100
    log_dir: str | os.PathLike[str] | None = None
    env: Mapping[str, str] | None = None
    keep_logs: bool = False
    max_message_bytes: int | None = None
    max_server_bytes: int | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    actor_max_restarts: int = 3

    def __post_init__(self) -> None:
        check_gpu_backend(self.gpu_backend)
        if self.backend not in BACKENDS:
            raise ConfigError(f"expected backend 'local' or 'ray', got {self.backend!r}")
        for name in ("timeout", "start_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"expected {name} > 0 seconds, got {value!r}")
        if self.max_restarts < 0:
            raise ConfigError(f"expected max_restarts >= 0, got {self.max_restarts}")
        fixed = _LOCAL_ONLY if self.backend == "ray" else _RAY_ONLY
        wrong = [name for name in fixed if getattr(self, name) != _FIELDS[name].default]
        if wrong:
            why = "each Ray actor chooses them" if self.backend == "ray" else "they are Ray's"
            raise ConfigError(
                f"expected {', '.join(fixed)} at their defaults with backend="
                f"{self.backend!r} ({why}), got "
                + ", ".join(f"{name}={getattr(self, name)!r}" for name in wrong)
            )

    def override(self, **changes: Any) -> LaunchConfig:
        """A copy where each of ``changes`` that is not None replaces its field."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            close = difflib.get_close_matches(unknown[0], _FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"expected LaunchConfig fields among {sorted(_FIELDS)}, got {unknown}{hint}"
            )
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], base: LaunchConfig | None = None
    ) -> LaunchConfig:
        """The config described by an old ``launch_options`` mapping (on top of ``base``).

        Keys are field names; with ``"backend": "ray"`` the key ``max_restarts`` means
        what it meant to the Ray launcher, ``actor_max_restarts``.
        """
        options = dict(options)
        if options.get("backend", (base or cls()).backend) == "ray" and "max_restarts" in options:
            options["actor_max_restarts"] = options.pop("max_restarts")
        unknown = sorted(set(options) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"expected launch options among {sorted(_FIELDS)}, got {unknown}")
        return dataclasses.replace(base or cls(), **options)

    def launcher_options(self) -> dict[str, Any]:
        """Keyword arguments for a local :class:`~btgym.launcher.Launcher`."""
        names = ("seed", "blend_file", "start_timeout", "bind", "log_dir")
        local = {name: getattr(self, name) for name in (*names, "curve_secret", "curve_clients")}
        return {**local, **self.server_options()}

    def server_options(self) -> dict[str, Any]:
        """The :class:`~btgym.launcher.Launcher` arguments a server needs wherever it runs.

        A Ray actor starts its server with these (and its own address and keys).
        """
        return {
            "blender": self.blender,
            "gpu_backend": self.gpu_backend,
            "ui": self.ui,
            "env": None if self.env is None else dict(self.env),
            "keep_logs": self.keep_logs,
            "max_message_bytes": self.max_message_bytes,
            "max_server_bytes": self.max_server_bytes,
            "max_restarts": self.max_restarts,
            "restart_window": self.restart_window,
            "max_lifetime_restarts": self.max_lifetime_restarts,
        }


_FIELDS = {field.name: field for field in dataclasses.fields(LaunchConfig)}
#: The one set of defaults; lower-level classes (Launcher, Client, ...) take theirs from it.
DEFAULTS = LaunchConfig()


def resolve_launch(
    launch: LaunchConfig | None = None,
    launch_options: Mapping[str, Any] | None = None,
    *,
    stacklevel: int = 3,
    **keywords: Any,
) -> LaunchConfig:
    """The one config an entry point runs with: ``launch``, then ``launch_options``, then keywords.

    ``keywords`` are the entry points' older arguments (``seed=``, ``timeout=``, ...);
    those that are not None replace fields. ``launch_options`` is deprecated
    (a :class:`DeprecationWarning`) and cannot be combined with ``launch``.
    """
    if launch is not None and not isinstance(launch, LaunchConfig):
        raise TypeError(f"expected launch as a LaunchConfig or None, got {type(launch).__name__}")
    config = launch or LaunchConfig()
    if launch_options:
        if launch is not None:
            raise ConfigError(
                "expected launch= or the deprecated launch_options=, got both: move the "
                f"options {sorted(launch_options)} into the LaunchConfig"
            )
        warnings.warn(
            "launch_options= is deprecated: pass launch=btgym.LaunchConfig(...) (its fields "
            "are the same names, with backend= explicit)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        config = LaunchConfig.from_options(launch_options, config)
    return config.override(**keywords)


__all__ = ["BACKENDS", "DEFAULTS", "Backend", "LaunchConfig", "resolve_launch"]
