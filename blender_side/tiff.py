"""Read the uncompressed 8-bit RGB TIFF files Blender writes, in place (numpy only).

The render read-back (:mod:`blender_side.render`) and the colour tables
(:mod:`blender_side.colour`) both read them; a module of its own keeps the two apart.
"""

from __future__ import annotations

import struct

import numpy as np

from btgym.errors import ConfigError

_TIFF_TAGS = {
    256: "width",
    257: "height",
    258: "bits",
    259: "compression",
    273: "strip_offsets",
    277: "samples",
    279: "strip_counts",
    284: "planar",
}
_TIFF_TYPES = {3: "H", 4: "I"}


def read_tiff_rgb8(path: str) -> np.ndarray:
    """Read an uncompressed, chunky, 8-bit RGB TIFF file as an ``(H, W, 3)`` array."""
    return tiff_rgb8(np.fromfile(path, dtype=np.uint8), path)


def tiff_rgb8(data: np.ndarray, path: str = "<memory>") -> np.ndarray:
    """View the pixels of an uncompressed, chunky, 8-bit RGB TIFF's bytes as ``(H, W, 3)``.

    Only the layout Blender writes is accepted; anything else raises ``ValueError``.
    The pixel bytes are viewed in place when the strips are contiguous (they are).
    """
    head = data[:8].tobytes()
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or struct.unpack(order + "H", head[2:4])[0] != 42:
        raise ConfigError(f"expected a TIFF file at {path}, got header {head!r}")
    tags = _read_ifd(data, order, struct.unpack(order + "I", head[4:8])[0])
    width, height = tags["width"][0], tags["height"][0]
    if (
        tags.get("compression", [1])[0] != 1
        or tags.get("samples", [1])[0] != 3
        or any(b != 8 for b in tags["bits"])
        or tags.get("planar", [1])[0] != 1
    ):
        raise ConfigError(f"expected uncompressed 8-bit chunky RGB TIFF, got tags {tags}")
    offsets, counts = tags["strip_offsets"], tags["strip_counts"]
    size = width * height * 3
    start = offsets[0]
    contiguous = all(o == start + sum(counts[:i]) for i, o in enumerate(offsets))
    if contiguous and sum(counts) >= size:
        pixels = data[start : start + size]
    else:
        pixels = np.concatenate([data[o : o + c] for o, c in zip(offsets, counts, strict=True)])[
            :size
        ]
    return pixels.reshape(height, width, 3)


def _read_ifd(data: np.ndarray, order: str, offset: int) -> dict[str, list[int]]:
    count = struct.unpack(order + "H", data[offset : offset + 2].tobytes())[0]
    entries = data[offset + 2 : offset + 2 + 12 * count].tobytes()
    tags: dict[str, list[int]] = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack(order + "HHII", entries[12 * i : 12 * i + 12])
        name = _TIFF_TAGS.get(tag)
        if name is None or kind not in _TIFF_TYPES:
            continue
        item = struct.calcsize(_TIFF_TYPES[kind])
        if n * item <= 4:
            raw = entries[12 * i + 8 : 12 * i + 8 + n * item]
        else:
            raw = data[value : value + n * item].tobytes()
        tags[name] = list(struct.unpack(order + _TIFF_TYPES[kind] * n, raw))
    return tags


__all__ = ["read_tiff_rgb8", "tiff_rgb8"]
