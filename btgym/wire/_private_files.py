"""Files and directories that other local users cannot create, replace or open.

``/dev/shm`` and ``/tmp`` are shared with every user of the host: anyone may plant a
file, a FIFO, a directory or a symlink at a name we are about to use. So btgym keeps
its files inside directories made by :func:`make_private_directory` (``mkdtemp``:
mode 0700, an unpredictable name, created atomically), opens what it reads with
:func:`open_verified` (no symlinks, no FIFOs, owner and type checked on the open file)
and removes only what :func:`remove_owned_tree` has verified we own. Used by both
processes (the Blender side imports it): standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile

#: Largest pid Linux hands out (``/proc/sys/kernel/pid_max`` is at most 2**22).
PID_MAX = 1 << 22


def make_private_directory(base: str, prefix: str) -> str:
    """A fresh directory in ``base`` that only this user can enter (0700, random name)."""
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def is_private_directory(path: str, uid: int | None = None) -> bool:
    """Whether ``path`` is a real directory (no symlink) of ``uid`` that no one else can enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    owner = os.geteuid() if uid is None else uid
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner and info.st_mode & 0o077 == 0


def open_verified(path: str, min_size: int = 0, max_size: int | None = None) -> int:
    """Open a regular file of ours for reading and return its descriptor, or raise OSError.

    ``O_NOFOLLOW`` refuses symlinks, ``O_NONBLOCK`` keeps a FIFO from blocking the open;
    owner, type and size are then checked on the open file itself (no race with a
    rename between a check and the open).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"expected a regular file at {path}, got mode {oct(info.st_mode)}")
        if info.st_uid != os.geteuid():
            raise OSError(f"expected {path} to be owned by uid {os.geteuid()}, got {info.st_uid}")
        if info.st_size < min_size or (max_size is not None and info.st_size > max_size):
            raise OSError(
                f"expected {path} to hold {min_size} to {max_size} bytes, got {info.st_size}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``; fail if anything exists there (no truncation, no symlink)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_owned_tree(path: str) -> bool:
    """Remove the directory ``path`` if it is ours and not a symlink; True when removed.

    ``shutil.rmtree`` works through directory descriptors on Linux, so a symlink planted
    inside cannot redirect it.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists; False for anything that is not a plausible pid."""
    if not 0 < pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited: no such process, or a zombie waiting to be reaped."""
    if not pid_alive(pid):
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc here: trust the signal probe
    return state in (b"Z", b"X")


def sweep(base: str, pattern: re.Pattern[str]) -> int:
    """Remove our directories in ``base`` named by ``pattern`` whose owner process is gone.

    ``pattern`` must capture the owning pid in its first group. Names that do not match,
    pids that do not parse and entries of other users are left alone; return how many
    directories were removed.
    """
    removed = 0
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        try:
            pid = int(match.group(1))
        except (ValueError, IndexError):
            continue
        if pid > PID_MAX or pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            removed += remove_owned_tree(os.path.join(base, name))
    return removed


__all__ = [
    "PID_MAX",
    "is_private_directory",
    "make_private_directory",
    "open_verified",
    "pid_alive",
    "process_gone",
    "remove_owned_tree",
    "sweep",
    "write_private_file",
]
