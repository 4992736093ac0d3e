"""Cube-v0 through gymnasium.make: checkers, determinism, rendering, closing."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import btgym
from btgym.errors import ClosedError, InvalidActionError
from tests.conftest import SMALL_CUBE


def test_make_builds_a_blender_env_with_the_requested_frame_size(cube_env):
    assert isinstance(cube_env.unwrapped, btgym.BlenderEnv)
    assert cube_env.observation_space.shape == (128, 160, 3)
    assert cube_env.observation_space.dtype == np.uint8
    assert cube_env.action_space == gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    obs, info = cube_env.reset(seed=0)
    assert obs.shape == (128, 160, 3) and obs.dtype == np.uint8
    assert info["xy"].shape == (8, 2) and info["xy"].dtype == np.float32


def test_gymnasium_check_env_passes(cube_env):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(cube_env.unwrapped, skip_render_check=False)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "determin" in m.lower()], messages


def test_sb3_check_env_passes(cube_env):
    from stable_baselines3.common.env_checker import check_env

    check_env(cube_env.unwrapped, warn=False)


def test_same_seed_same_frames_and_actions_give_same_trajectory(cube_env):
    def rollout(seed):
        obs, _ = cube_env.reset(seed=seed)
        frames, corners = [obs], []
        for action in ([0.2, 0.5, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.3]):
            obs, _, _, _, info = cube_env.step(np.array(action, np.float32))
            frames.append(obs)
            corners.append(info["xy"])
        return np.stack(frames), np.stack(corners)

    frames_a, xy_a = rollout(42)
    frames_b, xy_b = rollout(42)
    frames_c, _ = rollout(43)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(xy_a, xy_b)
    assert not np.array_equal(frames_a, frames_c)


def test_action_sets_the_rotation_range(cube_env):
    cube_env.reset(seed=1)
    _, _, _, _, info = cube_env.step(np.zeros(3, np.float32))
    np.testing.assert_allclose(info["rotation"], 0.0)
    for _ in range(10):
        _, _, _, _, info = cube_env.step(np.array([0.1, 0.0, 0.5], np.float32))
        rotation = info["rotation"]
        assert abs(rotation[0]) <= 0.1 * np.pi + 1e-6 and rotation[1] == 0.0
        assert abs(rotation[2]) <= 0.5 * np.pi + 1e-6
    _, info = cube_env.reset(seed=1, options={"rotation_range": [0.0, 0.0, 0.0]})
    np.testing.assert_allclose(info["rotation"], 0.0)


def test_rewards_are_python_floats_and_flags_python_bools(cube_env):
    cube_env.reset(seed=0)
    _, reward, terminated, truncated, _ = cube_env.step(cube_env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool


def test_render_returns_the_last_frame(cube_env):
    obs, _ = cube_env.reset(seed=5)
    frame = cube_env.render()
    np.testing.assert_array_equal(frame, obs)


def test_invalid_action_raises_before_sending(cube_env):
    cube_env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"Box\(0.0, 1.0, \(3,\), float32\), got shape"):
        cube_env.step(np.zeros(2))


@pytest.mark.blender
def test_max_episode_steps_truncates_inside_the_scene():
    with btgym.BlenderEnv("envs.cube:CubeScene", max_episode_steps=3, **SMALL_CUBE) as env:
        env.reset(seed=0)
        flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
        assert env.call("max_episode_steps") == 3
    assert flags == [False, False, True]


@pytest.mark.blender
def test_close_is_idempotent_and_use_after_close_is_a_clear_error():
    env = gym.make("btgym:btgym/Cube-v0", **SMALL_CUBE)  # the "module:id" form also works
    env.reset(seed=0)
    process = env.unwrapped.launcher[0].process
    env.close()
    env.close()
    assert process.poll() is not None  # the Blender process is gone and reaped
    with pytest.raises(ClosedError):
        env.unwrapped.step(np.zeros(3, np.float32))


@pytest.mark.blender
def test_cycles_engine_renders_the_same_scene():
    with gym.make("btgym/Cube-v0", engine="cycles", samples=2, width=64, height=48) as env:
        obs, info = env.reset(seed=0)
    assert obs.shape == (48, 64, 3)
    assert obs.std() > 5  # an actual image, not a blank frame


ECHO_ID = "btgym-test/Echo-v0"


@pytest.fixture(scope="module")
def echo_id():
    from tests.conftest import ECHO_SCENE

    if ECHO_ID not in gym.registry:
        btgym.register_scene(ECHO_ID, ECHO_SCENE, max_episode_steps=5)  # the scene's own 5
    return ECHO_ID


def truncations(env, steps):
    return [env.step(env.action_space.sample())[3] for _ in range(steps)]


def test_built_in_step_limits_are_in_their_specs():
    spec = gym.spec("btgym/CartPole-v0")
    assert spec.max_episode_steps == 500 and spec.kwargs["max_episode_steps"] == 500
    assert gym.spec("btgym/Cube-v0").max_episode_steps is None  # no limit by default
    assert btgym.BUILTIN_MAX_EPISODE_STEPS == {"btgym/CartPole-v0": 500}


@pytest.mark.blender
def test_a_registered_limit_is_the_scenes_and_timelimit_never_counts_twice(echo_id):
    with gym.make(echo_id) as env:  # TimeLimit(5) over a scene that truncates at 5
        assert env.spec.max_episode_steps == 5
        env.reset(seed=0)
        assert truncations(env, 5) == [False] * 4 + [True]
        env.reset()
        assert truncations(env, 5) == [False] * 4 + [True]
    with gym.make(echo_id, max_episode_steps=3) as env:  # shorter than the scene's
        for _ in range(3):  # every episode ends on its 3rd step: the counts restart
            env.reset()
            assert truncations(env, 3) == [False, False, True]
        with gym.make(env.spec) as again:  # the spec round trips, limit included
            assert again.spec.max_episode_steps == 3
            again.reset(seed=0)
            assert truncations(again, 3) == [False, False, True]
    timed = gym.wrappers.TimeAwareObservation(gym.make(echo_id), flatten=False)
    with timed as env:  # needs a limit: it reads the spec's
        assert env.observation_space["time"].high.tolist() == [5]
        env.reset(seed=0)
        assert env.step(env.action_space.sample())[0]["time"].tolist() == [1]


def test_envs_refuse_to_be_pickled_or_copied_and_say_why(echo_env):
    import copy
    import pickle

    from btgym.errors import NotPicklableError

    with pytest.raises(NotPicklableError, match="owns Blender processes") as caught:
        pickle.dumps(echo_env)
    assert isinstance(caught.value, TypeError)  # what pickle raises for what cannot travel
    assert "gymnasium.make(env.spec)" in str(caught.value)
    with pytest.raises(NotPicklableError):
        copy.deepcopy(echo_env)
    assert echo_env.reset(seed=0)[0] is not None  # still usable


@pytest.mark.blender
def test_register_scenes_limit_holds_when_the_scene_constructor_does_not_take_it():
    env_id = "btgym-test/Frames-v0"
    if env_id not in gym.registry:
        btgym.register_scene(env_id, "tests.scenes.frames:FrameScene", max_episode_steps=3, side=4)
    with gym.make(env_id) as env:
        assert env.spec.max_episode_steps == 3
        env.reset(seed=0)
        assert truncations(env, 3) == [False, False, True]
        assert env.unwrapped.call("max_episode_steps") == 3  # the scene truncates, too


@pytest.mark.blender
def test_scene_mistakes_reach_the_trainer_naming_the_culprit():
    from btgym.errors import LaunchError, RemoteError

    with pytest.raises(LaunchError, match=r"did you mean 'Cube' \(objects\).*'Camera', 'Cube'"):
        btgym.BlenderEnv("tests.scenes.hostile:MissingObjectScene", name="Cubee").reset()
    with btgym.BlenderEnv("tests.scenes.hostile:SwappedReturnScene") as env:
        env.reset(seed=0)
        with pytest.raises(RemoteError, match=r"reward \(position 1\) must be a float, got dict"):
            env.step(0)
