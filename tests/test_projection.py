"""Projection helpers (BlendTorch's object_to_pixel) against Blender's own projection and
the rendered id pass: evaluated vertices, visibility, occlusion by the depth frame.
"""

from __future__ import annotations

import warnings

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from blender_side import camera as cam
from blender_side.testing import SceneEnv


def _blender_pixels(points: np.ndarray, scene, camera) -> np.ndarray:
    width, height = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for p in points:
        u, v, _ = world_to_camera_view(scene, camera, Vector(p.tolist()))
        out.append((u * width, (1.0 - v) * height))
    return np.array(out)


def test_object_to_pixel_projects_the_evaluated_vertices_where_they_are_drawn():
    env = SceneEnv("tests.scenes.labels:DropScene", motion="modifier", count=2)
    try:
        _, info = env.reset(seed=1)
        scene, mover = bpy.context.scene, env.scene.moving[0]
        pixels = cam.object_to_pixel(mover, depth_map=info["depth"])
        assert pixels.xy.shape == (4 * 2 * len(mover.data.vertices), 2)  # array x solidify
        world = cam.evaluated_vertices(mover)
        np.testing.assert_allclose(
            pixels.xy[:20], _blender_pixels(world[:20], scene, scene.camera), atol=1e-3
        )
        # Visible vertices land on the object's own pixels (or next to them: edges).
        mask = np.pad(info["mask"], 1)
        cols, rows = (pixels.xy[pixels.visible] + 1).astype(int).T
        near = np.stack([mask[rows + dr, cols + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
        mover_id = len(env.scene.boxes) + 1
        on_object = (near == mover_id).any(0)
        assert pixels.visible.sum() > 10 and on_object.mean() > 0.95, on_object.mean()
        # Vertices at the back of the solidified array are hidden by its front.
        assert 0 < (pixels.in_image & ~pixels.visible).sum() < pixels.in_image.sum()
    finally:
        env.close()


def test_world_to_pixel_says_which_points_are_behind_the_camera_or_outside():
    env = SceneEnv("tests.scenes.labels:DropScene")
    try:
        env.reset(seed=0)
        camera = bpy.context.scene.camera
        forward = -np.array(camera.matrix_world.to_3x3().col[2])
        origin = np.array(camera.matrix_world.translation)
        points = np.array([origin + 5 * forward, origin - 5 * forward, origin + 5 * forward])
        points[2] += 100 * np.array(camera.matrix_world.to_3x3().col[0])  # far to the right
        pixels = cam.world_to_pixel(points)
        np.testing.assert_array_equal(pixels.in_front, [True, False, True])
        np.testing.assert_array_equal(pixels.in_image, [True, False, False])
        np.testing.assert_allclose(pixels.xy[0], [48.0, 36.0], atol=1e-6)  # the centre
        np.testing.assert_allclose(pixels.depth, [5.0, -5.0, 5.0], atol=1e-5)
    finally:
        env.close()


def test_the_removed_object_vertices_points_at_the_new_helpers():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        helper = cam.object_vertices
    assert helper is cam.evaluated_vertices
    assert "object_to_pixel" in str(caught[0].message)
