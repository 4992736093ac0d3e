"""Run inside bpy: compare blender_side.camera.project with Blender's own world_to_camera_view.

Prints one JSON line: for each camera set-up, the largest pixel error over random points.
"""

import json
import sys

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

sys.path.insert(0, sys.argv[-1])
from blender_side.camera import depth, intrinsics, project  # noqa: E402

CASES = [
    {"res": (640, 512), "lens": 50.0, "fit": "AUTO", "shift": (0.0, 0.0), "aspect": (1, 1)},
    {"res": (300, 500), "lens": 35.0, "fit": "AUTO", "shift": (0.1, -0.05), "aspect": (1, 1)},
    {"res": (640, 480), "lens": 24.0, "fit": "VERTICAL", "shift": (0.0, 0.2), "aspect": (1, 1)},
    {"res": (400, 400), "lens": 70.0, "fit": "HORIZONTAL", "shift": (-0.1, 0.0), "aspect": (2, 1)},
    {
        "res": (320, 240),
        "lens": 50.0,
        "fit": "AUTO",
        "shift": (0.0, 0.0),
        "aspect": (1, 1),
        "ortho": 6.0,
    },
]

scene = bpy.context.scene
camera = scene.camera
rng = np.random.default_rng(0)
results = []
for case in CASES:
    render = scene.render
    render.resolution_x, render.resolution_y = case["res"]
    render.resolution_percentage = 100
    render.pixel_aspect_x, render.pixel_aspect_y = case["aspect"]
    data = camera.data
    data.type = "ORTHO" if "ortho" in case else "PERSP"
    data.ortho_scale = case.get("ortho", 6.0)
    data.lens = case["lens"]
    data.sensor_fit = case["fit"]
    data.sensor_height = 18.0
    data.shift_x, data.shift_y = case["shift"]
    camera.location = rng.uniform(4, 8, 3) * rng.choice([-1, 1], 3)
    camera.rotation_euler = (
        (Vector((0, 0, 0)) - camera.location).to_track_quat("-Z", "Y").to_euler()
    )
    bpy.context.view_layer.update()
    points = rng.uniform(-2, 2, (500, 3))
    ours = project(points, camera, scene)
    width, height = case["res"]
    reference = []
    for p in points:
        ndc = world_to_camera_view(scene, camera, Vector(p))
        reference.append((ndc.x * width, (1.0 - ndc.y) * height, ndc.z))
    reference = np.array(reference)
    error = float(np.abs(ours - reference[:, :2]).max())
    depth_error = float(np.abs(depth(points, camera) - reference[:, 2]).max())
    k = intrinsics(camera, scene).tolist() if data.type == "PERSP" else None
    results.append({"case": case, "max_px_error": error, "max_depth_error": depth_error, "K": k})
print("RESULT " + json.dumps(results))
