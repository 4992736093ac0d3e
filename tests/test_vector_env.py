"""BlenderVectorEnv on real Blender instances: autoreset modes, seeds, scene access, async."""

from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import btgym
from btgym import BlenderVectorEnv
from btgym._vector_info import add_info
from btgym.client import Client
from btgym.errors import (
    AlreadyPendingCallError,
    BtgymError,
    ClosedError,
    InvalidActionError,
    NoAsyncCallError,
    ProtocolError,
    ResetNeeded,
)
from tests.conftest import SMALL_CUBE, thread_servers

EPISODE = 2  # the echo scene truncates after this many steps


@pytest.fixture(scope="module")
def echo_servers3():
    """Three echo scenes served on threads, seeded 0, 1, 2 as a launcher would."""
    with thread_servers(3, max_episode_steps=EPISODE) as servers:
        yield servers


def make(servers, mode):
    addresses = [server.address for server in servers]
    return BlenderVectorEnv(addresses=addresses, autoreset_mode=mode, timeout=20)


def counters(infos):
    return [int(c) for c in infos["counter"]]


@pytest.mark.blender
def test_make_vec_builds_the_native_vector_env():
    envs = gym.make_vec("btgym/Cube-v0", num_envs=2, **SMALL_CUBE)
    try:
        assert isinstance(envs, BlenderVectorEnv)
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert envs.single_observation_space.shape == (128, 160, 3)
        assert envs.observation_space.shape == (2, 128, 160, 3)
        assert envs.action_space.shape == (2, 3)
        obs, infos = envs.reset(seed=0)
        assert obs.shape == (2, 128, 160, 3) and infos["xy"].shape == (2, 8, 2)
        assert infos["_xy"].tolist() == [True, True]
    finally:
        envs.close()
    envs.close()  # idempotent
    with pytest.raises(ClosedError):
        envs.step(np.zeros((2, 3), np.float32))


def test_next_step_autoreset_resets_on_the_step_after_the_end(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.NEXT_STEP)
    envs.reset(seed=0)
    actions = envs.action_space.sample()
    _, rewards, _, truncated, infos = envs.step(actions)
    assert counters(infos) == [1, 1, 1] and not truncated.any()
    _, rewards, _, truncated, infos = envs.step(actions)
    assert truncated.all() and rewards.tolist() == [2.0, 2.0, 2.0]
    assert "final_obs" not in infos
    obs, rewards, terminated, truncated, infos = envs.step(actions)  # the reset step
    assert rewards.tolist() == [0.0, 0.0, 0.0] and not (terminated | truncated).any()
    assert "counter" not in infos and "draw" in infos  # a reset's info, not a step's
    _, _, _, _, infos = envs.step(actions)
    assert counters(infos) == [1, 1, 1]


def test_same_step_autoreset_returns_final_obs_and_the_new_episode(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.SAME_STEP)
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    actions = envs.action_space.sample()
    obs, _, _, truncated, infos = envs.step(actions)
    assert truncated.all()
    assert infos["_final_obs"].tolist() == [True, True, True]
    for i in range(3):
        np.testing.assert_array_equal(infos["final_obs"][i]["box"], actions["box"][i])
        assert infos["final_info"]["counter"][i] == EPISODE
        assert not np.array_equal(obs["box"][i], actions["box"][i])  # the new episode's obs
    _, _, _, truncated, infos = envs.step(actions)
    assert counters(infos) == [1, 1, 1] and "final_obs" not in infos


def test_disabled_autoreset_needs_a_masked_reset(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.DISABLED)
    envs.reset(seed=0)
    actions = envs.action_space.sample()
    envs.step(actions)
    _, _, _, truncated, _ = envs.step(actions)
    assert truncated.all()
    with pytest.raises(ResetNeeded, match="env 0 to be reset"):
        envs.step(actions)
    envs.reset(options={"reset_mask": np.array([True, True, True])})
    last_obs, _, _, _, infos = envs.step(actions)
    assert counters(infos) == [1, 1, 1]
    obs, infos = envs.reset(options={"reset_mask": np.array([False, True, False])})
    assert infos["_draw"].tolist() == [False, True, False]
    for key in ("box", "ibox"):  # envs 0 and 2 keep their last observation
        np.testing.assert_array_equal(obs[key][[0, 2]], last_obs[key][[0, 2]])
    _, _, _, _, infos = envs.step(actions)
    assert counters(infos) == [2, 1, 2]
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([1, 0, 0])})


