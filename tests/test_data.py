"""StreamDataset, recording and replay against real Blender instances."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.utils.data import DataLoader, IterableDataset

import btgym
from btgym.client import Client
from btgym.data import Info, ReplayDataset, StreamDataset, collate
from btgym.data._stream import sampler as _sampler
from btgym.errors import ConfigError
from btgym.recording import ShardReader, ShardWriter, record
from tests.conftest import ECHO_SCENE, thread_servers

TINY = {"width": 64, "height": 48}


def keys(items):
    return [(int(i["env_id"]), int(i["episode"]), int(i["step"])) for i in items]


@pytest.mark.blender
def test_no_item_lost_or_duplicated_with_six_instances_and_three_workers():
    dataset = StreamDataset("btgym/Cube-v0", 6, items=61, seed=3, env_kwargs=TINY)
    loader = DataLoader(dataset, batch_size=None, num_workers=3, collate_fn=None)
    items = list(loader)
    seen = keys(items)
    assert len(seen) == 61 and len(set(seen)) == 61
    assert {env for env, _, _ in seen} == set(range(6))
    for env in range(6):  # each instance's items are consecutive steps: nothing skipped
        steps = sorted(step for e, _, step in seen if e == env)
        assert steps == list(range(len(steps)))


@pytest.mark.blender
def test_items_carry_their_origin_and_batches_collate():
    dataset = StreamDataset(
        "btgym/Cube-v0", 2, items=8, seed=0, params=[0.1, 0.2, 0.3], env_kwargs=TINY
    )
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collate))
    assert len(batches) == 2
    batch = batches[0]
    assert batch["obs"].shape == (4, 48, 64, 3) and batch["obs"].dtype == torch.uint8
    assert batch["env_id"].dtype == torch.int64 and len(batch["infos"]) == 4
    assert batch["info"]["xy"].shape == (4, 8, 2)  # fixed-shape info: one tensor
    for batch in batches:  # steps echo the params they were rendered with
        for info, step, params in zip(batch["infos"], batch["step"], batch["params"], strict=True):
            np.testing.assert_allclose(params, [0.1, 0.2, 0.3], rtol=1e-6)
            if step > 0:  # (an instance's first reset carries the params it has then)
                np.testing.assert_allclose(info["rotation_range"], [0.1, 0.2, 0.3], rtol=1e-6)
    # An item's seed and params reproduce it: re-render a reset item in a fresh env.
    first = next(iter(StreamDataset("btgym/Cube-v0", 1, items=1, seed=0, env_kwargs=TINY)))
    with btgym.BlenderEnv("envs.cube:CubeScene", **TINY) as env:
        obs, _ = env.reset(seed=first["seed"])
    np.testing.assert_array_equal(obs, first["obs"])


@pytest.mark.blender
def test_back_pressure_keeps_one_request_per_instance_while_the_consumer_sleeps():
    dataset = StreamDataset("btgym/Cube-v0", 2, seed=0, env_kwargs=TINY)
    stream = iter(dataset)
    for _ in range(5):
        next(stream)
    (active,) = dataset.streams
    probes = [Client(c.address, timeout=10) for c in active.connection.clients]

    def served():  # requests each server answered (hello + resets + steps), minus our pings
        return [p.request("ping")["served"] for p in probes]

    time.sleep(0.3)  # let the queued renders finish
    before = served()
    time.sleep(1.0)  # the consumer is busy: the simulation must wait, not run ahead
    after = served()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]  # only our pings
    # 5 items consumed; at most `depth` more requests per instance; plus hello + close-less
    assert sum(before) - 2 <= 5 + 2 * dataset.depth + 2
    for probe in probes:
        probe.close()
    del stream


@pytest.mark.blender
def test_parameters_changed_mid_stream_reach_the_scenes_and_are_echoed():
    dataset = StreamDataset(
        "btgym/Cube-v0", 2, seed=1, params=[1.0, 1.0, 1.0], items=200, env_kwargs=TINY
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=False)
    changed_at, late = None, []
    for count, item in enumerate(loader):
        if item["step"] > 0:  # every step frame was rendered with the params it carries
            np.testing.assert_allclose(item["info"]["rotation_range"], item["params"], rtol=1e-6)
        if count == 10:
            dataset.set_params([0.0, 0.0, 0.25])
            changed_at = count
        if changed_at is not None and count > changed_at + 30:
            late.append(item)
        if len(late) >= 10:
            break
    for item in late:  # well after the change, every instance uses the new parameters
        np.testing.assert_allclose(item["params"], [0.0, 0.0, 0.25])
        rotation = item["info"]["rotation"]
        assert rotation[0] == 0.0 and rotation[1] == 0.0 and abs(rotation[2]) <= 0.25 * np.pi
    with pytest.raises(ValueError, match=r"expected params of shape \(3,\), got \(1,\)"):
        dataset.set_params([1.0])


@pytest.mark.blender
def test_record_then_replay_is_exact_and_shuffles(tmp_path):
    dataset = StreamDataset(
        "btgym/Cube-v0", 2, items=12, seed=5, params=[0.5, 1.0, 0.5], env_kwargs=TINY
    )
    items = list(dataset)
    shards = record(items, tmp_path, shard_size=5)
    assert [s.name for s in shards] == [f"shard-00000{i}.tar" for i in range(3)]
    replay = ReplayDataset(tmp_path)
    assert len(replay) == 12
    by_key = {k: item for k, item in zip(keys(items), items, strict=True)}
    for replayed in replay:
        original = by_key[keys([replayed])[0]]
        np.testing.assert_array_equal(replayed["obs"], original["obs"])
        assert replayed["seed"] == original["seed"]
        np.testing.assert_array_equal(replayed["params"], original["params"])
        assert replayed["info"].keys() == original["info"].keys()
        for name, value in original["info"].items():
            np.testing.assert_array_equal(replayed["info"][name], value)
            assert np.asarray(replayed["info"][name]).dtype == np.asarray(value).dtype
    loader = DataLoader(replay, batch_size=4, shuffle=True, num_workers=2, collate_fn=collate)
    assert sorted(int(e) for b in loader for e in b["env_id"]) == sorted(k[0] for k in by_key)


def test_a_crash_loses_at_most_the_open_shard(tmp_path):
    item = {
        "obs": np.zeros((4, 4, 3), np.uint8),
        "info": {"a": 1},
        "env_id": 0,
        "episode": 0,
        "step": 0,
        "seed": 0,
        "params": None,
    }
    writer = ShardWriter(tmp_path, shard_size=2)
    for step in range(3):
        writer.write({**item, "step": step})
    # No close(): the process "crashed" with one sample in the open shard.
    assert len(ShardReader(tmp_path)) == 2
    assert (tmp_path / "shard-000001.tar.partial").exists()
    with pytest.raises(ValueError, match="twice"):
        writer.write(item)


@pytest.mark.blender
def test_episodes_continue_through_server_side_resets_with_replayable_seeds():
    dataset = StreamDataset(
        "btgym/Cube-v0", 1, items=10, seed=2, env_kwargs={**TINY, "max_episode_steps": 3}
    )
    items = list(dataset)
    assert [(i["episode"], i["step"]) for i in items] == [
        (e, s) for e in range(3) for s in range(4)
    ][:10]
    second_episode = items[4]
    assert second_episode["seed"] != items[0]["seed"]
    with btgym.BlenderEnv("envs.cube:CubeScene", **TINY) as env:
        obs, _ = env.reset(seed=second_episode["seed"])
    np.testing.assert_array_equal(obs, second_episode["obs"])


@pytest.mark.blender
def test_several_frames_per_request_keep_items_episodes_and_params_exact():
    # 3 steps per round trip, episodes of 4 items (reset + 3 steps) crossing requests.
    dataset = StreamDataset(
        "btgym/Cube-v0",
        2,
        items=23,
        seed=2,
        params=[0.1, 0.2, 0.3],
        frames_per_request=3,
        env_kwargs={**TINY, "max_episode_steps": 3},
    )
    items = list(DataLoader(dataset, batch_size=None, num_workers=1))
    seen = keys(items)
    assert len(seen) == 23 and len(set(seen)) == 23
    for env in range(2):  # per instance: episodes of 4 consecutive steps, nothing skipped
        mine = [(e, s) for i, e, s in seen if i == env]
        assert mine == [(e, s) for e in range(len(mine)) for s in range(4)][: len(mine)]
    for item in items:
        if item["step"] > 0:
            np.testing.assert_allclose(item["info"]["rotation_range"], [0.1, 0.2, 0.3], rtol=1e-6)
    later = next(i for i in items if i["episode"] == 2)  # replayable from its seed
    with btgym.BlenderEnv("envs.cube:CubeScene", **TINY) as env:
        obs, _ = env.reset(seed=later["seed"])
    np.testing.assert_array_equal(obs, later["obs"])
    with pytest.raises(ValueError, match="frames_per_request"):
        StreamDataset("btgym/Cube-v0", 1, frames_per_request=0)


def test_stream_action_sampler_stays_in_bounds_and_is_seeded():
    space = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 1e-3], np.float32))
    draw, again, other = _sampler(space, [0, 1]), _sampler(space, [0, 1]), _sampler(space, [0, 2])
    samples = np.stack([draw() for _ in range(5000)])
    assert samples.dtype == np.float32 and samples.shape == (5000, 2)
    assert (samples >= space.low).all() and (samples <= space.high).all()
    assert samples[:, 0].min() < -0.99 and samples[:, 0].max() > 0.99  # covers the range
    assert np.array_equal(again(), samples[0]) and not np.array_equal(other(), samples[0])
    discrete = _sampler(spaces.Discrete(3), [0])  # other spaces: their own sample()
    assert {int(discrete()) for _ in range(100)} == {0, 1, 2}


class _Frames(IterableDataset):
    def __iter__(self):
        for i in range(16):
            yield {"obs": np.full((4, 5, 3), i, np.uint8), "info": {}, "env_id": 0,
                   "episode": 0, "step": i, "seed": 0, "params": np.zeros(2)}  # fmt: skip


def _item(i: int, info: dict) -> dict:
    return {"obs": np.zeros((2, 2, 3), np.uint8), "info": Info(info), "env_id": 0,
            "episode": 0, "step": i, "seed": 0, "params": np.zeros(2)}  # fmt: skip


def test_collate_batches_fixed_shape_info_as_tensors_and_ragged_as_lists():
    items = [
        _item(i, {"xy": np.full((3, 2), i, np.float32), "boxes": np.zeros((i + 1, 4)),
                  "count": i, "name": f"n{i}", **({"extra": 1.5} if i else {})})
        for i in range(3)
    ]  # fmt: skip
    batch = collate(items)
    info = batch["info"]
    assert info["xy"].shape == (3, 3, 2) and info["xy"].dtype == torch.float32
    assert info["xy"][:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert info["count"].tolist() == [0, 1, 2] and info["count"].dtype == torch.int64
    assert [b.shape for b in info["boxes"]] == [(1, 4), (2, 4), (3, 4)]  # ragged: a list
    assert info["name"] == ["n0", "n1", "n2"] and info["extra"] == [None, 1.5, 1.5]
    assert [i["count"] for i in batch["infos"]] == [0, 1, 2]  # each item's dict, too


def test_torchs_default_collate_names_a_ragged_info_key_and_btgyms_collate():
    from torch.utils.data import default_collate

    fixed = default_collate([_item(i, {"xy": np.ones((3, 2))}) for i in range(2)])
    assert fixed["info"]["xy"].shape == (2, 3, 2)
    ragged = [_item(i, {"boxes": np.zeros((i + 1, 4))}) for i in range(2)]
    expected = r"info\['boxes'\].*\(1, 4\), \(2, 4\).*btgym.data.collate"
    with pytest.raises(ConfigError, match=expected):
        default_collate(ragged)


def test_collate_in_a_worker_stacks_into_shared_memory():
    batches = list(DataLoader(_Frames(), batch_size=8, num_workers=1, collate_fn=collate))
    assert [b["obs"][:, 0, 0, 0].tolist() for b in batches] == [list(range(8)), list(range(8, 16))]
    assert all(b["obs"].is_shared() and b["obs"].dtype == torch.uint8 for b in batches)
    assert batches[1]["step"].tolist() == list(range(8, 16))


@pytest.mark.blender
def test_items_batch_with_torchs_default_collate_with_or_without_params():
    from btgym.data import params_placeholder

    params = [0.1, 0.2, 0.3]
    given = StreamDataset("btgym/Cube-v0", 1, items=4, seed=0, params=params, env_kwargs=TINY)
    (batch,) = DataLoader(given, batch_size=4)  # torch's default_collate
    assert batch["obs"].shape == (4, 48, 64, 3) and batch["step"].tolist() == [0, 1, 2, 3]
    assert batch["params"].dtype == torch.float32  # the first frame: the params it had
    np.testing.assert_allclose(batch["params"].numpy(), [params] * 4, rtol=1e-6)
    assert batch["info"]["xy"].shape == (4, 8, 2)
    sampled = StreamDataset("btgym/Cube-v0", 1, items=4, seed=0, env_kwargs=TINY)
    (batch,) = DataLoader(sampled, batch_size=4)
    assert torch.isnan(batch["params"][0]).all()  # no action made the first frame
    assert not torch.isnan(batch["params"][1:]).any()  # the sampled actions
    assert torch.isnan(collate(list(sampled))["params"][0]).all()  # btgym's collate agrees
    assert params_placeholder(spaces.Discrete(3, start=2)) == 2
    placeholder = params_placeholder(
        spaces.Dict({"a": spaces.Box(0, 9, (2,), np.int64), "b": spaces.MultiBinary(2)})
    )
    assert placeholder["a"].tolist() == [0, 0] and placeholder["b"].tolist() == [0, 0]


@pytest.mark.blender
def test_every_epoch_is_new_and_set_epoch_replays_one():
    dataset = StreamDataset("btgym/Cube-v0", 1, items=3, seed=0, env_kwargs=TINY)

    def one_pass(workers):
        loader = DataLoader(dataset, batch_size=None, num_workers=workers)
        return [(int(i["step"]), int(i["seed"]), np.asarray(i["obs"]).tobytes()) for i in loader]

    first, second = one_pass(0), one_pass(1)  # passes count in DataLoader workers too
    assert first[0][1] != second[0][1]  # a new episode seed, so new frames
    assert all(a[2] != b[2] for a, b in zip(first, second, strict=True))
    dataset.set_epoch(0)
    assert one_pass(1) == first
    assert one_pass(0) == second  # and count on from there
    with pytest.raises(ValueError, match="epoch as an int >= 0"):
        dataset.set_epoch(-1)


@pytest.mark.blender
def test_an_idle_stream_closes_its_instances_and_relaunches_them_on_the_next_item():
    dataset = StreamDataset(
        "btgym/Cube-v0", 1, seed=0, env_kwargs=TINY, idle_timeout=0.5, frames_per_request=1
    )
    stream = iter(dataset)
    items = [next(stream) for _ in range(3)]
    (active,) = dataset.streams
    process = active.connection.launcher[0].process
    deadline = time.monotonic() + 10
    while not active.suspended and time.monotonic() < deadline:  # nobody asks for items
        time.sleep(0.1)
    assert active.suspended and active.suspensions == 1
    assert process.poll() is not None  # the Blender process is gone
    while items[-1]["episode"] == 0:  # items already received come first
        items.append(next(stream))
    before = [(i["episode"], i["step"]) for i in items[:-1]]
    assert before == [(0, step) for step in range(len(before))]  # nothing lost or repeated
    assert (items[-1]["episode"], items[-1]["step"]) == (1, 0)  # a new episode, seeded
    assert active.connection.launcher[0].process.pid != process.pid
    with btgym.BlenderEnv("envs.cube:CubeScene", **TINY) as env:
        np.testing.assert_array_equal(env.reset(seed=items[-1]["seed"])[0], items[-1]["obs"])
    relaunched = active.connection.launcher[0].process
    stream.close()  # closing the iterator stops the instances at once
    assert relaunched.poll() is not None and dataset.streams == []
    with pytest.raises(ValueError, match="idle_timeout"):
        StreamDataset("btgym/Cube-v0", 1, idle_timeout=0)


def test_params_of_any_action_space_travel_through_the_feedback_channel():
    from btgym.data import ParamsLayout

    nested = {"box": np.arange(12, dtype=np.float32).reshape(2, 6), "k": 3, "pair": (1.5, [2, 7])}
    layout = ParamsLayout.of(nested)
    assert layout.size == 12 + 1 + 1 + 2
    back = layout.unflatten(layout.flatten(nested))
    np.testing.assert_array_equal(back["box"], nested["box"])
    assert back["box"].dtype == np.float32 and back["box"].shape == (2, 6)
    assert back["k"] == 3 and isinstance(back["k"], int)
    assert back["pair"][0] == 1.5 and back["pair"][1].tolist() == [2, 7]
    with pytest.raises(ValueError, match=r"expected params\['box'\] of shape \(2, 6\)"):
        layout.flatten({**nested, "box": np.zeros(12)})
    with pytest.raises(ValueError, match="with keys"):
        layout.flatten({"box": nested["box"]})


def test_a_stream_of_a_dict_action_space_changes_its_params_while_streaming(echo_servers2):
    from tests.scenes.echo import all_spaces

    space = all_spaces()
    space.seed(1)
    first = space.sample()
    dataset = StreamDataset(addresses=echo_servers2[:1], params=first, items=40, seed=2)
    items = iter(dataset)
    seen = [next(items)["params"] for _ in range(12)]
    second = space.sample()
    dataset.set_params(second)
    for item in items:  # the echo scene returns the action: the params reach the scene
        last = item
    np.testing.assert_array_equal(last["params"]["box"], second["box"])
    np.testing.assert_array_equal(last["obs"]["box"], second["box"])
    assert last["params"]["discrete"] == second["discrete"]
    np.testing.assert_array_equal(seen[-1]["multi_discrete"], first["multi_discrete"])


def test_a_stream_reaches_its_scenes_with_call_get_attr_and_set_attr(echo_servers2):
    dataset = StreamDataset(addresses=echo_servers2, items=30, seed=4)
    items = iter(dataset)
    next(items)
    with pytest.raises(ValueError, match="got \\[5\\]"):
        dataset.call("add", 1, 2, env_ids=[5])
    assert dataset.call("add", 2, 3) == (5, 5)
    dataset.set_attr("label", ["first", "second"])
    try:
        assert dataset.get_attr("label") == ("first", "second")
        assert dataset.get_attr("label", env_ids=[1]) == ("second",)
        with pytest.raises(AttributeError, match="did you mean 'label'"):
            dataset.get_attr("lable", env_ids=[0])
    finally:
        dataset.set_attr("label", ["echo", "echo"])
    for _ in items:  # the stream itself went on undisturbed
        pass
    with pytest.raises(ValueError, match="expected instances streamed by this process"):
        dataset.call("add", 1, 1)  # iteration is over: no instances any more


# -- the stream's logic through echo scenes served on threads (no Blender process) -------
@pytest.fixture(scope="module")
def echo_servers2():
    """Two echo scenes on threads (``ipc://``, so DataLoader workers reach them too)."""
    with thread_servers(2, transport="ipc", max_episode_steps=3) as servers:
        yield [server.address for server in servers]


def test_workers_lose_and_repeat_no_item_and_steps_follow_each_other(echo_servers2):
    dataset = StreamDataset(addresses=echo_servers2, items=31, seed=3, frames_per_request=2)
    items = list(DataLoader(dataset, batch_size=None, num_workers=2))
    seen = keys(items)
    assert len(seen) == 31 and len(set(seen)) == 31
    assert {env for env, _, _ in seen} == {0, 1}
    for env in range(2):  # episodes of 4 items (reset + 3 steps), nothing skipped
        mine = [(e, s) for i, e, s in seen if i == env]
        assert mine == [(e, s) for e in range(len(mine)) for s in range(4)][: len(mine)]
    for item in items:  # a step's observation is the action it was given: its params
        if item["step"] > 0:
            np.testing.assert_array_equal(item["obs"]["box"], item["params"]["box"])
            assert item["info"]["counter"] == item["step"]


def test_an_items_seed_replays_its_episode_start_across_requests(echo_servers2):
    dataset = StreamDataset(addresses=echo_servers2[:1], items=10, seed=2, frames_per_request=3)
    items = list(dataset)
    assert [(i["episode"], i["step"]) for i in items] == [
        (e, s) for e in range(3) for s in range(4)
    ][:10]
    second_episode = items[4]
    assert second_episode["seed"] != items[0]["seed"]
    with btgym.BlenderEnv(address=echo_servers2[1]) as env:
        obs, info = env.reset(seed=second_episode["seed"])
    np.testing.assert_array_equal(obs["box"], second_episode["obs"]["box"])
    assert info["draw"] == second_episode["info"]["draw"]


def test_every_epoch_is_new_and_set_epoch_replays_one_also_in_workers(echo_servers2):
    dataset = StreamDataset(addresses=echo_servers2[:1], items=3, seed=0)

    def one_pass(workers):
        loader = DataLoader(dataset, batch_size=None, num_workers=workers)
        return [
            (int(i["step"]), int(i["seed"]), np.asarray(i["obs"]["box"]).tobytes()) for i in loader
        ]

    first, second = one_pass(0), one_pass(1)  # passes count in DataLoader workers too
    assert first[0][1] != second[0][1]  # a new episode seed, so new observations
    assert all(a[2] != b[2] for a, b in zip(first, second, strict=True))
    dataset.set_epoch(0)
    assert one_pass(1) == first
    assert one_pass(0) == second  # and count on from there


@pytest.mark.blender
def test_replayed_frames_are_writable_so_torch_takes_them_without_a_warning(tmp_path):
    import warnings

    from btgym.recording import record

    record(StreamDataset("btgym/Cube-v0", 1, items=3, seed=0, env_kwargs=TINY), tmp_path / "s")
    replay = ReplayDataset(tmp_path / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "The given NumPy array is not writable" would raise
        frames = [item["obs"] for item in DataLoader(replay, batch_size=None)]
    assert len(frames) == 3 and all(isinstance(f, torch.Tensor) for f in frames)


@pytest.mark.blender
def test_a_registered_id_means_for_the_stream_what_it_means_for_gym_make():
    import gymnasium as gym

    btgym.register_scene("echo-timeout-v0", ECHO_SCENE, timeout=20, max_episode_steps=3)
    try:
        dataset = StreamDataset("echo-timeout-v0", 1, items=4, seed=0)
        # The launch keyword configures the launch, as in gym.make; the scene never sees it.
        assert dataset.launch.timeout == 20 and dataset.env_kwargs == {"max_episode_steps": 3}
        items = list(dataset)  # the scene accepts its kwargs (it got timeout=20 before)
        assert [int(item["step"]) for item in items] == [0, 1, 2, 3]
        with gym.make("echo-timeout-v0") as env:
            assert env.unwrapped.launch.timeout == 20
        given = StreamDataset("echo-timeout-v0", 1, timeout=7)  # a given keyword wins
        assert given.launch.timeout == 7
    finally:
        del gym.registry["echo-timeout-v0"]


def test_recordings_compress_masks_and_depth_losslessly_readable_without_btgym(tmp_path):
    import io
    import tarfile

    rows = np.arange(120)[:, None] + np.arange(160)[None, :]
    mask = np.where(rows % 50 < 20, rows // 50, 0).astype(np.int32)
    depth = np.where(mask > 0, 2.0 + rows / 1000.0, 0.0).astype(np.float32)
    info = {"mask": mask, "depth": depth, "boxes": np.zeros((3, 4), np.float32)}
    item = {"obs": np.zeros((120, 160, 3), np.uint8), "env_id": 0, "episode": 0, "step": 0,
            "seed": 0, "params": None, "info": info}  # fmt: skip
    (shard,) = record([item], tmp_path / "s")
    with tarfile.open(shard) as tar:
        sizes = {m.name: m.size for m in tar}
        stored = {m.name: tar.extractfile(m).read() for m in tar}
    assert set(sizes) >= {"000-000000-00000.info-mask.npz", "000-000000-00000.info-depth.npz"}
    assert "000-000000-00000.info-boxes.npy" in sizes  # small arrays stay plain .npy
    assert sizes["000-000000-00000.info-mask.npz"] < mask.nbytes / 10
    with np.load(io.BytesIO(stored["000-000000-00000.info-depth.npz"])) as archive:
        np.testing.assert_array_equal(archive["array"], depth)  # numpy alone reads it
    replayed = ShardReader(tmp_path / "s")[0]["info"]
    for name, value in item["info"].items():
        np.testing.assert_array_equal(replayed[name], value)
        assert replayed[name].dtype == value.dtype


def test_more_workers_than_instances_idle_the_extra_ones_and_lose_nothing(echo_servers2):
    dataset = StreamDataset(addresses=echo_servers2, items=10, seed=5)
    loader = DataLoader(dataset, batch_size=None, num_workers=4)  # BlendTorch's habit
    seen = keys(list(loader))
    assert len(seen) == 10 and len(set(seen)) == 10
    assert {env for env, _, _ in seen} == {0, 1}
