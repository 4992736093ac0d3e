"""Frames by reference between processes on one host: the renderer's own output file.

Blender writes every rendered frame to a file in shared memory (``/dev/shm``); the
server maps that file instead of reading it, and a client on the same host maps the
same pages instead of receiving a megabyte over the socket. The reply then carries
the file's name and the array's offset in place of the bytes (see ``docs/protocol.md``).

* :class:`FrameFileWriter` (Blender side) names a fresh file per frame, maps it, and
  removes names once no client can still need them: right away for in-process use
  and byte-transport clients; for clients that take references, once ``keep`` newer
  requests have arrived (a client sends its next request only after mapping a reply).
* :class:`FrameFileReader` (trainer side) maps a referenced file copy-on-write: the
  array is writable and private, and stays valid after the name is removed.

Whether the client sees the server's files is proved at ``hello`` with a probe file
holding a random token, never assumed (containers, other hosts, NFS all differ).
"""

from __future__ import annotations

import contextlib
import glob
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

from btgym.errors import DecodeError

#: Names a client accepts in a reference: no directories, no other files.
NAME_PATTERN = re.compile(r"btgym-frame-\d+-\d+\.[a-z]{3}")
#: Frames a client holds keep their pages in the frame directory, so references are
#: offered only where it is this large (Docker's default /dev/shm is 64 MiB).
MIN_SHARED_BYTES = 1 << 30


def frame_directory() -> str:
    """A directory in RAM for per-frame files (``/dev/shm`` where it exists)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


class _FrameMap(mmap.mmap):
    """A read-only mapping of one frame file; arrays viewing it can travel by reference."""

    path: str
    start: int
    named: bool  # False once the name is removed: then the array travels as bytes


class FrameFileWriter:
    """Names, maps and removes one process's frame files (Blender side)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or frame_directory()
        self.prefix = f"btgym-frame-{os.getpid()}-"
        self._counter = itertools.count()
        self.request = 0  # number of the request being served; 0 outside a server
        self.keep: int | None = None  # None: remove names as soon as they are mapped
        self._held: deque[tuple[int, _FrameMap]] = deque()

    def new_path(self, suffix: str = "tif") -> str:
        """A path no earlier frame used (``suffix``: three lowercase letters)."""
        return os.path.join(self.directory, f"{self.prefix}{next(self._counter)}.{suffix}")

    def map(self, path: str) -> np.ndarray:
        """The file's bytes as a read-only ``uint8`` array over a shared mapping."""
        fd = os.open(path, os.O_RDONLY)
        try:
            mapping = _FrameMap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        data = np.frombuffer(mapping, dtype=np.uint8)
        mapping.path, mapping.start, mapping.named = path, data.ctypes.data, True
        if self.keep is None:
            _unname(mapping)  # the mapping outlives the name
        else:
            self._held.append((self.request, mapping))
        return data

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

    def close(self) -> None:
        """Remove every name still held and every other file of ours (the server is stopping)."""
        while self._held:
            _unname(self._held.popleft()[1])
        for path in glob.glob(os.path.join(glob.escape(self.directory), self.prefix + "*")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _unname(mapping: _FrameMap) -> None:
    mapping.named = False
    with contextlib.suppress(FileNotFoundError):
        os.remove(mapping.path)


#: The one writer of this process (the server and the renderers share it).
WRITER = FrameFileWriter()


def make_probe(directory: str) -> dict[str, str] | None:
    """Write a probe file for ``hello``; a client that reads its token shares our files.

    ``None`` (no offer) where the directory holds less than ``MIN_SHARED_BYTES``.
    """
    if shutil.disk_usage(directory).total < MIN_SHARED_BYTES:
        return None
    token = secrets.token_hex(16)
    name = f"btgym-frame-{os.getpid()}-{secrets.randbelow(10**9)}.txt"
    with open(os.path.join(directory, name), "w") as f:
        f.write(token)
    return {"directory": directory, "probe": name, "token": token}


class FrameFileReader:
    """Maps frames a server on this host referenced (trainer side)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    @classmethod
    def from_hello(cls, offer: Any) -> FrameFileReader | None:
        """A reader when the server's probe file is readable here with its token, else None."""
        if not isinstance(offer, dict):
            return None
        directory, probe, token = offer.get("directory"), offer.get("probe"), offer.get("token")
        if not all(isinstance(v, str) and v for v in (directory, probe, token)):
            return None
        if not NAME_PATTERN.fullmatch(str(probe)):
            return None
        try:
            with open(os.path.join(str(directory), str(probe))) as f:
                found = f.read(256)
        except OSError:
            return None
        return cls(str(directory)) if secrets.compare_digest(found, str(token)) else None

    def buffer(self, name: Any, offset: Any, nbytes: int) -> memoryview:
        """``nbytes`` at ``offset`` of frame file ``name``, mapped copy-on-write."""
        if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
            raise DecodeError(f"expected a btgym frame file name, got {name!r:.80}")
        if not (isinstance(offset, int) and offset >= 0):
            raise DecodeError(f"expected a non-negative file offset, got {offset!r:.80}")
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise DecodeError(
                f"expected frame file {path} to exist, got none: another client of the same "
                "server may have released it (connect with frame_files=False to share a server)"
            ) from exc
        try:
            size = os.fstat(fd).st_size
            if offset + nbytes > size:
                raise DecodeError(
                    f"expected {nbytes} bytes at offset {offset} of {path}, "
                    f"got a file of {size} bytes"
                )
            if nbytes == 0:
                return memoryview(bytearray())
            mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
        finally:
            os.close(fd)
        return memoryview(mapping)[offset : offset + nbytes]


__all__ = [
    "NAME_PATTERN",
    "WRITER",
    "FrameFileReader",
    "FrameFileWriter",
    "frame_directory",
    "make_probe",
]
