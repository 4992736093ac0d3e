"""btgym's vector env against Gymnasium's own: the same scene and seeds, the same episodes.

Four echo scenes, served on threads of this process: two behind Gymnasium's
``SyncVectorEnv`` of single ``BlenderEnv`` s, two behind ``BlenderVectorEnv``. Both run
the same calls (resets, masked resets, steps through several autoresets) and must return
equal observations, rewards, flags, infos and seeds, in every autoreset mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from btgym import BlenderEnv, BlenderVectorEnv
from tests.conftest import thread_servers
from tests.scenes.echo import all_spaces

SEED = 11
STEPS = 14  # echo episodes are 5 steps: every env goes through at least two autoresets


@pytest.fixture(scope="module")
def addresses():
    with thread_servers(4) as servers:  # the scene's default: 5 steps
        yield [server.address for server in servers]


def gymnasiums(addresses: list[str], mode: AutoresetMode) -> SyncVectorEnv:
    makers = [lambda a=a: BlenderEnv(address=a, timeout=20) for a in addresses]
    return SyncVectorEnv(makers, autoreset_mode=mode)


def btgyms(addresses: list[str], mode: AutoresetMode) -> BlenderVectorEnv:
    return BlenderVectorEnv(addresses=addresses, autoreset_mode=mode, timeout=20)


def actions(n: int) -> list[Any]:
    space = batch_space(all_spaces(), 2)
    space.seed(n)
    return [space.sample() for _ in range(STEPS)]


def rollout(envs: Any, mode: AutoresetMode) -> list[tuple[str, Any]]:
    """What a training loop sees: resets, a masked reset mid-episode, and steps."""
    seen: list[tuple[str, Any]] = [("reset", envs.reset(seed=SEED))]
    for t, batch in enumerate(actions(SEED)):
        if t == 2:  # env 0 starts over early, so the two envs' episodes end apart
            seen.append(("reset env 0", envs.reset(options={"reset_mask": np.array([1, 0], bool)})))
        result = envs.step(batch)
        seen.append((f"step {t}", result))
        ended = result[2] | result[3]
        if mode == AutoresetMode.DISABLED and ended.any():
            seen.append((f"reset after {t}", envs.reset(options={"reset_mask": ended})))
    seen.append(("np_random_seed", envs.np_random_seed))
    return seen


def assert_same(ours: Any, theirs: Any, where: str) -> None:
    """Equal values of equal types, recursively (arrays: dtype, shape and every element)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, tuple | list):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), where
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), where
        if theirs.dtype == object:
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                assert_same(a, b, f"{where}[{i}]")
        else:
            np.testing.assert_array_equal(ours, theirs, err_msg=where)
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} != {theirs!r}"


@pytest.mark.parametrize(
    "mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]
)
def test_btgym_vector_env_equals_gymnasiums_sync_vector_env_seed_for_seed(addresses, mode):
    reference, ours = gymnasiums(addresses[:2], mode), btgyms(addresses[2:], mode)
    try:
        expected, got = rollout(reference, mode), rollout(ours, mode)
    finally:
        reference.close()
        ours.close()
    assert [label for label, _ in got] == [label for label, _ in expected]
    for (label, a), (_, b) in zip(got, expected, strict=True):
        assert_same(a, b, label)
    ends = [label for label, result in expected if label.startswith("step") and result[3].any()]
    assert len(ends) >= 4  # episodes did end (and restart) along the way
    assert expected[-1] == ("np_random_seed", (SEED, SEED + 1))  # autoresets do not reseed
