"""Same-host fast path: large reply arrays go through a shared-memory file, not the socket.

Each client owns an arena (a growable, memory-mapped file in ``/dev/shm``) and names it
in its requests. The server copies each large array of the reply into that arena and
sends only ``[dtype, shape, offset]``; the client copies the bytes out while decoding.
A client's requests are sequential (REQ/REP), so its arena is never written while it
reads, whoever else talks to the same server. Two memcpys replace the TCP transfer of
the frame. Servers only open existing files named like arenas in the shm directory.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os

import numpy as np

from btgym.errors import DecodeError

#: Arrays at least this large use the arena; smaller ones are cheaper in the message.
SHM_MIN_BYTES = 64 * 1024
_INITIAL_BYTES = 4 * 1024 * 1024


SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
_PREFIX, _SUFFIX = "btgym-arena-", ".bin"


def arena_path(tag: str) -> str:
    return os.path.join(SHM_DIR, f"{_PREFIX}{os.getpid()}-{tag}{_SUFFIX}")


def is_arena_path(path: object) -> bool:
    """Whether a server may open ``path``: a plain arena file name in the shm directory."""
    if not isinstance(path, str) or os.path.dirname(path) != SHM_DIR:
        return False
    name = os.path.basename(path)
    middle = name[len(_PREFIX) : -len(_SUFFIX)]
    return (
        name.startswith(_PREFIX)
        and name.endswith(_SUFFIX)
        and middle.replace("-", "").isalnum()
        and os.path.isfile(path)
        and not os.path.islink(path)
    )


class Arena:
    """A shared, memory-mapped file; the writer bump-allocates arrays for one message."""

    def __init__(self, path: str, create: bool) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(path, flags, 0o600)
        if create:
            os.ftruncate(self._fd, _INITIAL_BYTES)
        self._map: mmap.mmap | None = None
        self._remap()
        self.offset = 0
        self.owner = create

    def _remap(self) -> None:
        if self._map is not None:
            self._map.close()
        size = os.fstat(self._fd).st_size
        self._map = mmap.mmap(self._fd, size) if size else None

    @property
    def size(self) -> int:
        return 0 if self._map is None else len(self._map)

    def start_message(self) -> None:
        self.offset = 0

    def put(self, array: np.ndarray) -> int:
        """Copy ``array`` into the arena; return its offset."""
        nbytes = array.nbytes
        offset = self.offset
        if offset + nbytes > self.size:
            os.ftruncate(self._fd, max(2 * self.size, offset + nbytes))
            self._remap()
        assert self._map is not None
        target = np.frombuffer(self._map, np.uint8, nbytes, offset)
        np.copyto(target, np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        self.offset = offset + (nbytes + 63) // 64 * 64  # keep arrays 64-byte aligned
        return offset

    def get(self, dtype: np.dtype, shape: list[int], offset: int) -> np.ndarray:
        """A new array with the bytes at ``offset`` (a copy: the arena is reused)."""
        nbytes = math.prod(shape) * dtype.itemsize
        if offset < 0 or offset + nbytes > self.size:
            self._remap()  # the writer may have grown the file
        if offset < 0 or offset + nbytes > self.size:
            raise DecodeError(
                f"expected shared-memory array at [{offset}, {offset + nbytes}) inside the "
                f"arena of {self.size} bytes, it is outside"
            )
        assert self._map is not None
        return np.frombuffer(self._map, dtype, math.prod(shape), offset).reshape(shape).copy()

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


__all__ = ["SHM_MIN_BYTES", "Arena", "arena_path", "is_arena_path"]
