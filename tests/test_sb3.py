"""The stable-baselines3 adapter on real Blender instances."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from btgym import BlenderVectorEnv
from btgym.sb3 import SB3VecEnv, make_vec_env
from tests.conftest import ECHO_SCENE


@pytest.fixture(scope="module")
def echo_vec():
    envs = BlenderVectorEnv(
        ECHO_SCENE, 2, autoreset_mode=AutoresetMode.SAME_STEP, seed=0, max_episode_steps=2
    )
    vec = SB3VecEnv(envs)
    yield vec
    vec.close()


def test_the_adapter_needs_same_step_autoreset():
    with BlenderVectorEnv(ECHO_SCENE, 1) as envs, pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(envs)


def test_the_old_adapter_name_still_works_and_warns():
    import btgym.sb3

    with pytest.warns(DeprecationWarning, match="renamed SB3VecEnv"):
        old = btgym.sb3.BlenderVecEnv
    assert old is SB3VecEnv
    with pytest.raises(AttributeError):
        btgym.sb3.NoSuchName  # noqa: B018


def test_episode_ends_carry_terminal_observation_truncation_and_statistics(echo_vec):
    echo_vec.reset()
    batched = echo_vec.envs.action_space  # a Dict action batch: a dict of arrays
    first = batched.sample()
    obs, rewards, dones, infos = echo_vec.step(first)
    assert not dones.any() and rewards.dtype == np.float32
    assert all("terminal_observation" not in info for info in infos)
    last = batched.sample()
    obs, rewards, dones, infos = echo_vec.step(last)
    assert dones.tolist() == [True, True]
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"]["box"], last["box"][i])
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["r"] == 3.0 and info["episode"]["l"] == 2  # rewards 1 + 2
        assert info["counter"] == 2  # the final step's info, not the reset's
    _, _, dones, infos = echo_vec.step(first)
    assert not dones.any() and infos[0]["counter"] == 1


def test_step_wait_without_step_async_is_gymnasiums_no_async_call_error(echo_vec):
    from btgym.errors import NoAsyncCallError

    with pytest.raises(NoAsyncCallError, match="step_async"):
        echo_vec.step_wait()
    assert issubclass(NoAsyncCallError, RuntimeError)  # what the adapter raised before


def test_env_method_get_attr_set_attr_with_indices(echo_vec):
    echo_vec.set_attr("label", "x", indices=[1])
    assert echo_vec.get_attr("label") == ["echo", "x"]
    assert echo_vec.env_method("add", 2, 3, indices=0) == [5]
    assert echo_vec.get_attr("render_mode") == [None, None]
    assert echo_vec.env_is_wrapped(object) == [False, False]
    echo_vec.set_attr("label", "echo")


def test_seed_makes_the_next_reset_reproducible(echo_vec):
    echo_vec.seed(5)
    first = echo_vec.reset()
    echo_vec.seed(5)
    second = echo_vec.reset()
    third = echo_vec.reset()  # seeds are used once, as in SB3
    np.testing.assert_array_equal(first["box"], second["box"])
    assert not np.array_equal(first["box"], third["box"])


def test_get_images_returns_one_frame_per_instance():
    vec = make_vec_env(
        "btgym/Cube-v0", n_envs=2, seed=0, width=64, height=48, render_mode="rgb_array"
    )
    try:
        vec.reset()
        images = vec.get_images()
        assert len(images) == 2 and images[0].shape == (48, 64, 3)
        assert not np.array_equal(images[0], images[1])  # instances have their own seeds
    finally:
        vec.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ppo_trains_a_few_updates_on_the_adapter(tmp_path):
    from stable_baselines3 import PPO

    vec = make_vec_env("btgym/CartPole-v0", n_envs=2, seed=0)
    try:
        model = PPO("MlpPolicy", vec, n_steps=64, batch_size=64, n_epochs=2, seed=0)
        model.learn(total_timesteps=256)
        assert model.num_timesteps == 256
        assert len(model.ep_info_buffer) > 0  # episode statistics reached SB3's logger
    finally:
        vec.close()
