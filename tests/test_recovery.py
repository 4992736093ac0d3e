"""Fault injection: instances killed (SIGKILL) or hung (SIGSTOP) during rollouts and streams."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from btgym import BlenderVectorEnv
from btgym.errors import LaunchError
from tests.conftest import ECHO_SCENE

pytestmark = [pytest.mark.slow, pytest.mark.blender, pytest.mark.timeout(600)]


def kill(envs, i, sig=signal.SIGKILL):
    os.kill(envs.connection.launcher[i].process.pid, sig)


@pytest.mark.parametrize(
    "mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next_step", "same_step"]
)
def test_a_killed_instance_is_restarted_and_only_its_episode_ends(mode):
    with BlenderVectorEnv(
        ECHO_SCENE, 3, autoreset_mode=mode, seed=0, timeout=10, max_episode_steps=50
    ) as envs:
        envs.reset(seed=0)
        actions = envs.action_space.sample()
        last_obs, *_ = envs.step(actions)
        old_pid = envs.connection.launcher[1].process.pid
        kill(envs, 1)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        assert truncated.tolist() == [False, True, False] and not terminated.any()
        assert infos["instance_restarted"][1] and infos["_instance_restarted"].tolist() == [
            False,
            True,
            False,
        ]
        assert infos["counter"][[0, 2]].tolist() == [2, 2]  # the others stepped on
        assert envs.restarts == [0, 1, 0]
        assert envs.connection.launcher[1].process.pid != old_pid
        if mode == AutoresetMode.SAME_STEP:
            np.testing.assert_array_equal(infos["final_obs"][1]["box"], last_obs["box"][1])
        for _ in range(3):  # the restarted instance serves again
            _, _, _, truncated, infos = envs.step(actions)
        assert not truncated.any() and infos["counter"][1] >= 2


def test_a_hung_instance_is_restarted_after_the_timeout():
    with BlenderVectorEnv(ECHO_SCENE, 2, autoreset_mode="SameStep", seed=0, timeout=1.0) as envs:
        envs.reset(seed=0)
        kill(envs, 0, signal.SIGSTOP)
        _, _, _, truncated, infos = envs.step(envs.action_space.sample())
        assert truncated.tolist() == [True, False]
        assert infos["restart_reason"][0] == "InstanceTimeoutError"
        _, _, _, truncated, _ = envs.step(envs.action_space.sample())
        assert not truncated.any()


def test_an_instance_that_keeps_dying_gives_up_with_its_log():
    with BlenderVectorEnv(ECHO_SCENE, 1, seed=0, timeout=10) as envs:
        envs.connection.launcher.max_restarts = 2
        envs.reset(seed=0)
        for _ in range(2):
            kill(envs, 0)
            envs.step(envs.action_space.sample())
        kill(envs, 0)
        with pytest.raises(LaunchError, match="2 restarts within .* giving up"):
            envs.step(envs.action_space.sample())


def test_the_lifetime_cap_on_restarts_is_enforced():
    with BlenderVectorEnv(ECHO_SCENE, 1, seed=0, timeout=10) as envs:
        launcher = envs.connection.launcher
        launcher.max_lifetime_restarts, launcher.restart_window = 1, 0.0  # no rate limit
        envs.reset(seed=0)
        kill(envs, 0)
        envs.step(envs.action_space.sample())  # restart 1 of 1
        kill(envs, 0)
        with pytest.raises(LaunchError, match="max_lifetime_restarts=1"):
            envs.step(envs.action_space.sample())


def test_recovery_can_be_turned_off():
    from btgym.errors import InstanceDiedError

    with BlenderVectorEnv(ECHO_SCENE, 2, seed=0, timeout=10, recover=False) as envs:
        envs.reset(seed=0)
        kill(envs, 1)
        with pytest.raises(InstanceDiedError, match="process exited"):
            envs.step(envs.action_space.sample())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["sigkill", "sigstop"])
def test_streams_survive_killed_and_hung_instances_without_losing_or_repeating_items(sig):
    from btgym.data import StreamDataset

    dataset = StreamDataset(
        "btgym/Cube-v0", 2, items=40, seed=0, timeout=2.0, env_kwargs={"width": 64, "height": 48}
    )
    stream = iter(dataset)
    items = [next(stream) for _ in range(10)]
    (active,) = dataset.streams
    os.kill(active.connection.launcher[0].process.pid, sig)
    items += list(stream)
    keys = [(i["env_id"], i["episode"], i["step"]) for i in items]
    assert len(items) == 40 and len(set(keys)) == 40  # nothing lost, nothing repeated
    assert active.restarts == 1
    after = [i for i in items[10:] if i["env_id"] == 0]
    assert after and max(i["episode"] for i in after) == 1  # a new episode after the restart


def test_a_dead_instance_is_noticed_while_a_healthy_one_keeps_the_stream_busy():
    import time

    from btgym.data import StreamDataset

    dataset = StreamDataset(
        "btgym/Cube-v0", 2, seed=0, timeout=5.0, env_kwargs={"width": 64, "height": 48}
    )
    stream = iter(dataset)
    next(stream)
    (active,) = dataset.streams
    os.kill(active.connection.launcher[0].process.pid, signal.SIGKILL)
    # A slow consumer: instance 1 always has replies waiting, so only the stream's health
    # check (not a starved queue) can notice instance 0. Without it this loop runs out.
    deadline, env0_back, items_from_1 = time.monotonic() + 180, False, 0
    while time.monotonic() < deadline:
        item = next(stream)
        time.sleep(0.01)
        items_from_1 += item["env_id"] == 1
        if item["env_id"] == 0 and item["episode"] >= 1:
            env0_back = True
            break
    assert env0_back, f"instance 0 never came back; {items_from_1} items from instance 1"
    assert active.restarts == 1
    assert items_from_1 > 0  # the healthy instance kept the stream busy meanwhile
    del stream


@pytest.mark.parametrize(
    "mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next_step", "same_step"]
)
def test_instances_are_recycled_between_episodes_after_n_episodes(mode):
    with BlenderVectorEnv(
        ECHO_SCENE,
        1,
        autoreset_mode=mode,
        seed=0,
        timeout=10,
        max_episode_steps=2,
        recycle_after_episodes=2,
    ) as envs:
        envs.reset(seed=0)
        pids = [envs.connection.launcher[0].process.pid]
        counters_seen = []
        for _ in range(9):
            _, _, _, _, infos = envs.step(envs.action_space.sample())
            if "counter" in infos:
                counters_seen.append(int(infos["counter"][0]))
            pids.append(envs.connection.launcher[0].process.pid)
        assert len(set(pids)) >= 2  # a fresh process after every 2 episodes
        assert envs.restarts[0] >= 1
        assert max(counters_seen) <= 2  # episodes still run their full, normal length


def test_instances_above_an_rss_limit_are_recycled():
    with BlenderVectorEnv(
        ECHO_SCENE, 1, seed=0, timeout=10, max_episode_steps=1, recycle_rss_mb=1.0
    ) as envs:  # every Blender process is above 1 MiB
        envs.reset(seed=0)
        first = envs.connection.launcher[0].process.pid
        envs.step(envs.action_space.sample())  # ends the episode
        envs.step(envs.action_space.sample())  # NEXT_STEP reset: on a fresh instance
        assert envs.connection.launcher[0].process.pid != first


def test_streams_recycle_instances_after_n_episodes_without_losing_items():
    from btgym.data import StreamDataset

    dataset = StreamDataset(
        "btgym/Cube-v0",
        1,
        items=30,
        seed=0,
        recycle_after_episodes=2,
        env_kwargs={"width": 64, "height": 48, "max_episode_steps": 3},
    )
    stream = iter(dataset)
    items = [next(stream)]
    (active,) = dataset.streams
    pids = {active.connection.launcher[0].process.pid}
    for item in stream:
        items.append(item)
        pids.add(active.connection.launcher[0].process.pid)
    keys = [(i["episode"], i["step"]) for i in items]
    assert len(items) == 30 and len(set(keys)) == 30
    assert active.restarts >= 2 and len(pids) >= 3
    for episode in {e for e, _ in keys}:  # every episode's steps are contiguous from 0
        steps = sorted(s for e, s in keys if e == episode)
        assert steps == list(range(len(steps)))
