"""The test double for trainer code: a scene served by the real server on a thread."""

from __future__ import annotations

import os

import pytest

from blender_side.thread_server import ThreadServer
from btgym.client import Client
from btgym.errors import ConfigError
from tests.conftest import ECHO_SCENE
from tests.scenes.echo import EchoScene


def test_it_serves_until_closed_then_removes_its_socket_directory():
    server = ThreadServer(ECHO_SCENE, transport="ipc", seed=3, instance="a")
    path = server.address.removeprefix("ipc://")
    assert server.address.startswith("ipc://") and os.path.exists(path)
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    client = Client(server.address, timeout=10)
    assert client.hello()["instance"] == "a"
    assert client.request("ping")["served"] == 1
    client.close()
    server.close()
    assert not server.serving and server.reason == "closed"
    assert not os.path.exists(os.path.dirname(path))
    server.close()  # idempotent


def test_a_close_request_ends_serving_as_in_a_blender_instance():
    with ThreadServer(EchoScene(max_episode_steps=2)) as server:
        assert server.address.startswith("inproc://")
        client = Client(server.address, timeout=10)
        assert client.request("close") == {"instance": 0}
        client.close()
        assert server.wait(10) and not server.serving and server.reason == "closed"


def test_seeds_make_unseeded_resets_reproducible_like_the_launchers():
    draws = []
    for _ in range(2):
        with ThreadServer(ECHO_SCENE, seed=5) as server:
            client = Client(server.address, timeout=10)
            draws.append(client.request("reset", {})["info"]["draw"])
            client.close()
    assert draws[0] == draws[1]


def test_misuse_is_refused_before_anything_is_served():
    with pytest.raises(ConfigError, match="transport 'inproc', 'ipc' or 'tcp', got 'udp'"):
        ThreadServer(ECHO_SCENE, transport="udp")
    with pytest.raises(TypeError, match="scene kwargs only with a scene spec"):
        ThreadServer(EchoScene(), max_episode_steps=3)
