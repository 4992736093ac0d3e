"""Compression of large arrays on the wire: codec, bounds, negotiation (no Blender)."""

from __future__ import annotations

import lz4.block
import msgpack
import numpy as np
import pytest
import zmq

from blender_side.thread_server import ThreadServer
from btgym.client import Client
from btgym.errors import ConfigError, DecodeError, InvalidActionError, LimitError
from btgym.pipeline import PipelinedClient
from btgym.wire import compression, protocol

IMAGE_SCENE = "tests.scenes.images:ImageScene"
STRIPES = np.repeat(np.arange(256, dtype=np.uint8), 512).reshape(256, 512)  # 128 KiB


def compressed_message(descriptor, frame, options=None, kind="ok"):
    """A header with one extension-3 array ``descriptor`` and ``frame`` as frame 1."""
    options = {"compression": "lz4"} if options is None else options
    header = msgpack.packb(
        ["btgym", protocol.PROTOCOL_VERSION, kind, {"a": msgpack.ExtType(3, descriptor)}, options]
    )
    return [header, frame]


def test_the_codec_round_trips_and_leaves_incompressible_bytes_alone():
    packed = compression.compress("lz4", STRIPES)
    assert packed is not None and len(packed) < STRIPES.nbytes // 50
    raw = compression.decompress("lz4", packed, STRIPES.nbytes)
    assert bytes(raw) == STRIPES.tobytes()
    noise = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8)
    assert compression.compress("lz4", noise) is None  # not smaller: sent raw


@pytest.mark.parametrize(
    "data, raw_size, match",
    [
        (lz4.block.compress(STRIPES.tobytes(), store_size=False), STRIPES.nbytes - 1, "corrupt"),
        (lz4.block.compress(STRIPES.tobytes(), store_size=False), STRIPES.nbytes + 1, "got 131072"),
        (lz4.block.compress(STRIPES.tobytes(), store_size=False)[:-7], STRIPES.nbytes, "corrupt"),
        (b"\xff" * 100, 1000, "corrupt"),
        (b"", 1000, "1 to 999 bytes"),
        (b"x" * 1000, 1000, "of 1000 bytes, got 1000 bytes"),
        (b"x" * 10, 0, "got 10 bytes"),
    ],
    ids=[
        "declared-smaller",
        "declared-larger",
        "truncated",
        "garbage",
        "empty",
        "not-smaller",
        "zero-size",
    ],
)
def test_decompression_writes_at_most_the_declared_size_and_refuses_lies(data, raw_size, match):
    with pytest.raises(DecodeError, match=match):
        compression.decompress("lz4", data, raw_size)


def test_a_bomb_is_refused_by_its_declared_size_before_decompressing():
    bomb = lz4.block.compress(bytes(64 << 20), store_size=False)  # 64 MiB of zeros: ~250 KiB
    assert len(bomb) < (1 << 20)
    frames = compressed_message(msgpack.packb(["|u1", [64 << 20], 1]), bomb)
    with pytest.raises(LimitError, match="declaring 67108864 bytes"):
        protocol.decode(frames, max_bytes=1 << 20, codecs=("lz4",))
    # A bomb declaring a small size gets no further than that size.
    frames = compressed_message(msgpack.packb(["|u1", [1 << 20], 1]), bomb)
    with pytest.raises(DecodeError, match="corrupt"):
        protocol.decode(frames, max_bytes=1 << 30, codecs=("lz4",))


def test_the_receivers_check_sees_declared_shapes_before_anything_is_decompressed():
    seen = []

    class Refused(Exception):
        pass

    def check(message):
        seen.append((message.body["a"].shape, message.body["a"].strides))
        raise Refused

    frames = compressed_message(msgpack.packb(["<f4", [1000, 1000], 1]), b"not lz4 at all")
    with pytest.raises(Refused):  # the corrupt frame was never looked at
        protocol.decode(frames, codecs=("lz4",), check=check)
    assert seen == [((1000, 1000), (0, 0))]  # a stand-in: declared shape, no memory


