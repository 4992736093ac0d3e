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
