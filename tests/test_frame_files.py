"""Frames by reference to the renderer's file: wire format, lifetime, and real Cube frames."""

from __future__ import annotations

import glob
import os

import gymnasium as gym
import numpy as np
import pytest

import btgym  # noqa: F401  (registers the env ids)
from btgym.errors import DecodeError
from btgym.wire import frame_files, protocol
from btgym.wire.frame_files import FrameFileReader, FrameFileWriter
from tests.conftest import SMALL_CUBE


def write_frame(writer: FrameFileWriter, pixels: np.ndarray, header: bytes = b"HEADER!!") -> str:
    path = writer.new_path("tif")
    with open(path, "wb") as f:
        f.write(header + pixels.tobytes())
    return path


def mapped_frame(writer: FrameFileWriter, pixels: np.ndarray) -> np.ndarray:
    data = writer.map(write_frame(writer, pixels))
    return data[8:].reshape(pixels.shape)


@pytest.fixture
def writer(tmp_path):
    w = FrameFileWriter(str(tmp_path))
    yield w
    w.close()


def test_a_mapped_frame_travels_as_a_reference_and_maps_back_equal(writer):
    pixels = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    writer.begin_request(1, keep=1)
    frame = mapped_frame(writer, pixels)
    frames = protocol.encode("ok", {"obs": frame, "small": frame[:2, :2]}, writer.locate)
    assert len(frames) == 1  # no buffer frame: only the header travels
    header = bytes(memoryview(frames[0]))
    assert len(header) < 200 and writer.locate(frame)[1] == 8
    body = protocol.decode([header], FrameFileReader(writer.directory)).body
    np.testing.assert_array_equal(body["obs"], pixels)
    np.testing.assert_array_equal(body["small"], pixels[:2, :2])
    body["obs"][0, 0] = 7  # copy-on-write: writable, private to the receiver
    assert frame[0, 0, 0] == pixels[0, 0, 0]


def test_arrays_not_viewing_a_frame_file_travel_as_bytes(writer):
    pixels = np.arange(3000, dtype=np.uint8).reshape(10, 100, 3)
    frame = mapped_frame(writer, pixels)
    strided = frame[:, ::2]  # not contiguous: its bytes are sent instead
    assert writer.locate(pixels) is None and writer.locate(strided) is None
    frames = protocol.encode("ok", {"a": pixels, "b": strided}, writer.locate)
    body = protocol.decode([bytes(memoryview(f)) for f in frames]).body
    np.testing.assert_array_equal(body["a"], pixels)
    np.testing.assert_array_equal(body["b"], pixels[:, ::2])


def test_a_reference_is_refused_without_agreement_and_names_are_checked(writer):
    writer.begin_request(1, keep=1)
    frame = mapped_frame(writer, np.zeros((20, 20, 3), np.uint8))
    header = protocol.encode("ok", {"obs": frame}, writer.locate)[0]
    with pytest.raises(DecodeError, match="without having agreed"):
        protocol.decode([header])
    reader = FrameFileReader(writer.directory)
    for name in ("../../etc/passwd", "frame-1-0123456789abcdef.tif/..", "other.tif"):
        with pytest.raises(DecodeError, match="expected a btgym frame file name"):
            reader.buffer(name, 0, 10)
    with pytest.raises(DecodeError, match="expected 10 bytes at offset 1200"):
        reader.buffer(writer.locate(frame)[0], 1200, 10)
    with pytest.raises(DecodeError, match="to exist"):
        reader.buffer("frame-1-0123456789abcdef.tif", 0, 10)


def test_names_live_while_a_client_may_still_need_them(writer):
    directory = writer.directory

    def names():
        return sorted(os.listdir(directory))

    writer.begin_request(1, keep=None)  # a client taking bytes: no name outlives its map
    frame = mapped_frame(writer, np.ones((4, 4, 3), np.uint8))
    assert names() == [] and frame.sum() == 48  # the mapping outlives the name
    for request in range(2, 6):  # a pipelined client with 2 requests in flight (+1 spare)
        writer.begin_request(request, keep=3)
        mapped_frame(writer, np.ones((4, 4, 3), np.uint8))
        assert len(names()) == min(request - 1, 3)
    writer.close()
    assert not os.path.exists(directory)  # the private directory goes with the writer


