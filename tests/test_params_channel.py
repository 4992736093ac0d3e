"""The params channel of StreamDataset: never torn (a seqlock per instance's row), and bad
values refused at ``set_params`` rather than later in a DataLoader worker.
"""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
from gymnasium import spaces
from torch.utils.data import DataLoader

from btgym.data import StreamDataset
from btgym.data._params import ParamsLayout
from btgym.data._seqlock import SharedRows
from btgym.errors import ConfigError, InvalidActionError

SCENE = "tests.scenes.params_echo:ParamsEchoScene"
SIZE = 256


def _count_torn(rows: SharedRows, reads: int, done: multiprocessing.Event, out) -> None:
    torn = seen = 0
    for _ in range(reads):
        row = rows.read(0)
        torn += int(row.min() != row.max())
        seen += int(0 < row[0] < 50_000)
        if done.is_set():
            break
    out.put((torn, seen))


def test_a_reader_in_another_process_never_sees_a_row_mixing_two_writes():
    rows = SharedRows(np.zeros((1, 4096)))
    context = multiprocessing.get_context("fork")
    done, out = context.Event(), context.Queue()
    reader = context.Process(target=_count_torn, args=(rows, 200_000, done, out))
    reader.start()
    for call in range(1, 50_001):  # every element equal to the call number
        rows.write([0], np.full(4096, float(call)))
    done.set()
    torn, seen = out.get(timeout=120)
    reader.join(30)
    assert torn == 0 and seen > 0  # it read rows while they were being written


def test_rows_travel_to_spawned_processes_as_shared_memory():
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (torch's shared-memory reductions)

    rows = SharedRows(np.zeros((2, 3)))
    again = pickle.loads(ForkingPickler.dumps(rows))  # as spawn pickles a worker's dataset
    rows.write([1], np.array([1.0, 2.0, 3.0]))
    assert again.read(1).tolist() == [1.0, 2.0, 3.0] and again.read(0).tolist() == [0, 0, 0]
    again.write([0], np.ones(3))  # its own writer lock
    assert rows.read(0).tolist() == [1.0, 1.0, 1.0]


def test_nan_params_fail_at_set_params_naming_the_entry():
    dataset = StreamDataset(addresses=["ipc:///nowhere"], params=np.zeros(4))
    with pytest.raises(InvalidActionError, match=r"got params\[2\] is NaN") as caught:
        dataset.set_params([0.0, 1.0, float("nan"), 0.0])
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidActionError, match="is NaN"):
        StreamDataset(addresses=["ipc:///nowhere"], params=[float("nan")])
    with pytest.raises(ConfigError, match=r"expected env ids in \[0, 1\), got \[3\]"):
        dataset.set_params(np.zeros(4), env_ids=[3])
    np.testing.assert_array_equal(dataset.params(0), np.zeros(4))  # nothing was written


def test_params_out_of_the_action_space_fail_at_set_params_once_a_stream_saw_it():
    dataset = StreamDataset(addresses=["ipc:///nowhere"], params=np.zeros(3, np.float32))
    dataset.set_params([5.0, 0.0, 0.0])  # bounds not known yet: no stream shook hands
    dataset.note_action_space(spaces.Box(np.float32([0, -1, 0]), np.float32([1, 1, 2])))
    with pytest.raises(InvalidActionError) as caught:
        dataset.set_params([0.5, -3.0, 2.5])
    assert str(caught.value) == (
        "expected params within the action space's bounds, got params[1]=-3 below its "
        "low -1; params[2]=2.5 above its high 2"
    )
    dataset.set_params([1.0, -1.0, 2.0])  # the bounds themselves are inside
    np.testing.assert_array_equal(dataset.params(0), np.float32([1.0, -1.0, 2.0]))


def test_nested_params_are_checked_against_a_dict_space_by_name():
    space = spaces.Dict(
        {
            "box": spaces.Box(-1.0, 1.0, (2, 3), np.float32),
            "box64": spaces.Box(np.array([0.0, -5.0]), np.array([1.0, 5.0]), dtype=np.float64),
            "discrete": spaces.Discrete(5, start=-2),
            "multi_discrete": spaces.MultiDiscrete([3, 4, 5]),
            "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-2.0, 2.0, (1,), np.float32))),
        }
    )
    space.seed(0)
    params = space.sample()
    layout = ParamsLayout.of(params)
    low, high = layout.bounds(space)
    layout.check(layout.flatten(params), low, high)
    bad = {**params, "discrete": 3, "box64": np.array([0.5, 7.0])}
    with pytest.raises(InvalidActionError) as caught:
        layout.check(layout.flatten(bad), low, high)
    message = str(caught.value)
    assert "params['box64'][1]=7 above its high 5" in message
    assert "params['discrete']=3 above its high 2" in message
    assert layout.bounds(spaces.Text(4)) is None


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fifty_thousand_set_params_racing_two_workers_tear_no_vector():
    dataset = StreamDataset(
        SCENE, 2, params=np.zeros(SIZE), seed=0, timeout=30, env_kwargs={"size": SIZE}
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    items = iter(loader)
    first = next(items)  # workers streaming (and the bounds known) before the race
    calls = 50_000

    def write() -> None:
        for call in range(1, calls + 1):  # every element equal to the call number
            dataset.set_params(np.full(SIZE, float(call)))

    writer = threading.Thread(target=write)
    writer.start()
    torn, during, checked = 0, 0, [first]
    while writer.is_alive() or len(checked) < 200:
        item = next(items)
        checked.append(item)
        params = item["params"]
        torn += int(params.min() != params.max())
        during += int(0 < params[0] < calls)
        if item["step"] > 0:  # the scene stepped with exactly the params the item carries
            np.testing.assert_array_equal(item["obs"], params)
    writer.join()
    del items
    assert torn == 0
    assert during > 0  # items made while set_params raced them were checked
    print(f"{len(checked)} items checked, {during} made during the race, {torn} torn")


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bad_params_fail_at_set_params_and_the_loader_streams_on():
    dataset = StreamDataset(
        SCENE, 2, params=np.ones(8), seed=0, items=60, env_kwargs={"size": 8, "high": 10.0}
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    items = iter(loader)
    next(items)
    bad = np.ones(8)
    bad[5] = 11.0
    with pytest.raises(InvalidActionError, match=r"params\[5\]=11 above its high 10"):
        dataset.set_params(bad)
    bad[5] = np.nan
    with pytest.raises(InvalidActionError, match=r"params\[5\] is NaN"):
        dataset.set_params(bad)
    dataset.set_params(np.full(8, 2.0))
    rest = list(items)  # the workers never saw the bad values
    assert len(rest) == 59
    assert all(float(item["params"][0]) in (1.0, 2.0) for item in rest)
