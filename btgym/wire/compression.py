"""Lossless compression of arrays on the wire, for peers on other hosts.

Between processes on one host frames travel by reference (:mod:`btgym.wire.frame_files`)
and nothing is compressed. A client that talks to a server on another host offers the
codecs it has at ``hello`` (:func:`offer`); the server picks the first one it has too
(:func:`choose`). From then on each request of that client names the codec in its
header options (unless ``hello`` proved the server shares this host's frame files), and
out-of-band arrays of at least :data:`MIN_COMPRESSED_BYTES` travel compressed in both
directions (msgpack extension 3) whenever that makes them smaller.

The codec is LZ4's block format (the ``lz4`` package: ``pip install btgym[compression]``):
fast enough that a 640x512 frame costs about a millisecond to compress. Without the
package nothing is offered or accepted, and everything travels as before.

A receiver never trusts a declared size: an array's dtype and shape declare its raw
size, which :func:`btgym.wire.protocol.decode` checks against the message's bounds (and
the space, through its ``check``) before anything is decompressed, and
:func:`decompress` writes at most that many bytes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from btgym.errors import ConfigError, DecodeError

#: The LZ4 block format (``lz4.block``), the one codec so far.
LZ4 = "lz4"
#: Codecs in the order a client prefers them.
PREFERENCE = (LZ4,)
#: Smallest out-of-band array that is compressed (smaller ones gain little).
MIN_COMPRESSED_BYTES = 16 * 1024
#: ``auto``: offered to peers reached at a non-loopback address; ``off``: never;
#: ``force``: offered to every peer, loopback included (to test compression on one host).
MODES = ("auto", "off", "force")
#: The environment variable that sets the default mode of every client.
MODE_VARIABLE = "BTGYM_COMPRESSION"
#: Most codec names a ``hello`` may offer (a bound on what a server reads).
MAX_OFFERED = 8

_Compress = Callable[[Any], bytes]
_Decompress = Callable[[Any, int], Any]


@functools.cache
def _codecs() -> dict[str, tuple[_Compress, _Decompress]]:
    """The codecs whose library is installed, by name."""
    codecs: dict[str, tuple[_Compress, _Decompress]] = {}
    try:
        import lz4.block
    except ImportError:
        return codecs

    def compress_lz4(buffer: Any) -> bytes:
        return lz4.block.compress(buffer, store_size=False)

    def decompress_lz4(data: Any, raw_size: int) -> Any:
        return lz4.block.decompress(data, uncompressed_size=raw_size, return_bytearray=True)

    codecs[LZ4] = (compress_lz4, decompress_lz4)
    return codecs


def available() -> tuple[str, ...]:
    """The codecs this process can use, in order of preference (empty without ``lz4``)."""
    codecs = _codecs()
    return tuple(name for name in PREFERENCE if name in codecs)


def mode_from(mode: str | None) -> str:
    """``mode``, or the ``BTGYM_COMPRESSION`` environment variable's (default ``auto``)."""
    if mode is None:
        mode = os.environ.get(MODE_VARIABLE, "auto") or "auto"
    if mode not in MODES:
        raise ConfigError(
            f"expected compression as one of {', '.join(MODES)} (or {MODE_VARIABLE} set to "
            f"one), got {mode!r}"
        )
    return mode


def offer(mode: str, remote: bool) -> list[str]:
    """The codecs a client offers at ``hello``: none to a loopback peer unless forced."""
    if mode == "off" or (mode == "auto" and not remote):
        return []
    return list(available())


def choose(offered: Any) -> str | None:
    """The codec a server uses for a client that offered ``offered`` (None: no compression).

    ``offered`` comes from the peer: anything but a short list of names is a
    :class:`~btgym.errors.DecodeError`.
    """
    if offered is None:
        return None
    if not (
        isinstance(offered, list)
        and len(offered) <= MAX_OFFERED
        and all(isinstance(name, str) and len(name) <= 32 for name in offered)
    ):
        raise DecodeError(
            f"expected hello's compression as a list of at most {MAX_OFFERED} codec names, "
            f"got {_preview(offered)}"
        )
    mine = available()
    return next((name for name in offered if name in mine), None)


def check_codec(codec: Any) -> str:
    """``codec`` if this process has it; else :class:`~btgym.errors.DecodeError`."""
    if codec not in _codecs():
        raise DecodeError(
            f"expected compression with one of {list(available())} (what this process has), "
            f"got {_preview(codec)}"
        )
    return codec


def compress(codec: str, buffer: Any) -> bytes | None:
    """``buffer`` compressed with ``codec``, or None when that is not smaller."""
    packed = _codecs()[codec][0](buffer)
    return packed if len(packed) < memoryview(buffer).nbytes else None


def decompress(codec: str, data: Any, raw_size: int) -> bytearray:
    """Exactly ``raw_size`` bytes from ``data``; at most that many are ever written.

    ``raw_size`` is what the array's dtype and shape declare, already checked against
    the message's bounds. A compressed frame is never larger than its raw bytes (the
    sender sends those instead), so a larger one is refused before decompressing.
    Raises :class:`~btgym.errors.DecodeError` for corrupt, truncated, short or long data.
    """
    size = memoryview(data).nbytes
    if not 0 < size < raw_size:
        raise DecodeError(
            f"expected a compressed frame of 1 to {raw_size - 1} bytes for an array of "
            f"{raw_size} bytes, got {size} bytes"
        )
    try:
        raw = _codecs()[check_codec(codec)][1](data, raw_size)
    except DecodeError:
        raise
    except Exception as exc:  # the library's own error for corrupt data
        raise DecodeError(
            f"expected {codec} data that decompresses to {raw_size} bytes, got corrupt or "
            f"truncated data ({type(exc).__name__})"
        ) from None
    if len(raw) != raw_size:
        raise DecodeError(
            f"expected {codec} data that decompresses to {raw_size} bytes, got {len(raw)} bytes"
        )
    return raw


def _preview(value: Any, limit: int = 80) -> str:
    """A short repr of a peer's value (sliced first: a huge one is never repr'd whole).

    :func:`btgym.wire.protocol.preview` does the same; that module imports this one.
    """
    if isinstance(value, (str, bytes, list)):
        value = value[:limit]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "LZ4",
    "MAX_OFFERED",
    "MIN_COMPRESSED_BYTES",
    "MODES",
    "MODE_VARIABLE",
    "PREFERENCE",
    "available",
    "check_codec",
    "choose",
    "compress",
    "decompress",
    "mode_from",
    "offer",
]
