"""Bounds a server keeps against its peers: a frame over its bound is a prompt, clear error
for the client (never a silent wait), and the bytes queued for all peers together stay
under ``max_server_bytes``.
"""

from __future__ import annotations

import numpy as np
import psutil
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from btgym._launch_config import LaunchConfig
from btgym.client import Client
from btgym.errors import ConfigError, LimitError
from btgym.launcher import Launcher
from btgym.peer import DEFAULT_FRAME_BYTES
from btgym.wire import protocol
from tests.conftest import ECHO_SCENE

MIB = 1 << 20


def test_the_frame_bound_fits_every_queued_request_in_the_server_bound():
    bound = protocol.frame_bound(protocol.DEFAULT_MAX_MESSAGE_BYTES, 64 * MIB, 16)
    slots = 16 * (protocol.MAX_QUEUED_REQUESTS + 1) + 1
    assert bound == 64 * MIB // slots and bound * slots <= 64 * MIB
    default = protocol.frame_bound(
        protocol.DEFAULT_MAX_MESSAGE_BYTES, protocol.DEFAULT_MAX_SERVER_BYTES, 16
    )
    assert default * slots <= protocol.DEFAULT_MAX_SERVER_BYTES and default > 20 * MIB
    assert protocol.frame_bound(4096, 64 * MIB, 16) == 4096  # a smaller given bound stays
    assert LaunchConfig(max_server_bytes=MIB).launcher_options()["max_server_bytes"] == MIB


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_a_frame_over_the_bound_is_a_prompt_clear_error_and_the_server_lives_on():
    with Launcher(ECHO_SCENE, 1, seed=0) as launcher:
        address = launcher.addresses[0]
        huge = np.zeros(300 * MIB, np.uint8)  # the 300 MB frame of the report
        # No hello: the client cannot know the bound; the server drops the connection.
        blind = Client(address, timeout=3600)  # a silent wait would outlast the test
        with pytest.raises(LimitError) as caught:
            blind.request("call", {"name": "array_sum", "args": [huge]})
        message = str(caught.value)
        assert "closed the connection: our largest frame, 314572800 bytes, is over " in message
        assert f"a default server's bound of {DEFAULT_FRAME_BYTES} bytes" in message
        assert blind.request("call", {"name": "add", "args": [1, 2]})["result"] == 3  # reopened
        blind.close()
        # After hello the client knows the bound and refuses before sending anything.
        client = Client(address, timeout=3600)
        bound = client.hello()["max_message_bytes"]
        with pytest.raises(LimitError, match=f"at most {bound} bytes .* got 3145728.. bytes"):
            client.request("call", {"name": "array_sum", "args": [huge]})
        assert client.request("ping")["instance"] == 0
        client.close()


def _flood(address: str, peers: int, requests: int, frame: np.ndarray) -> list[zmq.Socket]:
    """``peers`` DEALER connections, each sending ``requests`` pings carrying ``frame``."""
    context = zmq.Context.instance()
    sockets = []
    message = protocol.encode("ping", {"payload": frame})
    for _ in range(peers):
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, 0)
        socket.connect(address)
        for _ in range(requests):
            socket.send_multipart([b"", *message], copy=False)
        sockets.append(socket)
    return sockets


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_the_bytes_queued_for_all_peers_stay_under_max_server_bytes():
    limit = 64 * MIB
    with Launcher(ECHO_SCENE, 1, seed=0, max_server_bytes=limit) as launcher:
        address = launcher.addresses[0]
        client = Client(address, timeout=60)
        hello = client.hello()
        bound = protocol.frame_bound(protocol.DEFAULT_MAX_MESSAGE_BYTES, limit, 16)
        assert hello["max_server_bytes"] == limit and hello["max_message_bytes"] == bound
        server = psutil.Process(launcher[0].process.pid)
        client.request("ping")
        base = server.memory_info().rss

        # Frames over the bound (8 MiB each; 256 MiB were taken before): every peer is
        # dropped before ZeroMQ allocates its frame.
        context = zmq.Context.instance()
        sockets = _flood(address, 8, 6, np.zeros(8 * MIB, np.uint8))
        monitors = [s.get_monitor_socket(zmq.EVENT_DISCONNECTED) for s in sockets]
        for monitor in monitors:
            assert monitor.poll(60_000), "a peer sending frames over the bound stayed connected"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert client.request("ping")["instance"] == 0
        assert server.memory_info().rss - base < 32 * MIB
        for socket, monitor in zip(sockets, monitors, strict=True):
            socket.disable_monitor()
            monitor.close(linger=0)
            socket.close(linger=0)

        # Frames under the bound from 15 peers (all the gate lets in beside our client)
        # while the server is busy: what ZeroMQ queues stays under max_server_bytes.
        client.send("call", {"name": "sleep", "args": [4.0]})
        sockets = _flood(address, 15, 20, np.zeros(bound - 4096, np.uint8))
        peak = 0
        while not client.socket.poll(50):
            peak = max(peak, server.memory_info().rss - base)
        client.recv()
        print(f"peak {peak / MIB:.1f} MiB over the idle server, bound {limit / MIB:.0f} MiB")
        assert peak < limit + 32 * MIB, f"{peak / MIB:.0f} MiB queued, bound {limit / MIB:.0f}"
        for socket in sockets:
            socket.close(linger=0)
        assert client.request("ping")["instance"] == 0
        client.close()
        del context


def test_a_server_refuses_a_bad_total_bound():
    from blender_side.server import Server

    with pytest.raises(ConfigError, match="expected max_server_bytes as an int >= 1, got 0"):
        Server(None, "inproc://unused", max_server_bytes=0)  # type: ignore[arg-type]


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_a_server_that_stops_mid_request_is_reported_at_once_not_after_the_timeout():
    import os
    import signal

    from btgym.errors import InstanceDiedError

    with Launcher(ECHO_SCENE, 1, seed=0) as launcher:
        client = Client(launcher.addresses[0], timeout=3600)  # no liveness callback
        client.hello()
        client.send("call", {"name": "sleep", "args": [600]})
        os.kill(launcher[0].process.pid, signal.SIGKILL)
        with pytest.raises(InstanceDiedError, match="the server closed our connection"):
            client.recv()
        client.close()
