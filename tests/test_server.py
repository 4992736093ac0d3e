"""A real Blender-side server: round trips, error replies, garbage, version mismatch."""

from __future__ import annotations

import os
import socket
import threading

import msgpack
import numpy as np
import pytest
import zmq

from btgym import BlenderEnv
from btgym.client import Client
from btgym.errors import (
    ConfigError,
    DecodeError,
    InstanceTimeoutError,
    InvalidActionError,
    ProtocolError,
    RemoteError,
    VersionMismatchError,
)
from btgym.wire import protocol
from btgym.wire.space_codec import space_to_data
from btgym.wire.validation import check_action
from tests.conftest import thread_servers
from tests.scenes.echo import all_spaces


def test_hello_describes_the_scene_and_its_spaces(echo_env):
    assert echo_env.scene_name == "EchoScene"
    assert echo_env.action_space == all_spaces()
    assert echo_env.observation_space == all_spaces()
    assert echo_env.remote["protocol"] == protocol.PROTOCOL_VERSION
    assert echo_env.remote["instance"] == 0


def test_every_space_type_roundtrips_through_a_real_server(echo_env):
    echo_env.reset(seed=1)
    space = echo_env.action_space
    space.seed(3)
    for _ in range(5):
        action = space.sample()
        observation, reward, terminated, truncated, info = echo_env.step(action)
        assert echo_env.observation_space.contains(observation)
        for key in ("box", "box64", "ibox", "multi_discrete", "multi_binary"):
            np.testing.assert_array_equal(observation[key], action[key])
            assert observation[key].dtype == action[key].dtype
        assert observation["discrete"] == action["discrete"]
        assert observation["tuple"][0] == action["tuple"][0]
        np.testing.assert_array_equal(observation["tuple"][1], action["tuple"][1])
        assert isinstance(reward, float) and isinstance(truncated, bool)


def test_reset_seed_and_options_reach_the_scene(echo_env):
    _, info1 = echo_env.reset(seed=11, options={"level": 3})
    _, info2 = echo_env.reset(seed=11)
    _, info3 = echo_env.reset(seed=12)
    assert info1["options"] == {"level": 3}
    assert info1["draw"] == info2["draw"] != info3["draw"]


def test_call_reaches_scene_methods_and_attributes(echo_env):
    assert echo_env.call("add", 2, b=3) == 5
    np.testing.assert_array_equal(
        echo_env.call("array_sum", np.arange(6, dtype=np.int32).reshape(3, 2)), [6, 9]
    )
    assert echo_env.call("label") == "echo"
    echo_env.call("set_attr", "label", "changed")
    assert echo_env.call("get_attr", "label") == "changed"
    with pytest.raises(RemoteError, match="AttributeError.*public"):
        echo_env.call("_private")


def test_scene_exceptions_arrive_with_type_message_traceback_and_instance(echo_env):
    with pytest.raises(RemoteError) as caught:
        echo_env.call("fail", "the scene broke")
    error = caught.value
    assert error.remote_type == "KeyError"
    assert "the scene broke" in error.remote_message
    assert "in fail" in error.remote_traceback and "raise KeyError" in error.remote_traceback
    assert error.instance == 0
    assert echo_env.call("add", 1, 1) == 2  # the server keeps serving


def test_invalid_actions_are_refused_before_sending_and_by_the_server(echo_env, echo_server):
    served = echo_env.ping()["served"]
    with pytest.raises(InvalidActionError, match=r"action\['ibox'\]"):
        echo_env.step({**echo_env.action_space.sample(), "ibox": np.full(4, 300)})
    assert echo_env.ping()["served"] == served + 1  # only the ping reached the server
    # A client that skips validation still gets a clear error from the server.
    raw = Client(echo_server.address, timeout=10)
    with pytest.raises(InvalidActionError, match="Discrete"):
        raw.request("step", {"action": {**echo_env.action_space.sample(), "discrete": 99}})
    raw.close()


def test_unknown_operations_and_undecodable_requests_get_error_replies(echo_server):
    context = zmq.Context.instance()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 10_000)
    req.connect(echo_server.address)  # inproc: the context clients share
    try:
        for frames, expected in [
            ([b"not msgpack \xc1"], "DecodeError"),
            (
                [msgpack.packb(["btgym", protocol.PROTOCOL_VERSION, "explode", None, {}])],
                "ProtocolError",
            ),
            ([msgpack.packb(["btgym", 99, "step", None])], "VersionMismatchError"),
            (
                [msgpack.packb(["btgym", protocol.PROTOCOL_VERSION, "step", "no dict", {}])],
                "ProtocolError",
            ),
        ]:
            req.send_multipart(frames)
            reply = protocol.decode(req.recv_multipart())
            assert reply.kind == "error"
            assert reply.body["type"] == expected
        req.send_multipart(protocol.encode("ping"))
        assert protocol.decode(req.recv_multipart()).kind == "ok"
    finally:
        req.close()


def test_server_survives_raw_garbage_bytes_on_its_port():
    with thread_servers(1, transport="ipc") as (server,):
        address = server.address
        client = Client(address, timeout=5, retries=0)  # no retry hides a loss
        served = client.request("ping")["served"]
        for seed in range(20):
            payload = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8)
            with _raw_connection(address) as raw:
                raw.sendall(payload.tobytes())
        # Garbage never reaches the scene as a request, and legitimate clients lose nothing.
        assert client.request("ping")["served"] == served + 1
        fresh = Client(address, timeout=5, retries=0)
        assert fresh.request("ping")["served"] == served + 2
        client.close()
        fresh.close()


