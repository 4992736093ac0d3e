"""Wire format round trips and rejections (no Blender needed)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from gymnasium import spaces

from btgym.errors import DecodeError, EncodeError, SpaceError, VersionMismatchError
from btgym.wire import protocol
from btgym.wire.space_codec import restore, space_from_data, space_to_data
from tests.scenes.echo import all_spaces

DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    ">f4",
]


def roundtrip(body):
    frames = protocol.encode("step", body)
    wire = [bytes(memoryview(f)) for f in frames]  # what actually crosses the socket
    message = protocol.decode(wire)
    assert message.kind == "step"
    return message.body


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (64, 64, 3)])
def test_arrays_roundtrip_exactly(dtype, shape):
    rng = np.random.default_rng(0)
    array = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    out = roundtrip({"a": array})["a"]
    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)


def test_large_arrays_travel_in_their_own_frame_and_small_ones_inline():
    big = np.arange(100_000, dtype=np.float32)
    small = np.arange(4, dtype=np.int16)
    frames = protocol.encode("step", {"big": big, "small": small})
    assert len(frames) == 2
    assert len(memoryview(frames[1]).cast("B")) == big.nbytes
    assert len(frames[0]) < 200  # the header stays small


def test_non_contiguous_arrays_arrive_contiguous_and_equal():
    array = np.arange(2000, dtype=np.float64).reshape(40, 50)[:, ::3]
    out = roundtrip(array)
    np.testing.assert_array_equal(out, array)


def test_numpy_scalars_keep_their_dtype():
    body = roundtrip([np.float32(1.5), np.int64(-3), np.bool_(True), np.uint8(200)])
    assert [type(v) for v in body] == [np.float32, np.int64, np.bool_, np.uint8]
    assert body == [1.5, -3, True, 200]


def test_nested_plain_values_roundtrip():
    body = {"a": [1, 2.5, None, True, "x", b"raw"], "b": {"c": {1: "int key"}}}
    assert roundtrip(body) == body


@pytest.mark.parametrize(
    "value", [object(), np.array(["a", "b"]), np.array([object()]), {1, 2}, 2**70]
)
def test_values_that_cannot_travel_are_refused(value):
    with pytest.raises(EncodeError):
        protocol.encode("step", {"v": value})


@pytest.mark.parametrize(
    "frames, match",
    [
        ([], "at least one frame"),
        ([b""], "undecodable"),
        ([b"\xc1garbage"], "undecodable"),
        ([msgpack.packb([1, 2, 3, 4])], "expected header"),
        ([msgpack.packb(["btgym", 3, "step"])], "expected header"),
        ([msgpack.packb(["btgym", 3, "step", None, {}]) + b"\x00"], "end after"),
        ([msgpack.packb(["btgym", 3, 7, None, {}])], "kind as a string"),
        (
            [
                msgpack.packb(
                    ["btgym", 3, "x", msgpack.ExtType(1, msgpack.packb(["<f4", [4], 1])), {}]
                )
            ],
            "refers to frame 1",
        ),
        (
            [
                msgpack.packb(
                    ["btgym", 3, "x", msgpack.ExtType(1, msgpack.packb(["<f4", [4], 1])), {}]
                ),
                b"\x00" * 15,
            ],
            "needs 16 bytes, got 15",
        ),
        (
            [
                msgpack.packb(
                    ["btgym", 3, "x", msgpack.ExtType(1, msgpack.packb(["|O", [1], b"x"])), {}]
                )
            ],
            "dtype",
        ),
        ([msgpack.packb(["btgym", 3, "x", msgpack.ExtType(9, b""), {}])], "extension type"),
    ],
)
def test_malformed_messages_raise_decode_errors(frames, match):
    with pytest.raises(DecodeError, match=match):
        protocol.decode(frames)


def test_version_mismatch_is_detected_before_the_body():
    # The body uses an extension type this version does not know: the version check wins.
    frames = [msgpack.packb(["btgym", 99, "step", msgpack.ExtType(42, b"??")])]
    with pytest.raises(VersionMismatchError, match="version 3.*version 99"):
        protocol.decode(frames)


SPACES = [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(np.array([0, -2]), np.array([1, 2]), dtype=np.int32),
    spaces.Box(0, 255, (4, 5, 3), np.uint8),
    spaces.Box(-np.inf, np.inf, (2,), np.float64),
    spaces.Discrete(7),
    spaces.Discrete(3, start=-1),
    spaces.MultiDiscrete([2, 3, 4]),
    spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[0, 1], [2, 3]])),
    spaces.MultiBinary(5),
    spaces.MultiBinary([2, 3]),
    all_spaces(),
    spaces.Tuple((spaces.Discrete(2), spaces.Dict({"x": spaces.MultiBinary(3)}))),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_every_space_type_roundtrips_through_the_wire(space):
    rebuilt = space_from_data(roundtrip(space_to_data(space)))
    assert rebuilt == space
    space.seed(0)
    sample = space.sample()
    assert rebuilt.contains(restore(rebuilt, roundtrip(sample)))


def test_unsupported_spaces_are_refused_with_the_supported_list():
    class Odd(spaces.Space):
        """A space btgym does not know how to describe."""

    with pytest.raises(SpaceError, match="Box, Discrete"):
        space_to_data(Odd())
    with pytest.raises(SpaceError, match="'Graph'"):
        space_from_data({"type": "Graph"})


def test_decoded_arrays_are_writable_whether_inline_or_in_frames():
    import zmq

    context = zmq.Context.instance()
    a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    port = a.bind_to_random_port("tcp://127.0.0.1")
    b.connect(f"tcp://127.0.0.1:{port}")
    a.send_multipart(protocol.encode("x", [np.zeros(4), np.zeros(10_000)]), copy=False)
    assert b.poll(5000)
    small, large = protocol.decode(b.recv_multipart(copy=False)).body
    small += 1
    large += 1
    assert small.sum() == 4 and large.sum() == 10_000
    a.close(linger=0)
    b.close(linger=0)


def test_zero_copy_decode_views_the_received_buffer():
    array = np.arange(10_000, dtype=np.float32)
    frames = [bytes(memoryview(f)) for f in protocol.encode("x", array)]
    out = protocol.decode(frames).body
    assert not out.flags.owndata  # a view of the frame, not a copy


TIMESTAMP = msgpack.Timestamp(1, 2)


def header_with(body, version=3):
    return [msgpack.packb(["btgym", version, "step", body, {}])]


@pytest.mark.parametrize(
    "body",
    [
        TIMESTAMP,
        [1, TIMESTAMP],
        {"info": {"t": TIMESTAMP}},
        {TIMESTAMP: 1},  # as a map key
        {"steps": [{"obs": 0, "info": {"deep": [[{"x": [TIMESTAMP]}]]}}]},
    ],
    ids=["top", "list", "nested-map", "key", "deep"],
)
def test_timestamps_are_rejected_anywhere_in_the_body(body):
    with pytest.raises(DecodeError, match="extension type -1"):
        protocol.decode(header_with(body))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xd6\xff" + b"\0" * 4,  # timestamp 32 (fixext 4)
        b"\xd7\xff" + b"\0" * 8,  # timestamp 64 (fixext 8)
        b"\xc7\x0c\xff" + b"\0" * 12,  # timestamp 96 (ext 8)
        b"\xc9\x00\x00\x00\x0c\xff" + b"\0" * 12,  # timestamp 96 (ext 32, not minimal)
        b"\xd4\xff\x00",  # ext -1 of a length msgpack refuses
    ],
)
def test_every_encoding_of_extension_minus_one_is_rejected(raw):
    with pytest.raises(DecodeError):
        protocol.decode([b"\x95\xa5btgym\x03\xa4step\x92\x01" + raw + b"\x80"])


def test_bodies_nested_beyond_the_recursion_limit_are_still_searched():
    deep = TIMESTAMP
    for _ in range(1020):  # msgpack unpacks up to 1024 levels; Python recurses ~1000
        deep = [deep]
    with pytest.raises(DecodeError, match="extension type -1"):
        protocol.decode(header_with(deep))
    assert protocol.decode(header_with([[[[0]]]])).body == [[[[0]]]]


@pytest.mark.parametrize("version", [True, False, 1.0, "1", None, [1]])
def test_the_version_must_be_a_real_int(version):
    with pytest.raises(DecodeError, match="protocol version as an int"):
        protocol.decode(header_with(None, version=version))


@pytest.mark.parametrize(
    "descriptor, match",
    [
        (["<f4", [True, 2], b"\0" * 8], "shape of at most 64 non-negative ints"),
        (["<f4", [1] * 65, b"\0" * 4], "shape of at most 64 non-negative ints"),
        (["<f4", [1], True], "array bytes, a frame index"),
        (["<f4", [1], ["btgym-frame-1-1.tif", True]], r"reference \[name, offset\]"),
    ],
)
def test_bools_do_not_pass_as_ints_in_array_descriptors(descriptor, match):
    frames = header_with(msgpack.ExtType(1, msgpack.packb(descriptor)))
    with pytest.raises(DecodeError, match=match):
        protocol.decode(frames)


def test_decode_errors_quote_at_most_a_preview_of_the_input():
    huge = "x" * 1_000_000
    for frames in (
        header_with(None, version=huge),
        [msgpack.packb(["btgym", 3, [huge], None, {}])],
        header_with(msgpack.ExtType(1, msgpack.packb([huge, [1], b"\0"]))),
        header_with(msgpack.ExtType(1, msgpack.packb(["<f4", [huge], b"\0"]))),
    ):
        with pytest.raises(DecodeError) as caught:
            protocol.decode(frames)
        assert len(str(caught.value)) < 300


def test_a_realistic_step_reply_decodes_unchanged():
    rng = np.random.default_rng(0)
    step = {
        "obs": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
        "reward": 0.0,
        "terminated": False,
        "truncated": True,
        "info": {"xy": rng.random((8, 2), dtype=np.float32), "t": np.float32(0.5), 3: [None]},
    }
    body = roundtrip({"steps": [step] * 3})
    for out in body["steps"]:
        assert out.keys() == step.keys() and out["info"].keys() == step["info"].keys()
        np.testing.assert_array_equal(out["obs"], step["obs"])
        np.testing.assert_array_equal(out["info"]["xy"], step["info"]["xy"])
        assert out["truncated"] is True and out["info"][3] == [None]


def test_short_error_bodies_are_unchanged():
    body = protocol.error_body(KeyError("seed"), "Traceback ...\nKeyError: 'seed'\n", 3)
    assert body == {
        "type": "KeyError",
        "message": "'seed'",
        "traceback": "Traceback ...\nKeyError: 'seed'\n",
        "instance": 3,
    }


def test_error_bodies_are_bounded_whatever_the_input():
    name = "x" * 10_000_000
    traceback_text = "Traceback (most recent call last):\n" + "  frame\n" * 1_000_000 + "END"
    body = protocol.error_body(ValueError(f"no operation {name!r}"), traceback_text, 0)
    assert len(body["message"]) == protocol.MAX_ERROR_MESSAGE_CHARS
    assert body["message"].startswith("no operation 'xxx")
    assert body["message"].endswith(f"[cut: {len(name) + 15} characters in all]")
    assert len(body["traceback"]) == protocol.MAX_ERROR_TRACEBACK_CHARS
    assert body["traceback"].startswith("[cut: ") and body["traceback"].endswith("frame\nEND")
    frames = protocol.encode(protocol.REPLY_ERROR, body)
    assert len(frames) == 1 and len(frames[0]) < 25_000
    long_type = type("E" * 1000, (Exception,), {})
    assert len(protocol.error_body(long_type(), "", 0)["type"]) == protocol.MAX_ERROR_TYPE_CHARS


def test_an_exception_whose_str_raises_still_gets_an_error_body():
    class Unprintable(ValueError):
        def __str__(self):
            raise RuntimeError("no")

    body = protocol.error_body(Unprintable(), "", 1)
    assert body["type"] == "Unprintable"
    assert body["message"] == "<unprintable Unprintable: __str__ raised RuntimeError>"
    protocol.encode(protocol.REPLY_ERROR, body)


def test_error_bodies_with_lone_surrogates_can_be_encoded():
    body = protocol.error_body(ValueError("bad \udcff byte"), "tb \ud800", 0)
    assert body["message"] == "bad ? byte" and body["traceback"] == "tb ?"
    assert protocol.decode(protocol.encode(protocol.REPLY_ERROR, body)).body == body


def test_transport_options_travel_in_the_header_not_the_body():
    frames = protocol.encode("step", {"action": 1}, options={"frame_files": 3})
    message = protocol.decode(frames)
    assert message.body == {"action": 1} and message.options == {"frame_files": 3}
    assert protocol.decode(protocol.encode("ping")).options == {}


@pytest.mark.parametrize(
    "options, match",
    [
        ({"frame_filez": 1}, "header options from"),
        ({"frame_files": "2"}, "as int"),
        ({"frame_files": True}, "as int"),
        ({1: 1}, "header options from"),
        ([], "as a map"),
    ],
)
def test_unknown_or_mistyped_header_options_are_refused(options, match):
    frames = [msgpack.packb(["btgym", 3, "step", None, options])]
    with pytest.raises(DecodeError, match=match):
        protocol.decode(frames)


def test_a_version_2_peer_is_told_the_versions_apart():
    # Version 2 had no compressed arrays (extension 3): its peers get a clear mismatch.
    with pytest.raises(VersionMismatchError, match="version 3.*version 2"):
        protocol.decode([msgpack.packb(["btgym", 2, "hello", {"protocol": 2}, {}])])


def test_a_version_1_peer_is_told_the_versions_apart():
    with pytest.raises(VersionMismatchError, match="version 3.*version 1"):
        protocol.decode([msgpack.packb(["btgym", 1, "step", {"frame_files": 1}])])


def test_received_arrays_are_writable_views_without_a_copy():
    import zmq

    context = zmq.Context.instance()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    sender.bind("inproc://btgym-writable")
    receiver.connect("inproc://btgym-writable")
    try:
        big, small = np.arange(1000, dtype=np.float64), np.arange(4, dtype=np.float32)
        sender.send_multipart(protocol.encode("ok", {"big": big, "small": small}), copy=False)
        body = protocol.decode(receiver.recv_multipart(copy=False)).body
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)
    assert body["big"].flags.writeable and body["small"].flags.writeable
    body["big"][0] = 7.0  # the receiver's own buffer
    assert big[0] == 0.0
