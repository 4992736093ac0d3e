"""Procedural surface textures in numpy: tileable images for grounds and tables.

Workbench draws image textures (``color_type = 'TEXTURE'``) but no procedural texture
nodes, so textures are computed here, as images, and given to an Image Texture node:
every engine then shows the same pattern. Numpy only (no ``bpy``): testable anywhere.

    image = procedural_texture(rng, 256, base, other)   # (256, 256, 4) float32, tileable
"""

from __future__ import annotations

import numpy as np

from btgym.errors import ConfigError

#: The kinds :func:`procedural_texture` draws from, with equal probability.
TEXTURE_KINDS = ("noise", "tiles", "stripes")


def tileable_noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    """Value noise in [0, 1], ``(size, size)``, periodic (it tiles): octaves of random
    lattices up-sampled bilinearly with wrap-around, halving amplitude per octave.
    """
    total = np.zeros((size, size), np.float64)
    weight = 0.0
    for octave in range(octaves):
        cells = min(size, 4 << octave)
        lattice = rng.random((cells, cells))
        coords = np.arange(size) * cells / size
        i0 = np.floor(coords).astype(np.int64)
        frac = coords - i0
        i1 = (i0 + 1) % cells
        rows = lattice[i0] * (1 - frac)[:, None] + lattice[i1] * frac[:, None]
        layer = rows[:, i0] * (1 - frac)[None, :] + rows[:, i1] * frac[None, :]
        amplitude = 0.5**octave
        total += amplitude * layer
        weight += amplitude
    total /= weight
    low, high = total.min(), total.max()
    return (total - low) / max(high - low, 1e-9)


def pattern(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A tileable pattern in [0, 1], ``(size, size)``: ``noise`` (blotches, like stone or
    worn paint), ``tiles`` (a checkerboard with grout lines) or ``stripes`` (wood-like
    grain, wavy by noise).
    """
    y, x = np.indices((size, size)) / size
    if kind == "noise":
        return tileable_noise(rng, size)
    if kind == "tiles":
        count = int(rng.integers(2, 9))
        cells = (np.floor(x * count) + np.floor(y * count)) % 2
        grout = np.minimum((x * count) % 1, (y * count) % 1) < 0.04
        return np.where(grout, 0.5, cells * 0.8 + 0.1 * tileable_noise(rng, size, 2))
    if kind == "stripes":
        count = int(rng.integers(3, 12))
        wobble = tileable_noise(rng, size, 3)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (count * y + 0.6 * wobble))
    raise ConfigError(f"expected a texture kind in {TEXTURE_KINDS}, got {kind!r}")


def procedural_texture(
    rng: np.random.Generator,
    size: int,
    base: np.ndarray,
    other: np.ndarray,
    contrast: float = 1.0,
    kind: str | None = None,
) -> np.ndarray:
    """An RGBA ``float32`` image ``(size, size, 4)``: a random :func:`pattern` (``kind``
    drawn when None) blending the colour ``base`` towards ``other`` by up to ``contrast``.
    """
    kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))] if kind is None else kind
    mix = pattern(rng, size, kind)[:, :, None] * float(contrast)
    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    rgb = base[None, None, :] * (1 - mix) + other[None, None, :] * mix
    alpha = np.ones((size, size, 1))
    return np.concatenate([rgb, alpha], axis=2).astype(np.float32)


__all__ = ["TEXTURE_KINDS", "pattern", "procedural_texture", "tileable_noise"]
