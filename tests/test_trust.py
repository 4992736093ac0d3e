"""Trust boundaries with another local user (uid 12345 via setpriv): caches, keys, logs,
the server's working directory. Each attack plants what it would in real life; btgym
must refuse it, and keep working with directories of its own user."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap

import numpy as np
import pytest

from btgym import blender_python
from btgym.errors import LimitError, UntrustedPathError
from btgym.launcher import Launcher, scene_path_args
from btgym.recording import ShardReader, ShardWriter
from btgym.wire._private_files import trusted_directory, untrusted_reason
from btgym.wire.security import allow_client, generate_keys, secure_server
from tests.conftest import ECHO_SCENE, ROOT
from tests.test_hardening import OTHER_UID, as_other_user

FAKE_BLENDER = str(ROOT / "tests" / "fake_blender.py")


@pytest.fixture
def shared():
    """A fresh directory in /tmp made by the other user, mode 0777 (yields its path)."""
    path = os.path.join(tempfile.gettempdir(), f"btgym-shared-{os.urandom(6).hex()}")
    as_other_user(
        f"""
        import json, os
        os.mkdir({path!r}); os.chmod({path!r}, 0o777)
        print(json.dumps({{}}))
        """
    )
    yield path
    shutil.rmtree(path, ignore_errors=True)


def other_user_plants(code: str) -> None:
    as_other_user(textwrap.dedent(code) + "\nimport json; print(json.dumps({}))")


# -- keys ------------------------------------------------------------------------------
def test_keys_are_never_written_into_a_directory_another_user_owns_or_can_write(shared, tmp_path):
    with pytest.raises(UntrustedPathError, match=f"owned by uid {OTHER_UID}"):
        generate_keys(shared, "server")
    with pytest.raises(PermissionError):  # the built-in a caller expects
        generate_keys(os.path.join(shared, "keys"), "server")  # below it: swappable
    assert os.listdir(shared) == []
    mine = tmp_path / "open"
    mine.mkdir()
    mine.chmod(0o777)
    with pytest.raises(UntrustedPathError, match="0o777 lets other users in"):
        generate_keys(mine, "server")
    public, secret = generate_keys(tmp_path / "keys", "server")  # made here: 0700
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    with pytest.raises(UntrustedPathError, match="clients directory"):
        allow_client(shared, public)
    assert allow_client(tmp_path / "keys" / "clients", public).exists()


def test_a_server_refuses_an_allow_list_another_user_can_write(shared, tmp_path):
    import zmq

    _, secret = generate_keys(tmp_path / "keys", "server")
    socket = zmq.Context.instance().socket(zmq.REP)
    try:
        with pytest.raises(UntrustedPathError, match=f"owned by uid {OTHER_UID}"):
            secure_server(socket, "tcp://0.0.0.0:0", str(secret), shared)
    finally:
        socket.close(linger=0)


# -- the wheel cache of an installed Blender's Python ----------------------------------
def plant_cache(root: str) -> None:
    """The other user's cache: a probe result naming a package directory they filled."""
    stat_ = os.stat(FAKE_BLENDER)
    key = hashlib.sha256(f"{FAKE_BLENDER}:{stat_.st_size}:{stat_.st_mtime_ns}".encode())
    probe = {"kind": "blender", "blender": [4, 2, 0], "python": [3, 9], "machine": "x"}
    probe["missing"] = ["numpy"]
    target = f"{root}/btgym/blender-python/cp39-x"
    other_user_plants(
        f"""
        import json, os
        os.makedirs({root!r} + "/btgym/blender-probe", exist_ok=True)
        with open({root!r} + "/btgym/blender-probe/{key.hexdigest()[:24]}.json", "w") as f:
            json.dump({probe!r}, f)
        os.makedirs({target!r} + "/numpy")
        open({target!r} + "/numpy/__init__.py", "w").write("raise SystemExit('planted')")
        open({target!r} + "/.btgym-complete", "w").write("{{}}")
        """
    )


def test_a_planted_wheel_cache_is_refused_not_trusted(shared, monkeypatch):
    plant_cache(shared)
    monkeypatch.setenv("XDG_CACHE_HOME", shared)
    with pytest.raises(UntrustedPathError, match="cache directory"):
        blender_python.server_paths(FAKE_BLENDER)


