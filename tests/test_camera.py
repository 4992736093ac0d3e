"""Projection of world points to pixels, checked against independent references."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, blender_fixture


@blender_fixture(scope="module")
def projection_results():
    script = ROOT / "tests" / "blender_scripts" / "projection_cases.py"
    out = subprocess.run(
        [sys.executable, str(script), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_projection_matches_blenders_world_to_camera_view(projection_results):
    assert len(projection_results) == 5
    for result in projection_results:
        assert result["max_px_error"] < 0.5, result
        assert result["max_px_error"] < 1e-3, result  # the same maths, so far tighter
        assert result["max_depth_error"] < 1e-4, result


def test_intrinsics_of_the_default_case_are_the_textbook_values(projection_results):
    # 50 mm lens on a 36 mm sensor fitted to 640 px: f = 50 / 36 * 640 px, centre at (320, 256).
    k = np.array(projection_results[0]["K"])
    np.testing.assert_allclose(k, [[50 / 36 * 640, 0, 320], [0, 50 / 36 * 640, 256], [0, 0, 1]])


def test_projected_corners_bound_the_rendered_cube(cube_env):
    """The cube's silhouette in the frame spans the projected corners to within a pixel."""
    for seed in range(4):
        frame, info = cube_env.reset(seed=seed)
        background = frame[0, 0].astype(int)
        mask = np.abs(frame.astype(int) - background).max(axis=-1) > 6
        rows, cols = np.nonzero(mask)
        xy = info["xy"]
        assert abs(cols.min() - xy[:, 0].min()) <= 1.0
        assert abs(cols.max() + 1 - xy[:, 0].max()) <= 1.0
        assert abs(rows.min() - xy[:, 1].min()) <= 1.0
        assert abs(rows.max() + 1 - xy[:, 1].max()) <= 1.0
