"""Start, watch and tear down Blender server processes.

By default each instance is ``sys.executable -m blender_side`` using the pip ``bpy``
module; pass ``blender=`` (or set ``BTGYM_BLENDER``) to use a Blender binary instead.
Every process gets its own id, seed and log file, and dies with the trainer: on
``close()``, at interpreter exit, and when the trainer is killed (Linux parent-death
signal plus a watchdog in the server).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from btgym.errors import ClosedError, LaunchError

#: Longest Unix-domain socket path ZeroMQ accepts (``sun_path`` is 108 bytes on Linux).
IPC_PATH_MAX = 100

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KILL_WAIT = 10.0  # seconds to reap a process after SIGKILL
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
    started_at: float = field(default_factory=time.monotonic)

    def is_alive(self) -> bool:
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
        remove_frame_files(self.process.pid)


#: Where servers may write frame files (``btgym.frame_files.frame_directory`` picks one).
_FRAME_DIRECTORIES = frozenset({"/dev/shm", tempfile.gettempdir()})


def remove_frame_files(pid: int) -> None:
    """Remove the frame files a stopped server process left in shared memory.

    The name pattern is the one :class:`btgym.frame_files.FrameFileWriter` uses.
    """
    for directory in _FRAME_DIRECTORIES:
        for path in glob.glob(os.path.join(directory, f"btgym-frame-{pid}-*")):
            with contextlib.suppress(OSError):
                os.remove(path)


_FRAME_FILE_OWNER = re.compile(r"btgym-(?:frame|ids)-(\d+)-")


def remove_stale_frame_files() -> int:
    """Remove frame files of servers that are gone; return how many were removed.

    A server killed with its trainer (parent-death SIGKILL) cannot clean up after
    itself, and nobody is left to do it; the next launch does. Files of live processes
    (other trainers' servers) are left alone.
    """
    removed = 0
    for directory in _FRAME_DIRECTORIES:
        for path in glob.glob(os.path.join(directory, "btgym-*-*")):
            match = _FRAME_FILE_OWNER.match(os.path.basename(path))
            if match is None or psutil.pid_exists(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                os.remove(path)
                removed += 1
    return removed


def blender_command(blender: str | None) -> list[str]:
    """The command prefix that starts a server: the bpy module or a Blender binary."""
    blender = blender or os.environ.get("BTGYM_BLENDER") or None
    if blender is None:
        return [sys.executable, "-m", "blender_side"]
    executable = shutil.which(blender) or blender
    if not os.path.isfile(executable):
        raise LaunchError(f"expected a Blender executable at {blender!r}, found none")
    script = PROJECT_ROOT / "blender_side" / "__main__.py"
    return [
        executable,
        "--background",
        "--factory-startup",
        "--python-exit-code",
        "1",
        "--python",
        str(script),
        "--",
    ]


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


class Launcher(InstanceSet):
    """Starts ``num_instances`` servers of one scene and waits until all are ready.

    ``seed`` gives instance ``i`` the seed ``seed + i`` (random when None).
    ``bind``: the ZeroMQ address servers listen on; by default a Unix-domain socket in
    the log directory (``ipc://``, ~35 % less CPU per 1 MB frame than loopback TCP), or
    ``tcp://127.0.0.1:0`` where IPC is unavailable.
    ``scene_kwargs`` must be JSON-serializable. Logs go to ``log_dir`` (a temporary
    directory, removed on close unless ``keep_logs``). Use as a context manager or
    call :meth:`close`.
    """

    def __init__(
        self,
        scene: str,
        num_instances: int = 1,
        scene_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        blend_file: str | None = None,
        blender: str | None = None,
        bind: str | None = None,
        start_timeout: float = 120.0,
        log_dir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        keep_logs: bool = False,
        max_message_bytes: int | None = None,
        max_restarts: int = 5,
        restart_window: float = 300.0,
        max_lifetime_restarts: int | None = 100,
        curve_secret: str | os.PathLike[str] | None = None,
        curve_clients: str | os.PathLike[str] | None = None,
        first_index: int = 0,
    ) -> None:
        if num_instances < 1:
            raise ValueError(f"expected num_instances >= 1, got {num_instances}")
        self.scene = scene
        self.scene_kwargs = dict(scene_kwargs or {})
        try:
            kwargs_json = json.dumps(self.scene_kwargs)
        except TypeError as exc:
            raise ValueError(f"expected JSON-serializable scene kwargs, got {exc}") from exc
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seeds = [seed + i for i in range(num_instances)]
        self._own_log_dir = log_dir is None
        self.keep_logs = keep_logs
        self.max_message_bytes = max_message_bytes
        self.first_index = first_index  # the id the first instance reports in errors
        self.curve_args = (
            ["--curve-secret", str(curve_secret), "--curve-clients", str(curve_clients)]
            if curve_secret is not None
            else []
        )
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="btgym-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_frame_files()
        self.instances: list[Instance] = []
        self._closed = False
        _LIVE_LAUNCHERS.add(self)
        self.start_timeout = start_timeout
        self.max_restarts, self.restart_window = max_restarts, restart_window
        self.max_lifetime_restarts = max_lifetime_restarts
        self.total_restarts = [0] * num_instances
        self.restarts: list[list[float]] = [[] for _ in range(num_instances)]
        self._launch = (blender_command(blender), kwargs_json, blend_file, bind, _child_env(env))
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
        if blend_file:
            args += ["--blend", os.path.abspath(blend_file)]
        if self.max_message_bytes:
            args += ["--max-message-bytes", str(self.max_message_bytes)]
        args += self.curve_args
        # Blender's temporary directory goes inside the log directory, so that whatever a
        # killed instance leaves there is removed with it.
        temp = self.log_dir / f"instance-{index}.tmp"
        temp.mkdir(exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"--- btgym: starting instance {index} (seed {seed}) ---\n".encode())
            log.flush()
            process = subprocess.Popen(
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
        shows its log.
        """
        self._check_open()
        old = self.instances[index]
        now = time.monotonic()
        recent = [t for t in self.restarts[index] if now - t < self.restart_window]
        if len(recent) >= self.max_restarts:
            raise LaunchError(
                f"expected Blender instance {index} to stay up, but it needed {len(recent)} "
                f"restarts within {self.restart_window:g} s (max_restarts={self.max_restarts}); "
                "giving up",
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
                f"{self.max_lifetime_restarts}); giving up",
                instance=index,
                log_tail=old.log_tail(),
            )
        self.restarts[index] = [*recent, now]
        self.total_restarts[index] += 1
        old.stop(grace=0.2)  # it failed already: a hung process ignores SIGTERM anyway
        fresh = self._start(index, old.seed)
        self.instances[index] = fresh
        self._wait_ready([fresh], self.start_timeout)
        return fresh

    def _wait_ready(self, instances: list[Instance], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(instances)
        while waiting:
            for instance in list(waiting):
                if instance.ready_path.exists():
                    announcement = json.loads(instance.ready_path.read_text())
                    instance.address, instance.pid = announcement["address"], announcement["pid"]
                    waiting.remove(instance)
                elif not instance.is_alive():
                    raise LaunchError(
                        f"expected Blender instance {instance.index} ({self.scene}) to become "
                        f"ready, but it exited with code {instance.process.returncode}",
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
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.terminate()
        for instance in self.instances:
            instance.stop(grace)
        _LIVE_LAUNCHERS.discard(self)
        if self._own_log_dir and not self.keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _close_all() -> None:
    for launcher in list(_LIVE_LAUNCHERS):
        launcher.close(grace=1.0)


atexit.register(_close_all)


def launch(scene: str, num_instances: int = 1, **kwargs: Any) -> Launcher:
    """Shorthand for :class:`Launcher`."""
    return Launcher(scene, num_instances, **kwargs)


__all__ = ["Instance", "Launcher", "blender_command", "launch"]