def test_compressed_arrays_travel_only_with_an_agreed_codec():
    body = {"frames": [STRIPES, STRIPES + 1], "small": np.arange(3)}
    frames = protocol.encode("ok", body, compress="lz4")
    assert sum(len(memoryview(frame)) for frame in frames) < STRIPES.nbytes // 10
    message = protocol.decode(frames, codecs=("lz4",))
    assert message.options == {"compression": "lz4"}
    first, second = message.body["frames"]
    np.testing.assert_array_equal(first, STRIPES)
    np.testing.assert_array_equal(second, STRIPES + 1)
    assert first.flags.writeable and second.flags.writeable
    with pytest.raises(DecodeError, match=r"compressed with one of \[\].*2 compressed"):
        protocol.decode(frames)
    header = msgpack.unpackb(frames[0], raw=False, strict_map_key=False, ext_hook=lambda c, d: c)
    assert header[3]["frames"] == [3, 3]  # extension 3: compressed arrays
    with pytest.raises(DecodeError, match="compressed with one of"):  # no codec named
        protocol.decode(compressed_message(msgpack.packb(["|u1", [10], 1]), b"x", {}))


def test_the_mode_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(compression.MODE_VARIABLE, raising=False)
    assert compression.mode_from(None) == "auto"
    monkeypatch.setenv(compression.MODE_VARIABLE, "off")
    assert compression.mode_from(None) == "off"
    assert compression.mode_from("force") == "force"
    with pytest.raises(ConfigError, match="auto, off, force.*got 'fast'"):
        compression.mode_from("fast")
    assert compression.offer("auto", remote=True) == ["lz4"]
    assert compression.offer("auto", remote=False) == []  # loopback: same host
    assert compression.offer("force", remote=False) == ["lz4"]
    assert compression.offer("off", remote=True) == []


def test_a_server_chooses_a_codec_it_has_from_the_offer():
    assert compression.choose(None) is None
    assert compression.choose(["zstd", "lz4"]) == "lz4"
    assert compression.choose(["brotli"]) is None
    for hostile in ("lz4", [1], ["x" * 100], ["lz4"] * 9, {"lz4": 1}):
        with pytest.raises(DecodeError, match="list of at most 8 codec names"):
            compression.choose(hostile)


@pytest.fixture
def counted(monkeypatch):
    """How many arrays were decompressed (by either end: both live in this process)."""
    calls = []
    original = compression.decompress

    def decompress(codec, data, raw_size):
        calls.append(raw_size)
        return original(codec, data, raw_size)

    monkeypatch.setattr(compression, "decompress", decompress)
    return calls


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_forced_compression_carries_frames_and_actions_both_ways(transport, counted):
    with ThreadServer(IMAGE_SCENE, transport=transport) as server:
        client = Client(server.address, timeout=10, frame_files=False, compression="force")
        assert client.hello()["compression"] == "lz4"
        assert client.compression == "lz4"
        observation = client.request("reset", {})["obs"]
        np.testing.assert_array_equal(observation, server.scene.image())
        assert counted == [observation.nbytes]  # the frame came compressed
        action = np.full((64, 64), 0.5, np.float32)
        reply = client.request("step", {"action": action})
        assert reply["info"]["action_sum"] == 2048.0  # the server decompressed the action
        assert counted[1:] == [action.nbytes, observation.nbytes]
        pipe = PipelinedClient.for_client(client, depth=2)
        assert pipe.compression == "lz4"
        pipe.send("steps", {"actions": [action, -action]})
        _, replies = pipe.recv()
        assert [step["info"]["action_sum"] for step in replies["steps"]] == [2048.0, -2048.0]
        np.testing.assert_array_equal(replies["steps"][1]["obs"], server.scene.image())
        assert len(counted) == 3 + 2 + 2
        pipe.close()
        client.close()


