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

from btgym.errors import UntrustedPathError

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


def untrusted_reason(path: str, private: bool = False) -> str | None:
    """Why the directory ``path`` could be changed by another user, or None if it cannot.

    ``path`` itself must be a real directory (no symlink) of this user that no one else
    can write (``private``: that no one else can enter); every directory above its real
    location must belong to this user or root and be writable by no one else, unless
    sticky (``/tmp``): otherwise its owner could rename ``path`` away and put another
    in its place. Group write counts as no one else's only for this user's own primary
    group (user-private groups, umask 002).
    """
    me = os.geteuid()
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot inspect it ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != me:
        return f"it is owned by uid {info.st_uid}, not by uid {me}"
    if (private and info.st_mode & 0o077) or _writable_by_others(info):
        return f"its mode {oct(stat.S_IMODE(info.st_mode))} lets other users in"
    return _reason_above(os.path.dirname(os.path.realpath(path)))


def _reason_above(directory: str) -> str | None:
    """Why another user could replace what lies in ``directory`` (a real path), or None."""
    me = os.geteuid()
    while True:
        info = os.stat(directory)
        if info.st_uid not in (me, 0):
            return f"{directory} above it is owned by uid {info.st_uid}"
        if _writable_by_others(info) and not info.st_mode & stat.S_ISVTX:
            mode = oct(stat.S_IMODE(info.st_mode))
            return f"{directory} above it is writable by other users (mode {mode})"
        if directory == os.path.dirname(directory):
            return None
        directory = os.path.dirname(directory)


def _writable_by_others(info: os.stat_result) -> bool:
    if info.st_mode & 0o002:
        return True
    return bool(info.st_mode & 0o020) and info.st_gid != os.getegid()


def trusted_directory(
    path: str | os.PathLike[str], what: str, private: bool = False, mode: int = 0o700
) -> str:
    """``path`` made if missing (``mode``, missing parents 0700) and checked; its real path.

    Raises :class:`~btgym.errors.UntrustedPathError` (a ``PermissionError``) naming
    ``what`` when another user owns or can write it or a directory above it
    (:func:`untrusted_reason`). Use the returned path from then on: a symlink above it
    cannot be retargeted later.
    """
    text = os.path.abspath(os.fspath(path))
    existing = text
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if existing == text:
        reason = untrusted_reason(text, private)
    else:  # nothing is made inside a directory another user could change
        reason = _reason_above(os.path.realpath(existing))
        if reason is None:
            _make_levels(existing, text, mode)
            reason = untrusted_reason(text, private)
    if reason is not None:
        raise UntrustedPathError(
            f"expected {what} {text} to be a directory only uid {os.geteuid()} can change, "
            f"got one that another user could: {reason}; use a directory of your own"
        )
    return os.path.realpath(text)


def _make_levels(existing: str, path: str, mode: int) -> None:
    """Make every directory from below ``existing`` down to ``path``: 0700, ``path`` ``mode``.

    Each level gets its mode at creation and again explicitly (a umask of 0 would leave
    ``os.makedirs``'s parents writable by everyone).
    """
    levels = []
    while path != existing:
        levels.append(path)
        path = os.path.dirname(path)
    for level in reversed(levels):
        wanted = mode if level == levels[0] else 0o700
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, wanted)
            os.chmod(level, wanted)


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


def replace_owned_file(
    path: str | os.PathLike[str], data: bytes, what: str, mode: int = 0o644
) -> str:
    """Put ``data`` at ``path`` as a new file of ours; return its absolute path.

    The bytes go into a fresh file under a random name beside ``path`` (``O_EXCL |
    O_NOFOLLOW``, ``mode`` from its creation), which is then renamed over ``path``:
    nothing is ever written through an existing file or a symlink, and a reader sees
    the old file or the new one, never a torn one. Refused with
    :class:`~btgym.errors.UntrustedPathError` naming ``what``, the path and the culprit
    when ``path`` holds anything but a regular file of ours (another user's file, a
    symlink), or when its directory or one above could be changed by another user
    (a sticky directory such as ``/tmp`` is fine: only an entry's owner may rename or
    remove it there).
    """
    target = check_replaceable(path, what)
    directory = os.path.dirname(target)
    temporary = os.path.join(directory, f".{os.path.basename(target)}.{os.urandom(8).hex()}.tmp")
    write_private_file(temporary, data, mode)  # ours from here on: O_EXCL
    try:
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def check_replaceable(path: str | os.PathLike[str], what: str) -> str:
    """The absolute ``path`` if :func:`replace_owned_file` may write there; else raise.

    :class:`~btgym.errors.UntrustedPathError` names ``what``, the path and why.
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    me = os.geteuid()
    try:
        reason = _reason_above(os.path.realpath(directory))
    except OSError as exc:
        reason = f"its directory {directory} cannot be inspected ({exc.strerror})"
    if reason is None:
        reason = _entry_reason(target, me)
    if reason is not None:
        raise UntrustedPathError(
            f"expected {what} {target} to be a file only uid {me} can change, got one that "
            f"another user could: {reason}; use a path in a directory of your own"
        )
    return target


def check_owned_file(path: str | os.PathLike[str], what: str) -> str:
    """The absolute ``path`` if it is a regular file only this user can change; else raise.

    For files whose contents steer us (a launch-info file names the servers to talk to):
    no symlink, owned by this user, writable by no one else, in a directory (and below
    directories) no other user could change (sticky ones such as ``/tmp`` are fine).
    :class:`~btgym.errors.UntrustedPathError` names ``what``, the path and why;
    ``FileNotFoundError`` when there is nothing.
    """
    target = check_replaceable(path, what)
    info = os.lstat(target)
    if _writable_by_others(info):
        raise UntrustedPathError(
            f"expected {what} {target} to be a file only uid {os.geteuid()} can change, got "
            f"one that other users can write (mode {oct(stat.S_IMODE(info.st_mode))})"
        )
    return target


def _entry_reason(path: str, me: int) -> str | None:
    """Why the existing entry ``path`` is not a regular file of uid ``me``, or None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return f"it is a symlink (to {os.readlink(path)}) owned by uid {info.st_uid}"
    if not stat.S_ISREG(info.st_mode):
        return f"it is not a regular file (mode {oct(info.st_mode)}, owner uid {info.st_uid})"
    if info.st_uid != me:
        return f"it is owned by uid {info.st_uid}"
    return None


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
    "check_owned_file",
    "check_replaceable",
    "trusted_directory",
    "untrusted_reason",
    "is_private_directory",
    "make_private_directory",
    "open_verified",
    "pid_alive",
    "process_gone",
    "remove_owned_tree",
    "replace_owned_file",
    "sweep",
    "write_private_file",
]
