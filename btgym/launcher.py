"""Start, watch and tear down Blender server processes.

By default each instance is ``sys.executable -m blender_side`` using the pip ``bpy``
module; pass ``blender=`` (or set ``BTGYM_BLENDER``) to use a Blender binary instead.
Every process gets its own id, seed and log file, and dies with the trainer: on
``close()``, at interpreter exit, and when the trainer is killed (Linux parent-death
signal plus a watchdog in the server). Processes are started from one thread that
lives as long as the trainer process, so the parent-death signal (which Linux ties
to the thread that forked the child) fires when the process dies, not when the
thread that created the env ends. A launcher belongs to the process that made it: a
forked child can neither use it nor stop its instances (:class:`UsedAfterForkError`).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from btgym._launch_config import DEFAULTS
from btgym.errors import ClosedError, ConfigError, LaunchError, UsedAfterForkError
from btgym.wire._private_files import (
    make_private_directory,
    remove_owned_tree,
    sweep,
    trusted_directory,
    untrusted_reason,
)
from btgym.wire.frame_files import DIRECTORY_PATTERN, frame_directory
from btgym.wire.gpu_backend import environment as gpu_backend_environment
from btgym.wire.gpu_backend import share_software_rasterizer

#: Longest Unix-domain socket path ZeroMQ accepts (``sun_path`` is 108 bytes on Linux).
IPC_PATH_MAX = 100

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KILL_WAIT = 10.0  # seconds to reap a process after SIGKILL
#: Where a restart that failed and is tried again is reported (warnings).
logger = logging.getLogger("btgym")
_LIVE_LAUNCHERS: weakref.WeakSet[Launcher] = weakref.WeakSet()


@dataclass
class Instance:
    """One Blender server process and what is known about it."""

    index: int
    seed: int
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_path: Path
    address: str | None = None
    pid: int | None = None
    blender: dict[str, Any] | None = None  # version and graphics backend, from the server
    start_error: str | None = None  # why the server said it cannot start, if it did
    started_at: float = field(default_factory=time.monotonic)

    def is_alive(self) -> bool:
        """Whether the instance's process is still running."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the instance's log (stdout and stderr)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 3.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``grace`` s) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(KILL_WAIT)  # SIGKILL cannot be ignored; reaping can lag

    def exit_description(self) -> str:
        """How the process ended ("exited with code 3", "killed by SIGKILL"), or that it runs."""
        return describe_exit(self.process.poll())


def describe_exit(code: int | None) -> str:
    """A return code as words: Popen gives ``-N`` for death by signal ``N``."""
    if code is None:
        return "still running (hung or unresponsive)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


#: Launcher directories in the temporary directory; group 1 is the trainer's pid.
RUN_DIRECTORY_PATTERN = re.compile(r"btgym-run-(\d{1,10})-[A-Za-z0-9_]+")


def remove_stale_files() -> int:
    """Remove our frame and launcher directories whose process is gone; return how many.

    A server killed with its trainer leaves them to its janitor process (which removes
    them within moments); this sweep catches what even that missed. Only directories of
    this user whose names parse are touched; anything planted by others is left alone.
    """
    bases = dict.fromkeys([frame_directory(), "/dev/shm", tempfile.gettempdir()])
    removed = sum(sweep(base, DIRECTORY_PATTERN) for base in bases if os.path.isdir(base))
    return removed + sweep(tempfile.gettempdir(), RUN_DIRECTORY_PATTERN)


