"""CURVE: servers off loopback need keys; only listed clients get in; secrets stay private."""

from __future__ import annotations

import os
import stat

import pytest
import zmq.auth

from btgym import BlenderEnv
from btgym.cli import main
from btgym.client import Client
from btgym.errors import AuthenticationError, LaunchError
from btgym.launcher import Launcher
from btgym.wire.security import ClientKeys, allow_client, generate_keys, is_loopback
from tests.conftest import ECHO_SCENE


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def contents(root) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_loopback_detection():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:5")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://10.1.2.3:5555") and not is_loopback("tcp://eth0:5")


@pytest.mark.blender
def test_a_server_off_loopback_refuses_to_start_without_keys():
    with pytest.raises(LaunchError, match="expected CURVE keys"):
        Launcher(ECHO_SCENE, 1, bind="tcp://0.0.0.0:0", start_timeout=60)


@pytest.fixture
def no_umask():
    old = os.umask(0)  # the worst case: nothing narrows what the code asks for
    yield
    os.umask(old)


def test_secret_key_files_are_0600_from_their_creation_on(tmp_path, monkeypatch, no_umask):
    created: dict[str, int] = {}
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT:
            created[os.fspath(path)] = stat.S_IMODE(os.fstat(fd).st_mode)
        return fd

    monkeypatch.setattr(os, "open", spy)
    root = tmp_path / "new" / "keys"
    public, secret = generate_keys(root, "server")
    generate_keys(root, "server", force=True)  # the replacement goes through a temp file
    monkeypatch.undo()
    secrets = [m for path, m in created.items() if "key_secret" in path]
    assert len(secrets) == 2 and set(secrets) == {0o600}, created
    assert mode(secret) == 0o600 and mode(public) == 0o644 and mode(root) == 0o700
    assert sorted(p.name for p in root.iterdir()) == ["server.key", "server.key_secret"]


def test_key_files_are_in_pyzmqs_certificate_format(tmp_path):
    public, secret = generate_keys(tmp_path, "trainer")
    public_key, secret_key = zmq.auth.load_certificate(secret)
    assert len(public_key) == 40 and len(secret_key) == 40
    assert zmq.auth.load_certificate(public) == (public_key, None)
    assert zmq.curve_public(secret_key) == public_key
    assert zmq.auth.load_certificates(tmp_path) == {public_key: True}


def test_generate_keys_refuses_to_overwrite_unless_forced(tmp_path):
    public, secret = generate_keys(tmp_path, "server")
    before = contents(tmp_path)
    with pytest.raises(FileExistsError, match="force=True"):
        generate_keys(tmp_path, "server")
    public.unlink()  # half a pair still counts
    with pytest.raises(FileExistsError):
        generate_keys(tmp_path, "server")
    assert secret.read_bytes() == before["server.key_secret"]
    generate_keys(tmp_path, "server", force=True)
    assert secret.read_bytes() != before["server.key_secret"] and mode(secret) == 0o600
    assert sorted(contents(tmp_path)) == ["server.key", "server.key_secret"]  # no temp left


def test_generate_keys_never_writes_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "server.key_secret").symlink_to(victim)
    with pytest.raises(FileExistsError):
        generate_keys(tmp_path / "keys", "server")
    generate_keys(tmp_path / "keys", "server", force=True)  # replaces the link itself
    assert victim.read_text() == "keep"
    assert not (tmp_path / "keys" / "server.key_secret").is_symlink()


@pytest.mark.parametrize("name", ["", "../server", "a/b", ".hidden", "-x"])
def test_key_names_cannot_leave_the_directory(tmp_path, name):
    with pytest.raises(ValueError, match="expected a key name"):
        generate_keys(tmp_path / "keys", name)


def test_allow_client_copies_only_the_public_key(tmp_path):
    _, secret = generate_keys(tmp_path, "trainer")
    entry = allow_client(tmp_path / "clients", secret)  # even given the secret file
    assert entry == tmp_path / "clients" / "trainer.key"
    assert "secret-key" not in entry.read_text()
    assert zmq.auth.load_certificate(entry) == (zmq.auth.load_certificate(secret)[0], None)


