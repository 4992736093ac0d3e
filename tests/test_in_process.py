"""Scene logic tested in this process through blender_side.testing: no server, no socket."""

from __future__ import annotations

import numpy as np
import pytest

from blender_side.testing import SceneEnv, check_scene

BUILT_IN = {
    "cube": ("envs.cube:CubeScene", {"width": 64, "height": 48, "max_episode_steps": 4}),
    "cartpole": ("envs.cartpole:CartPoleScene", {}),
    "parts": ("envs.parts:PartsScene", {"width": 64, "height": 48}),
    "supershape": ("envs.supershape:SupershapeScene", {"width": 64, "height": 48}),
}


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_scenes_keep_every_promise_in_process(name):
    spec, kwargs = BUILT_IN[name]
    env = SceneEnv(spec, render_mode="rgb_array", **kwargs)
    try:
        check_scene(env, seeds=(0,), steps=3)
    finally:
        env.close()


def test_check_scene_names_a_scene_that_breaks_its_space():
    env = SceneEnv("tests.scenes.hostile:WrongObservationScene")
    try:
        with pytest.raises(AssertionError):
            check_scene(env)
    finally:
        env.close()


def test_a_scene_steps_in_process_like_through_a_server():
    env = SceneEnv("envs.cube:CubeScene", width=64, height=48)
    try:
        first, info = env.reset(seed=3)
        again, _ = env.reset(seed=3)
        np.testing.assert_array_equal(first, again)
        obs, reward, terminated, truncated, info = env.step(np.full(3, 0.5, np.float32))
        assert obs.shape == (48, 64, 3) and obs.std() > 0 and not terminated
        assert set(info) >= {"xy", "rotation", "rotation_range"}
    finally:
        env.close()