def test_the_probe_proves_a_shared_directory(writer, tmp_path, monkeypatch):
    offer = writer.make_probe()
    assert offer is not None and os.stat(writer.directory).st_mode & 0o777 == 0o700
    assert FrameFileReader.from_hello(offer) is not None
    assert FrameFileReader.from_hello({**offer, "token": "0" * 32}) is None
    assert FrameFileReader.from_hello({**offer, "directory": str(tmp_path / "elsewhere")}) is None
    assert FrameFileReader.from_hello({**offer, "probe": "../x"}) is None
    assert FrameFileReader.from_hello(None) is None
    monkeypatch.setattr(frame_files, "MIN_SHARED_BYTES", 1 << 62)  # a tiny /dev/shm
    assert writer.make_probe() is None


def test_cube_frames_by_reference_equal_the_bytes_on_the_socket(cube_env, monkeypatch):
    client = cube_env.unwrapped.connection.clients[0]
    assert client.frame_files is not None  # same host: agreed at hello
    monkeypatch.setenv("BTGYM_FRAME_FILES", "0")
    byte_env = gym.make("btgym/Cube-v0", **SMALL_CUBE)
    try:
        assert byte_env.unwrapped.connection.clients[0].frame_files is None
        action = np.array([0.3, 0.6, 1.0], np.float32)
        kept, _ = cube_env.reset(seed=5)
        expected, _ = byte_env.reset(seed=5)
        np.testing.assert_array_equal(kept, expected)
        assert kept.flags.writeable and kept.std() > 0
        snapshot = kept.copy()
        for _ in range(6):
            obs, *_ = cube_env.step(action)
            byte_obs, *_ = byte_env.step(action)
            np.testing.assert_array_equal(obs, byte_obs)
        np.testing.assert_array_equal(kept, snapshot)  # later frames never overwrite it
        pid = cube_env.unwrapped.connection.hellos[0]["pid"]
        named = glob.glob(os.path.join("/dev/shm", f"btgym-frames-{pid}-*", "frame-*.tif"))
        assert len(named) == 1, named  # only the last reply's frame keeps its name
    finally:
        byte_env.close()


def test_a_frame_sent_again_after_its_name_is_gone_travels_as_bytes(writer, tmp_path):
    pixels = np.full((8, 8, 3), 9, np.uint8)
    writer.begin_request(1, keep=1)
    frame = mapped_frame(writer, pixels)
    assert writer.locate(frame) is not None
    writer.begin_request(2, keep=1)  # the scene returns its cached frame again
    assert writer.locate(frame) is None
    frames = protocol.encode("ok", {"obs": frame}, writer.locate)
    body = protocol.decode([bytes(memoryview(f)) for f in frames]).body
    np.testing.assert_array_equal(body["obs"], pixels)


def test_spares_are_fresh_private_files_made_ahead_for_the_next_frames(writer):
    def names() -> set[str]:
        return set(os.listdir(writer.directory))

    writer.begin_request(1, keep=1)
    first = writer.create(1000)
    first[:] = 7
    first_name = writer.locate(first)[0]
    writer.prepare_spares()  # after the reply: one spare of the size request 1 made
    spares = names() - {first_name}
    assert len(spares) == 1
    assert os.stat(os.path.join(writer.directory, *spares)).st_mode & 0o777 == 0o600
    writer.begin_request(2, keep=1)
    second = writer.create(1000)
    assert {writer.locate(second)[0]} == spares  # the spare became the frame
    assert not second.any()  # a fresh file: nothing of another frame in it
    second[:] = 9
    assert (first == 7).all() and (second == 9).all()
    writer.create(50), writer.create(50)
    writer.prepare_spares()
    assert len(names()) == 3 + 3  # request 2's three frames and a spare for each
    writer.begin_request(3, keep=1)
    writer.create(50)
    writer.prepare_spares()  # the 1000-byte spare goes: request 3 made none of that size
    sizes = sorted(os.path.getsize(os.path.join(writer.directory, n)) for n in names())
    assert sizes == [50, 50]  # request 3's frame and one spare


