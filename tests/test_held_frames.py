"""Frames held by the thousand: no descriptor per held frame, pinned memory on a budget."""

from __future__ import annotations

import ctypes
import gc
import os
import resource

import numpy as np
import pytest

from btgym import BlenderEnv
from btgym.errors import ConfigError
from btgym.wire import page_maps

pytestmark = pytest.mark.blender  # every test here serves from a Blender process

FRAME_SCENE = "tests.scenes.frames:FrameScene"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def mapped_frame_files(server_pid: int) -> int:
    """How many maps of this process view frame files of the server ``server_pid``."""
    with open("/proc/self/maps") as f:
        return sum(f"/btgym-frames-{server_pid}-" in line for line in f)


def is_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` views pages mapped from a frame file (not a copy)."""
    base = array.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, ctypes.Array)


@pytest.fixture(scope="module")
def frame_env():
    env = BlenderEnv(FRAME_SCENE, timeout=60)
    yield env
    env.close()


def test_holding_5000_observations_keeps_the_descriptor_count_flat(frame_env):
    client = frame_env.connection.clients[0]
    assert client.frame_files is not None  # same host: frames travel by reference
    pid = frame_env.connection.hellos[0]["pid"]
    first, _ = frame_env.reset(seed=0)
    before = open_descriptors()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # One descriptor per held frame would hit this limit after ~100 frames (OSError 24).
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 100, hard))
    try:
        held = [first] + [frame_env.step(0)[0] for _ in range(5000)]
        during = open_descriptors()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert during <= before + 2, (before, during)
    assert mapped_frame_files(pid) >= 5001  # every held frame is a map of its file
    assert all(is_mapped(obs) for obs in held)
    assert [int(obs[0, 0, 0]) for obs in held] == [i % 256 for i in range(5001)]
    assert all(obs.shape == (32, 32, 3) and obs.flags.writeable for obs in held)
    held[1][0, 0, 0] = 77  # copy-on-write: private to this process
    assert held[1][0, 0, 0] == 77 and held[2][0, 0, 0] == 2
    used = page_maps.PINNED.used
    del held, first
    gc.collect()
    assert mapped_frame_files(pid) <= 1  # freeing the arrays unmaps their pages
    assert page_maps.PINNED.used <= used - 5000 * 3072


def test_past_the_pinned_budget_frames_are_copied_and_their_files_released(frame_env, monkeypatch):
    pid = frame_env.connection.hellos[0]["pid"]
    gc.collect()
    leftover = page_maps.PINNED.maps  # maps still alive may be freed during the loop
    monkeypatch.setattr(page_maps.PINNED, "budget", page_maps.PINNED.used + 10 * 32 * 32 * 3)
    mapped_before = mapped_frame_files(pid)
    obs, _ = frame_env.reset(seed=1)
    held = [obs] + [frame_env.step(1)[0] for _ in range(49)]
    mapped = [is_mapped(o) for o in held]
    assert mapped[:10] == [True] * 10 and 10 <= sum(mapped) <= 10 + leftover, mapped
    assert mapped_frame_files(pid) - mapped_before == sum(mapped)
    assert [int(o[0, 0, 0]) for o in held] == list(range(50))
    assert all(o.flags.writeable for o in held)
    frames = f"/dev/shm/btgym-frames-{pid}-"
    named = [
        n
        for d in os.listdir("/dev/shm")
        if f"/dev/shm/{d}".startswith(frames)
        for n in os.listdir(f"/dev/shm/{d}")
    ]
    assert len(named) <= 2, named  # the copies pin nothing: only the last reply's name
    del held, obs
    gc.collect()
    assert mapped_frame_files(pid) == mapped_before


def test_the_pinned_budget_is_checked():
    for bad in (-1, 1.5, "1"):
        with pytest.raises(ConfigError, match="pinned frame budget"):
            page_maps.set_pinned_budget(bad)  # type: ignore[arg-type]
    assert page_maps.DEFAULT_PINNED_BYTES == 1 << 30


def test_a_zero_budget_copies_every_frame(frame_env, monkeypatch):
    monkeypatch.setattr(page_maps.PINNED, "budget", 0)
    obs, _ = frame_env.reset(seed=2)
    assert isinstance(obs, np.ndarray) and obs.shape == (32, 32, 3)
    assert int(obs[0, 0, 0]) == 0 and not page_maps.PINNED.take(1)
