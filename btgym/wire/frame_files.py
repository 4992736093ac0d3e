"""Frames by reference between processes on one host: the renderer's own output file.

Blender writes every rendered frame to a file in shared memory (``/dev/shm``); the
server maps that file instead of reading it, and a client on the same host maps the
same pages instead of receiving a megabyte over the socket. The reply then carries
the file's name and the array's offset in place of the bytes (see ``docs/protocol.md``).

* :class:`FrameFileWriter` (Blender side) keeps its files in a private directory
  (``btgym-frames-<pid>-<random>``, mode 0700, made with ``mkdtemp``) under unguessable
  names, maps each fresh frame, and removes names once no client can still need
  them: right away for in-process use and byte-transport clients; for clients that
  take references, once ``keep`` newer requests have arrived (a client sends its
  next request only after mapping a reply). At most ``MAX_FRAMES_HELD`` names live.
* :class:`FrameFileReader` (trainer side) maps a referenced file copy-on-write: the
  array is writable and private, and stays valid after the name is removed. The map
  keeps no file descriptor, and past a budget of pinned bytes frames are copied
  (:mod:`btgym.wire.page_maps`).

Whether the client sees the server's files is proved at ``hello`` with a probe file
holding a random token, never assumed (containers, other hosts, NFS all differ), and
only for a server running as the same user in a directory no one else can enter:
another user's server always sends bytes. Every file is opened without following
symlinks, without blocking on FIFOs, and checked for owner, type and size before it
is mapped (``docs/security.md``).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import re
import secrets
import shutil
import tempfile
from collections import deque
from typing import Any

import numpy as np

from btgym.errors import DecodeError, RenderError
from btgym.wire._private_files import (
    is_private_directory,
    make_private_directory,
    open_verified,
    remove_owned_tree,
    write_private_file,
)
from btgym.wire.page_maps import map_pages, read_copy

#: Names a client accepts in a reference: no directories, no other files.
NAME_PATTERN = re.compile(r"frame-\d+-[0-9a-f]{16}\.[a-z]{3}")
#: Private frame directories in the shared base directory; group 1 is the server's pid.
DIRECTORY_PATTERN = re.compile(r"btgym-frames-(\d{1,10})-[A-Za-z0-9_]+")
#: Frames a client holds keep their pages in the frame directory, so references are
#: offered only where it is this large (Docker's default /dev/shm is 64 MiB).
MIN_SHARED_BYTES = 1 << 30
#: Most frame files a server keeps named for clients at once (the oldest lose their
#: names first); a request that would need more is refused (``LimitError``).
MAX_FRAMES_HELD = 128
#: Longest probe file a client reads.
_PROBE_BYTES = 64
#: Most spare frame files, and bytes in them, a writer prepares between requests
#: (see ``FrameFileWriter.prepare_spares``).
MAX_SPARES = 8
MAX_SPARE_BYTES = 64 << 20
#: Map flags of a spare: shared, with its pages faulted in by the kernel when mapped.
_SPARE_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def frame_directory() -> str:
    """The shared directory in RAM that holds private frame directories (``/dev/shm``)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


class _FrameMap(mmap.mmap):
    """A read-only mapping of one frame file; arrays viewing it can travel by reference."""

    path: str
    start: int
    named: bool  # False once the name is removed: then the array travels as bytes


