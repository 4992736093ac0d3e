"""CartPole-v0 through gymnasium.make: spaces, physics signs, determinism, rgb, checkers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import btgym
from envs.cartpole import THETA_THRESHOLD, X_THRESHOLD

#: Every test here runs the scene in a Blender process.
pytestmark = pytest.mark.blender

LEFT, RIGHT = 0, 1
SMALL_FRAME = {"width": 96, "height": 72}


@pytest.fixture(scope="module")
def cartpole():
    env = gym.make("btgym/CartPole-v0", render_mode="rgb_array")
    yield env
    env.close()


@pytest.fixture(scope="module")
def cartpole_rgb():
    env = gym.make("btgym/CartPole-v0", obs_mode="rgb", render_mode="rgb_array", **SMALL_FRAME)
    yield env
    env.close()


def heuristic(state):
    """Push towards the side the pole is falling to (angle > 0: its top leans to +x)."""
    return RIGHT if state[2] + 0.5 * state[3] > 0 else LEFT


def episode_length(env, seed, policy, limit=200):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for t in range(1, limit + 1):
        obs, _, terminated, truncated, info = env.step(policy(info["state"], rng))
        if terminated or truncated:
            return t
    return limit


def test_spaces_and_reset(cartpole):
    assert isinstance(cartpole.unwrapped, btgym.BlenderEnv)
    assert cartpole.action_space == gym.spaces.Discrete(2)
    high = np.array([4.8, np.inf, 24 * np.pi / 180, np.inf], np.float32)  # as Gymnasium's
    assert cartpole.observation_space == gym.spaces.Box(-high, high, dtype=np.float32)
    obs, info = cartpole.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, info["state"])
    x, velocity, theta, angular_velocity = obs
    assert abs(x) <= 0.05 and abs(theta) <= 0.05
    assert velocity == 0.0 and angular_velocity == 0.0


def test_rewards_are_python_floats_and_flags_python_bools(cartpole):
    cartpole.reset(seed=0)
    obs, reward, terminated, truncated, info = cartpole.step(RIGHT)
    assert type(reward) is float and reward == 1.0
    assert type(terminated) is bool and type(truncated) is bool
    assert obs.shape == (4,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, info["state"])


@pytest.mark.parametrize("action, sign", [(RIGHT, 1.0), (LEFT, -1.0)], ids=["right", "left"])
def test_pushing_one_way_moves_the_cart_and_tips_the_pole_the_other_way(cartpole, action, sign):
    obs, _ = cartpole.reset(seed=3)
    states = [obs]
    for _ in range(50):
        obs, _, terminated, truncated, _ = cartpole.step(action)
        states.append(obs)
        if terminated:
            break
    assert terminated and not truncated
    assert 5 <= len(states) - 1 <= 20  # gymnasium's CartPole falls in ~8-10 such steps
    states = np.array(states)
    x, velocity, theta, angular_velocity = states[-1]
    assert abs(theta) > THETA_THRESHOLD and abs(x) <= X_THRESHOLD
    assert np.sign(x - states[0, 0]) == sign and np.sign(velocity) == sign
    assert np.sign(theta) == -sign and np.sign(angular_velocity) == -sign
    # x accelerates: roughly 10 N on 1.1 kg, ~9.8 m/s^2 over the steps taken
    t = 0.02 * (len(states) - 1)
    assert 0.7 < abs(x - states[0, 0]) / (0.5 * 9.8 * t**2) < 1.3
    np.testing.assert_allclose(states[1:, 1], np.diff(states[:, 0]) / 0.02, rtol=1e-4, atol=1e-4)


def test_same_seed_same_actions_same_trajectory(cartpole):
    actions = np.random.default_rng(0).integers(0, 2, 30)

    def rollout(seed):
        obs, _ = cartpole.reset(seed=seed)
        states = [obs]
        for action in actions:
            obs, _, terminated, truncated, _ = cartpole.step(int(action))
            states.append(obs)
            if terminated or truncated:
                break
        return np.array(states)

    first = rollout(42)
    cartpole.reset(seed=3)  # something else runs in between: an episode pushed to its end
    for _ in range(40):
        if cartpole.step(RIGHT)[2]:
            break
    cartpole.reset(seed=7)
    np.testing.assert_array_equal(rollout(42), first)
    other = rollout(43)
    assert not np.array_equal(other[0], first[0])


def test_gymnasium_time_limit_truncates_at_5_steps():
    # gymnasium.make consumes max_episode_steps itself: a TimeLimit wrapper
    with gym.make("btgym/CartPole-v0", max_episode_steps=5) as env:
        obs, _ = env.reset(seed=1)
        for t in range(1, 6):
            obs, _, terminated, truncated, _ = env.step(heuristic(obs))
            if terminated:
                break
            assert truncated == (t == 5)
    assert truncated or terminated


def test_scene_max_episode_steps_truncates_at_5_steps():
    with btgym.BlenderEnv("envs.cartpole:CartPoleScene", max_episode_steps=5) as env:
        obs, _ = env.reset(seed=1)
        flags = []
        for _ in range(5):
            obs, _, terminated, truncated, _ = env.step(heuristic(obs))
            assert not terminated
            flags.append(truncated)
    assert flags == [False, False, False, False, True]


def test_heuristic_controller_balances_far_longer_than_random_actions(cartpole):
    seeds = range(4)
    balanced = [episode_length(cartpole, s, lambda state, rng: heuristic(state)) for s in seeds]
    random = [episode_length(cartpole, s, lambda state, rng: int(rng.integers(2))) for s in seeds]
    assert np.mean(balanced) >= 100, balanced
    assert np.mean(balanced) >= 4 * np.mean(random), (balanced, random)


def test_render_returns_the_current_frame_in_state_mode(cartpole):
    cartpole.reset(seed=0)
    first = cartpole.render()
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(cartpole.render(), first)
    for _ in range(6):
        cartpole.step(RIGHT)
    assert not np.array_equal(cartpole.render(), first)


def test_rgb_mode_returns_frames_that_follow_the_cart(cartpole_rgb):
    env = cartpole_rgb
    assert env.observation_space == gym.spaces.Box(0, 255, (72, 96, 3), np.uint8)
    obs, info = env.reset(seed=0)
    assert obs.shape == (72, 96, 3) and obs.dtype == np.uint8
    assert info["state"].shape == (4,) and obs.std() > 5
    np.testing.assert_array_equal(env.render(), obs)
    moved = obs
    for _ in range(7):
        moved, _, _, _, info = env.step(RIGHT)
    assert info["state"][0] > 0.1
    assert not np.array_equal(moved, obs)
    np.testing.assert_array_equal(env.render(), moved)
    assert cart_column(moved) > cart_column(obs) + 1  # the blue cart moved right


def cart_column(frame):
    """The mean column of the cart's (blue) pixels."""
    rgb = frame.astype(np.int16)
    blue = (rgb[..., 2] > rgb[..., 0] + 60) & (rgb[..., 2] > rgb[..., 1] + 30)
    assert blue.sum() >= 4
    return np.nonzero(blue)[1].mean()


def test_rgb_and_state_modes_simulate_the_same_trajectory(cartpole, cartpole_rgb):
    def states(env):
        _, info = env.reset(seed=5)
        out = [info["state"]]
        for action in (1, 1, 0, 1, 0, 0, 0, 1):
            out.append(env.step(action)[4]["state"])
        return np.array(out)

    np.testing.assert_array_equal(states(cartpole), states(cartpole_rgb))


@pytest.mark.parametrize("fixture", ["cartpole", "cartpole_rgb"])
def test_gymnasium_check_env_passes(fixture, request):
    from gymnasium.utils.env_checker import check_env

    env = request.getfixturevalue(fixture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "determin" in m.lower()], messages


def test_sb3_check_env_passes(cartpole):
    from stable_baselines3.common.env_checker import check_env

    check_env(cartpole.unwrapped, warn=False)
