"""Scene logic tested in this process through blender_side.testing: no server, no socket."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from blender_side import Scene
from blender_side.server import Server
from blender_side.testing import SceneEnv, check_scene
from btgym.wire import protocol

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


class CountingScene(Scene):
    """Counts nothing itself: its steps report the base class's count; ``fail`` raises."""

    def __init__(self, max_episode_steps=None, truncate_at=None):
        super().__init__(max_episode_steps=max_episode_steps)
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Discrete(1000)
        self.truncate_at = truncate_at  # the scene's own truncation, kept by the base

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return self.elapsed_steps, {}

    def step(self, action):
        if action == 1:
            raise RuntimeError("asked to fail")
        own = self.truncate_at is not None and self.elapsed_steps == self.truncate_at
        return self.elapsed_steps, 0.0, False, own, {"step": self.elapsed_steps}


def flags(env, steps):
    return [env.step(0)[3] for _ in range(steps)]


def test_the_base_class_truncates_on_the_step_that_reaches_the_limit():
    env = SceneEnv(CountingScene(max_episode_steps=3))
    assert env.reset(seed=0)[0] == 0
    assert [env.step(0)[4]["step"] for _ in range(2)] == [1, 2]  # step reads its own number
    assert env.step(0)[3] is True  # Gymnasium's TimeLimit: truncated on step 3 itself
    env.reset()
    assert flags(env, 4) == [False, False, True, True]  # the count restarts at each reset
    env.reset()
    with pytest.raises(RuntimeError):
        env.step(1)  # a step that raised is not counted
    assert flags(env, 3) == [False, False, True]
    unlimited = SceneEnv(CountingScene(truncate_at=2))
    unlimited.reset()
    assert flags(unlimited, 4) == [False, True, False, False]  # the scene's own flag is kept


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "3"])
def test_a_bad_step_limit_is_refused(limit):
    with pytest.raises(ValueError, match="expected max_episode_steps as an int >= 1 or None"):
        CountingScene(max_episode_steps=limit)


def test_the_server_counts_each_step_once_and_restarts_at_autoreset():
    server = Server(CountingScene(max_episode_steps=3))
    try:

        def request(kind, body):
            frames = server.handle(protocol.encode(kind, body))
            return protocol.decode([bytes(f) for f in frames]).body

        hello = request("hello", {"protocol": protocol.PROTOCOL_VERSION})
        assert hello["max_episode_steps"] == 3 and hello["params"] is None
        request("reset", {"seed": 0})
        reply = request("steps", {"actions": [0] * 7, "autoreset": True})["steps"]
        counts = [step.get("final_info", step["info"])["step"] for step in reply]
        assert counts == [1, 2, 3, 1, 2, 3, 1]
        assert [step["truncated"] for step in reply] == [False, False, True] * 2 + [False]
        assert "reset_seed" in reply[2] and reply[2]["obs"] == 0  # the new episode's reset
        request("reset", {"seed": 1})
        truncated = [request("step", {"action": 0})["truncated"] for _ in range(3)]
        assert truncated == [False, False, True]
    finally:
        server.socket.close()


def test_scenes_describe_their_step_limit_and_named_parameters():
    from btgym.wire.params import ParamSpace
    from envs.cube import CubeScene
    from envs.parts import PartsScene
    from envs.parts_params import parts_param_space

    assert CubeScene(width=8, height=8, max_episode_steps=4).describe()["max_episode_steps"] == 4
    parts = PartsScene(width=8, height=8, views=2, num_classes=3).describe()
    assert parts["max_episode_steps"] == 2
    assert ParamSpace.from_data(parts["params"]) == parts_param_space(3, 20)


def test_a_step_limit_reaches_a_scene_whose_constructor_does_not_take_it():
    env = SceneEnv("tests.scenes.frames:FrameScene", side=4, max_episode_steps=2)
    try:
        assert env.scene.max_episode_steps == 2
        env.reset(seed=0)
        assert [env.step(0)[3] for _ in range(2)] == [False, True]
    finally:
        env.close()


def test_a_step_returning_its_values_in_the_wrong_order_names_the_wrong_one():
    env = SceneEnv("tests.scenes.hostile:SwappedReturnScene")
    try:
        env.reset(seed=0)
        message = r"SwappedReturnScene\.step .*reward \(position 1\) must be a float, got dict"
        with pytest.raises(TypeError, match=message):
            env.step(0)
        assert env.scene.elapsed_steps == 0  # the failed step is not counted
    finally:
        env.close()


def test_a_wrong_class_name_in_a_spec_gets_a_did_you_mean():
    with pytest.raises(TypeError, match=r"did you mean tests\.scenes\.hostile:SwappedReturnScene"):
        SceneEnv("tests.scenes.hostile:SwappedReturnScen")


def test_an_object_missing_from_the_file_names_the_objects_it_has():
    import bpy

    from blender_side import kit

    kit.add_object("Crate", None)
    with pytest.raises(KeyError, match=r"expected 'Crat' in .*did you mean 'Crate' \(objects\).*"):
        SceneEnv("tests.scenes.hostile:MissingObjectScene", name="Crat")
    bpy.data.objects.remove(bpy.data.objects["Crate"])
