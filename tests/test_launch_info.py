"""The launch-info file, the servers a trainer reaches with it, and restart bookkeeping
(no Blender)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from btgym import LaunchInfo
from btgym._launch_info import running_servers
from btgym._recycling import InstanceLives, restart_dead
from btgym.errors import ConfigError, VersionMismatchError
from btgym.wire.protocol import PROTOCOL_VERSION


def test_launch_info_round_trips_and_checks_the_protocol(tmp_path):
    info = LaunchInfo("envs.cube:CubeScene", ["tcp://h:1", "tcp://h:2"], seeds=[0, 1])
    path = tmp_path / "launch.json"
    info.write(path)
    assert LaunchInfo.read(path) == info
    assert json.loads(path.read_text())["protocol"] == PROTOCOL_VERSION
    path.write_text(json.dumps({**info.to_dict(), "protocol": 1}))
    with pytest.raises(VersionMismatchError, match="version 1"):
        LaunchInfo.read(path)
    path.write_text(json.dumps({"protocol": PROTOCOL_VERSION, "scene": "x"}))
    with pytest.raises(ConfigError, match=r"expected \['addresses'\]"):
        LaunchInfo.read(path)


def test_running_servers_come_from_one_of_address_addresses_or_launch_info(tmp_path):
    path = tmp_path / "launch.json"
    LaunchInfo("s:S", ["tcp://h:1"]).write(path)
    assert running_servers() is None
    assert running_servers(name="btgym/Cube-v0") is None  # an id: launch it
    assert running_servers(address="tcp://h:9") == ["tcp://h:9"]
    assert running_servers(addresses=("ipc:///a", "ipc:///b")) == ["ipc:///a", "ipc:///b"]
    assert running_servers(launch_info=path) == running_servers(name=str(path)) == ["tcp://h:1"]
    assert running_servers(name="tcp://h:3") == ["tcp://h:3"]
    with pytest.raises(ConfigError, match="got several"):
        running_servers(address="tcp://h:9", launch_info=path)
    with pytest.raises(ConfigError, match="at least one server address"):
        running_servers(addresses=[])


class _Connection:
    """Just enough of a Connection: a launcher (or None) and a restart that is counted."""

    def __init__(self, launched: bool = True) -> None:
        self.launcher = [SimpleNamespace(pid=None)] if launched else None
        self.restarted: list[tuple[int, object]] = []

    def restart(self, index, why, env_id=None):
        self.restarted.append((index, why))
        return f"client {index}"


def test_instance_lives_count_episodes_restarts_and_decide_recycling():
    lives, connection = InstanceLives(1, after_episodes=2), _Connection()
    lives.episode_ended(0)
    assert not lives.recycle_due(connection, 0)
    lives.episode_ended(0)
    assert lives.recycle_due(connection, 0)
    assert not lives.recycle_due(_Connection(launched=False), 0)  # not ours: never
    assert lives.restart(connection, 0, "recycled") == "client 0"
    assert lives.restarts == [1] and lives.episodes == [0]
    assert connection.restarted == [(0, "recycled")]


def test_restart_dead_restarts_only_the_instances_whose_process_ended():
    restarted: list[int] = []
    alive = {0: True, 1: False, 2: False}
    instances = [SimpleNamespace(index=i, is_alive=lambda i=i: alive[i]) for i in alive]
    launcher = SimpleNamespace(instances=instances, restart=restarted.append)
    assert restart_dead(launcher) == [1, 2] and restarted == [1, 2]