def test_a_cache_below_another_users_directory_is_refused(shared, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(shared, "cache"))
    with pytest.raises(UntrustedPathError, match=f"owned by uid {OTHER_UID}"):
        blender_python.private_cache("blender-probe")


def test_the_cache_is_made_private_and_a_writable_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = blender_python.private_cache("blender-python", "cp39-x")
    for path in (made, made.parent, made.parent.parent):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    made.parent.chmod(0o777)
    with pytest.raises(UntrustedPathError, match="lets other users in"):
        blender_python.private_cache("blender-python", "cp39-x")


# -- log_dir ---------------------------------------------------------------------------
def test_a_log_dir_another_user_made_is_refused_before_anything_is_written(shared, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    victim.chmod(0o600)
    other_user_plants(
        f"""
        import json, os
        os.symlink({str(victim)!r}, {shared!r} + "/instance-0.log")
        with open({shared!r} + "/instance-0.ready.json", "w") as f:
            json.dump({{"address": "tcp://127.0.0.1:9", "pid": 1, "instance": 0}}, f)
        """
    )
    with pytest.raises(UntrustedPathError, match="log_dir"):
        Launcher(ECHO_SCENE, 1, log_dir=shared, start_timeout=60)
    assert victim.read_text() == "root only\n"
    assert sorted(os.listdir(shared)) == ["instance-0.log", "instance-0.ready.json"]


@pytest.mark.blender
def test_a_log_dir_of_our_own_is_used(tmp_path):
    with Launcher(ECHO_SCENE, 1, log_dir=tmp_path / "logs", keep_logs=True) as launcher:
        assert launcher.log_dir == tmp_path / "logs"
        assert stat.S_IMODE(os.stat(tmp_path / "logs").st_mode) == 0o700
    assert (tmp_path / "logs" / "instance-0.log").exists()


# -- the server's working directory ----------------------------------------------------
def plant_package(directory: str, name: str, marker: str) -> None:
    other_user_plants(
        f"""
        import os
        os.makedirs({directory!r} + "/{name}")
        code = "open({marker!r}, 'w').write('planted'); raise SystemExit(0)\\n"
        for module in ("__init__.py", "__main__.py"):
            open({directory!r} + "/{name}/" + module, "w").write(code)
        """
    )


@pytest.mark.blender
def test_a_server_never_imports_from_a_working_directory_another_user_can_write(
    shared, monkeypatch
):
    marker = os.path.join(shared, "planted-ran")
    for name in ("blender_side", "msgpack", "zmq", "numpy"):
        plant_package(shared, name, marker)
    monkeypatch.chdir(shared)
    assert scene_path_args() == []  # not offered to the server
    with Launcher(ECHO_SCENE, 1, start_timeout=120) as launcher:
        from btgym.client import Client

        client = Client(launcher.addresses[0], timeout=30)
        assert client.hello()["protocol"] == 3  # the real server answered
        client.close()
    assert not os.path.exists(marker)
    # run by hand as `python -m blender_side` there: the working directory is dropped too
    done = subprocess.run(
        [sys.executable, "-P", "-m", "blender_side", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0 and "--path" in done.stdout
    assert not os.path.exists(marker)


@pytest.mark.blender
def test_scenes_of_the_users_own_project_still_import_from_its_working_directory(
    tmp_path, monkeypatch
):
    package = tmp_path / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scenes.py").write_text(
        "from tests.scenes.echo import EchoScene\n\n\nclass MyScene(EchoScene):\n"
        "    name = 'mine'\n"
    )
    monkeypatch.chdir(tmp_path)
    assert scene_path_args() == ["--path", str(tmp_path)]
    with Launcher("myproject.scenes:MyScene", 1, start_timeout=120) as launcher:
        from btgym.client import Client

        client = Client(launcher.addresses[0], timeout=30)
        assert client.hello()["name"] == "mine"
        client.close()


@pytest.mark.blender
def test_a_path_given_to_the_server_is_checked(shared):
    done = subprocess.run(
        [sys.executable, "-P", "-m", "blender_side", "--path", shared, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    assert done.returncode != 0 and "UntrustedPathError" in done.stderr
    assert f"expected --path {shared}" in done.stderr


def test_trusted_directories_check_every_directory_above(tmp_path, shared):
    assert untrusted_reason(str(tmp_path)) is None
    inner = os.path.join(shared, "inner")
    other_user_plants(f"import os; os.mkdir({inner!r})")
    assert untrusted_reason(inner) == f"it is owned by uid {OTHER_UID}, not by uid 0"
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert untrusted_reason(str(link)) == "it is a symlink"
    assert trusted_directory(tmp_path / "a" / "b", "x") == str(tmp_path / "a" / "b")


# -- recordings ------------------------------------------------------------------------
def recorded_item(step: int) -> dict:
    return {
        "obs": np.full((4, 4, 3), step, np.uint8),
        "info": {},
        "env_id": 0,
        "episode": 0,
        "step": step,
        "seed": 0,
        "params": None,
    }


def test_a_symlink_planted_at_a_partial_shard_is_never_written_through(shared, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    victim.chmod(0o600)
    other_user_plants(
        f"import os; os.symlink({str(victim)!r}, {shared!r} + '/shard-000000.tar.partial')"
    )
    with pytest.raises(UntrustedPathError, match=f"recording directory .*owned by uid {OTHER_UID}"):
        ShardWriter(shared)
    assert victim.read_text() == "root only\n"
    mine = tmp_path / "recording"  # made by the writer; a symlink there (ours) is replaced
    writer = ShardWriter(mine)
    (mine / "shard-000000.tar.partial").symlink_to(victim)
    writer.write(recorded_item(0))
    writer.close()
    assert victim.read_text() == "root only\n"
    assert [p.name for p in mine.iterdir()] == ["shard-000000.tar"]
    assert ShardReader(mine)[0]["obs"][0, 0, 0] == 0


def forge_shard(path, declared: int, pax: bool = False) -> None:
    """A shard whose one member declares ``declared`` bytes, sparse: no disk, no data."""
    info = tarfile.TarInfo("000-000000-00000.json")
    info.size = declared
    header = info.tobuf(tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)
    if pax:  # a PAX extended header that itself declares ``declared`` bytes
        pax_info = tarfile.TarInfo("././@PaxHeader")
        pax_info.type, pax_info.size = tarfile.XHDTYPE, declared
        header = pax_info.tobuf(tarfile.USTAR_FORMAT)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + declared + 1024)  # the member's bytes and the end blocks


@pytest.mark.parametrize("pax", [False, True])
def test_a_shard_declaring_a_huge_member_is_refused_before_it_is_read(tmp_path, pax):
    forge_shard(tmp_path / "shard-000000.tar", 2 << 30, pax)
    code = f"""
        import json
        from btgym.data import ReplayDataset

        def peak_kib():  # VmHWM: this process's peak (ru_maxrss starts from its parent's)
            with open("/proc/self/status") as status:
                return [int(line.split()[1]) for line in status if line.startswith("VmHWM")][0]

        before = peak_kib()
        try:
            ReplayDataset({str(tmp_path)!r})[0]
            error = None
        except Exception as exc:
            error = f"{{type(exc).__name__}}: {{exc}}"
        print(json.dumps({{"error": error, "grew_kib": peak_kib() - before}}))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert result["error"].startswith("LimitError: expected ") and str(2 << 30) in result["error"]
    assert result["grew_kib"] < 64 * 1024  # nothing of the 2 GiB was read


def test_a_member_reaching_past_its_shard_is_refused(tmp_path):
    writer = ShardWriter(tmp_path / "rec")
    writer.write(recorded_item(0))
    writer.close()
    shard = tmp_path / "rec" / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1]
    cut = last.offset_data + last.size - 1
    shard.write_bytes(shard.read_bytes()[:cut])  # cut inside the last member
    with pytest.raises(ValueError, match=f"to end within its {cut} bytes"):
        ShardReader(tmp_path / "rec")
    with pytest.raises(LimitError, match="max_member_bytes=10 "):
        ShardReader(tmp_path / "rec", max_member_bytes=10)
