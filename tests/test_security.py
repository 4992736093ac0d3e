"""CURVE: servers off loopback need keys; only listed clients get in."""

from __future__ import annotations

import pytest

from btgym import BlenderEnv
from btgym.client import Client
from btgym.errors import InstanceTimeoutError, LaunchError
from btgym.launcher import Launcher
from btgym.security import ClientKeys, generate_keys, is_loopback
from tests.conftest import ECHO_SCENE


def test_loopback_detection():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:5")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://10.1.2.3:5555") and not is_loopback("tcp://eth0:5")


def test_a_server_off_loopback_refuses_to_start_without_keys():
    with pytest.raises(LaunchError, match="expected CURVE keys"):
        Launcher(ECHO_SCENE, 1, bind="tcp://0.0.0.0:0", start_timeout=60)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    generate_keys(root, "server")
    generate_keys(root / "clients", "trainer")
    generate_keys(root / "strangers", "stranger")
    return root


def test_listed_clients_connect_and_strangers_are_refused(keys):
    with Launcher(
        ECHO_SCENE,
        1,
        bind="tcp://0.0.0.0:0",
        curve_secret=keys / "server.key_secret",
        curve_clients=keys / "clients",
    ) as launcher:
        address = launcher.addresses[0].replace("0.0.0.0", "127.0.0.1")
        trusted = ClientKeys.load(keys / "clients" / "trainer.key_secret", keys / "server.key")
        with BlenderEnv(address=address, curve=trusted, timeout=20) as env:
            env.reset(seed=0)
            assert env.call("add", 2, 3) == 5
        stranger = ClientKeys.load(keys / "strangers" / "stranger.key_secret", keys / "server.key")
        for curve in (None, stranger):  # no CURVE at all, or a key not on the list
            client = Client(address, timeout=1.0, retries=0, curve=curve)
            with pytest.raises(InstanceTimeoutError):
                client.request("ping")
            client.close()
