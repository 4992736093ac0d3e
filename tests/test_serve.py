"""`btgym serve` on one side, a trainer connecting by address (with CURVE) on the other."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from btgym import BlenderVectorEnv, LaunchInfo
from btgym.wire.security import ClientKeys
from tests.conftest import ECHO_SCENE, ROOT


@pytest.mark.blender
def test_serve_then_connect_by_address_with_keys(tmp_path):
    keys, info_path = tmp_path / "keys", tmp_path / "launch.json"
    subprocess.run(
        [sys.executable, "-m", "btgym.cli", "keys", str(keys)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "btgym.cli",
            "serve",
            ECHO_SCENE,
            "-n",
            "2",
            "--bind",
            "0.0.0.0",
            "--host",
            "127.0.0.1",
            "--keys",
            str(keys),
            "--info",
            str(info_path),
            "--kwargs",
            json.dumps({"max_episode_steps": 3}),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not info_path.exists() and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.1)
        info = LaunchInfo.read(info_path)
        assert len(info.addresses) == 2
        assert all(a.startswith("tcp://127.0.0.1:") for a in info.addresses)
        assert info.server_public_key is not None
        curve = ClientKeys.load(keys / "trainer.key_secret", info.server_public_key)
        with BlenderVectorEnv(addresses=info.addresses, curve=curve, timeout=20) as envs:
            envs.reset(seed=0)
            _, rewards, _, _, infos = envs.step(envs.action_space.sample())
            assert infos["counter"].tolist() == [1, 1]
        children = [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
        assert len(children) >= 2
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(children):
        time.sleep(0.05)
    assert not _alive(children)


def _alive(pids: list[int]) -> list[int]:
    return [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