class _Spawner:
    """Starts child processes from one daemon thread that lives as long as the process.

    Linux's parent-death signal fires when the *thread* that forked a child exits; a
    Blender server started from a worker thread (a ThreadPoolExecutor, a DataLoader
    helper) would die with that thread. A fork gets a fresh spawner in the child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pid: int | None = None

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(args, **kwargs)``, run on the spawner thread."""
        with self._lock:
            if self._pid != os.getpid():  # first use, or a fork: start this process's thread
                self._requests = queue.SimpleQueue()
                threading.Thread(target=self._serve, name="btgym-spawner", daemon=True).start()
                self._pid = os.getpid()
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._requests.put((args, kwargs, done))
        outcome = done.get(timeout=60.0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _serve(self) -> None:
        requests = self._requests
        while True:
            args, kwargs, done = requests.get()
            try:
                done.put(subprocess.Popen(args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.put(exc)


_SPAWNER = _Spawner()


def blender_command(blender: str | None, ui: bool = False) -> list[str]:
    """The command prefix that starts a server: the bpy module, a Blender executable, or
    another Python interpreter that has bpy.

    An executable or interpreter gets, as server arguments, the directories that give
    its Python what the server imports (:func:`btgym.blender_python.server_paths`:
    nothing to set up by hand). ``ui``: Blender's UI mode (no ``--background``; the
    server yields to Blender's event loop, so the window shows the scene live).
    """
    blender = blender or os.environ.get("BTGYM_BLENDER") or None
    if blender is None:
        if ui:
            raise LaunchError(
                "expected a Blender executable for ui=True (blender= or BTGYM_BLENDER), got "
                "the bpy module, which has no window"
            )
        return [sys.executable, "-P", "-m", "blender_side"]  # -P: not from the cwd
    executable = shutil.which(os.path.expanduser(blender)) or os.path.expanduser(blender)
    if not os.path.isfile(executable):
        raise LaunchError(f"expected a Blender executable at {blender!r}, found none")
    if ui and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise LaunchError(
            "expected a display for ui=True (DISPLAY), got none: on a headless machine run "
            "under Xvfb, e.g. xvfb-run -a python train.py"
        )
    from btgym.blender_python import probe, server_paths

    info = probe(executable)
    kind = info["kind"]
    if ui and kind == "python":
        raise LaunchError(
            f"expected a Blender executable for ui=True, got the Python interpreter "
            f"{executable}, whose bpy module has no window"
        )
    sites = [arg for path in server_paths(executable) for arg in ("--site", path)]
    if kind == "python":
        if tuple(info["python"][:2]) >= (3, 11):
            return [executable, "-P", "-m", "blender_side", *sites]
        return [executable, "-c", _SAFE_MAIN, *sites]  # no -P before Python 3.11
    script = PROJECT_ROOT / "blender_side" / "__main__.py"
    return [
        executable,
        *([] if ui else ["--background"]),
        "--factory-startup",
        "--python-exit-code",
        "1",
        "--python",
        str(script),
        "--",
        *sites,
        *(["--ui"] if ui else []),
    ]


#: ``python -m blender_side`` without the working directory on ``sys.path`` (what
#: ``-P`` does from Python 3.11 on); ``-c`` puts ``''`` first, removed before any import.
_SAFE_MAIN = (
    "import sys; del sys.path[0]; import runpy; "
    "runpy.run_module('blender_side', run_name='__main__', alter_sys=True)"
)


def scene_path_args(cwd: str | None = None) -> list[str]:
    """``--path`` arguments for the server: the trainer's working directory, if trusted.

    ``package.module:Class`` scenes of the user's project import from there, as with
    ``python -m``; a directory another user owns or can write is left out.
    """
    cwd = cwd or os.getcwd()
    return ["--path", cwd] if untrusted_reason(cwd) is None else []


class InstanceSet:
    """What every launcher backend offers: its instances by index, and their addresses."""

    instances: list[Any]
    _closed: bool

    @property
    def addresses(self) -> list[str]:
        self._check_open()
        return [str(instance.address) for instance in self.instances]

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> Any:
        return self.instances[index]

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{type(self).__name__} is closed")
        owner = getattr(self, "_owner_pid", None)
        if owner is not None and owner != os.getpid():
            raise UsedAfterForkError(
                f"expected {type(self).__name__} to be used by the process that created it "
                f"(pid {owner}), got pid {os.getpid()}: a forked child must start its own"
            )


class Launcher(InstanceSet):
    """Starts ``num_instances`` servers of one scene and waits until all are ready.

    ``seed`` gives instance ``i`` the seed ``seed + i`` (random when None).
    ``bind``: the ZeroMQ address servers listen on; by default a Unix-domain socket in
    the log directory (``ipc://``, ~35 % less CPU per 1 MB frame than loopback TCP), or
    ``tcp://127.0.0.1:0`` where IPC is unavailable.
    On a host without a GPU the instances share the cores' software rasterizer
    threads (``LP_NUM_THREADS``, unless ``env`` or this process sets it:
    :func:`~btgym.wire.gpu_backend.share_software_rasterizer`).
    ``scene_kwargs`` must be JSON-serializable. Logs go to ``log_dir`` (a temporary
    directory, removed on close unless ``keep_logs``; a given one that another user owns
    or can write is refused with :class:`~btgym.errors.UntrustedPathError`). Use as a
    context manager or call :meth:`close`. Defaults are
    :data:`btgym._launch_config.DEFAULTS`; entry points pass a
    :class:`~btgym._launch_config.LaunchConfig` here (``launcher_options()``).
    """

    def __init__(
        self,
        scene: str,
        num_instances: int = 1,
        scene_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        blend_file: str | None = None,
        blender: str | None = None,
        ui: bool = False,
        bind: str | None = None,
        gpu_backend: str = DEFAULTS.gpu_backend,
        start_timeout: float = DEFAULTS.start_timeout,
        log_dir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        keep_logs: bool = False,
        max_message_bytes: int | None = None,
        max_server_bytes: int | None = None,
        max_restarts: int = DEFAULTS.max_restarts,
        restart_window: float = DEFAULTS.restart_window,
        max_lifetime_restarts: int | None = DEFAULTS.max_lifetime_restarts,
        curve_secret: str | os.PathLike[str] | None = None,
        curve_clients: str | os.PathLike[str] | None = None,
        first_index: int = 0,
    ) -> None:
        if num_instances < 1:
            raise ConfigError(f"expected num_instances >= 1, got {num_instances}")
        self.scene = scene
        self.scene_kwargs = dict(scene_kwargs or {})
        try:
            kwargs_json = json.dumps(self.scene_kwargs)
        except TypeError as exc:
            raise ConfigError(f"expected JSON-serializable scene kwargs, got {exc}") from exc
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seeds = [seed + i for i in range(num_instances)]
        self._own_log_dir = log_dir is None
        self.keep_logs = keep_logs
        self.max_message_bytes = max_message_bytes
        self.max_server_bytes = max_server_bytes
        self.first_index = first_index  # the id the first instance reports in errors
        self.curve_args = (
            ["--curve-secret", str(curve_secret), "--curve-clients", str(curve_clients)]
            if curve_secret is not None
            else []
        )
        self._owner_pid = os.getpid()
        run_prefix = f"btgym-run-{os.getpid()}-"
        if log_dir is None:
            self.log_dir = Path(make_private_directory(tempfile.gettempdir(), run_prefix))
        else:  # logs, ready files and sockets: no other user may plant or redirect them
            self.log_dir = Path(trusted_directory(log_dir, "log_dir"))
        remove_stale_files()
        self.instances: list[Instance] = []
        self._closed = False
        _LIVE_LAUNCHERS.add(self)
        self.start_timeout = start_timeout
        self.max_restarts, self.restart_window = max_restarts, restart_window
        self.max_lifetime_restarts = max_lifetime_restarts
        self.total_restarts = [0] * num_instances
        self.restarts: list[list[float]] = [[] for _ in range(num_instances)]
        self.ui = ui
        command = blender_command(blender, ui)
        instance_env = share_software_rasterizer(child_env(env, gpu_backend), num_instances)
        self._launch = (command, kwargs_json, blend_file, bind, instance_env)
        try:
            for index, instance_seed in enumerate(self.seeds):
                self.instances.append(self._start(index, instance_seed))
            self._wait_ready(self.instances, start_timeout)
        except BaseException:
            self.close()
            raise

    # -- start-up --------------------------------------------------------------------
    def _start(self, index: int, seed: int) -> Instance:
        command, kwargs_json, blend_file, bind, env = self._launch
        bind = bind or self._local_address(index)
        log_path = self.log_dir / f"instance-{index}.log"
        ready_path = self.log_dir / f"instance-{index}.ready.json"
        ready_path.unlink(missing_ok=True)
        args = [
            *command,
            "--scene",
            self.scene,
            "--kwargs",
            kwargs_json,
            "--bind",
            bind,
            "--instance",
            str(self.first_index + index),
            "--seed",
            str(seed),
            "--parent-pid",
            str(os.getpid()),
            "--ready-file",
            str(ready_path),
        ]
        args += scene_path_args()
        if blend_file:
            args += ["--blend", os.path.abspath(blend_file)]
        if self.max_message_bytes:
            args += ["--max-message-bytes", str(self.max_message_bytes)]
        if self.max_server_bytes:
            args += ["--max-server-bytes", str(self.max_server_bytes)]
        if self._own_log_dir and not self.keep_logs:  # the janitor's to remove if we are killed
            args += ["--remove-with-parent", str(self.log_dir)]
        args += self.curve_args
        # Blender's temporary directory goes inside the log directory, so that whatever a
        # killed instance leaves there is removed with it.
        temp = self.log_dir / f"instance-{index}.tmp"
        temp.mkdir(exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"--- btgym: starting instance {index} (seed {seed}) ---\n".encode())
            log.flush()
            process = _SPAWNER.popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "TMPDIR": str(temp), "TEMP": str(temp)},
                cwd=os.getcwd(),
            )
        return Instance(index, seed, process, log_path, ready_path)

    def _local_address(self, index: int) -> str:
        """A fresh same-host address for instance ``index``: IPC where possible."""
        path = self.log_dir / f"i{index}-{os.urandom(4).hex()}.sock"
        if sys.platform == "win32" or len(str(path)) > IPC_PATH_MAX:
            return "tcp://127.0.0.1:0"
        return f"ipc://{path}"

    def restart(self, index: int) -> Instance:
        """Replace instance ``index`` (dead, hung or leaking) by a fresh process.

        Same id and seed, a new address. At most ``max_restarts`` restarts of one instance
        within ``restart_window`` seconds (rate limit) and ``max_lifetime_restarts`` in
        all (cap); beyond that the instance gives up with a :class:`LaunchError` that
        shows its log. A fresh process that dies or hangs before it is ready (a nested
        fault) is replaced again, each try counted against the same limits; a scene that
        says why it cannot start is not retried.
        """
        self._check_open()
        while True:
            old = self.instances[index]
            self._count_restart(index, old)  # raises once the limits are reached
            old.stop(grace=0.2)  # it failed already: a hung process ignores SIGTERM anyway
            fresh = self._start(index, old.seed)
            self.instances[index] = fresh
            try:
                self._wait_ready([fresh], self.start_timeout)
                return fresh
            except LaunchError as fault:
                if fresh.start_error is not None:
                    raise  # the scene itself cannot start: another try would fail the same
                logger.warning(
                    "btgym: instance %s failed while restarting (%s); restarting it again",
                    self.first_index + index,
                    (str(fault).splitlines() or [""])[0],
                )

    def _count_restart(self, index: int, old: Instance) -> None:
        """Count one restart of instance ``index``, or raise when its limits are reached."""
        now = time.monotonic()
        recent = [t for t in self.restarts[index] if now - t < self.restart_window]
        if len(recent) >= self.max_restarts:
            raise LaunchError(
                f"expected Blender instance {index} to stay up, but it needed {len(recent)} "
                f"restarts within {self.restart_window:g} s (max_restarts={self.max_restarts}); "
                f"giving up; its last process {old.exit_description()}",
                instance=index,
                log_tail=old.log_tail(),
            )
        if (
            self.max_lifetime_restarts is not None
            and self.total_restarts[index] >= self.max_lifetime_restarts
        ):
            raise LaunchError(
                f"expected Blender instance {index} to stay up, but it was restarted "
                f"{self.total_restarts[index]} times (max_lifetime_restarts="
                f"{self.max_lifetime_restarts}); giving up; its last process "
                f"{old.exit_description()}",
                instance=index,
                log_tail=old.log_tail(),
            )
        self.restarts[index] = [*recent, now]
        self.total_restarts[index] += 1

    def _wait_ready(self, instances: list[Instance], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(instances)
        while waiting:
            for instance in list(waiting):
                if instance.ready_path.exists():
                    announcement = json.loads(instance.ready_path.read_text())
                    if "error" in announcement:  # the server said why it cannot start
                        instance.start_error = str(announcement["error"])
                        raise LaunchError(
                            f"expected Blender instance {instance.index} ({self.scene}) to "
                            f"start, got {announcement['error']}",
                            instance=instance.index,
                            log_tail=instance.log_tail(),
                        )
                    instance.address, instance.pid = announcement["address"], announcement["pid"]
                    instance.blender = announcement.get("blender")
                    waiting.remove(instance)
                elif not instance.is_alive():
                    raise LaunchError(
                        f"expected Blender instance {instance.index} ({self.scene}) to become "
                        f"ready, but it {instance.exit_description()}",
                        instance=instance.index,
                        log_tail=instance.log_tail(),
                    )
            if waiting and time.monotonic() > deadline:
                first = waiting[0]
                raise LaunchError(
                    f"expected Blender instance {first.index} ({self.scene}) to become ready "
                    f"within {timeout:g} s, it did not",
                    instance=first.index,
                    log_tail=first.log_tail(),
                )
            if waiting:
                time.sleep(0.02)

    # -- use -------------------------------------------------------------------------
    def close(self, grace: float = 3.0) -> None:
        """Stop every instance and reap it (idempotent); logs stay in :attr:`log_dir`."""
        if self._closed:
            return
        self._closed = True
        _LIVE_LAUNCHERS.discard(self)
        if os.getpid() != self._owner_pid:
            return  # a forked child: the instances and files are the parent's
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.terminate()
        for instance in self.instances:
            instance.stop(grace)
        if self._own_log_dir and not self.keep_logs:
            remove_owned_tree(str(self.log_dir))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def child_env(
    extra: Mapping[str, str] | None = None, gpu_backend: str = DEFAULTS.gpu_backend
) -> dict[str, str]:
    """The environment of a Blender process: this one's, the project on ``PYTHONPATH``,
    the graphics backend chosen (:mod:`btgym.wire.gpu_backend`), then ``extra``.

    Variables that this process's own bpy set (``OCIO``, MaterialX paths: they point
    into its package) are left out: another Blender would load that bpy's files, and
    Debian's Blender 3.4 aborts on bpy 5.3's colour configuration.
    """
    own_bpy = _own_bpy_directory()
    env = {
        name: value
        for name, value in gpu_backend_environment(gpu_backend, os.environ).items()
        if not (own_bpy and value.startswith(own_bpy))
    }
    given = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    # A relative entry names the working directory's contents: only a trusted one's.
    absolute = [os.path.abspath(p) for p in given if os.path.isabs(p) or _trusted(p)]
    paths = [str(PROJECT_ROOT), *absolute]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _own_bpy_directory() -> str | None:
    """The directory of this interpreter's bpy package (not imported), with a final slash."""
    try:
        spec = importlib.util.find_spec("bpy")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return os.path.dirname(spec.origin) + os.sep


def _trusted(path: str) -> bool:
    """Whether the directory ``path`` (relative to the working directory) is trusted."""
    return untrusted_reason(os.path.abspath(os.path.dirname(path) or ".")) is None and (
        not os.path.isdir(path) or untrusted_reason(os.path.abspath(path)) is None
    )


def _close_all() -> None:
    for launcher in list(_LIVE_LAUNCHERS):
        launcher.close(grace=1.0)


atexit.register(_close_all)


__all__ = [
    "Instance",
    "Launcher",
    "blender_command",
    "child_env",
    "scene_path_args",
    "describe_exit",
    "remove_stale_files",
]
