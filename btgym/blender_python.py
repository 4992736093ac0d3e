"""Give an installed Blender's own Python what btgym's server needs, with no set-up by the user.

Instances run in three kinds of Blender: the ``bpy`` module of the trainer's own
interpreter (nothing to do here), a Blender executable, or another Python interpreter
that has the ``bpy`` module (for a trainer whose Python has no bpy wheel, e.g. 3.12:
``LaunchConfig(blender="/path/to/venv311/bin/python")``). The last two are told apart
by what they print for ``--version`` (:func:`kind_of`).

A Blender executable runs its own interpreter: the official builds bundle one (with
numpy, without pyzmq, msgpack or gymnasium), distribution packages use the system's
(Debian's Blender 3.4 has not even numpy). Before the first launch with an executable,
:func:`server_paths` asks it (once, cached per executable) which of
:data:`SERVER_MODULES` it lacks and returns directories that provide them, which the
server appends to its ``sys.path`` (after Blender's own, so nothing Blender bundles is
shadowed; official builds ignore ``PYTHONPATH``, so it is passed as an argument):

* same Python version and platform as the trainer: the trainer's own installation of
  those packages (no download);
* otherwise: ``pip install --target`` for Blender's Python version into
  ``~/.cache/btgym/blender-python/<version>-<platform>`` (binary wheels only; once).

Every cache directory is made 0700 by btgym, or refused when another user owns it or
can write it or a directory above it (:func:`private_cache`): its contents run as the
trainer's user inside Blender.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from btgym.errors import LaunchError
from btgym.wire._private_files import trusted_directory

#: What ``blender_side`` imports besides the standard library (distribution names).
SERVER_MODULES = {
    "numpy": "numpy",
    "zmq": "pyzmq",
    "msgpack": "msgpack",
    "gymnasium": "gymnasium",
}
#: numpy for a Python version: 1.26 where it has wheels (up to 3.12), numpy 2 after.
NUMPY_FOR_PYTHON = {(3, 9): "numpy<2", (3, 10): "numpy<2", (3, 11): "numpy<2", (3, 12): "numpy<2"}
#: Oldest Blender whose Python API the built-in scenes and the server use.
OLDEST_SUPPORTED = (3, 4)

KINDS = ("blender", "python")

_PROBE = (
    "import importlib.util, json, platform, sys, bpy;"
    "print('BTGYM-PROBE ' + json.dumps({{'blender': list(bpy.app.version),"
    "'python': list(sys.version_info[:2]), 'machine': platform.machine(),"
    "'missing': [m for m in {modules!r} if importlib.util.find_spec(m) is None]}}))"
)


def cache_root() -> Path:
    """Where provisioned packages and probe results live (``$XDG_CACHE_HOME/btgym``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "btgym"


def private_cache(*parts: str) -> Path:
    """``cache_root()/parts...``, each level made 0700 if missing and checked.

    What is cached here runs inside Blender (packages) or decides what does (probe
    results), so a directory another user owns or can write, at any level or above, is
    refused with :class:`~btgym.errors.UntrustedPathError` instead of trusted.
    """
    path = trusted_directory(cache_root(), "btgym's cache directory")
    for part in parts:
        path = trusted_directory(os.path.join(path, part), "btgym's cache directory")
    return Path(path)


def kind_of(executable: str, timeout: float = 60.0) -> str:
    """``"blender"`` for a Blender executable, ``"python"`` for a Python interpreter.

    Both answer ``--version`` at once: "Blender 3.4.1 ..." or "Python 3.11.7".
    """
    try:
        done = subprocess.run(
            [executable, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"expected {executable} to run as Blender or Python, got {exc}") from exc
    words = (done.stdout + done.stderr).split()
    first = words[0].lower() if words else ""
    if first in KINDS:
        return first
    raise LaunchError(
        f"expected {executable} to be a Blender executable or a Python interpreter with bpy, "
        f"got {' '.join(words[:6])!r} for --version"
    )


def probe(executable: str, timeout: float = 120.0) -> dict[str, Any]:
    """Its kind, Blender's version, its Python's version and machine, and the server
    modules it lacks.

    Cached per executable path, size and modification time.
    """
    stat = os.stat(executable)
    key = hashlib.sha256(f"{executable}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    cached = private_cache("blender-probe") / f"{key[:24]}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        info = json.loads(cached.read_text())
        if info["kind"] in KINDS:
            return info
    kind = kind_of(executable)
    code = _PROBE.format(modules=sorted(SERVER_MODULES))
    if kind == "python":
        command = [executable, "-c", code]
    else:
        command = [executable, "--background", "--factory-startup", "--python-expr", code]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"expected {executable} to run as Blender, got {exc}") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("BTGYM-PROBE ")]
    if not lines:
        what = "to import bpy" if kind == "python" else "to report its Python"
        raise LaunchError(
            f"expected {executable} {what}, got exit code {done.returncode}",
            log_tail=(done.stdout + done.stderr)[-3000:],
        )
    info = {"kind": kind, **json.loads(lines[-1].split(" ", 1)[1])}
    if tuple(info["blender"][:2]) < OLDEST_SUPPORTED:
        raise LaunchError(
            f"expected Blender {'.'.join(map(str, OLDEST_SUPPORTED))} or newer at "
            f"{executable}, got {'.'.join(map(str, info['blender']))}"
        )
    cached.write_text(json.dumps(info))
    return info


def server_paths(executable: str) -> list[str]:
    """Directories to append to the Blender server's ``sys.path`` (empty if none needed)."""
    info = probe(executable)
    missing = [module for module in info["missing"] if module in SERVER_MODULES]
    if not missing:
        return []
    same_python = tuple(info["python"]) == sys.version_info[:2]
    if same_python and info["machine"] == os.uname().machine:
        return _own_installation(missing)
    return [str(_provision(info, missing))]


def requirement(module: str, python: tuple[int, int]) -> str:
    """The pip requirement that gives ``module`` to a Python of version ``python``."""
    if module == "numpy":
        return NUMPY_FOR_PYTHON.get(python, "numpy>=2")
    return SERVER_MODULES[module]


def _own_installation(modules: list[str]) -> list[str]:
    """The trainer's site directories that hold ``modules`` (and what they import)."""
    paths: list[str] = []
    for module in [*modules, "typing_extensions", "cloudpickle", "farama_notifications"]:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        root = origin.parent.parent if origin.name == "__init__.py" else origin.parent
        if str(root) not in paths:
            paths.append(str(root))
    return paths


def _provision(info: dict[str, Any], modules: list[str]) -> Path:
    """``pip install --target`` the wheels for Blender's Python into the cache (once)."""
    major, minor = info["python"][:2]
    target = private_cache("blender-python", f"cp{major}{minor}-{info['machine']}")
    done = target / ".btgym-complete"
    if done.exists():
        return target
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time, also across processes
        if done.exists():
            return target
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--only-binary=:all:",
            "--python-version",
            f"{major}.{minor}",
            "--implementation",
            "cp",
            "--platform",
            f"manylinux2014_{info['machine']}",
            *[requirement(module, (major, minor)) for module in modules],
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise LaunchError(
                f"expected to install {modules} for Blender's Python {major}.{minor} into "
                f"{target}, pip failed",
                log_tail=result.stderr[-3000:],
            )
        done.write_text(json.dumps(info))
    return target


__all__ = [
    "KINDS",
    "OLDEST_SUPPORTED",
    "SERVER_MODULES",
    "cache_root",
    "private_cache",
    "kind_of",
    "probe",
    "requirement",
    "server_paths",
]