def test_loopback_peers_and_shared_frame_files_get_no_compression(monkeypatch, counted):
    monkeypatch.delenv(compression.MODE_VARIABLE, raising=False)
    with ThreadServer(IMAGE_SCENE, transport="tcp") as server:
        plain = Client(server.address, timeout=10, frame_files=False)  # auto: loopback
        assert plain.hello()["compression"] is None and plain.compression is None
        off = Client(server.address, timeout=10, compression="off")
        assert off.hello()["compression"] is None
        same_host = Client(server.address, timeout=10, compression="force")
        agreed = same_host.hello()["compression"]
        assert agreed == "lz4"
        if same_host.frame_files is None:
            pytest.skip("this host's shared memory offers no frame files")
        assert same_host.compression is None  # frames by reference: none compressed
        for client in (plain, off, same_host):
            np.testing.assert_array_equal(client.request("reset", {})["obs"], server.scene.image())
            client.close()
        assert counted == []


def test_without_the_codec_library_nothing_is_offered_and_frames_still_travel(monkeypatch):
    monkeypatch.setattr(compression, "_codecs", lambda: {})
    assert compression.available() == ()
    with ThreadServer(IMAGE_SCENE, transport="tcp") as server:
        client = Client(server.address, timeout=10, frame_files=False, compression="force")
        assert client.hello()["compression"] is None and client.compression is None
        np.testing.assert_array_equal(client.request("reset", {})["obs"], server.scene.image())
        client.close()


def raw_request(address, frames):
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(frames)
        assert socket.poll(10_000), "no reply within 10 s"
        return protocol.decode(socket.recv_multipart())
    finally:
        socket.close(linger=0)


def test_a_server_refuses_unknown_codecs_and_misshapen_compressed_actions(counted):
    with ThreadServer(IMAGE_SCENE) as server:
        unknown = protocol.encode("ping", {}, options={"compression": "zstd"})
        reply = raw_request(server.address, unknown)
        assert reply.kind == "error" and reply.body["type"] == "DecodeError"
        assert "expected compression with one of ['lz4']" in reply.body["message"]
        # A step whose compressed action declares another shape: refused by its shape,
        # before its (corrupt) frame is decompressed.
        frames = compressed_message(msgpack.packb(["<f4", [4096, 64], 1]), b"corrupt", kind="step")
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=False)
        header[3] = {"action": header[3]["a"]}
        reply = raw_request(server.address, [msgpack.packb(header), frames[1]])
        assert reply.kind == "error" and reply.body["type"] == InvalidActionError.__name__
        assert "(4096, 64) for shape (64, 64)" in reply.body["message"]
        # A request's declared raw sizes are bounded by max_message_bytes.
        frames = compressed_message(msgpack.packb(["|u1", [1 << 40], 1]), b"x", kind="call")
        reply = raw_request(server.address, frames)
        assert reply.kind == "error" and reply.body["type"] == "LimitError"
        assert counted == []


@pytest.mark.blender
def test_a_real_server_sends_rendered_frames_compressed_over_tcp(counted):
    """Cube-v0 in bpy over loopback TCP, compression forced: the same pixels, compressed."""
    from btgym.launcher import Launcher
    from tests.conftest import SMALL_CUBE

    kwargs = {"scene_kwargs": SMALL_CUBE, "seed": 0, "bind": "tcp://127.0.0.1:0"}
    with Launcher("envs.cube:CubeScene", 1, **kwargs) as launcher:
        address = launcher.addresses[0]
        squeezed = Client(address, timeout=60, frame_files=False, compression="force")
        plain = Client(address, timeout=60, frame_files=False, compression="off")
        assert squeezed.hello()["compression"] == "lz4" and squeezed.compression == "lz4"
        assert plain.hello()["compression"] is None and plain.compression is None
        frames = []
        for client in (squeezed, plain):
            reply = client.request("reset", {"seed": 5})
            frames.append(reply["obs"])
            frames.append(client.request("render", {})["frame"])
        assert len(counted) == 2  # the compressed client's two frames, none of the plain one's
        assert frames[0].shape == (128, 160, 3) and frames[0].std() > 0  # a real render
        np.testing.assert_array_equal(frames[0], frames[2])  # lossless: the same pixels
        np.testing.assert_array_equal(frames[1], frames[3])
        squeezed.close()
        plain.close()
