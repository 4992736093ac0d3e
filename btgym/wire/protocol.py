"""The btgym wire format, shared by the trainer and the Blender side.

A message is a ZeroMQ multipart message:

* frame 0, the header: msgpack of ``["btgym", VERSION, kind, body]``. ``kind`` is the
  operation for a request (``hello``, ``reset``, ``step``, ...) and ``ok`` or ``error``
  for a reply; ``body`` is any msgpack value.
* frames 1..n: raw array buffers. An array inside ``body`` is a msgpack extension
  value holding ``[dtype, shape, frame_index]``; small arrays and numpy scalars carry
  their bytes inline instead of a frame index. Between processes on one host that
  agreed on it at ``hello``, an array that views a frame file is sent as
  ``[file_name, offset]`` instead of its bytes (:mod:`btgym.wire.frame_files`).
  Between hosts that agreed on a codec at ``hello``, a large array's frame may hold its
  bytes compressed: extension 3 instead of 1, with the codec in the header's options
  (:mod:`btgym.wire.compression`).

Nothing is ever pickled. Buffers are sent without copying and received as numpy
arrays that view the received frames. See ``docs/protocol.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack
import numpy as np

from btgym.errors import DecodeError, EncodeError, LimitError, VersionMismatchError
from btgym.wire import compression

PROTOCOL_VERSION = 3
MAGIC = "btgym"

OPERATIONS = ("hello", "reset", "step", "steps", "render", "call", "ping", "close")
REPLY_OK = "ok"
REPLY_ERROR = "error"

#: Arrays of at least this many bytes travel in frames of their own (zero-copy).
OUT_OF_BAND_BYTES = 1024
#: Largest frame a server accepts by default (ZeroMQ's MAXMSGSIZE applies per frame; a
#: peer sending more is disconnected). Servers announce theirs in ``hello``.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: Most bytes ZeroMQ may hold for all the peers of one server together: requests queued
#: (``MAX_QUEUED_REQUESTS`` per connection, one more being read, for ``max_connections``
#: connections) and the one being served. A server takes its frame bound from it (see
#: :func:`frame_bound`): ZeroMQ checks a frame's declared size before allocating it.
DEFAULT_MAX_SERVER_BYTES = 2 << 30

#: Most bytes of arrays a client accepts in one reply (sizes as declared, checked before
#: anything is mapped, copied or allocated; also ZeroMQ's MAXMSGSIZE of client sockets).
DEFAULT_MAX_REPLY_BYTES = 1 << 30

#: Most steps one ``steps`` request may ask for (bounds a reply's size).
MAX_STEPS_PER_REQUEST = 64
#: Most requests one client may keep in flight: a server queues at most this many
#: replies for a client (ZeroMQ's SNDHWM; a client that never reads loses the rest).
MAX_IN_FLIGHT = 16
#: Requests a server queues per client connection before ZeroMQ stops reading from it
#: (RCVHWM): further requests wait in the client's own buffers, none is lost.
MAX_QUEUED_REQUESTS = 4

#: Bounds on the text of an ``error`` reply: a message quoting a huge input stays small.
MAX_ERROR_TYPE_CHARS = 200
MAX_ERROR_MESSAGE_CHARS = 2_000
MAX_ERROR_TRACEBACK_CHARS = 20_000


def frame_bound(max_message_bytes: int, max_server_bytes: int, max_connections: int) -> int:
    """The largest request frame a server takes: ``max_message_bytes``, or less, so that
    every request ZeroMQ may queue for ``max_connections`` peers fits in ``max_server_bytes``.
    """
    slots = max_connections * (MAX_QUEUED_REQUESTS + 1) + 1
    return max(1, min(max_message_bytes, max_server_bytes // slots))


_EXT_ARRAY = 1
_EXT_SCALAR = 2
_EXT_COMPRESSED = 3
_ALLOWED_DTYPE_KINDS = frozenset("biufc")
_MAX_DIMS = 64  # numpy's own limit (32 before numpy 2); bounds math.prod on a shape


class FileLocator(Protocol):
    def __call__(self, array: np.ndarray) -> list[Any] | None: ...


class FileBuffers(Protocol):
    def buffer(self, name: Any, offset: Any, nbytes: int) -> memoryview: ...


#: Transport options a message's header may carry, and the type of each value.
OPTIONS = {"frame_files": int, "compression": str}


@dataclass(frozen=True)
class Message:
    """A decoded message: its kind (operation or reply status), body and transport options.

    ``options`` say how the message travels, not what it asks (e.g. ``frame_files``:
    the client takes frames by reference and keeps that many requests in flight;
    ``compression``: the codec of its compressed arrays, and of the reply's); they live
    in the header so that no operation's body has to make room for them.
    """

    kind: str
    body: Any
    options: dict[str, Any] = field(default_factory=dict)


def encode(
    kind: str,
    body: Any = None,
    locate: FileLocator | None = None,
    options: dict[str, Any] | None = None,
    compress: str | None = None,
) -> list[Any]:
    """Turn ``kind`` and ``body`` into frames for ``socket.send_multipart(copy=False)``.

    ``locate``: finds the frame file a large array views (then only its name travels).
    ``options``: transport options for the header (keys from :data:`OPTIONS`).
    ``compress``: a codec from :func:`btgym.wire.compression.available`: large arrays
    that travel in frames of their own are compressed with it where that makes them
    smaller, and the header names it (option ``compression``).
    """
    buffers: list[Any] = []
    if compress is not None:
        options = {**(options or {}), "compression": compress}

    def default(value: Any) -> msgpack.ExtType:
        if isinstance(value, np.ndarray):
            return _pack_array(value, buffers, locate, compress)
        if isinstance(value, np.generic):
            array = np.asarray(value)
            _check_dtype(array.dtype)
            return msgpack.ExtType(
                _EXT_SCALAR, msgpack.packb([array.dtype.str, [], array.tobytes()])
            )
        raise EncodeError(
            f"expected msgpack-able values (None, bool, int, float, str, bytes, list, dict, "
            f"numpy array or scalar), got {type(value).__module__}.{type(value).__qualname__}"
        )

    try:
        header = msgpack.packb(
            [MAGIC, PROTOCOL_VERSION, kind, body, options or {}], default=default
        )
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode {preview(kind)} message: {_clip(exc)}") from exc
    return [header, *buffers]


def _pack_array(
    array: np.ndarray, buffers: list[Any], locate: FileLocator | None, codec: str | None
) -> msgpack.ExtType:
    _check_dtype(array.dtype)
    shape = list(array.shape)
    reference = locate(array) if locate is not None and array.nbytes >= OUT_OF_BAND_BYTES else None
    if reference is not None:
        payload: Any = reference
    elif array.nbytes >= OUT_OF_BAND_BYTES:
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if codec is not None and array.nbytes >= compression.MIN_COMPRESSED_BYTES:
            packed = compression.compress(codec, flat)
            if packed is not None:  # smaller: its frame holds the compressed bytes
                buffers.append(packed)
                descriptor = msgpack.packb([array.dtype.str, shape, len(buffers)])
                return msgpack.ExtType(_EXT_COMPRESSED, descriptor)
        buffers.append(flat)
        payload = len(buffers)  # frame index (frame 0 is the header)
    else:
        payload = np.ascontiguousarray(array).tobytes()
    return msgpack.ExtType(_EXT_ARRAY, msgpack.packb([array.dtype.str, shape, payload]))


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in _ALLOWED_DTYPE_KINDS:
        raise EncodeError(
            f"expected a numeric or bool numpy dtype, got {preview(dtype)} (object, string and "
            "structured arrays cannot travel)"
        )


def decode(
    frames: Sequence[Any],
    files: FileBuffers | None = None,
    max_bytes: int | None = None,
    codecs: Collection[str] = (),
    check: Callable[[Message], None] | None = None,
) -> Message:
    """Parse frames (bytes or ``zmq.Frame``) into a :class:`Message`.

    ``files`` maps arrays sent as frame-file references; without it they are an error.
    ``max_bytes``: most bytes all arrays together may declare (:class:`LimitError` past
    it, raised before the array's bytes are mapped, copied or decompressed).
    ``codecs``: the codecs compressed arrays may use (none: they are an error).
    ``check``: runs on the message before any array is decompressed; compressed arrays
    are then read-only stand-ins of their declared dtype and shape (no memory), so that
    the receiver can check shapes against a space before trusting the sizes.

    Raises :class:`DecodeError` for anything that is not a btgym message and
    :class:`VersionMismatchError` for a message of another protocol version.
    """
    if not frames:
        raise DecodeError("expected at least one frame (the header), got an empty message")
    buffers = [_buffer_of(frame) for frame in frames]
    budget = [max_bytes]  # what later arrays may still declare (None: no bound)
    compressed: list[_Compressed] = []  # decompressed once the header is read and checked

    def ext_hook(code: int, data: bytes) -> Any:
        if code not in (_EXT_ARRAY, _EXT_SCALAR, _EXT_COMPRESSED):
            raise DecodeError(
                f"expected extension type 1 (array), 2 (scalar) or 3 (compressed array), got {code}"
            )
        try:
            dtype_str, shape, payload = msgpack.unpackb(data, raw=False)
        except Exception as exc:
            raise DecodeError(f"malformed array descriptor: {_clip(exc)}") from exc
        if code == _EXT_COMPRESSED:
            return _stand_in(dtype_str, shape, payload, buffers, budget, compressed)
        array = _unpack_array(dtype_str, shape, payload, buffers, files, budget)
        return array[()] if code == _EXT_SCALAR else array

    unpacker = msgpack.Unpacker(
        ext_hook=ext_hook,
        raw=False,
        strict_map_key=False,
        use_list=True,
        max_buffer_size=max(len(buffers[0]), 1),
    )
    try:
        unpacker.feed(buffers[0])
        length = unpacker.read_array_header()
        magic = unpacker.unpack() if length in (4, 5) else None  # 4: protocol version 1
        if magic != MAGIC:
            raise DecodeError(
                f'expected header ["{MAGIC}", version, kind, body, options], got another value'
            )
        version = unpacker.unpack()  # checked before the body, whose format may differ
        if not _is_int(version):
            raise DecodeError(f"expected the protocol version as an int, got {preview(version)}")
        if version != PROTOCOL_VERSION:
            raise VersionMismatchError(PROTOCOL_VERSION, version)
        if length != 5:
            raise DecodeError(f"expected a header of 5 items, got {length}")
        kind = unpacker.unpack()
        body = unpacker.unpack()
        options = unpacker.unpack()
    except (DecodeError, LimitError, VersionMismatchError):
        raise
    except Exception as exc:
        raise DecodeError(
            f"expected a msgpack header, got undecodable bytes: {preview(exc)}"
        ) from exc
    if unpacker.tell() != len(buffers[0]):
        raise DecodeError(
            f"expected the header to end after {unpacker.tell()} bytes, got {len(buffers[0])}"
        )
    if not isinstance(kind, str):
        raise DecodeError(f"expected the message kind as a string, got {preview(kind)}")
    if _holds_timestamp(body):
        raise DecodeError(
            "expected extension types 1 to 3 (arrays and scalars) only, got msgpack's "
            "timestamp (extension type -1)"
        )
    message = Message(kind, body, _checked_options(options))
    codec = message.options.get("compression")
    if compressed and codec not in codecs:
        raise DecodeError(
            f"expected arrays compressed with one of {sorted(codecs)} (what was agreed), got "
            f"{len(compressed)} compressed with {preview(codec)}"
        )
    if check is not None:
        check(message)
    if not compressed:
        return message
    return Message(kind, _decompressed(body, compressed, str(codec)), message.options)


@dataclass
class _Compressed:
    """A compressed array met in a header: its stand-in, frame and declared raw size."""

    stand_in: np.ndarray
    frame: memoryview
    nbytes: int


def _stand_in(
    dtype_str: Any,
    shape: Any,
    payload: Any,
    buffers: list[memoryview],
    budget: list[int | None],
    compressed: list[_Compressed],
) -> np.ndarray:
    """A read-only array of the declared dtype and shape that holds no memory.

    The declared raw size is charged against the message's budget first, as for any
    array; the frame is decompressed only after the whole header has been checked.
    """
    dtype, shape, expected = _declared(dtype_str, shape, budget)
    if type(payload) is not int or not 1 <= payload < len(buffers):
        raise DecodeError(
            f"expected a compressed array's frame index from 1 to {len(buffers) - 1}, got "
            f"{preview(payload)}"
        )
    stand_in = np.broadcast_to(np.zeros((), dtype), shape)
    compressed.append(_Compressed(stand_in, buffers[payload], expected))
    return stand_in


def _decompressed(body: Any, compressed: list[_Compressed], codec: str) -> Any:
    """``body`` with each stand-in replaced by its decompressed array (writable)."""
    arrays = {
        id(item.stand_in): np.frombuffer(
            compression.decompress(codec, item.frame, item.nbytes), item.stand_in.dtype
        ).reshape(item.stand_in.shape)
        for item in compressed
    }
    if id(body) in arrays:
        return arrays[id(body)]
    stack = [body]  # no recursion: msgpack allows bodies deeper than Python's stack
    while stack:
        value = stack.pop()
        if type(value) is list:
            keys: Any = range(len(value))
        elif type(value) is dict:
            keys = list(value)
        else:
            continue
        for key in keys:
            item = value[key]
            if type(item) is list or type(item) is dict:
                stack.append(item)
            elif id(item) in arrays:
                value[key] = arrays[id(item)]
    return body


def _checked_options(options: Any) -> dict[str, Any]:
    """The header's transport options: known keys with values of the right type only."""
    if not isinstance(options, dict):
        raise DecodeError(f"expected header options as a map, got {preview(options)}")
    for key, value in options.items():
        expected = OPTIONS.get(key) if isinstance(key, str) else None
        if expected is None:
            raise DecodeError(f"expected header options from {sorted(OPTIONS)}, got {preview(key)}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise DecodeError(
                f"expected header option {key!r} as {expected.__name__}, got {preview(value)}"
            )
    return options


def _is_int(value: Any) -> bool:
    """An int that is not a bool (``True == 1``, so a bool would pass as a version or index).

    ``type(...) is int`` is exact for decoded values (msgpack makes no other int subclass)
    and cheaper than two isinstance calls; it is inlined where it runs for every array.
    """
    return type(value) is int


def _holds_timestamp(value: Any) -> bool:
    """Whether a decoded value holds a ``msgpack.Timestamp``, in a container or a map key.

    msgpack's unpacker turns extension type -1 into a Timestamp before ``ext_hook`` sees
    it, and no option turns that off, so it is looked for afterwards. This runs on every
    message, hence a recursive walk that only descends into lists and dicts (about 0.5 us
    for a step reply). Keys are never containers (unhashable); the deepest bodies msgpack
    allows exceed Python's recursion limit, and get an explicit stack instead.
    """
    try:
        return _walk_for_timestamp(value)
    except RecursionError:
        return _stack_walk_for_timestamp(value)


def _walk_for_timestamp(value: Any) -> bool:
    if type(value) is dict:
        for key in value:
            if type(key) is msgpack.Timestamp:
                return True
        value = value.values()
    elif type(value) is not list:
        return type(value) is msgpack.Timestamp
    for item in value:
        kind = type(item)
        if kind is dict or kind is list:
            if _walk_for_timestamp(item):
                return True
        elif kind is msgpack.Timestamp:
            return True
    return False


def _stack_walk_for_timestamp(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is msgpack.Timestamp:
            return True
    return False


def _buffer_of(frame: Any) -> memoryview:
    buffer = getattr(frame, "buffer", None)  # zmq.Frame received with copy=False
    return buffer if buffer is not None else memoryview(frame)


def _declared(
    dtype_str: Any, shape: Any, budget: list[int | None]
) -> tuple[np.dtype, list[int], int]:
    """An array descriptor's dtype, shape and byte size, checked and charged to ``budget``."""
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as exc:
        raise DecodeError(f"expected a numpy dtype string, got {preview(dtype_str)}") from exc
    if dtype.kind not in _ALLOWED_DTYPE_KINDS:
        raise DecodeError(f"expected a numeric or bool dtype, got {preview(dtype)}")
    if not (
        isinstance(shape, list)
        and len(shape) <= _MAX_DIMS
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise DecodeError(
            f"expected a shape of at most {_MAX_DIMS} non-negative ints, got {preview(shape)}"
        )
    expected = math.prod(shape) * dtype.itemsize
    left = budget[0]
    if left is not None:
        if expected > left:
            raise LimitError(
                f"expected arrays of at most {left} more bytes in this message, got "
                f"an array {dtype} {preview(tuple(shape))} declaring {expected} bytes"
            )
        budget[0] = left - expected
    return dtype, shape, expected


def _unpack_array(
    dtype_str: Any,
    shape: Any,
    payload: Any,
    buffers: list[memoryview],
    files: FileBuffers | None,
    budget: list[int | None],
) -> np.ndarray:
    dtype, shape, expected = _declared(dtype_str, shape, budget)
    if type(payload) is int:  # not a bool; inlined, as this runs for every array
        if not 1 <= payload < len(buffers):
            raise DecodeError(
                f"array refers to frame {payload}, but the message has {len(buffers)} frames"
            )
        raw: Any = buffers[payload]
    elif isinstance(payload, bytes):
        raw = bytearray(payload)  # writable, like arrays viewing received frames
    elif isinstance(payload, list) and len(payload) == 2:
        if not (isinstance(payload[0], str) and _is_int(payload[1])):
            raise DecodeError(
                f"expected a frame file reference [name, offset], got {preview(payload)}"
            )
        if files is None:
            raise DecodeError(
                f"got a frame file reference {preview(payload)} without having agreed to them"
            )
        raw = files.buffer(payload[0], payload[1], expected)
    else:
        raise DecodeError(
            f"expected array bytes, a frame index or a file reference, got {preview(payload)}"
        )
    if len(raw) != expected:
        raise DecodeError(
            f"array {preview(dtype)} {preview(tuple(shape))} needs {expected} bytes, got "
            f"{len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def preview(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote input."""
    if isinstance(value, (str, bytes, list)) and len(value) > limit:
        value = value[:limit]  # repr a slice: a 10 MB input never gets a 10 MB repr
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(exc: BaseException, limit: int = 200) -> str:
    """``str(exc)`` cut to ``limit`` characters (exceptions that may quote input)."""
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_body(exc: BaseException, traceback_text: str, instance: Any) -> dict[str, Any]:
    """The body of an ``error`` reply: bounded in size, and built without raising.

    A message may quote the offending input (a 10 MB op name would make a 20 MB reply),
    so each text is cut; a traceback keeps its end, where the failing frame is.
    """
    return {
        "type": _encodable(_keep_head(type(exc).__name__, MAX_ERROR_TYPE_CHARS)),
        "message": _encodable(_keep_head(_message_of(exc), MAX_ERROR_MESSAGE_CHARS)),
        "traceback": _encodable(_keep_tail(traceback_text, MAX_ERROR_TRACEBACK_CHARS)),
        "instance": instance,
    }


def _message_of(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's ``__str__`` itself raises."""
    try:
        return str(exc)
    except Exception as inner:
        return f"<unprintable {type(exc).__name__}: __str__ raised {type(inner).__name__}>"


def _keep_head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f" ... [cut: {len(text)} characters in all]"
    return text[: limit - len(marker)] + marker


def _keep_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"[cut: {len(text)} characters in all] ... "
    return marker + text[len(text) - limit + len(marker) :]


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which msgpack cannot encode) replaced by ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_REPLY_BYTES",
    "MAGIC",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_ERROR_TRACEBACK_CHARS",
    "MAX_ERROR_TYPE_CHARS",
    "MAX_IN_FLIGHT",
    "MAX_QUEUED_REQUESTS",
    "MAX_STEPS_PER_REQUEST",
    "OPERATIONS",
    "OPTIONS",
    "PROTOCOL_VERSION",
    "REPLY_ERROR",
    "REPLY_OK",
    "Message",
    "decode",
    "encode",
    "error_body",
    "preview",
]
