"""Replies a client takes: bounded, checked against the declared space, events checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from btgym import BlenderEnv
from btgym.errors import LimitError, ObservationError, ProtocolError
from btgym.wire import page_maps, protocol
from btgym.wire._reply_checks import observation_mismatch

ROGUE = Path(__file__).resolve().parent / "rogue_server.py"


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def rogue(tmp_path):
    """Start the malicious server in ``mode``; yields its address."""
    processes = []

    def start(mode: str) -> str:
        address = f"ipc://{tmp_path}/rogue-{mode}.sock"
        process = subprocess.Popen(
            [sys.executable, str(ROGUE), address, mode], stdout=subprocess.PIPE, text=True
        )
        processes.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return address

    yield start
    for process in processes:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("mode", ["huge-reference", "huge-bytes"])
def test_a_frame_declared_far_larger_than_the_space_fails_before_any_allocation(rogue, mode):
    env = BlenderEnv(address=rogue(mode), timeout=10)
    try:
        assert env.client.frame_files is not None or mode == "huge-bytes"
        before, pinned = rss_bytes(), page_maps.PINNED.used
        with pytest.raises(LimitError) as caught:
            env.reset()
        text = str(caught.value)
        assert "Box(0.0, 1.0, (4,), float32)" in text and "(1610612736,)" in text, text
        assert "'reset'" in text and "max_reply_bytes" in text
        assert rss_bytes() - before < 64 << 20
        assert page_maps.PINNED.used == pinned  # nothing was mapped
        obs, *_ = env.step(0)  # the client stays usable
        np.testing.assert_array_equal(obs, np.zeros(4, np.float32))
    finally:
        env.close()


def test_an_observation_of_another_shape_than_the_space_is_refused(rogue):
    env = BlenderEnv(address=rogue("misshapen"), timeout=10)
    try:
        with pytest.raises(ObservationError) as caught:
            env.reset()
        text = str(caught.value)
        assert "Box(0.0, 1.0, (4,), float32)" in text and "uint8 (1000,)" in text, text
    finally:
        env.close()


def test_events_that_are_not_event_maps_are_a_protocol_error(rogue):
    env = BlenderEnv(address=rogue("bad-events"), timeout=10)
    try:
        with pytest.raises(ProtocolError, match=r"events of the reply to 'reset'.*\[5\]"):
            env.reset()
    finally:
        env.close()


def test_the_reply_bound_counts_every_array_of_a_message():
    arrays = {"a": np.zeros(600, np.uint8), "b": np.zeros(600, np.uint8)}
    frames = [bytes(memoryview(f)) for f in protocol.encode("ok", arrays)]
    assert protocol.decode(frames, max_bytes=1200).body["b"].shape == (600,)
    expected = r"at most 599 more bytes.*uint8 \(600,\) declaring 600 bytes"
    with pytest.raises(LimitError, match=expected):
        protocol.decode(frames, max_bytes=1199)
    assert protocol.DEFAULT_MAX_REPLY_BYTES == 1 << 30


def test_observation_shapes_are_checked_by_structure():
    from gymnasium import spaces

    space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (2, 3), np.uint8),
            "pair": spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2))),
        }
    )
    good = {"image": np.zeros((2, 3), np.uint8), "pair": [1, np.zeros(2, np.int8)]}
    assert observation_mismatch(space, good) is None
    assert observation_mismatch(space, {**good, "image": [[0, 0, 0], [0, 0, 0]]}) is None
    bad = observation_mismatch(space, {**good, "image": np.zeros(6, np.uint8)})
    assert bad == "['image']: array uint8 (6,) for shape (2, 3)"
    assert "for a tuple of 2" in observation_mismatch(space, {**good, "pair": [1]})
    assert "for one integer" in observation_mismatch(space, {**good, "pair": [[1], [0, 1]]})


@pytest.mark.blender
def test_an_event_that_cannot_travel_costs_no_step():
    from blender_side.server import UNENCODABLE_EVENT

    env = BlenderEnv("tests.scenes.frames:FrameScene", bad_event_at=3, timeout=60)
    try:
        env.reset(seed=0)
        infos = [env.step(0)[4] for _ in range(6)]
        assert [info["step"] for info in infos] == [1, 2, 3, 4, 5, 6]
        events = [(e["event"], e["data"]) for e in env.client.events]
        assert [data["step"] for name, data in events if name == "stepped"] == [1, 2, 3, 4, 5, 6]
        [(name, data)] = [(n, d) for n, d in events if n not in ("stepped",)]
        assert name == UNENCODABLE_EVENT and data["event"] == "unencodable"
        assert "builtins.object" in data["error"]
        env.client.events.clear()
        env.reset(seed=0)  # a batch of steps holding the bad event: every step arrives
        reply = env.client.request("steps", {"actions": [0, 0, 0, 0]})
        assert [step["info"]["step"] for step in reply["steps"]] == [1, 2, 3, 4]
        assert sum(e["event"] == UNENCODABLE_EVENT for e in env.client.events) == 1
    finally:
        env.close()
