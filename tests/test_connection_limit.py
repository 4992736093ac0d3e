"""A total bound per server: at most max_connections peers, each with ZeroMQ's own bounds."""

from __future__ import annotations

import time

import pytest
import zmq

from btgym.client import Client
from btgym.errors import AuthenticationError, ConfigError
from btgym.launcher import Launcher
from btgym.wire import protocol
from btgym.wire._gate import DEFAULT_MAX_CONNECTIONS
from tests.conftest import ECHO_SCENE

pytestmark = pytest.mark.blender  # every test here serves from a Blender process


def admitted_within(address: str, timeout: float) -> dict:
    """``hello`` from a new client, retried while the server still counts a closed peer."""
    deadline = time.monotonic() + timeout
    while True:
        client = Client(address, timeout=timeout, retries=0)
        try:
            return client.hello()
        except AuthenticationError:
            if time.monotonic() > deadline:
                raise
        finally:
            client.close()


@pytest.fixture(scope="module")
def launcher():
    with Launcher(ECHO_SCENE, 1, seed=3) as launcher:
        yield launcher


def test_peers_beyond_max_connections_are_refused_at_once_and_served_once_one_leaves(launcher):
    address = launcher.addresses[0]
    assert DEFAULT_MAX_CONNECTIONS == 16
    admitted = [Client(address, timeout=30) for _ in range(DEFAULT_MAX_CONNECTIONS)]
    try:
        for client in admitted:
            assert client.hello()["protocol"] == protocol.PROTOCOL_VERSION
        # A flooding peer beyond the limit: its requests never reach the server's queue.
        flood = zmq.Context.instance().socket(zmq.DEALER)
        flood.setsockopt(zmq.LINGER, 0)
        flood.connect(address)
        for _ in range(4):
            flood.send_multipart([b"", *protocol.encode("ping")], copy=False)
        late = Client(address, timeout=30, retries=0)
        with pytest.raises(AuthenticationError, match="max_connections"):
            late.request("ping")  # refused at the handshake, not after the timeout
        late.close()
        served = admitted[0].request("ping")["served"]
        assert not flood.poll(200)  # nothing came back: it was never let in
        assert admitted[0].request("ping")["served"] == served + 1  # only our own ping
        flood.close(linger=0)
        admitted.pop().close()  # a place frees: a new peer gets in once the server saw it
        assert admitted_within(address, 30)["protocol"] == protocol.PROTOCOL_VERSION
    finally:
        for client in admitted:
            client.close()


def test_max_connections_is_checked():
    pytest.importorskip("bpy")
    from blender_side.server import Server
    from tests.scenes.echo import EchoScene

    with pytest.raises(ConfigError, match="max_connections as an int >= 1, got 0"):
        Server(EchoScene(), max_connections=0)
