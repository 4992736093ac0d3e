"""`btgym serve` on one side, a trainer connecting by address (with CURVE) on the other."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from btgym import BlenderEnv, BlenderVectorEnv, LaunchInfo
from btgym.errors import UntrustedPathError
from btgym.wire.security import ClientKeys
from tests.conftest import ECHO_SCENE, ROOT
from tests.test_hardening import OTHER_UID, as_other_user


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


# -- trust boundaries: the launch-info file and who can reach the instances ------------
def start_serve(*options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "btgym.cli", "serve", ECHO_SCENE, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_info(server: subprocess.Popen, path, timeout: float = 90.0) -> LaunchInfo:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert server.poll() is None, server.stdout.read()
        assert time.monotonic() < deadline, f"no launch info in {path} after {timeout} s"
        time.sleep(0.1)
    return LaunchInfo.read(path)


def stop(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGTERM)
    output, _ = server.communicate(timeout=60)
    return output


@pytest.fixture
def shared_dir():
    """A directory in /tmp made by the other user, mode 0777."""
    path = Path(tempfile.gettempdir()) / f"btgym-shared-{os.urandom(6).hex()}"
    as_other_user(
        f"import os; os.mkdir({str(path)!r}); os.chmod({str(path)!r}, 0o777); print('{{}}')"
    )
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_refuses_a_launch_info_file_another_user_owns_before_starting(shared_dir):
    planted = shared_dir / "launch.json"
    as_other_user(
        f"""
        import json
        with open({str(planted)!r}, "w") as f:
            json.dump({{"addresses": ["tcp://127.0.0.1:9"]}}, f)
        print(json.dumps({{}}))
        """
    )
    before = planted.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "btgym.cli", "serve", ECHO_SCENE, "--info", str(planted)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "UntrustedPathError" in done.stderr and str(planted) in done.stderr
    assert f"owned by uid {OTHER_UID}" in done.stderr
    assert planted.read_text() == before and planted.stat().st_uid == OTHER_UID


def test_serve_never_writes_through_a_symlink_another_user_planted(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    victim.chmod(0o600)
    link = Path(tempfile.gettempdir()) / f"btgym-launch-{os.urandom(6).hex()}.json"
    as_other_user(f"import json, os; os.symlink({str(victim)!r}, {str(link)!r}); print('{{}}')")
    try:  # /tmp is sticky: the name is theirs, so serve refuses it
        done = subprocess.run(
            [sys.executable, "-m", "btgym.cli", "serve", ECHO_SCENE, "--info", str(link)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        assert f"it is a symlink (to {victim}) owned by uid {OTHER_UID}" in done.stderr
        assert victim.read_text() == "root only\n" and link.is_symlink()
    finally:
        link.unlink()


def test_launch_info_replaces_its_own_file_atomically_and_refuses_symlinks(tmp_path):
    path = tmp_path / "launch.json"
    LaunchInfo("s:S", ["ipc:///a"]).write(path)
    first = path.stat().st_ino
    LaunchInfo("s:S", ["ipc:///b"]).write(path)
    assert path.stat().st_ino != first  # a new file renamed into place, not rewritten
    assert LaunchInfo.read(path).addresses == ["ipc:///b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["launch.json"]
    victim = tmp_path / "victim"
    victim.write_text("mine\n")
    (tmp_path / "link.json").symlink_to(victim)
    with pytest.raises(UntrustedPathError, match="launch-info file .*link.json.*symlink"):
        LaunchInfo("s:S", ["ipc:///c"]).write(tmp_path / "link.json")
    assert victim.read_text() == "mine\n"


@pytest.mark.blender
def test_default_serve_is_private_and_another_user_cannot_close_it(tmp_path):
    info_path = tmp_path / "launch.json"
    server = start_serve("--info", str(info_path))
    try:
        info = wait_for_info(server, info_path)
        (address,) = info.addresses
        assert address.startswith("ipc://")
        socket_dir = os.path.dirname(address.removeprefix("ipc://"))
        assert stat.S_IMODE(os.stat(socket_dir).st_mode) == 0o700
        # ZeroMQ's ipc transport is a Unix-domain socket: a peer that cannot connect to
        # it cannot send anything (a close included). The other user gets no further
        # than connect() (stdlib only: they need not be able to read our checkout).
        attack = as_other_user(
            f"""
            import json, os, socket
            result = {{}}
            path = {address.removeprefix("ipc://")!r}
            raw = socket.socket(socket.AF_UNIX)
            try:
                raw.connect(path)
                result["connect"] = "connected"
            except OSError as exc:
                result["connect"] = type(exc).__name__
            try:
                os.stat(path)
                result["stat"] = "seen"
            except OSError as exc:
                result["stat"] = type(exc).__name__
            print(json.dumps(result))
            """
        )
        assert attack == {"connect": "PermissionError", "stat": "PermissionError"}
        with BlenderEnv(address=address, timeout=20) as env:  # its own user gets in
            env.reset(seed=0)
            assert env.step(env.action_space.sample())[4]["counter"] == 1
        assert server.poll() is None
    finally:
        stop(server)


def test_serve_on_tcp_without_keys_is_refused_unless_insecure_tcp(tmp_path):
    info_path = tmp_path / "launch.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "btgym.cli",
            "serve",
            ECHO_SCENE,
            "--bind",
            "127.0.0.1",
            "--info",
            str(info_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--insecure-tcp" in done.stderr
    assert "every local user" in done.stderr and not info_path.exists()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "btgym.cli",
            "serve",
            ECHO_SCENE,
            "--bind",
            "0.0.0.0",
            "--insecure-tcp",
            "--info",
            str(info_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "non-loopback address 0.0.0.0" in done.stderr


@pytest.mark.blender
def test_serve_with_insecure_tcp_warns_and_serves_on_loopback(tmp_path):
    info_path = tmp_path / "launch.json"
    server = start_serve("--bind", "127.0.0.1", "--insecure-tcp", "--info", str(info_path))
    try:
        info = wait_for_info(server, info_path)
        assert info.addresses[0].startswith("tcp://127.0.0.1:")
    finally:
        output = stop(server)
    assert "warning: serving on tcp://127.0.0.1:0 without keys" in output


def test_a_trainer_refuses_launch_info_another_user_could_have_written(shared_dir, tmp_path):
    planted = Path(tempfile.gettempdir()) / f"btgym-launch-{os.urandom(6).hex()}.json"
    content = json.dumps(LaunchInfo("s:S", ["tcp://127.0.0.1:9"]).to_dict())
    as_other_user(f"open({str(planted)!r}, 'w').write({content!r}); print('{{}}')")
    try:  # /tmp is sticky, but the file is theirs: they chose the addresses
        with pytest.raises(UntrustedPathError, match=f"owned by uid {OTHER_UID}"):
            LaunchInfo.read(planted)
        with pytest.raises(UntrustedPathError, match="launch-info file"):
            BlenderEnv(launch_info=str(planted), timeout=5)
    finally:
        planted.unlink()
    ours = shared_dir / "launch.json"  # ours, but in their directory: they can swap it
    LaunchInfo("s:S", ["ipc:///a"]).write(tmp_path / "launch.json")
    shutil.copy(tmp_path / "launch.json", ours)
    with pytest.raises(UntrustedPathError, match=f"owned by uid {OTHER_UID}"):
        LaunchInfo.read(ours)
    (tmp_path / "launch.json").chmod(0o666)
    with pytest.raises(UntrustedPathError, match="other users can write"):
        LaunchInfo.read(tmp_path / "launch.json")
    (tmp_path / "launch.json").chmod(0o644)
    assert LaunchInfo.read(tmp_path / "launch.json").addresses == ["ipc:///a"]
