"""Procedural textures (blender_side.textures): numpy only, no Blender."""

from __future__ import annotations

import numpy as np
import pytest

from blender_side.textures import TEXTURE_KINDS, pattern, procedural_texture, tileable_noise


def test_noise_spans_zero_to_one_tiles_and_follows_the_seed():
    noise = tileable_noise(np.random.default_rng(0), 64)
    assert noise.shape == (64, 64) and noise.min() == 0.0 and noise.max() == 1.0
    # Periodic: the step across the wrap is no larger than steps inside.
    inside = np.abs(np.diff(noise, axis=1)).max()
    assert np.abs(noise[:, 0] - noise[:, -1]).max() <= inside + 1e-9
    np.testing.assert_array_equal(noise, tileable_noise(np.random.default_rng(0), 64))
    assert not np.array_equal(noise, tileable_noise(np.random.default_rng(1), 64))


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_every_kind_blends_the_two_colours_by_the_contrast(kind):
    base, other = np.array([0.2, 0.2, 0.2]), np.array([0.8, 0.1, 0.1])
    image = procedural_texture(np.random.default_rng(3), 32, base, other, 0.5, kind)
    assert image.shape == (32, 32, 4) and image.dtype == np.float32
    assert (image[..., 3] == 1).all()
    mix = (image[..., 0] - 0.2) / 0.6  # how far each pixel went towards `other`
    assert mix.min() >= -1e-6 and mix.max() <= 0.5 + 1e-6 and mix.std() > 0.05
    flat = procedural_texture(np.random.default_rng(3), 32, base, other, 0.0, kind)
    np.testing.assert_allclose(flat[..., :3], np.broadcast_to(base, (32, 32, 3)), atol=1e-7)


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'marble'"):
        pattern(np.random.default_rng(0), 8, "marble")