def test_spares_are_bounded_in_count_and_bytes(writer, monkeypatch):
    def spare_count() -> int:
        return len(os.listdir(writer.directory)) - writer.held

    writer.begin_request(1, keep=1)
    for _ in range(3 * frame_files.MAX_SPARES):
        writer.create(10)
    writer.prepare_spares()
    assert spare_count() == frame_files.MAX_SPARES
    monkeypatch.setattr(frame_files, "MAX_SPARE_BYTES", 25)
    writer.begin_request(2, keep=1)
    for _ in range(4):
        writer.create(10)
    writer.prepare_spares()
    assert spare_count() == 2  # 2 x 10 bytes fit in 25


def test_a_forked_child_never_writes_into_its_parents_spares(writer):
    writer.begin_request(1, keep=1)
    writer.create(100)
    writer.prepare_spares()
    parent_directory = writer.directory
    parent_files = set(os.listdir(parent_directory))
    pid = os.fork()
    if pid == 0:  # the child: its frames go to a directory of its own
        code = 1
        try:
            frame = writer.create(100)
            frame[:] = 1
            fresh = writer.locate(frame)[0] not in parent_files
            code = 0 if fresh and writer.directory != parent_directory else 1
            writer.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert set(os.listdir(writer.directory)) == parent_files
    writer.begin_request(2, keep=1)
    frame = writer.create(100)
    assert writer.locate(frame)[0] in parent_files and not frame.any()


@pytest.mark.blender
def test_raster_frames_use_spares_and_never_change_once_delivered(monkeypatch):
    env = gym.make("btgym/Cube-v0", engine="raster", **SMALL_CUBE)
    monkeypatch.setenv("BTGYM_FRAME_FILES", "0")
    byte_env = gym.make("btgym/Cube-v0", engine="raster", **SMALL_CUBE)
    try:
        assert env.unwrapped.connection.clients[0].frame_files is not None
        kept, _ = env.reset(seed=2)
        np.testing.assert_array_equal(kept, byte_env.reset(seed=2)[0])
        snapshot = kept.copy()
        for step in range(8):
            action = np.array([0.1 * step, 0.5, 1.0], np.float32)
            obs, *_ = env.step(action)
            np.testing.assert_array_equal(obs, byte_env.step(action)[0])
        np.testing.assert_array_equal(kept, snapshot)  # a spare is never a delivered frame
        pid = env.unwrapped.connection.hellos[0]["pid"]
        files = glob.glob(os.path.join("/dev/shm", f"btgym-frames-{pid}-*", "frame-*.rgb"))
        assert len(files) == 2, files  # the last reply's frame and the next frame's spare
    finally:
        env.close()
        byte_env.close()


@pytest.mark.blender
def test_a_stream_takes_frames_by_reference_and_they_equal_the_bytes(monkeypatch):
    from btgym.data import StreamDataset

    def frames(**kwargs):
        dataset = StreamDataset(
            "btgym/Cube-v0", 1, items=9, seed=3, env_kwargs=SMALL_CUBE, **kwargs
        )
        items = iter(dataset)
        first = next(items)
        readers = [pipe.frame_files for s in dataset.streams for pipe in s.pipes.values()]
        return readers, [first["obs"], *(item["obs"] for item in items)]

    readers, by_reference = frames()
    assert readers and all(r is not None for r in readers)
    monkeypatch.setenv("BTGYM_FRAME_FILES", "0")
    readers, as_bytes = frames()
    assert readers == [None]
    assert len(by_reference) == len(as_bytes) == 9
    for a, b in zip(by_reference, as_bytes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len({a.tobytes() for a in by_reference}) == 9  # every item a different frame
