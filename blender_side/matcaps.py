"""Matcaps as GPU textures for the raster engine: the diffuse pass, and the specular pass.

Workbench shades a matcap as ``base colour x diffuse + specular``, the specular pass only
with ``show_specular_highlight``. Blender 4 and later ship their matcaps as multilayer EXRs
with a ``diffuse`` and a ``specular`` pass; Blender 3's, and many users' own, are plain RGB
images (diffuse only). ``gpu.texture.from_image`` uploads a file's first pass alone, so a
file with a specular pass is read with the OpenEXR package (PyPI ``openexr``, installed with
btgym's ``blender`` extra); an installed Blender's own Python may lack it, and then a
matcap's specular pass is refused with a :class:`~btgym.errors.RenderError` that says how
to get it (a diffuse-only matcap, or specular highlights off, needs nothing more).

Textures hold the image's first level alone, filtered bilinearly: Blender's image texture
has a mip chain sampled anisotropically, which doubles a matcap frame's cost on a software
rasterizer (Parts-v0 640x512: 57 -> 29 ms) and differs only where normals turn within a
pixel (curved silhouettes: ~2 % of a frame's pixels, mostly by 1-2 levels).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import bpy
import gpu
import numpy as np

from btgym.errors import RenderError

#: The first bytes of every OpenEXR file.
EXR_MAGIC = b"\x76\x2f\x31\x01"
#: An EXR header longer than this is not read for its channel names (Blender's: < 1 KiB).
MAX_EXR_HEADER = 64 * 1024


@dataclass(frozen=True)
class Matcap:
    """A matcap's textures: ``specular`` is None when it has no specular pass or when the
    look does not show one.
    """

    diffuse: Any
    specular: Any | None = None


def exr_channels(path: str) -> list[str]:
    """The channel names an OpenEXR file's header lists (``[]`` for any other file).

    Read by hand (a few hundred bytes) so that a single-pass matcap needs no EXR library;
    a header that does not parse within :data:`MAX_EXR_HEADER` bytes is a ``RenderError``.
    """
    with open(path, "rb") as file:
        head = file.read(MAX_EXR_HEADER)
    if not head.startswith(EXR_MAGIC):
        return []
    try:
        position = 8  # magic, version and flags
        while True:
            name, position = _c_string(head, position)
            if not name:
                return []  # the header ended without a channel list
            _kind, position = _c_string(head, position)
            (size,) = struct.unpack_from("<i", head, position)
            position += 4
            value = head[position : position + size]
            if size < 0 or len(value) != size:
                raise ValueError(f"attribute {name!r} declares {size} bytes")
            position += size
            if name == "channels":
                return _channel_names(value)
    except (ValueError, struct.error) as exc:
        raise RenderError(
            f"expected an OpenEXR header within {MAX_EXR_HEADER} bytes of matcap file "
            f"{path!r}, got one that does not parse ({exc})"
        ) from exc


def _c_string(data: bytes, position: int) -> tuple[str, int]:
    end = data.index(b"\0", position)  # ValueError past the end
    return data[position:end].decode("latin-1"), end + 1


def _channel_names(chlist: bytes) -> list[str]:
    """Names from an EXR ``chlist`` value: (name, 16 bytes of type and sampling)*, NUL."""
    names, position = [], 0
    while position < len(chlist) and chlist[position] != 0:
        name, position = _c_string(chlist, position)
        names.append(name)
        position += 16
    return names


def load_matcap(name: str, specular: bool) -> Matcap:
    """Studio light ``name``'s matcap as textures; its specular pass only if ``specular``.

    Needs a drawing context (the raster makes one before drawing).
    """
    light = bpy.context.preferences.studio_lights.get(name)
    if light is None or light.type != "MATCAP":
        raise RenderError(f"expected a matcap for shading.light='MATCAP', got {name!r}")
    has_specular = any(c.startswith("specular.") for c in exr_channels(light.path))
    if not (specular and has_specular):
        return Matcap(_first_pass(light.path))
    passes = _exr_passes(name, light.path, ("diffuse", "specular"))
    return Matcap(_texture(passes["diffuse"]), _texture(passes["specular"]))


def _first_pass(path: str) -> Any:
    """The image's first pass (a multilayer EXR's diffuse), as Blender loads it."""
    image = bpy.data.images.load(path, check_existing=True)
    mipmapped = gpu.texture.from_image(image)
    size = (mipmapped.width, mipmapped.height)
    texture = gpu.types.GPUTexture(size, format=mipmapped.format, data=mipmapped.read())
    image.gl_free()  # the image's own copy, with its mip chain, is never drawn
    return texture


def _exr_passes(name: str, path: str, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{pass: (height, width, 4) float32}``, rows bottom-up as a GPU texture takes them."""
    try:
        import OpenEXR
    except ImportError as exc:
        raise RenderError(
            f"expected the OpenEXR package in Blender's Python to read matcap {name!r}'s "
            "specular pass (Workbench adds it while display.shading.show_specular_highlight "
            "is on), got none: install it into the Python that runs Blender (python -m pip "
            "install openexr), turn show_specular_highlight off, or use engine='workbench'"
        ) from exc
    with OpenEXR.File(path, separate_channels=True) as file:
        channels = file.channels()
        passes = {}
        for layer in wanted:
            missing = [f"{layer}.{c}" for c in "RGB" if f"{layer}.{c}" not in channels]
            if missing:
                raise RenderError(
                    f"expected channels {layer}.R, .G and .B in matcap {name!r}, got "
                    f"{sorted(channels)} (missing {missing})"
                )
            planes = [channels[f"{layer}.{c}"].pixels for c in "RGB"]
            rgba = np.stack([*planes, np.ones_like(planes[0])], axis=-1)
            passes[layer] = np.ascontiguousarray(rgba[::-1], dtype=np.float32)
    return passes


def _texture(rgba: np.ndarray) -> Any:
    height, width = rgba.shape[:2]
    data = gpu.types.Buffer("FLOAT", rgba.size, rgba.reshape(-1))
    return gpu.types.GPUTexture((width, height), format="RGBA16F", data=data)


class MatcapTextures:
    """Each matcap's textures, loaded once per (name, specular) in a process."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, bool], Matcap] = {}

    def get(self, name: str, specular: bool) -> Matcap:
        """The textures of matcap ``name``, with its specular pass if ``specular``."""
        key = (name, specular)
        if key not in self._loaded:
            self._loaded[key] = load_matcap(name, specular)
        return self._loaded[key]


__all__ = ["Matcap", "MatcapTextures", "exr_channels", "load_matcap"]
