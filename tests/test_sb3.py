"""The stable-baselines3 adapter on real Blender instances."""

from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from btgym import BlenderVectorEnv
from btgym.sb3 import SB3VecEnv, make_vec_env
from tests.conftest import thread_servers


@pytest.fixture(scope="module")
def echo_vec():
    """The adapter over two echo scenes served on threads (episodes of 2 steps)."""
    with thread_servers(2, max_episode_steps=2) as servers:
        envs = BlenderVectorEnv(
            addresses=[s.address for s in servers], autoreset_mode=AutoresetMode.SAME_STEP
        )
        vec = SB3VecEnv(envs)
        yield vec
        vec.close()


def test_the_adapter_needs_same_step_autoreset(echo_server):
    with (
        BlenderVectorEnv(addresses=[echo_server.address]) as envs,
        pytest.raises(ValueError, match="SAME_STEP"),
    ):
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
    assert echo_vec.env_is_wrapped(gym.wrappers.TimeLimit) == [False, False]
    echo_vec.set_attr("label", "echo")


def test_seed_makes_the_next_reset_reproducible(echo_vec):
    echo_vec.seed(5)
    first = echo_vec.reset()
    echo_vec.seed(5)
    second = echo_vec.reset()
    third = echo_vec.reset()  # seeds are used once, as in SB3
    np.testing.assert_array_equal(first["box"], second["box"])
    assert not np.array_equal(first["box"], third["box"])


@pytest.mark.blender
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


@pytest.mark.blender
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


def test_set_options_gives_each_env_its_own_dict_or_one_for_all(echo_vec):
    echo_vec.set_options([{"rotation_range": [0, 0, 0]}, {"rotation_range": [1, 1, 1]}])
    echo_vec.reset()
    assert [info["options"] for info in echo_vec.reset_infos] == [
        {"rotation_range": [0, 0, 0]},
        {"rotation_range": [1, 1, 1]},
    ]
    echo_vec.set_options({"k": 2})
    echo_vec.reset()
    assert [info["options"] for info in echo_vec.reset_infos] == [{"k": 2}, {"k": 2}]
    echo_vec.reset()  # options are used once, as in SB3
    assert [info["options"] for info in echo_vec.reset_infos] == [None, None]


def test_missing_attributes_are_attribute_errors_and_negative_indices_count_back(echo_vec):
    assert echo_vec.has_attr("label") and not echo_vec.has_attr("no_such_thing")
    with pytest.raises(AttributeError, match="no_such_thing"):
        echo_vec.get_attr("no_such_thing")
    echo_vec.set_attr("label", "last", indices=[-1])
    assert echo_vec.get_attr("label") == ["echo", "last"]
    assert echo_vec.get_attr("label", indices=-2) == ["echo"]
    assert echo_vec.env_method("add", 1, 1, indices=[-1, 0]) == [2, 2]
    with pytest.raises(IndexError, match=r"\[-2, 2\), got 2"):
        echo_vec.get_attr("label", indices=[2])
    with pytest.raises(IndexError, match="got -3"):
        echo_vec.get_attr("label", indices=[-3])
    echo_vec.set_attr("label", "echo")