def _raw_connection(address: str) -> socket.socket:
    """A plain stream socket to a ZeroMQ ``tcp://`` or ``ipc://`` endpoint."""
    if address.startswith("ipc://"):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(5)
        raw.connect(address.removeprefix("ipc://"))
        return raw
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def test_launched_instances_listen_on_ipc_by_default(echo_launcher):
    # Same-host instances use Unix-domain sockets: cheaper than loopback TCP per frame.
    assert all(a.startswith("ipc://") for a in echo_launcher.addresses)
    assert all(os.path.exists(a.removeprefix("ipc://")) for a in echo_launcher.addresses)


def test_client_refuses_a_server_of_another_protocol_version():
    context = zmq.Context.instance()
    rep = context.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")

    def serve_once():
        rep.recv_multipart()
        rep.send_multipart([msgpack.packb(["btgym", 99, "ok", {"protocol": 99}])])

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    client = Client(f"tcp://127.0.0.1:{port}", timeout=5, retries=0)
    with pytest.raises(VersionMismatchError, match="expected btgym protocol version 3.*99"):
        client.hello()
    thread.join(5)
    client.close()
    rep.close(linger=0)


def test_a_silent_server_raises_a_timeout_not_a_hang():
    context = zmq.Context.instance()
    rep = context.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    client = Client(f"tcp://127.0.0.1:{port}", timeout=0.3, retries=1)
    with pytest.raises(InstanceTimeoutError, match="within 0.3 s"):
        client.request("ping")
    with pytest.raises(InstanceTimeoutError):  # the socket was reopened: usable, no EFSM
        client.request("step", {"action": 1})
    client.close()
    rep.close(linger=0)


def test_space_descriptions_are_plain_data(echo_env):
    data = space_to_data(echo_env.action_space)
    assert data["type"] == "Dict"
    frames = protocol.encode("hello", data)
    assert b"pickle" not in bytes(frames[0])
    assert isinstance(protocol.decode([bytes(memoryview(f)) for f in frames]).body, dict)


def test_connecting_by_address_refuses_scene_kwargs(echo_server):
    with pytest.raises(ValueError, match="already built"):
        BlenderEnv(address=echo_server.address, width=10)


def test_decode_error_type_is_kept_across_the_wire(echo_server):
    client = Client(echo_server.address, timeout=10)
    client._socket.send_multipart([b"\x00\x01garbage"])  # bypass encode
    client._pending = "garbage"
    with pytest.raises(DecodeError, match="reported by instance 0"):
        client.recv()
    client.close()
    assert issubclass(DecodeError, ProtocolError)


def test_steps_runs_several_steps_in_one_round_trip_and_checks_its_actions(echo_server):
    client = Client(echo_server.address, timeout=10)
    client.hello()
    space = all_spaces()
    space.seed(5)
    client.request("reset", {"seed": 0})
    actions = [check_action(space, space.sample()) for _ in range(7)]
    reply = client.request("steps", {"actions": actions, "autoreset": True})
    counters = [step.get("final_info", step["info"])["counter"] for step in reply["steps"]]
    assert counters == [1, 2, 3, 4, 5, 1, 2]  # episodes of 5 steps, autoreset after the 5th
    assert "final_obs" in reply["steps"][4] and "reset_seed" in reply["steps"][4]
    for bad in ([], "x", [actions[0]] * 65):
        with pytest.raises(ConfigError, match="expected 'actions' as a list of 1 to 64"):
            client.request("steps", {"actions": bad})
    assert client.request("ping")["instance"] == 0  # still serving
    client.close()


def test_a_mistyped_call_name_is_an_attribute_error_with_a_suggestion(echo_env):
    with pytest.raises(Exception, match=r"got 'ad'; did you mean 'add'") as caught:
        echo_env.call("ad", 1, 2)
    assert "AttributeError" in str(caught.value)


def test_scene_events_reach_the_env_the_vector_env_and_the_stream():
    from btgym import BlenderVectorEnv
    from btgym.data import StreamDataset

    with thread_servers(1) as servers, BlenderEnv(address=servers[0].address) as env:
        env.pop_events()
        env.reset(seed=0)
        for _ in range(5):  # the echo scene's episodes end after 5 steps
            env.step(env.action_space.sample())
        assert env.pop_events() == [
            {"event": "episode finished", "data": {"steps": 5}, "instance": 0}
        ]
        assert env.pop_events() == []
    with (
        thread_servers(2) as servers,
        BlenderVectorEnv(addresses=[s.address for s in servers]) as envs,
    ):
        envs.reset(seed=0)
        for _ in range(5):
            envs.step(envs.action_space.sample())
        assert sorted(e["instance"] for e in envs.pop_events()) == [0, 1]
    with thread_servers(1) as servers:
        dataset = StreamDataset(addresses=[servers[0].address], items=12, seed=0)
        items = iter(dataset)
        for _ in range(11):
            next(items)
        events = dataset.pop_events()  # replies received so far: a prefetched one may add one
        assert len(events) >= 2 and {e["event"] for e in events} == {"episode finished"}
        items.close()
