"""Read the uncompressed scanline OpenEXR files Blender writes, as numpy views (no bpy).

Blender's half-float EXR with ``exr_codec = 'NONE'`` stores one scanline per chunk:
``int32 y, int32 size`` then each channel's row of halves, channels in alphabetical
order (``B, G, R``). With every chunk the same size the whole pixel block is one
strided view: no decode and no copy. See ``docs/benchmarks.md`` (issue 16).
"""

from __future__ import annotations

import struct

import numpy as np

from btgym.errors import ConfigError

MAGIC = b"\x76\x2f\x31\x01"
#: OpenEXR pixel types: 0 uint32, 1 half, 2 float32.
PIXEL_TYPES: dict[int, np.dtype] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


def read_header(data: np.ndarray | bytes) -> tuple[dict[str, tuple[str, bytes]], int]:
    """The header's attributes ``{name: (type, raw value)}`` and where the header ends."""
    raw = data if isinstance(data, bytes) else data.data  # the array's buffer, no copy
    if bytes(raw[:4]) != MAGIC:
        raise ConfigError(f"expected an OpenEXR file, got magic {bytes(raw[:4])!r}")
    attributes: dict[str, tuple[str, bytes]] = {}
    i = 8
    end = len(raw)
    while i < end and raw[i] != 0:
        name_end = bytes(raw[i : i + 256]).index(b"\0") + i
        type_end = bytes(raw[name_end + 1 : name_end + 257]).index(b"\0") + name_end + 1
        (size,) = struct.unpack("<i", raw[type_end + 1 : type_end + 5])
        value_start = type_end + 5
        name = bytes(raw[i:name_end]).decode("ascii", "replace")
        kind = bytes(raw[name_end + 1 : type_end]).decode("ascii", "replace")
        attributes[name] = (kind, bytes(raw[value_start : value_start + size]))
        i = value_start + size
    if i >= end:
        raise ConfigError("expected the OpenEXR header to end, got the end of the file")
    return attributes, i + 1


def channels(attributes: dict[str, tuple[str, bytes]]) -> list[tuple[str, np.dtype]]:
    """``[(name, dtype)]`` in file order from the ``chlist`` attribute."""
    raw, i = attributes["channels"][1], 0
    out: list[tuple[str, np.dtype]] = []
    while i < len(raw) and raw[i] != 0:
        j = raw.index(b"\0", i)
        (pixel_type,) = struct.unpack("<i", raw[j + 1 : j + 5])
        out.append((raw[i:j].decode("ascii", "replace"), PIXEL_TYPES[pixel_type]))
        i = j + 1 + 16  # pixel type, pLinear + reserved, xSampling, ySampling
    return out


def scanline_planes(data: np.ndarray, width: int, height: int) -> tuple[np.ndarray, list[str]]:
    """An uncompressed scanline EXR's pixels as a ``(height, channels, width)`` view.

    All channels must share one pixel type; rows are top first (INCREASING_Y). Raises
    ``ValueError`` for any other layout, so that a caller can fall back to TIFF.
    """
    attributes, end = read_header(data)
    if attributes.get("compression", ("", b"\x01"))[1] != b"\x00":
        raise ConfigError("expected an uncompressed OpenEXR file (exr_codec 'NONE')")
    if attributes.get("lineOrder", ("", b"\x00"))[1] != b"\x00":
        raise ConfigError("expected OpenEXR scanlines in increasing y")
    x0, y0, x1, y1 = struct.unpack("<4i", attributes["dataWindow"][1])
    if (x1 - x0 + 1, y1 - y0 + 1) != (width, height):
        raise ConfigError(f"expected a {width}x{height} image, got {x1 - x0 + 1}x{y1 - y0 + 1}")
    found = channels(attributes)
    dtypes = {dtype for _, dtype in found}
    if len(dtypes) != 1:
        raise ConfigError(f"expected one pixel type for all channels, got {found}")
    dtype = dtypes.pop()
    row = 8 + width * len(found) * dtype.itemsize
    offsets = np.frombuffer(data, "<u8", height, end)
    first = int(offsets[0])
    if int(offsets[-1]) != first + (height - 1) * row or first + height * row > len(data):
        raise ConfigError("expected equal, consecutive scanline chunks in the OpenEXR file")
    block = np.frombuffer(data, np.uint8, height * row, first).reshape(height, row)
    planes = block[:, 8:].view(dtype).reshape(height, len(found), width)
    return planes, [name for name, _ in found]


__all__ = ["channels", "read_header", "scanline_planes"]
