"""Attacks by another local user and lifecycle faults (issue 12), against real servers.

The "other local user" is a second uid (``setpriv --reuid=12345``), which needs root;
those tests are skipped with the reason where that is impossible.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import zmq

from btgym import BlenderEnv
from btgym.client import Client
from btgym.errors import (
    DecodeError,
    LaunchError,
    LimitError,
    ObservationError,
    RemoteError,
    RenderError,
    UsedAfterForkError,
)
from btgym.launcher import Launcher
from btgym.wire import protocol
from btgym.wire.frame_files import FrameFileReader, FrameFileWriter, frame_directory
from tests.conftest import ECHO_SCENE, ROOT, blender_fixture

OTHER_UID = 12345
SABOTAGED = "tests.scenes.hostile:SabotagedCube"
SMALL = {"width": 64, "height": 48}


def as_other_user(code: str, timeout: float = 60.0) -> dict:
    """Run Python ``code`` as a second, unprivileged uid; return the JSON it prints."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("acting as a second local user needs root and setpriv")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    command = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
    done = subprocess.run(
        [*command, python, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def frame_dirs(pid: int) -> list[str]:
    return glob.glob(os.path.join(frame_directory(), f"btgym-frames-{pid}-*"))


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@blender_fixture(scope="module")
def cube():
    env = BlenderEnv(SABOTAGED, **SMALL)
    env.reset(seed=0)
    yield env
    env.close()


# -- 1. frame files no other local user can touch ------------------------------------
def test_frame_files_live_in_a_private_directory_no_other_user_can_enter(cube):
    pid = cube.remote["pid"]
    (directory,) = frame_dirs(pid)
    info = os.lstat(directory)
    assert stat.S_ISDIR(info.st_mode) and info.st_mode & 0o777 == 0o700
    assert info.st_uid == os.geteuid()
    cube.step(np.array([0.2, 0.2, 0.2], np.float32))
    names = os.listdir(directory)
    assert names and all(len(name.split("-")[-1].split(".")[0]) == 16 for name in names)
    tried = as_other_user(
        f"""
        import json, os
        directory, name = {directory!r}, {names[0]!r}
        results = {{}}
        for what, attempt in {{
            "list": lambda: os.listdir(directory),
            "create": lambda: open(os.path.join(directory, "planted.tif"), "w"),
            "symlink": lambda: os.symlink("/etc/passwd", os.path.join(directory, "x.tif")),
            "open": lambda: open(os.path.join(directory, name), "rb"),
            "remove": lambda: os.rmdir(directory),
        }}.items():
            try:
                attempt()
                results[what] = "allowed"
            except PermissionError:
                results[what] = "denied"
            except OSError as exc:
                results[what] = type(exc).__name__
        print(json.dumps(results))
        """
    )
    assert set(tried.values()) == {"denied"}, tried


def test_symlinks_planted_at_predictable_names_overwrite_nothing(cube, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"root only")
    victim.chmod(0o600)
    pid = cube.remote["pid"]
    shm = frame_directory()
    planted = as_other_user(
        f"""
        import json, os
        made = []
        for n in range(200):  # the old naming scheme, and a few guesses
            for name in (f"btgym-frame-{pid}-{{n}}.tif", f"btgym-frames-{pid}-{{n}}"):
                path = os.path.join({shm!r}, name)
                try:
                    os.symlink({str(victim)!r}, path)
                    made.append(path)
                except OSError:
                    pass
        print(json.dumps(made))
        """
    )
    try:
        for _ in range(5):
            obs, *_ = cube.step(np.array([0.5, 0.5, 0.5], np.float32))
            assert obs.shape == (48, 64, 3) and obs.std() > 0
        assert victim.read_bytes() == b"root only"
        assert all(os.path.islink(path) for path in planted)  # never touched, never followed
    finally:
        for path in planted:
            os.remove(path)


def test_a_failed_frame_write_fails_that_step_only(cube):
    action = np.array([0.1, 0.1, 0.1], np.float32)
    cube.call("block_next_frame")
    with pytest.raises(RenderError, match="cannot save"):
        cube.step(action)
    for _ in range(3):  # fresh names afterwards: every later step works
        obs, *_ = cube.step(action)
        assert obs.std() > 0


def test_the_client_maps_only_regular_files_of_its_own_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("making files of another owner needs root")
    writer = FrameFileWriter(str(tmp_path))
    try:
        directory = writer.directory
        offer = writer.make_probe()
        assert FrameFileReader.from_hello(offer) is not None
        probe = os.path.join(directory, offer["probe"])
        os.remove(probe)
        os.mkfifo(probe)  # a FIFO must not block hello: opening it waits for no writer
        answers: list = []
        reading = threading.Thread(target=lambda: answers.append(FrameFileReader.from_hello(offer)))
        reading.daemon = True  # were it blocked, it would block for good
        reading.start()
        reading.join(30)
        assert answers == [None]
        os.remove(probe)
        os.symlink("/etc/hostname", probe)
        assert FrameFileReader.from_hello(offer) is None
        os.remove(probe)
        writer.make_probe()  # a fresh, valid probe: but in a directory owned by another user
        os.chown(directory, OTHER_UID, OTHER_UID)
        assert FrameFileReader.from_hello(writer.make_probe()) is None
        os.chown(directory, 0, 0)
        os.chmod(directory, 0o777)  # writable by others: no references either
        assert FrameFileReader.from_hello(writer.make_probe()) is None
        os.chmod(directory, 0o700)

        reader = FrameFileReader(directory)
        name = "frame-1-0123456789abcdef.tif"
        path = os.path.join(directory, name)
        os.symlink("/etc/passwd", path)
        with pytest.raises(DecodeError, match="regular frame file"):
            reader.buffer(name, 0, 4)
        os.remove(path)
        os.mkfifo(path)
        with pytest.raises(DecodeError, match="regular frame file"):
            reader.buffer(name, 0, 4)
        os.remove(path)
        Path(path).write_bytes(b"pixels")
        os.chown(path, OTHER_UID, OTHER_UID)
        with pytest.raises(DecodeError, match="owned by uid 0"):
            reader.buffer(name, 0, 4)
    finally:
        writer.close()


# -- 2. planted files do not stop launchers ------------------------------------------
@pytest.mark.blender
def test_files_planted_by_another_user_neither_stop_a_launch_nor_get_removed():
    shm, tmp = frame_directory(), "/tmp"
    planted = as_other_user(
        f"""
        import json, os
        made = []
        for base, name, kind in [
            ({shm!r}, "btgym-frame-99999999999-0.tif", "file"),
            ({shm!r}, "btgym-frames-99999999999-abc", "dir"),
            ({shm!r}, "btgym-frames-4194000-abc", "dir"),
            ({shm!r}, "btgym-frames-x-abc", "file"),
            ({tmp!r}, "btgym-run-99999999999-abc", "dir"),
            ({tmp!r}, "btgym-run-4194000-abc", "dir"),
        ]:
            path = os.path.join(base, name)
            if kind == "dir":
                os.mkdir(path)
            else:
                open(path, "w").close()
            made.append(path)
        print(json.dumps(made))
        """
    )
    ours = os.path.join(shm, "btgym-frames-4194001-stale")  # our own, of a dead pid
    os.mkdir(ours, 0o700)
    try:
        with Launcher(ECHO_SCENE, 1, start_timeout=120) as launcher:
            assert launcher[0].is_alive()
        assert all(os.path.exists(path) for path in planted)
        assert not os.path.exists(ours)  # the sweep removes what is ours and stale
    finally:
        for path in planted:
            if os.path.isdir(path):
                os.rmdir(path)
            elif os.path.exists(path):
                os.remove(path)
        shutil.rmtree(ours, ignore_errors=True)


# -- 3. instances live as long as the trainer process, whichever thread made them ----
@pytest.mark.blender
def test_envs_made_in_threads_that_have_ended_keep_working():
    with ThreadPoolExecutor(2) as pool:
        envs = [pool.submit(BlenderEnv, ECHO_SCENE).result() for _ in range(2)]
        threads = _native_ids(pool)
    try:
        # A parent-death signal is sent as the creating thread exits: wait until it has.
        assert wait_until(lambda: not threads & _tasks()), "the pool's threads did not end"
        for env in envs:
            assert env.launcher[0].is_alive()
            env.reset(seed=1)
            assert env.call("add", 2, 3) == 5
    finally:
        for env in envs:
            env.close()


@pytest.mark.blender
def test_a_vector_env_and_a_stream_made_in_an_ended_thread_keep_working():
    import btgym
    from btgym.data import StreamDataset

    def make():
        vector = btgym.BlenderVectorEnv(ECHO_SCENE, 2)
        stream = StreamDataset(SABOTAGED, 1, env_kwargs=SMALL, seed=3)
        items = iter(stream)
        next(items)
        return vector, stream, items

    with ThreadPoolExecutor(1) as pool:
        vector, stream, items = pool.submit(make).result()
        threads = _native_ids(pool)
    try:
        assert wait_until(lambda: not threads & _tasks()), "the pool's threads did not end"
        obs, _ = vector.reset(seed=0)
        assert len(obs["discrete"]) == 2
        for _ in range(4):
            assert next(items)["obs"].shape == (48, 64, 3)
    finally:
        vector.close()
        items.close()


def _native_ids(pool: ThreadPoolExecutor) -> set[int]:
    """The OS thread ids of a pool's threads (each worker thread answers once)."""
    return {thread.native_id for thread in pool._threads if thread.native_id is not None}


def _tasks() -> set[int]:
    """This process's OS thread ids now."""
    return {int(name) for name in os.listdir("/proc/self/task")}


TRAINER = textwrap.dedent(
    """
    import glob, json, os, sys, threading, time
    sys.path.insert(0, {root!r})
    from concurrent.futures import ThreadPoolExecutor
    from btgym import BlenderEnv
    with ThreadPoolExecutor(1) as pool:
        env = pool.submit(BlenderEnv, {scene!r}, width=64, height=48).result()
    env.reset(seed=0)
    pid = env.remote["pid"]
    print(json.dumps({{"pid": pid, "log_dir": str(env.launcher.log_dir)}}), flush=True)
    time.sleep(120)
    """
)


@pytest.mark.blender
def test_a_killed_trainer_leaves_no_process_and_no_files_behind():
    code = TRAINER.format(root=str(ROOT), scene=SABOTAGED)
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(trainer.stdout.readline())
        pid, log_dir = started["pid"], started["log_dir"]
        assert frame_dirs(pid) and os.path.isdir(log_dir)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
        assert wait_until(lambda: not _running(pid)), "the server outlived its trainer"
        assert wait_until(lambda: not frame_dirs(pid)), frame_dirs(pid)
        assert wait_until(lambda: not os.path.exists(log_dir)), os.listdir(log_dir)
    finally:
        trainer.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


# -- 4. fork after creating an env ---------------------------------------------------
FORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from btgym import BlenderEnv
    env = BlenderEnv({scene!r})
    env.reset(seed=0)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            env.step(env.action_space.sample())
            outcome = "stepped"
        except Exception as exc:
            outcome = type(exc).__name__ + ": " + str(exc)
        os.write(write, json.dumps(outcome).encode())
        os.close(write)
        sys.exit(0)  # a normal exit: atexit handlers and finalizers run in the child
    os.close(write)
    outcome = json.loads(os.read(read, 65536).decode())
    os.waitpid(child, 0)
    log_dir = str(env.launcher.log_dir)
    env.reset(seed=1)
    result = env.call("add", 2, 3)
    print(json.dumps({{"child": outcome, "parent": result, "log_dir": os.path.isdir(log_dir)}}))
    env.close()
    """
)


@pytest.mark.blender
def test_a_forked_child_gets_a_clear_error_and_cannot_break_the_parent():
    code = FORKER.format(root=str(ROOT), scene=ECHO_SCENE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outcome = report["child"]
    # At once: a child that tried the parent's socket would wait out the timeout and
    # report InstanceTimeoutError (or take the parent's reply).
    assert outcome.startswith(UsedAfterForkError.__name__), outcome
    assert report["parent"] == 5 and report["log_dir"]


# -- 5. bounded memory -----------------------------------------------------------------
def raw_request(address: str, frames: list, timeout: float = 30.0):
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(frames, copy=False)
        assert socket.poll(int(timeout * 1000)), "no reply"
        reply = socket.recv_multipart()
    finally:
        socket.close()
    return reply


@pytest.mark.blender
def test_a_whole_request_over_the_bound_gets_an_error_reply_and_the_server_lives_on():
    with Launcher(ECHO_SCENE, 1, max_message_bytes=1 << 20) as launcher:
        address = launcher.addresses[0]
        parts = [np.zeros(1 << 18, np.float32) for _ in range(3)]  # 3 x 1 MiB, each allowed
        frames = protocol.encode("call", {"name": "array_sum", "args": parts})
        reply = raw_request(address, frames)
        body = protocol.decode(reply).body
        assert body["type"] == "LimitError" and "at most 1048576 bytes" in body["message"]
        client = Client(address, timeout=20)
        client.hello()
        with pytest.raises(LimitError, match="at most 1048576 bytes"):  # refused before sending
            client.request("call", {"name": "array_sum", "args": parts})
        assert client.request("call", {"name": "add", "args": [1, 2]})["result"] == 3
        client.close()


def _mapped_frames(pid: int) -> int:
    with open(f"/proc/{pid}/maps") as f:
        return sum("btgym-frames-" in line for line in f)


def test_a_client_that_never_reads_cannot_pile_frames_into_the_server(cube):
    pid = cube.remote["pid"]
    sent = 150
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.RCVHWM, 1)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(cube.client.address)
    try:
        served = cube.ping()["served"]
        request = protocol.encode("step", {"action": np.full(3, 0.3, np.float32)})
        for _ in range(sent):
            socket.send_multipart([b"", *request], copy=False)
        peak = 0
        while cube.ping()["served"] < served + sent:  # every request was served
            peak = max(peak, _mapped_frames(pid))
            time.sleep(0.05)
        peak = max(peak, _mapped_frames(pid))
        assert peak <= 40, f"{peak} frames mapped for {sent} unread replies"
    finally:
        socket.close()
    obs, *_ = cube.step(np.full(3, 0.3, np.float32))  # the server still serves
    assert obs.std() > 0


def test_frames_kept_for_a_client_are_bounded(cube):
    address = cube.client.address
    (directory,) = frame_dirs(cube.remote["pid"])
    action = np.full(3, 0.4, np.float32)
    body = {"actions": [action] * 64}

    def steps(keep: int) -> list:
        return protocol.encode("steps", body, options={"frame_files": keep})

    reply = protocol.decode(raw_request(address, steps(64))).body
    assert reply["type"] == "LimitError" and "int from 1 to 17" in reply["message"]
    reply = protocol.decode(raw_request(address, steps(17))).body
    assert reply["type"] == "LimitError" and "at most 128 frame files" in reply["message"]
    for _ in range(6):
        reply = raw_request(address, steps(2))
        assert protocol.decode(reply, FrameFileReader(directory)).kind == "ok"
    held = cube.ping()["frames_held"]
    assert held <= 128
    assert len(os.listdir(directory)) <= 128 + 2  # + the next frame's name, + a probe


# -- 6/7. smaller ones -------------------------------------------------------------------
def test_error_replies_are_bounded_and_always_sent(cube):
    huge = "x" * (10 << 20)
    reply = raw_request(cube.client.address, protocol.encode(huge, {}))
    assert sum(len(frame) for frame in reply) < 64 * 1024
    assert protocol.decode(reply).body["type"] == "ProtocolError"
    with pytest.raises(RemoteError, match="Unprintable"):
        cube.call("raise_unprintable")
    assert cube.call("block_next_frame")  # the server lives on
    with pytest.raises(RenderError):
        cube.step(np.full(3, 0.4, np.float32))


def test_two_threads_on_one_env_take_turns(echo_env):
    results: list[int] = []
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(40):
                results.append(echo_env.call("add", offset, i) - offset - i)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and results == [0] * 80


@pytest.mark.blender
def test_an_observation_outside_its_space_is_named_in_debug_mode():
    assert os.environ.get("BTGYM_CHECK_OBSERVATIONS") == "1"  # tests run in debug mode
    with BlenderEnv("tests.scenes.hostile:WrongObservationScene") as env:
        env.reset(seed=0)
        with pytest.raises(ObservationError, match=r"WrongObservationScene\.step.*Box\(0\.0"):
            env.step(1)


@pytest.mark.blender
def test_exhausted_restarts_say_how_the_instance_died():
    with Launcher(ECHO_SCENE, 1, max_restarts=0) as launcher:
        launcher[0].process.send_signal(signal.SIGKILL)
        launcher[0].process.wait(30)
        with pytest.raises(LaunchError, match="killed by SIGKILL"):
            launcher.restart(0)