def test_client_keys_hide_the_secret(tmp_path):
    generate_keys(tmp_path, "server")
    _, secret = generate_keys(tmp_path, "trainer")
    keys = ClientKeys.load(secret, tmp_path / "server.key")
    assert keys.public.decode() in repr(keys)
    for text in (repr(keys), str(keys), f"{keys}", repr([keys])):
        assert keys.secret.decode() not in text and "secret" not in text


def test_the_cli_puts_only_public_keys_into_the_allow_list(tmp_path, no_umask):
    root = tmp_path / "keys"
    assert main(["keys", str(root), "--clients", "trainer", "evaluator"]) == 0
    assert sorted(contents(root)) == [
        "clients/evaluator.key",
        "clients/trainer.key",
        "evaluator.key",
        "evaluator.key_secret",
        "server.key",
        "server.key_secret",
        "trainer.key",
        "trainer.key_secret",
    ]
    for entry in (root / "clients").iterdir():
        assert "secret-key" not in entry.read_text() and mode(entry) == 0o644
    trainer = ClientKeys.load(root / "trainer.key_secret", root / "server.key")
    assert zmq.auth.load_certificate(root / "clients" / "trainer.key")[0] == trainer.public
    assert {mode(p) for p in root.glob("*.key_secret")} == {0o600}
    assert mode(root) == 0o700 and mode(root / "clients") == 0o755


def test_the_cli_refuses_a_directory_with_keys_unless_forced(tmp_path, capsys):
    root = tmp_path / "keys"
    assert main(["keys", str(root)]) == 0
    before = contents(root)
    capsys.readouterr()
    assert main(["keys", str(root)]) == 2
    assert "--force" in capsys.readouterr().err
    assert contents(root) == before
    assert main(["keys", str(root), "--force"]) == 0
    after = contents(root)
    assert sorted(after) == sorted(before)
    assert after["server.key_secret"] != before["server.key_secret"]
    public = zmq.auth.load_certificate(root / "trainer.key")[0]
    assert zmq.auth.load_certificate(root / "clients" / "trainer.key")[0] == public


@pytest.mark.parametrize("name", ["server", "../x"])
def test_the_cli_refuses_client_names_that_clash_or_escape(tmp_path, name):
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", str(tmp_path / "keys"), "--clients", name])
    assert exit_info.value.code == 2 and not (tmp_path / "keys").exists()


def test_ray_key_directories_are_removed_on_close_by_their_creator_only():
    pytest.importorskip("ray")
    from btgym._ray_backend import _TemporaryKeys

    keys = _TemporaryKeys("btgym-test-keys-", "trainer")
    assert mode(keys.secret) == 0o600 and mode(keys.path) == 0o700
    child = os.fork()
    if child == 0:  # a forked child closing (or exiting with) its copy deletes nothing
        keys.close()
        os._exit(0)
    os.waitpid(child, 0)
    assert keys.secret.exists()
    keys.close()
    assert not keys.path.exists()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve") / "keys"
    assert main(["keys", str(root), "--clients", "trainer"]) == 0
    generate_keys(root / "strangers", "stranger")
    return root


@pytest.mark.blender
def test_listed_clients_connect_and_strangers_are_refused(keys):
    with Launcher(
        ECHO_SCENE,
        1,
        bind="tcp://0.0.0.0:0",
        curve_secret=keys / "server.key_secret",
        curve_clients=keys / "clients",
    ) as launcher:
        address = launcher.addresses[0].replace("0.0.0.0", "127.0.0.1")
        trusted = ClientKeys.load(keys / "trainer.key_secret", keys / "server.key")
        with BlenderEnv(address=address, curve=trusted, timeout=20) as env:
            env.reset(seed=0)
            assert env.call("add", 2, 3) == 5
        stranger = ClientKeys.load(keys / "strangers" / "stranger.key_secret", keys / "server.key")
        for curve in (None, stranger):  # no CURVE at all, or a key not on the list
            # Told at once: left to time out, the client would raise InstanceTimeoutError.
            client = Client(address, timeout=30.0, retries=0, curve=curve)
            with pytest.raises(AuthenticationError, match="refused the handshake"):
                client.request("ping")
            client.close()
