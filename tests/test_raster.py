"""engine="raster": built-in scenes through gym.make and in process, labels against pixels,
the projection against Workbench's render, the look's refusals (docs/raster.md).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import btgym  # noqa: F401  (registers the env ids)
from btgym.errors import RenderError

pytestmark = [pytest.mark.blender, pytest.mark.timeout(600)]

SMALL = {"width": 96, "height": 72}


def test_make_cube_and_parts_with_the_raster_engine_through_a_server():
    with gym.make("btgym/Cube-v0", engine="raster", **SMALL) as env:
        obs, info = env.reset(seed=0)
        again, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs, again)
        assert obs.shape == (72, 96, 3) and obs.std() > 5
        other, *_ = env.step(np.ones(3, np.float32))
        assert not np.array_equal(other, obs)
    with gym.make("btgym/Parts-v0", engine="raster", masks=True, depth=True, **SMALL) as env:
        obs, info = env.reset(seed=1)
        assert obs.shape == (72, 96, 3) and obs.std() > 5
        mask, depth = info["mask"], info["depth"]
        visible = info["px_count_visib"][: info["num_objects"]]
        counts = np.bincount(mask.reshape(-1), minlength=len(visible) + 1)[1:]
        np.testing.assert_array_equal(counts[: len(visible)], visible)
        assert (depth[mask > 0] > 0).all()


@pytest.mark.parametrize(
    "spec, kwargs",
    [
        ("envs.cube:CubeScene", {"width": 64, "height": 48, "max_episode_steps": 4}),
        ("envs.cartpole:CartPoleScene", {"obs_mode": "rgb", "width": 64, "height": 48}),
        ("envs.parts:PartsScene", {"width": 64, "height": 48, "views": 3}),
        ("envs.supershape:SupershapeScene", {"width": 64, "height": 48}),
    ],
)
def test_built_in_scenes_keep_every_promise_with_the_raster_engine(spec, kwargs):
    from blender_side.testing import SceneEnv, check_scene

    env = SceneEnv(spec, render_mode="rgb_array", engine="raster", **kwargs)
    try:
        check_scene(env, seeds=(0,), steps=3)
        obs, _ = env.reset(seed=0)
        assert obs.std() > 2  # something drawn, not one colour
    finally:
        env.close()


def _cube_frames(engine: str, width: int, height: int, seeds: range) -> list[tuple]:
    from blender_side.testing import SceneEnv

    env = SceneEnv("envs.cube:CubeScene", engine=engine, width=width, height=height)
    try:
        return [
            (np.array(obs), info["xy"]) for obs, info in (env.reset(seed=seed) for seed in seeds)
        ]
    finally:
        env.close()


@pytest.mark.parametrize("size", [(160, 128), (37, 23)])
def test_the_raster_silhouette_is_workbench_s_and_agrees_with_the_labels(size):
    width, height = size
    seeds = range(4)
    raster = _cube_frames("raster", width, height, seeds)
    workbench = _cube_frames("workbench", width, height, seeds)
    for (frame, xy), (reference, xy_ref) in zip(raster, workbench, strict=True):
        np.testing.assert_array_equal(xy, xy_ref)  # the same pose: labels are the scene's
        cube = np.abs(frame.astype(int) - frame[0, 0]).sum(-1) > 6
        cube_ref = np.abs(reference.astype(int) - reference[0, 0]).sum(-1) > 6
        assert cube.sum() > 20
        # Same projection: at most a few pixels along the edges differ (colour thresholds).
        assert (cube != cube_ref).sum() <= max(3, 0.01 * cube.sum())
        rows, cols = np.nonzero(cube)
        box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        box_from_labels = np.array([*xy.min(0), *xy.max(0)])
        clipped = np.clip(box_from_labels, 0, [width, height, width, height])
        np.testing.assert_allclose(box, clipped, atol=1.0)
    # Same seed, same frame; other seed, other frame.
    again = _cube_frames("raster", width, height, range(1))
    np.testing.assert_array_equal(again[0][0], raster[0][0])
    assert not np.array_equal(raster[1][0], raster[0][0])


def test_parts_ids_and_depth_are_the_frame_s_own_and_equal_the_id_pass():
    from blender_side.camera import depth as point_depth
    from blender_side.testing import SceneEnv

    labels = {}
    for engine in ("raster", "workbench"):
        env = SceneEnv(
            "envs.parts:PartsScene", engine=engine, width=160, height=128, masks=True, depth=True
        )
        try:
            obs, info = env.reset(seed=3)
            labels[engine] = info
            if engine == "raster":
                scene = env.scene
                frame = np.array(obs)
                # Depth of each object's pixels within its vertices' depth range.
                for i, obj in enumerate(scene.active):
                    pixels = info["mask"] == i + 1
                    if not pixels.any():
                        continue
                    points, _ = scene.annotator.cache.get(obj.data)
                    matrix = np.array(obj.matrix_world)
                    world = points @ matrix[:3, :3].T + matrix[:3, 3]
                    z = point_depth(world, scene.camera)
                    seen = info["depth"][pixels]
                    assert seen.min() >= z.min() - 1e-3 and seen.max() <= z.max() + 1e-3
                # Where nothing is drawn, depth is 0 and the frame shows the sky.
                empty = info["depth"] == 0
                assert (info["mask"][empty] == 0).all()
                if empty.any():
                    assert len(np.unique(frame[empty].reshape(-1, 3), axis=0)) == 1
        finally:
            env.close()
    raster, workbench = labels["raster"], labels["workbench"]
    assert (raster["mask"] != workbench["mask"]).sum() <= 0.001 * raster["mask"].size
    np.testing.assert_allclose(raster["px_count_visib"], workbench["px_count_visib"], atol=3)
    both = (raster["depth"] > 0) & (workbench["depth"] > 0)
    np.testing.assert_allclose(raster["depth"][both], workbench["depth"][both], atol=0.01)


def test_the_look_follows_the_scene_s_settings_and_refuses_what_it_cannot_draw():
    import bpy

    from blender_side.testing import SceneEnv

    env = SceneEnv("envs.parts:PartsScene", engine="raster", width=96, height=72)
    try:
        env.reset(seed=0)
        renderer, shading = env.scene.renderer, bpy.context.scene.display.shading
        display = bpy.context.scene.display
        assert shading.show_shadows and shading.shadow_intensity > 0
        studio = np.array(renderer.render())
        shading.show_shadows = False
        unshadowed = np.array(renderer.render())
        assert (unshadowed.astype(int) - studio).mean() > 0.5  # shadows darken
        shading.show_shadows = True
        display.light_direction = (-display.light_direction[0], *display.light_direction[1:])
        assert not np.array_equal(np.array(renderer.render()), studio)  # and move
        shading.use_world_space_lighting = True
        shading.studiolight_rotate_z = 2.0
        turned = np.array(renderer.render())
        assert np.abs(turned.astype(int) - studio).mean() > 1
        shading.light = "MATCAP"
        shading.studio_light = "basic_1.exr" if "basic_1.exr" in _matcaps() else _matcaps()[0]
        matcap = np.array(renderer.render())
        assert np.abs(matcap.astype(int) - turned).mean() > 1
        shading.light = "FLAT"
        flat = np.array(renderer.render())
        ground = bpy.data.materials[env.scene.ground["material"]]
        ground.diffuse_color = (1.0, 0.0, 0.0, 1.0)
        red = np.array(renderer.render())
        assert (red[..., 0] == 255).sum() > (flat[..., 0] == 255).sum()
        shading.color_type = "VERTEX"
        with pytest.raises(RenderError, match="color_type"):
            renderer.render()
        shading.color_type = "MATERIAL"
        bpy.context.scene.view_settings.view_transform = "AgX"
        with pytest.raises(RenderError, match="view_transform"):
            renderer.render()
    finally:
        env.close()


def _matcaps() -> list[str]:
    from envs.parts import bundled_matcaps

    return bundled_matcaps()


def test_matcaps_are_sampled_from_their_full_resolution_image_alone():
    """The matcap textures hold the image's first level (no mip chain to sample); the
    diffuse pass read with OpenEXR (with the specular pass) is Blender's first pass exactly,
    rows in the same order.
    """
    import bpy
    import gpu

    from blender_side import matcaps
    from blender_side.testing import SceneEnv

    env = SceneEnv("envs.parts:PartsScene", engine="raster", width=32, height=24)
    try:
        env.reset(seed=0)  # a drawing context
        name = _matcaps()[0]
        light = bpy.context.preferences.studio_lights[name]
        assert "specular.R" in matcaps.exr_channels(light.path)  # Blender 4 and later's
        alone = matcaps.MatcapTextures().get(name, specular=False)
        both = matcaps.MatcapTextures().get(name, specular=True)
        assert alone.specular is None and both.specular is not None
        image = bpy.data.images.load(light.path, check_existing=True)
        level0 = gpu.texture.from_image(image)
        theirs = np.array(level0.read().to_list())
        for texture in (alone.diffuse, both.diffuse):
            assert texture is not level0
            assert (texture.width, texture.height, texture.format) == (
                level0.width,
                level0.height,
                level0.format,
            )
            ours = np.array(texture.read().to_list())
            assert ours.std() > 0 and np.array_equal(ours, theirs)
        specular = np.array(both.specular.read().to_list())
        assert specular.std() > 0 and not np.array_equal(specular, theirs)
    finally:
        env.close()


def test_matcap_frames_match_workbench_with_perspective_and_the_specular_pass():
    """Workbench shades a matcap as base x diffuse + specular, looked up by the normal turned
    towards each pixel's view direction: a Parts-v0 view (flat ground in perspective,
    curved parts) through both engines, shadows off (the shadow map is the raster's own).
    """
    import bpy

    from blender_side.render import Renderer
    from blender_side.testing import SceneEnv

    env = SceneEnv("envs.parts:PartsScene", engine="raster", width=160, height=128)
    try:
        env.reset(seed=2, options={"params": {"matcap_prob": 1.0}})
        shading = bpy.context.scene.display.shading
        assert shading.light == "MATCAP" and shading.show_specular_highlight
        shading.show_shadows = False
        frames = {}
        for specular in (True, False):
            shading.show_specular_highlight = specular
            for engine in ("workbench", "raster"):
                renderer = Renderer(160, 128, engine=engine)
                try:
                    frames[engine, specular] = np.array(renderer.render()).astype(int)
                finally:
                    renderer.close()
        for specular in (True, False):
            difference = np.abs(frames["workbench", specular] - frames["raster", specular])
            assert difference.mean() < 1.0, (specular, difference.mean())
            assert np.quantile(difference.max(axis=-1), 0.99) <= 8, specular
        # the specular pass is not a no-op: it brightens Workbench's frame and the raster's
        for engine in ("workbench", "raster"):
            assert frames[engine, True].mean() > frames[engine, False].mean() + 10
    finally:
        env.close()


def test_a_mesh_changed_in_place_is_drawn_anew():
    from blender_side import kit
    from blender_side.testing import SceneEnv
    from envs.supershape import shape_mesh

    env = SceneEnv("envs.supershape:SupershapeScene", engine="raster", width=64, height=48)
    try:
        env.reset(seed=0)
        scene = env.scene
        scene.shape.rotation_euler = (0.0, 0.0, 0.0)
        before = np.array(scene.renderer.render())
        vertices, _ = shape_mesh(7.0, 2.0, scene.segments, scene.rings)
        kit.set_vertices(scene.shape.data, vertices)
        after = np.array(scene.renderer.render())
        assert not np.array_equal(before, after)
    finally:
        env.close()


def test_a_textured_ground_draws_as_its_texture_s_mean_colour():
    import bpy

    from blender_side import kit
    from blender_side.raster_look import texture_mean
    from blender_side.testing import SceneEnv

    # Half black, half white texels average to mid-grey as displayed: sRGB 0.5.
    material = kit.node_material("texture-mean-check")
    node = kit.image_texture(material, "texture-mean-check", 8)
    pixels = np.ones((8, 8, 4), np.float32)
    pixels[:, :4, :3] = 0.0
    kit.show_texture(material, node, pixels)
    np.testing.assert_allclose(texture_mean(material), [0.214] * 3, atol=0.01)
    kit.show_texture(material, node, None)
    assert texture_mean(material) is None  # untextured: its own colour
    bpy.data.materials.remove(material)

    # Parts' textured ground (Workbench TEXTURE colour) draws, and its texture acts.
    grounds = {}
    for prob in (0.0, 1.0):
        params = {"saturation_max": 0.0, "ground_texture_prob": prob}
        params.update(ground_texture_contrast=1.0, ground_saturation_max=1.0)
        env = SceneEnv("envs.parts:PartsScene", engine="raster", width=96, height=72, masks=True)
        try:
            frame, info = env.reset(seed=4, options={"params": params})
            grounds[prob] = frame[info["mask"] == 0].astype(np.float64).mean(axis=0)
        finally:
            env.close()
    assert np.abs(grounds[1.0] - grounds[0.0]).max() > 3