@pytest.mark.blender
def test_seeds_reproduce_trajectories_and_match_single_envs():
    actions = np.array([[0.2, 0.4, 1.0], [1.0, 0.0, 0.5]], np.float32)

    def rollout():
        with btgym.BlenderVectorEnv("envs.cube:CubeScene", 2, **SMALL_CUBE) as envs:
            frames = [envs.reset(seed=10)[0]]
            frames += [envs.step(actions)[0] for _ in range(3)]
        return np.stack(frames)

    first, second = rollout(), rollout()
    np.testing.assert_array_equal(first, second)
    with gym.make("btgym/Cube-v0", **SMALL_CUBE) as env:  # sub-env 1 was seeded 10 + 1
        np.testing.assert_array_equal(env.reset(seed=11)[0], first[0, 1])
        np.testing.assert_array_equal(env.step(actions[1])[0], first[1, 1])


def test_call_get_attr_and_set_attr_reach_the_right_instances(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.NEXT_STEP)
    envs.set_attr("label", "all")
    envs.set_attr("label", "middle", env_ids=[1])
    assert envs.get_attr("label") == ("all", "middle", "all")
    envs.set_attr("label", ["a", "b", "c"])
    assert envs.get_attr("label", env_ids=[2, 0]) == ("c", "a")
    assert envs.call("add", 1, b=2) == (3, 3, 3)
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        envs.get_attr("label", env_ids=[3])


def test_bad_action_batches_are_refused_before_sending(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.NEXT_STEP)
    probes = [Client(server.address, timeout=20) for server in echo_servers3]

    def served():  # requests each server answered before this ping
        return [probe.request("ping")["served"] for probe in probes]

    try:
        envs.reset(seed=0)
        before = served()
        actions = envs.action_space.sample()
        actions["box"][1] = 2.0  # outside [-1, 1]
        with pytest.raises(InvalidActionError, match=r"actions\[1\]"):
            envs.step(actions)
        assert served() == [n + 1 for n in before]  # only our pings reached the servers
        actions["box"][1] = 0.5
        obs, *_ = envs.step(actions)  # still usable
        np.testing.assert_array_equal(obs["box"], actions["box"])
    finally:
        envs.close()
        for probe in probes:
            probe.close()


def test_async_batches_return_every_env_exactly_once_per_round(echo_servers3):
    envs = make(echo_servers3, AutoresetMode.SAME_STEP)
    envs.async_reset(seed=0)
    seen = []
    for _ in range(3):
        _, _, _, _, infos = envs.recv(batch_size=1)
        seen.extend(infos["env_id"].tolist())
    assert sorted(seen) == [0, 1, 2]
    for _ in range(4):  # rounds: send to all, then receive in batches of 2 and 1
        envs.send(envs.action_space.sample())
        first = envs.recv(batch_size=2)[4]["env_id"].tolist()
        rest = envs.recv()[4]["env_id"].tolist()
        assert sorted(first + rest) == [0, 1, 2]
    with pytest.raises(AlreadyPendingCallError, match="no requests in flight"):
        envs.send(envs.action_space.sample())
        envs.step(envs.action_space.sample())
    with pytest.raises(AlreadyPendingCallError, match=r"envs \[0, 1, 2\] are still in flight"):
        envs.send(envs.action_space.sample())
    envs.recv()
    with pytest.raises(NoAsyncCallError, match="expected requests in flight"):
        envs.recv()


def test_misuse_of_local_state_has_gymnasiums_names_not_protocol_errors(echo_servers3):
    for error in (AlreadyPendingCallError, NoAsyncCallError, ResetNeeded):
        assert issubclass(error, BtgymError) and issubclass(error, RuntimeError)
        assert not issubclass(error, ProtocolError)
    envs = make(echo_servers3, AutoresetMode.NEXT_STEP)
    with pytest.raises(ResetNeeded, match="never reset"):
        envs.step(envs.action_space.sample())
    with pytest.raises(ResetNeeded):
        envs.send(envs.action_space.sample())
    envs.reset(seed=0)  # nothing was sent: every instance is still usable
    _, _, _, _, infos = envs.step(envs.action_space.sample())
    assert counters(infos) == [1, 1, 1]


def test_a_straggler_does_not_stall_the_batch(echo_servers3, monkeypatch):
    envs = make(echo_servers3, AutoresetMode.SAME_STEP)
    scene = echo_servers3[0].scene
    release, step = threading.Event(), scene.step

    def straggle(action):  # instance 0 steps only once the batch of the others is out
        assert release.wait(30)
        return step(action)

    monkeypatch.setattr(scene, "step", straggle)
    try:
        envs.async_reset(seed=0)
        envs.recv()
        envs.send(envs.action_space.sample())
        _, _, _, _, infos = envs.recv(batch_size=2, timeout=20)  # waiting for 0: a timeout
        assert sorted(infos["env_id"].tolist()) == [1, 2]
        release.set()
        _, _, _, _, infos = envs.recv()
        assert infos["env_id"].tolist() == [0]
    finally:
        release.set()


