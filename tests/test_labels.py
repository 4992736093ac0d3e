"""Labels describe the frame that was drawn: physics without freeze, constraints, drivers,
keyframes and modifiers (in-process bpy, and a real Blender process for physics).
"""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from blender_side import kit
from blender_side.camera import evaluated_depsgraph, project
from blender_side.testing import SceneEnv, check_scene

SCENE = "tests.scenes.labels:DropScene"
LABELS = ("mask", "depth", "bbox_visib", "px_count_visib", "visib_fract", "obj_pose")


def _labels(freeze: bool, motion: str = "none", seed: int = 4) -> dict:
    env = SceneEnv(SCENE, freeze=freeze, motion=motion)
    try:
        _, info = env.reset(seed=seed)
        return {k: np.array(info[k]) for k in (*LABELS, "bbox_full", "px_count_all")}
    finally:
        env.close()


def test_a_settled_pile_gets_the_same_labels_with_or_without_freeze():
    free, frozen = _labels(False), _labels(True)
    assert (frozen["px_count_visib"] > 20).all()  # every box is seen
    for key in LABELS:
        np.testing.assert_allclose(free[key], frozen[key], atol=1e-4, err_msg=key)
    np.testing.assert_allclose(free["bbox_full"], frozen["bbox_full"], atol=1e-3)
    # The settled boxes rest on the floor (drop heights were 1.5 and more).
    assert (free["obj_pose"][:, 2, 3] < 0.6).all(), free["obj_pose"][:, 2, 3]


@pytest.mark.parametrize("motion", ["constraint", "driver", "keyframes", "modifier"])
def test_labels_of_an_evaluated_object_equal_those_of_its_baked_copy(motion):
    """The object drawn from an evaluation, then the same geometry as a plain mesh object:
    same frame, same mask, same boxes (the object's own data would be elsewhere).
    """
    env = SceneEnv(SCENE, motion=motion, count=1)
    try:
        frame, info = env.reset(seed=2)
        scene = env.scene
        mover = scene.moving[0]
        assert info["px_count_visib"][1] > 30, info["px_count_visib"]  # it is in view
        depsgraph = evaluated_depsgraph()
        evaluated = mover.evaluated_get(depsgraph)
        plain = kit.add_object("baked", bpy.data.meshes.new_from_object(evaluated))
        plain.matrix_world = evaluated.matrix_world.copy()
        mover.hide_render = True
        baked_frame = scene.renderer.render()
        baked = scene.annotator([*scene.boxes, plain], np.zeros(2, np.int32))
        np.testing.assert_array_equal(frame, baked_frame)  # the copy draws the same
        np.testing.assert_array_equal(info["mask"], baked["mask"])
        for key in ("bbox_visib", "px_count_visib", "px_count_all"):
            np.testing.assert_array_equal(info[key], baked[key], err_msg=key)
        np.testing.assert_allclose(info["bbox_full"], baked["bbox_full"], atol=1e-3)
        np.testing.assert_allclose(info["obj_pose"], baked["obj_pose"], atol=1e-5)
        if motion == "modifier":  # the mesh's own data, unmodified, is a quarter as wide
            own = np.empty(len(mover.data.vertices) * 3, np.float32)
            mover.data.vertices.foreach_get("co", own)
            pose = info["obj_pose"][1].astype(np.float64)
            uv = project(own.reshape(-1, 3) @ pose[:3, :3].T + pose[:3, 3], scene.camera)
            box = info["bbox_full"][1]
            assert box[2] - box[0] > 2.5 * (uv[:, 0].max() - uv[:, 0].min())
    finally:
        env.close()


@pytest.mark.parametrize("motion", ["none", "modifier"])
def test_check_scene_passes_a_scene_whose_labels_follow_its_frame(motion):
    env = SceneEnv(SCENE, render_mode="rgb_array", motion=motion)
    try:
        check_scene(env, seeds=(0,), steps=2)
    finally:
        env.close()


def test_check_scene_fails_a_scene_whose_labels_describe_another_state():
    env = SceneEnv("tests.scenes.labels:LateMoveScene", render_mode="rgb_array")
    try:
        with pytest.raises(AssertionError, match=r"LateMoveScene\.reset's frame .* pixels"):
            check_scene(env, seeds=(0,), steps=1)
    finally:
        env.close()


@pytest.mark.blender
def test_a_blender_process_labels_the_settled_pile_without_freeze():
    from btgym import BlenderEnv

    infos = []
    for freeze in (False, True):
        with BlenderEnv(SCENE, freeze=freeze) as env:
            infos.append(env.reset(seed=5)[1])
    free, frozen = infos
    assert (frozen["px_count_visib"] > 20).all()
    for key in LABELS:
        np.testing.assert_allclose(free[key], frozen[key], atol=1e-4, err_msg=key)


def test_the_ui_shows_the_scenes_own_look_never_the_id_pass():
    from blender_side.__main__ import show_render_look

    env = SceneEnv(SCENE)
    try:
        env.reset(seed=0)  # annotated: the id pass rendered with its own settings
        scene = bpy.context.scene
        assert scene.display.shading.color_type == "MATERIAL"  # put back after the pass
        scene.display.shading.show_shadows = True
        viewport = bpy.data.scenes.new("viewport-stand-in").display.shading  # same RNA type
        viewport.color_type, viewport.light = "OBJECT", "FLAT"
        show_render_look(viewport, scene)
        assert (viewport.color_type, viewport.light) == ("MATERIAL", "STUDIO")
        assert viewport.show_shadows and viewport.type == "SOLID"
    finally:
        env.close()


def test_check_scene_names_a_box_that_is_not_its_masks_extent():
    env = SceneEnv("tests.scenes.labels:ShiftedBoxScene", render_mode="rgb_array")
    try:
        expected = r"bbox_visib\[0\] to be the extent .* \(off by 2 px\)"
        with pytest.raises(AssertionError, match=expected):
            check_scene(env, seeds=(0,), steps=1)
    finally:
        env.close()


def test_raster_ids_are_renumbered_as_the_annotated_objects():
    from blender_side.annotations import renumbered

    ids = np.array([[0, 1, 2], [3, 2, 1]], np.int32)
    a, b, c = object(), object(), object()
    drawn = {a: 1, b: 2, c: 3}
    assert renumbered(ids, drawn, [a, b, c]) is ids  # already in order: no copy
    np.testing.assert_array_equal(renumbered(ids, drawn, [c, a]), [[0, 2, 0], [1, 0, 2]])
    # An object drawn with an id but not annotated is background.
    np.testing.assert_array_equal(renumbered(ids, drawn, [a, b]), [[0, 1, 2], [0, 2, 1]])
    # Ids no object was drawn with (never in a raster frame) are background too.
    stray = np.array([[0, 7, 2], [-1, 3, 1]], np.int32)
    np.testing.assert_array_equal(renumbered(stray, drawn, [c, a]), [[0, 0, 0], [0, 1, 2]])