class FrameFileWriter:
    """Names, maps and removes one process's frame files (Blender side).

    The private directory is made on first use, in the process that uses it; only
    that process removes it (:meth:`close`), so a forked child cannot delete it.
    """

    def __init__(self, base: str | None = None) -> None:
        self.base = base or frame_directory()
        self._directory: str | None = None
        self._owner_pid: int | None = None
        self._counter = itertools.count()
        self.request = 0  # number of the request being served; 0 outside a server
        self.keep: int | None = None  # None: remove names as soon as they are mapped
        self._held: deque[tuple[int, _FrameMap]] = deque()
        #: Fresh files made ahead, by ``(bytes, suffix)``, and the last frames' sizes.
        self._spares: dict[tuple[int, str], list[_FrameMap]] = {}
        self._made: deque[tuple[int, str]] = deque(maxlen=MAX_SPARES)

    @property
    def directory(self) -> str:
        """The private frame directory of this process (0700), made on first use."""
        if self._directory is None or self._owner_pid != os.getpid():
            if self._owner_pid is not None:  # a forked child: the names are the parent's
                self._held.clear()
                self._spares = {}
            self._directory = make_private_directory(self.base, f"btgym-frames-{os.getpid()}-")
            self._owner_pid = os.getpid()
        return self._directory

    @property
    def held(self) -> int:
        """How many frame files are named for clients right now."""
        return len(self._held)

    def new_path(self, suffix: str = "tif") -> str:
        """A path no earlier frame used and no one can guess (``suffix``: 3 lowercase letters)."""
        name = f"frame-{next(self._counter)}-{secrets.token_hex(8)}.{suffix}"
        return os.path.join(self.directory, name)

    def scratch_path(self, name: str) -> str:
        """A fixed path in the private directory for a file rewritten every frame."""
        return os.path.join(self.directory, name)

    def map(self, path: str) -> np.ndarray:
        """The file's bytes as a read-only ``uint8`` array over a shared mapping.

        Raises :class:`RenderError` when the renderer left no regular file of ours there.
        """
        return self._register(self._map_written(path), path)

    def map_private(self, path: str) -> np.ndarray:
        """Map a file of ours read-only and remove its name at once (it never travels)."""
        mapping = self._map_written(path)
        self.discard(path)
        return np.frombuffer(mapping, dtype=np.uint8)

    def _map_written(self, path: str) -> _FrameMap:
        """A read-only mapping of the verified file the renderer wrote at ``path``."""
        try:
            fd = open_verified(path, min_size=1)
        except OSError as exc:
            self.discard(path)
            raise RenderError(
                f"expected the renderer to write a frame to {path}, got none ({exc}); "
                "the instance's log says why (e.g. 'cannot save'); the next step uses a new file"
            ) from exc
        try:
            return _FrameMap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def _register(self, mapping: _FrameMap, path: str) -> np.ndarray:
        """View ``mapping`` and keep its name while a client may still need it."""
        data = np.frombuffer(mapping, dtype=np.uint8)
        mapping.path, mapping.start, mapping.named = path, data.ctypes.data, True
        if self.keep is None:
            _unname(mapping)  # the mapping outlives the name
        else:
            self._held.append((self.request, mapping))
            while len(self._held) > MAX_FRAMES_HELD:
                _unname(self._held.popleft()[1])
        return data

    def create(self, nbytes: int, suffix: str = "rgb") -> np.ndarray:
        """A fresh frame file of ``nbytes``, mapped shared and writable, as ``uint8``.

        For frames the server computes itself (e.g. converted from the renderer's EXR, or
        the raster engine's pixels): it fills the array, and the file then travels by
        reference like a rendered one. A spare of that size (:meth:`prepare_spares`) is
        used when there is one: its pages are already in place.
        """
        key = (max(nbytes, 1), suffix)
        self._made.append(key)
        spares = self._spares.get(key) if self._owner_pid == os.getpid() else None
        mapping = spares.pop() if spares else self._new_file(*key, flags=mmap.MAP_SHARED)
        return self._register(mapping, mapping.path)[:nbytes]

    def prepare_spares(self) -> None:
        """Make, ahead of the next request, fresh files for the frames the last one made.

        A new file's pages are allocated and zeroed by the kernel at the first write,
        ~0.7 ms for a 640x512 RGB frame here, a sixth of a raster Cube step; the server
        calls this after sending a reply, while the client reads it, so the next frame
        is written into pages already mapped. At most :data:`MAX_SPARES` files wait;
        spares of sizes the last request did not make are removed, and spares never hold
        more than :data:`MAX_SPARE_BYTES`. Never raises (a frame that finds no spare
        makes its file as before).
        """
        wanted, budget = [], MAX_SPARE_BYTES
        for key in self._made:
            if key[0] <= budget:
                wanted.append(key)
                budget -= key[0]
        self._made.clear()
        if self._owner_pid != os.getpid():  # a forked child: the spares are the parent's
            self._spares = {}
        for key, spares in list(self._spares.items()):
            while len(spares) > wanted.count(key):  # sizes or counts no longer made
                _unname(spares.pop())
            if not spares:
                del self._spares[key]
        try:
            for key in dict.fromkeys(wanted):
                spares = self._spares.setdefault(key, [])
                while len(spares) < wanted.count(key):
                    spares.append(self._new_file(*key, flags=_SPARE_FLAGS))
        except (OSError, ValueError):
            return

    def _new_file(self, nbytes: int, suffix: str, flags: int) -> _FrameMap:
        """A new file of ours (never an existing path, no link followed), mapped writable."""
        path = self.new_path(suffix)
        open_flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, open_flags, 0o600)
        try:
            os.ftruncate(fd, nbytes)
            mapping = _FrameMap(fd, nbytes, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            self.discard(path)
            raise
        finally:
            os.close(fd)
        mapping.path = path
        return mapping

    def discard(self, path: str) -> None:
        """Remove what a failed render left at ``path`` (a partial file, a directory)."""
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.remove(path)

    def begin_request(self, number: int, keep: int | None) -> None:
        """Request ``number`` arrived from a client that keeps ``keep`` replies in flight.

        Names from requests at least ``keep`` back are removed: that client has mapped
        them. ``None`` (a client taking bytes) removes nothing held; its own frames lose
        their names as soon as they are mapped.
        """
        self.request, self.keep = number, keep
        if keep is None:
            return
        while self._held and self._held[0][0] <= number - keep:
            _unname(self._held.popleft()[1])

    def locate(self, array: np.ndarray) -> list[Any] | None:
        """``[file name, byte offset]`` of a contiguous array that views a named frame file."""
        base: Any = array
        while isinstance(base, np.ndarray | memoryview):
            base = base.base if isinstance(base, np.ndarray) else base.obj
        if not isinstance(base, _FrameMap) or not base.named or not array.flags.c_contiguous:
            return None
        return [os.path.basename(base.path), array.ctypes.data - base.start]

    def make_probe(self) -> dict[str, Any] | None:
        """Write a probe file for ``hello``; a client that reads its token shares our files.

        ``None`` (no offer) where the base directory holds less than ``MIN_SHARED_BYTES``.
        """
        if shutil.disk_usage(self.base).total < MIN_SHARED_BYTES:
            return None
        token = secrets.token_hex(16)
        path = self.new_path("txt")
        write_private_file(path, token.encode())
        return {
            "directory": self.directory,
            "probe": os.path.basename(path),
            "token": token,
        }

    def close(self) -> None:
        """Remove every name still held and the private directory (the server is stopping).

        A forked child forgets its parent's names and spares without removing them.
        """
        if self._owner_pid != os.getpid():
            self._held.clear()
            self._spares = {}
        while self._held:
            _unname(self._held.popleft()[1])
        for spares in self._spares.values():
            for mapping in spares:
                _unname(mapping)
        self._spares = {}
        self._made.clear()
        if self._directory is not None and self._owner_pid == os.getpid():
            remove_owned_tree(self._directory)
            self._directory = None


def _unname(mapping: _FrameMap) -> None:
    mapping.named = False
    with contextlib.suppress(FileNotFoundError):
        os.remove(mapping.path)


#: The one writer of this process (the server and the renderers share it).
WRITER = FrameFileWriter()


class FrameFileReader:
    """Maps frames a server on this host referenced (trainer side)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    @classmethod
    def from_hello(cls, offer: Any) -> FrameFileReader | None:
        """A reader when the server's probe file is readable here with its token, else None.

        Only a private directory of this user qualifies: a server of another user (or a
        directory someone else could write to) gets no references, only bytes.
        """
        if not isinstance(offer, dict):
            return None
        directory, probe, token = offer.get("directory"), offer.get("probe"), offer.get("token")
        if not all(isinstance(v, str) and v for v in (directory, probe, token)):
            return None
        if not NAME_PATTERN.fullmatch(str(probe)) or not is_private_directory(str(directory)):
            return None
        try:
            fd = open_verified(os.path.join(str(directory), str(probe)), max_size=_PROBE_BYTES)
        except OSError:
            return None
        try:
            found = os.read(fd, _PROBE_BYTES).decode("ascii", "replace")
        except OSError:
            return None
        finally:
            os.close(fd)
        return cls(str(directory)) if secrets.compare_digest(found, str(token)) else None

    def buffer(self, name: Any, offset: Any, nbytes: int) -> memoryview:
        """``nbytes`` at ``offset`` of frame file ``name``, mapped copy-on-write.

        The map keeps no file descriptor; past the pinned-bytes budget
        (:mod:`btgym.wire.page_maps`) the bytes are copied instead.
        """
        if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
            raise DecodeError(f"expected a btgym frame file name, got {name!r:.80}")
        if not (isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0):
            raise DecodeError(f"expected a non-negative file offset, got {offset!r:.80}")
        path = os.path.join(self.directory, name)
        try:
            fd = open_verified(path, min_size=offset + nbytes)
        except FileNotFoundError as exc:
            raise DecodeError(
                f"expected frame file {path} to exist, got none: another client of the same "
                "server may have released it (connect with frame_files=False to share a server)"
            ) from exc
        except OSError as exc:
            raise DecodeError(
                f"expected {nbytes} bytes at offset {offset} of a regular frame file of ours, "
                f"got {exc}"
            ) from exc
        try:
            if nbytes == 0:
                return memoryview(bytearray())
            pages = map_pages(fd, offset, nbytes)  # keeps no descriptor
            return pages if pages is not None else read_copy(fd, offset, nbytes)
        except OSError as exc:
            raise DecodeError(
                f"expected to map {nbytes} bytes at offset {offset} of frame file {path}, got {exc}"
            ) from exc
        finally:
            os.close(fd)


__all__ = [
    "DIRECTORY_PATTERN",
    "MAX_FRAMES_HELD",
    "MAX_SPARES",
    "MAX_SPARE_BYTES",
    "NAME_PATTERN",
    "WRITER",
    "FrameFileReader",
    "FrameFileWriter",
    "frame_directory",
]