def test_infos_are_batched_in_gymnasiums_vector_format():
    batch: dict = {}
    add_info(batch, {"n": 1, "x": 0.5, "xy": np.ones((2, 2), np.float32), "tag": "a"}, 0, 3)
    add_info(batch, {"n": 2, "flag": True, "final_info": {"n": 7}}, 2, 3)
    assert batch["n"].tolist() == [1, 0, 2] and batch["n"].dtype == np.int64
    assert batch["_n"].tolist() == [True, False, True] and batch["_n"].dtype == np.bool_
    assert batch["x"].dtype == np.float64 and batch["_x"].tolist() == [True, False, False]
    assert batch["xy"].shape == (3, 2, 2) and batch["xy"].dtype == np.float32
    assert batch["tag"].dtype == object and batch["tag"].tolist() == ["a", None, None]
    assert batch["flag"].dtype == np.bool_ and batch["_flag"].tolist() == [False, False, True]
    assert batch["final_info"]["n"].tolist() == [0, 0, 7]  # nested dicts: batched alike
    assert batch["final_info"]["_n"].tolist() == [False, False, True]
    assert batch["_final_info"].tolist() == [False, False, True]
    # final_obs stays one object per env; a value that does not fit is never cast.
    add_info(batch, {"final_obs": {"box": np.zeros(2)}, "n": 1.5, "xy": np.ones(3)}, 1, 3)
    assert batch["final_obs"].dtype == object and batch["final_obs"][0] is None
    assert batch["final_obs"][1]["box"].tolist() == [0.0, 0.0]
    assert batch["n"].tolist() == [1, 1.5, 2] and batch["_n"].tolist() == [True, True, True]
    assert batch["xy"].dtype == object and batch["xy"][1].tolist() == [1.0, 1.0, 1.0]
    assert batch["xy"][0].shape == (2, 2)


def test_errors_have_the_builtin_types_gymnasium_raises(echo_servers3):
    import pickle

    from btgym.errors import NotPicklableError, RemoteAttributeError

    envs = make(echo_servers3, AutoresetMode.NEXT_STEP)
    envs.reset(seed=0)
    with pytest.raises(RemoteAttributeError, match="no_such_thing") as missing:
        envs.get_attr("no_such_thing")
    assert isinstance(missing.value, AttributeError)  # like SyncVectorEnv.get_attr
    with pytest.raises(AttributeError, match="did you mean 'label'"):
        envs.call("lable")
    # Gymnasium < 1.4 asserts the mask's shape, 1.4 raises ValueError: take either.
    with pytest.raises((AssertionError, ValueError), match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(TypeError, match="expected a batch of 3 actions"):  # as iterate()
        envs.step(0)
    with pytest.raises(InvalidActionError):  # still btgym's action error
        envs.step(0)
    with pytest.raises(NotPicklableError, match=r"gymnasium.make\(env.spec\)"):
        pickle.dumps(envs)
    assert issubclass(NotPicklableError, TypeError)
    _, _, _, _, infos = envs.step(envs.action_space.sample())  # nothing broke
    assert counters(infos) == [1, 1, 1]


def test_gymnasium_itself_raises_those_builtins():
    reference = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    reference.reset(seed=0)
    with pytest.raises(TypeError):
        reference.step(0)
    with pytest.raises(AssertionError):
        reference.reset(options={"reset_mask": np.array([True])})
    reference.close()


def test_np_random_seed_is_one_seed_per_env_and_reset_each_takes_options_per_env(
    echo_servers3,
):
    envs = make(echo_servers3, AutoresetMode.SAME_STEP)
    envs.reset(seed=0)
    assert envs.np_random_seed == (0, 1, 2)
    _, infos = envs.reset_each([5, None, 7], [{"k": 0}, {"k": 1}, {"k": 2}])
    assert infos["options"]["k"].tolist() == [0, 1, 2]
    assert envs.np_random_seed == (5, 1, 7)  # an unseeded reset keeps the generator
    for _ in range(EPISODE):  # a SAME_STEP autoreset is unseeded too, as Gymnasium's
        envs.step(envs.action_space.sample())
    assert envs.np_random_seed == (5, 1, 7)
    with pytest.raises(ValueError, match="expected 3 options"):
        envs.reset_each([None] * 3, [None])
