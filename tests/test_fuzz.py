"""Fuzzing the decoder and a real server with random and mutated messages (hypothesis)."""

from __future__ import annotations

import lz4.block
import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btgym.client import Client
from btgym.errors import DecodeError, LimitError, VersionMismatchError
from btgym.wire import protocol

STRIPES = np.repeat(np.arange(64, dtype=np.uint8), 512).reshape(64, 512)  # 32 KiB
VALID = [
    protocol.encode("step", {"action": np.arange(300, dtype=np.float32)}),
    protocol.encode("step", {"action": STRIPES}, compress="lz4"),
    protocol.encode("ok", {"obs": [STRIPES, STRIPES.T.copy()]}, compress="lz4"),
    protocol.encode("reset", {"seed": 3, "options": {"a": [1, 2.5, None]}}),
    protocol.encode("call", {"name": "add", "args": [1, 2], "kwargs": {}}),
    protocol.encode("ping"),
]
VALID_BYTES = [[bytes(memoryview(f)) for f in frames] for frames in VALID]


@st.composite
def mutated(draw):
    """A valid message with bytes flipped, cut, inserted or frames dropped/added."""
    frames = [bytearray(f) for f in draw(st.sampled_from(VALID_BYTES))]
    for _ in range(draw(st.integers(1, 4))):
        frame = draw(st.integers(0, len(frames) - 1))
        data = frames[frame]
        action = draw(st.sampled_from(["flip", "cut", "insert", "drop", "add"]))
        if action == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif action == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=16))
        elif action == "drop" and len(frames) > 1:
            frames.pop(frame)
        elif action == "add":
            frames.append(bytearray(draw(st.binary(max_size=64))))
    return [bytes(f) for f in frames]


messages = st.one_of(
    mutated(),
    st.lists(st.binary(max_size=256), min_size=1, max_size=4),
    st.builds(
        lambda body: [msgpack.packb(["btgym", 3, "step", body, {}])],
        st.recursive(st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(), st.lists),
    ),
)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_the_decoder_only_ever_raises_protocol_errors(frames):
    try:
        message = protocol.decode(frames)
    except (DecodeError, VersionMismatchError):
        return
    assert isinstance(message.kind, str)


def compressed(descriptor, frame):
    header = ["btgym", protocol.PROTOCOL_VERSION, "ok", msgpack.ExtType(3, descriptor)]
    return [msgpack.packb([*header, {"compression": "lz4"}]), frame]


#: Hostile compressed arrays: lying sizes, truncated or corrupt data, bombs.
hostile_compressed = st.builds(
    compressed,
    st.builds(
        lambda dtype, shape, index: msgpack.packb([dtype, shape, index]),
        st.sampled_from(["|u1", "<f4", "<i8", "|b1"]),
        st.lists(st.integers(0, 2**40), max_size=4),
        st.integers(-1, 3) | st.booleans() | st.binary(max_size=4),
    ),
    st.one_of(
        st.binary(max_size=512),
        st.builds(  # real LZ4 data of some size, maybe cut or flipped
            lambda size, cut: lz4.block.compress(bytes(size), store_size=False)[:cut],
            st.integers(0, 1 << 22),
            st.integers(0, 1 << 16) | st.none(),
        ),
    ),
)

#: Most bytes the receiver lets arrays declare: 1 MiB (a bomb may try for far more).
MOST = 1 << 20


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(hostile_compressed, mutated()))
def test_the_decoder_bounds_what_compressed_arrays_may_become(frames):
    """Only protocol errors, and never an array past the declared bound."""
    try:
        message = protocol.decode(frames, max_bytes=MOST, codecs=("lz4",))
    except (DecodeError, LimitError, VersionMismatchError):
        return
    arrays = [value for value in _leaves(message.body) if isinstance(value, np.ndarray)]
    assert sum(array.nbytes for array in arrays) <= MOST


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.slow
@pytest.mark.timeout(900)  # 10,000 round trips: ~2 min on a loaded 2-core host
def test_a_real_server_answers_every_fuzzed_message_and_keeps_serving(echo_launcher):
    """10,000 fuzzed requests: each gets a reply in time, then a normal request works."""
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(echo_launcher.addresses[0])
    sent = 0

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(messages)
    def fuzz(frames):
        nonlocal sent
        socket.send_multipart(frames)
        assert socket.poll(5000), "the server did not answer a fuzzed message within 5 s"
        reply = protocol.decode(socket.recv_multipart())
        assert reply.kind in ("ok", "error")
        sent += 1

    try:
        fuzz()
    finally:
        socket.close(linger=0)
    assert sent >= 10_000
    client = Client(echo_launcher.addresses[0], timeout=10, retries=0)
    assert client.request("ping")["instance"] == 0
    assert client.request("call", {"name": "add", "args": [2, 3]})["result"] == 5
    client.close()
