"""Nested faults: an instance killed again while it restarts (SIGKILL of real Blender
processes as they start, and as they become ready) recovers within ``max_restarts``,
with nothing lost or repeated; past the limits it gives up with its log.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from gymnasium.vector import AutoresetMode

from btgym import BlenderVectorEnv
from btgym.errors import LaunchError
from tests.conftest import ECHO_SCENE

pytestmark = [pytest.mark.slow, pytest.mark.blender, pytest.mark.timeout(600)]


class NestedFaults:
    """SIGKILL the next fresh processes of ``launcher``: each entry of ``points`` is where
    one dies: ``"start"`` (right after it was started, long before it is ready) or
    ``"ready"`` (once it announced its address, before the trainer shook hands).
    """

    def __init__(self, launcher: Any, points: list[str]) -> None:
        self.points, self.killed = list(points), []
        start, wait_ready = launcher._start, launcher._wait_ready

        def start_then_kill(index: int, seed: int) -> Any:
            instance = start(index, seed)
            if self.points and self.points[0] == "start":
                self._kill(instance)
            return instance

        def ready_then_kill(instances: list[Any], timeout: float) -> None:
            wait_ready(instances, timeout)
            if self.points and self.points[0] == "ready":
                self._kill(instances[0])

        launcher._start, launcher._wait_ready = start_then_kill, ready_then_kill

    def _kill(self, instance: Any) -> None:
        self.points.pop(0)
        os.kill(instance.process.pid, signal.SIGKILL)
        instance.process.wait(10)  # dead for sure before the launcher looks
        self.killed.append(instance.process.pid)


NESTED = {2: ["start", "ready"], 3: ["start", "ready", "start"]}


@pytest.mark.parametrize(
    "nested, mode",
    [(2, AutoresetMode.SAME_STEP), (3, AutoresetMode.NEXT_STEP)],
    ids=["two-same_step", "three-next_step"],
)
def test_a_vector_env_recovers_from_faults_while_restarting_losing_no_step(nested, mode):
    with BlenderVectorEnv(
        ECHO_SCENE, 2, autoreset_mode=mode, seed=0, timeout=20, max_episode_steps=1000
    ) as envs:
        assert envs.connection.launcher.max_restarts == 5  # the default limit
        envs.reset(seed=0)
        counters = {0: [], 1: []}
        truncations = []
        for step in range(40):
            if step == 10:
                faults = NestedFaults(envs.connection.launcher, NESTED[nested])
                os.kill(envs.connection.launcher[1].process.pid, signal.SIGKILL)
            _, _, _, truncated, infos = envs.step(envs.action_space.sample())
            truncations.append(truncated.tolist())
            for i in (0, 1):
                if "counter" in infos and infos["_counter"][i]:
                    counters[i].append(int(infos["counter"][i]))
        assert faults.points == [] and len(faults.killed) == nested  # every fault happened
        assert envs.restarts == [0, 1 + nested]  # each process started is counted
        # Env 0 never noticed: 40 steps, each counted once.
        assert counters[0] == list(range(1, 41))
        # Env 1: 10 steps, the restart step (truncated), then a new episode from 1.
        assert counters[1][:10] == list(range(1, 11))
        assert truncations[10] == [False, True] and sum(t[1] for t in truncations) == 1
        after = counters[1][10:]
        assert after == list(range(1, len(after) + 1)) and len(after) >= 28


@pytest.mark.parametrize("nested", [2, 3], ids=["two", "three"])
def test_a_stream_recovers_from_faults_while_restarting_losing_no_item(nested):
    from btgym.data import StreamDataset

    dataset = StreamDataset(
        "btgym/Cube-v0", 2, items=80, seed=0, timeout=5.0, env_kwargs={"width": 64, "height": 48}
    )
    stream = iter(dataset)
    items = [next(stream) for _ in range(10)]
    (active,) = dataset.streams
    faults = NestedFaults(active.connection.launcher, NESTED[nested])
    os.kill(active.connection.launcher[0].process.pid, signal.SIGKILL)
    items += list(stream)
    assert faults.points == [] and len(faults.killed) == nested
    keys = [(i["env_id"], i["episode"], i["step"]) for i in items]
    assert len(items) == 80 and len(set(keys)) == 80  # nothing lost, nothing repeated
    assert active.restarts == 1 + nested
    for env_id, episode in {(e, ep) for e, ep, _ in keys}:  # no gap inside any episode
        steps = sorted(s for e, ep, s in keys if (e, ep) == (env_id, episode))
        assert steps == list(range(len(steps))), (env_id, episode, steps)
    after = [i for i in items[10:] if i["env_id"] == 0]
    assert after and max(i["episode"] for i in after) >= 1  # new episodes after the restart


def test_nested_faults_past_max_restarts_give_up_with_the_log():
    with BlenderVectorEnv(ECHO_SCENE, 1, seed=0, timeout=20) as envs:
        launcher = envs.connection.launcher
        launcher.max_restarts = 2
        envs.reset(seed=0)
        faults = NestedFaults(launcher, ["start", "start"])
        os.kill(launcher[0].process.pid, signal.SIGKILL)
        with pytest.raises(LaunchError, match="needed 2 restarts within .* giving up") as caught:
            envs.step(envs.action_space.sample())
        assert len(faults.killed) == 2 and launcher.total_restarts == [2]
        assert "killed by SIGKILL" in str(caught.value)
