"""Copy-on-write maps of frame files that keep no file descriptor, within a memory budget.

CPython's ``mmap.mmap`` keeps a duplicate of the file descriptor for as long as the map
lives (until 3.13 always; from 3.13 unless ``trackfd=False``), so every frame a trainer
holds by reference used to hold a descriptor: about 1,000 held observations hit the
usual soft limit of 1,024 (``OSError(24)``). :func:`map_pages` maps with libc's own
``mmap`` instead: the descriptor is closed right after mapping, and the pages are
unmapped when the last array viewing them is freed.

Held maps also pin the frame files' pages in shared memory (``/dev/shm``) after the
server removed their names. :data:`PINNED` counts the bytes mapped and not yet freed;
past its budget (:data:`DEFAULT_PINNED_BYTES`, ``BTGYM_PINNED_FRAME_BYTES`` or
:func:`set_pinned_budget`) a frame is copied instead, and its file's pages go back to
the system once the server removes its name. See ``docs/reliability.md``.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading

from btgym.errors import ConfigError

#: Default budget of frame bytes a process keeps mapped (about 1,000 Cube frames at 640x512).
DEFAULT_PINNED_BYTES = 1 << 30
#: Environment variable that sets the budget in bytes (0: always copy).
PINNED_BYTES_VARIABLE = "BTGYM_PINNED_FRAME_BYTES"

_PAGE = mmap.ALLOCATIONGRANULARITY
_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int64,  # off_t: 64 bits on every 64-bit Linux
)
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value


class PinnedBytes:
    """Bytes of frame files this process keeps mapped, against a budget (thread-safe)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.maps = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        """Reserve ``nbytes``; False (nothing reserved) when that would pass the budget."""
        with self._lock:
            if self.used + nbytes > self.budget:
                return False
            self.used += nbytes
            self.maps += 1
            return True

    def give(self, nbytes: int) -> None:
        """Return what :meth:`take` reserved (the map was freed, or never made)."""
        with self._lock:
            self.used -= nbytes
            self.maps -= 1


def _budget_from_environment() -> int:
    text = os.environ.get(PINNED_BYTES_VARIABLE)
    if text is None or text == "":
        return DEFAULT_PINNED_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"expected {PINNED_BYTES_VARIABLE} as a number of bytes >= 0, got {text!r:.80}"
        )
    return value


#: The process's pinned frame bytes and their budget.
PINNED = PinnedBytes(_budget_from_environment())


def set_pinned_budget(nbytes: int) -> None:
    """Keep at most ``nbytes`` of frames mapped by reference; later frames are copied."""
    if type(nbytes) is not int or nbytes < 0:
        raise ConfigError(f"expected a pinned frame budget as an int >= 0, got {nbytes!r:.80}")
    PINNED.budget = nbytes


def map_pages(fd: int, offset: int, nbytes: int) -> memoryview | None:
    """``nbytes`` at ``offset`` of file ``fd``, mapped copy-on-write (writable, private).

    The map does not keep ``fd``: the caller closes it. The pages are unmapped when the
    last view of them is freed. ``None`` when the budget is spent (the caller copies).
    Raises ``OSError`` when the kernel refuses the map.
    """
    start = offset - offset % _PAGE
    length = offset - start + nbytes
    if not PINNED.take(length):
        return None
    address = _mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE, fd, start)
    if address is None or address == _MAP_FAILED:
        PINNED.give(length)
        code = ctypes.get_errno() or errno.ENOMEM
        raise OSError(code, f"mmap of {length} bytes failed: {os.strerror(code)}")
    pages = _pages_type(length).from_address(address)
    return memoryview(pages).cast("B")[offset - start :]


def _unmap(pages: ctypes.Array[ctypes.c_ubyte]) -> None:
    """``__del__`` of mapped pages: the last view of them is gone."""
    length = ctypes.sizeof(pages)
    _munmap(ctypes.addressof(pages), length)
    PINNED.give(length)


#: Array types of mapped pages by length (frames of a run share a few sizes).
_PAGE_TYPES: dict[int, type[ctypes.Array[ctypes.c_ubyte]]] = {}
_MOST_PAGE_TYPES = 256


def _pages_type(length: int) -> type[ctypes.Array[ctypes.c_ubyte]]:
    """A ``c_ubyte`` array type of ``length`` whose instances unmap themselves when freed."""
    kind = _PAGE_TYPES.get(length)
    if kind is None:
        kind = type("MappedPages", (ctypes.c_ubyte * length,), {"__del__": _unmap})
        if len(_PAGE_TYPES) < _MOST_PAGE_TYPES:
            _PAGE_TYPES[length] = kind
    return kind


def read_copy(fd: int, offset: int, nbytes: int) -> memoryview:
    """``nbytes`` at ``offset`` of file ``fd``, read into fresh memory (for over budget)."""
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(errno.EIO, f"expected {nbytes} bytes at offset {offset}, got {done}")
        done += got
    return view


__all__ = [
    "DEFAULT_PINNED_BYTES",
    "PINNED",
    "PINNED_BYTES_VARIABLE",
    "PinnedBytes",
    "map_pages",
    "read_copy",
    "set_pinned_budget",
]