class _Constant:
    """A policy for SB3's evaluate_policy: the same action for every env."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = action

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.repeat(self.action[None], len(obs), axis=0), None


@pytest.mark.blender
def test_make_vec_env_is_a_drop_in_for_sb3s(tmp_path):
    import warnings

    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecCheckNan, VecVideoRecorder

    vec = make_vec_env(
        "btgym/Cube-v0",
        n_envs=1,
        seed=0,
        monitor_dir=str(tmp_path),
        env_kwargs={"width": 32, "height": 24, "max_episode_steps": 3},  # gym.make's kwargs
    )
    try:
        assert vec.render_mode == "rgb_array" and vec.env_is_wrapped(Monitor) == [True]
        assert vec.metadata["render_fps"] == 30
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rewards, lengths = evaluate_policy(
                _Constant(np.full(3, 0.5, np.float32)), vec, 2, return_episode_rewards=True
            )
        assert not [w for w in caught if "Monitor" in str(w.message)]
        assert lengths == [3, 3] and rewards == [0.0, 0.0]
        rows = (tmp_path / "0.monitor.csv").read_text().splitlines()
        assert rows[1] == "r,l,t" and [row.split(",")[:2] for row in rows[2:]] == [["0.0", "3"]] * 2
        checked = VecCheckNan(vec, raise_exception=True)
        checked.reset()  # SB3's own check sends a 2-row batch to 1 env: the extra row is unused
        obs, _, _, _ = checked.step(np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], np.float32))
        assert obs.shape == (1, 24, 32, 3) and vec.get_images()[0].shape == (24, 32, 3)
        # VecVideoRecorder asserts render_mode == "rgb_array", then needs moviepy.
        with contextlib.suppress(gym.error.DependencyNotInstalled):
            VecVideoRecorder(vec, str(tmp_path / "video"), lambda step: False)
    finally:
        vec.close()


def test_make_vec_env_refuses_what_has_no_meaning_for_blender_instances():
    from stable_baselines3.common.vec_env import DummyVecEnv

    with pytest.raises(TypeError, match=r"\['vec_env_cls'\].*btgym:btgym/"):
        make_vec_env("btgym/Cube-v0", vec_env_cls=DummyVecEnv)
    with pytest.raises(TypeError, match="reset_keywords"):
        make_vec_env("btgym/Cube-v0", monitor_kwargs={"reset_keywords": ("x",)})
    with pytest.raises(TypeError, match="SB3's own make_vec_env"):
        make_vec_env(lambda: None)


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_sb3s_own_make_vec_env_runs_btgym_in_fresh_worker_processes():
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    vec = sb3_make_vec_env(
        "btgym:btgym/Cube-v0",  # the module prefix registers the ids in the spawned worker
        n_envs=1,
        seed=0,
        env_kwargs={"width": 32, "height": 24},
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "spawn"},
    )
    try:
        assert vec.reset().shape == (1, 24, 32, 3)
        obs, _, dones, _ = vec.step(np.full((1, 3), 0.5, np.float32))
        assert obs.shape == (1, 24, 32, 3) and not dones.any()
    finally:
        vec.close()


class _Labelled(gym.Env):
    """A plain Gymnasium env with a ``label`` attribute, for SB3's DummyVecEnv as reference."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.label = "echo"


def _wrapper_api_results(vec) -> list:
    """What SB3 code asks of a VecEnv through Gymnasium's Env wrapper API, in order."""
    return [
        vec.env_method("get_wrapper_attr", "label"),
        vec.env_method("has_wrapper_attr", "label"),
        vec.env_method("has_wrapper_attr", "no_such_thing"),
        vec.env_method("set_wrapper_attr", "label", "x", indices=[1]),
        vec.get_attr("label"),
        vec.env_method("get_wrapper_attr", "label", indices=[-1]),
        vec.env_method("set_wrapper_attr", "no_such_thing", 1, force=False),
        vec.env_method("has_wrapper_attr", "no_such_thing"),
    ]


def test_env_method_speaks_gymnasiums_wrapper_api_as_sb3s_own_vec_envs_do(echo_vec):
    from stable_baselines3.common.vec_env import DummyVecEnv

    reference = DummyVecEnv([_Labelled, _Labelled])  # SB3's behaviour over plain Envs
    expected = _wrapper_api_results(reference)
    assert expected[0] == ["echo", "echo"] and expected[3] == [True]  # what SB3 documents
    try:
        assert _wrapper_api_results(echo_vec) == expected
        for vec in (reference, echo_vec):
            with pytest.raises(AttributeError, match="no_such_thing"):
                vec.env_method("get_wrapper_attr", "no_such_thing")
        # The adapter's own attributes answer as get_attr answers them.
        assert echo_vec.env_method("get_wrapper_attr", "render_mode") == [None, None]
    finally:
        echo_vec.set_attr("label", "echo")


SB3_SCRIPT = """
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

if __name__ == "__main__":  # forkserver and spawn workers import this file again
    vec = make_vec_env("btgym:btgym/CartPole-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        obs = vec.reset()
        obs, _, _, _ = vec.step(np.zeros(2, dtype=np.int64))
        print("shape", obs.shape)
    finally:
        vec.close()
"""


@pytest.mark.timeout(300)
def test_sb3s_own_make_vec_env_works_in_its_default_start_method_forkserver(tmp_path):
    import multiprocessing
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    assert "forkserver" in multiprocessing.get_all_start_methods()  # SB3's default here
    script = tmp_path / "train.py"
    script.write_text(SB3_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shape (2, 4)" in done.stdout
