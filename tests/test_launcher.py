"""Launching, supervising and tearing down real Blender processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from btgym import BlenderEnv
from btgym.client import Client
from btgym.errors import InstanceDiedError, InstanceTimeoutError, LaunchError, LimitError
from btgym.launcher import Launcher
from tests.conftest import ECHO_SCENE, ROOT


def wait_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            pid
            for pid in pids
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


@pytest.mark.blender
def test_instances_get_distinct_ids_seeds_and_addresses_and_are_reaped_on_close():
    with Launcher(ECHO_SCENE, 2, seed=100) as launcher:
        assert launcher.seeds == [100, 101]
        assert len(set(launcher.addresses)) == 2
        clients = [Client(a, timeout=20) for a in launcher.addresses]
        assert [c.hello()["instance"] for c in clients] == [0, 1]
        # Without a seed in reset, each instance draws from its launcher-given seed.
        draws = [c.request("reset", {})["info"]["draw"] for c in clients]
        assert draws[0] != draws[1]
        pids = [instance.process.pid for instance in launcher.instances]
        for c in clients:
            c.close()
    assert all(instance.process.poll() is not None for instance in launcher.instances)
    assert wait_gone(pids) == []
    with Launcher(ECHO_SCENE, 1, seed=100) as again:
        client = Client(again.addresses[0], timeout=20)
        assert client.request("reset", {})["info"]["draw"] == draws[0]
        client.close()


@pytest.mark.blender
def test_a_scene_that_fails_to_build_gives_a_launch_error_with_its_log():
    with pytest.raises(LaunchError) as caught:
        Launcher("tests.scenes.broken:FailsToBuild", 1, start_timeout=60)
    message = str(caught.value)
    first = message.splitlines()[0]  # why, in the server's own words, comes first
    assert "to start, got RuntimeError: this scene cannot be built" in first
    assert "--- last lines of the instance's log ---" in message  # the log tail travels too


@pytest.mark.blender
def test_an_unknown_scene_spec_fails_fast_and_clearly():
    with pytest.raises(LaunchError, match="No module named 'tests.scenes.nope'"):
        Launcher("tests.scenes.nope:Scene", 1, start_timeout=60)


@pytest.mark.blender
def test_start_timeout_is_enforced_and_the_process_reaped():
    with pytest.raises(LaunchError, match="within 0.2 s"):
        Launcher(ECHO_SCENE, 1, start_timeout=0.2)
    # Gone, not a zombie: the launcher waited for the process it gave up on.
    instances = [
        child
        for child in psutil.Process().children(recursive=True)
        if ECHO_SCENE in " ".join(_cmdline(child))
    ]
    assert instances == []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone meanwhile (or a zombie on some systems)
        return []


@pytest.mark.blender
@pytest.mark.timeout(60)  # the request's timeout is far longer: only the death ends it
def test_a_killed_instance_is_reported_quickly_not_after_the_timeout():
    env = BlenderEnv(ECHO_SCENE, timeout=3600)
    try:
        env.reset(seed=0)
        env.launcher[0].process.send_signal(signal.SIGKILL)
        with pytest.raises(InstanceDiedError, match="process exited"):
            env.step(env.action_space.sample())
    finally:
        env.close()


@pytest.mark.blender
def test_a_hung_instance_raises_a_timeout_and_env_close_still_works():
    env = BlenderEnv(ECHO_SCENE, timeout=0.5)
    process = env.launcher[0].process
    try:
        env.reset(seed=0)
        process.send_signal(signal.SIGSTOP)
        with pytest.raises(InstanceTimeoutError, match="within 0.5 s"):
            env.step(env.action_space.sample())
    finally:
        env.close()  # SIGTERM cannot reach a stopped process: close escalates to SIGKILL
    assert process.poll() is not None


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from btgym.launcher import Launcher
    launcher = Launcher({scene!r}, 2)
    print(" ".join(str(i.process.pid) for i in launcher.instances), flush=True)
    {tail}
    """
)


@pytest.mark.blender
@pytest.mark.parametrize("how", ["sigkill", "exit_without_close", "exception"])
def test_no_blender_process_outlives_the_trainer(how):
    tail = {
        "sigkill": "time.sleep(60)",
        "exit_without_close": "sys.exit(0)",
        "exception": "raise RuntimeError('trainer crashed')",
    }[how]
    code = CHILD.format(root=str(ROOT), scene=ECHO_SCENE, tail=tail)
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(pid) for pid in trainer.stdout.readline().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    if how == "sigkill":
        trainer.send_signal(signal.SIGKILL)
    trainer.wait(30)
    assert wait_gone(pids, timeout=5.0) == [], f"orphaned Blender processes after {how}"


@pytest.mark.blender
def test_a_users_blend_file_and_scene_script_are_loaded(tmp_path):
    blend = tmp_path / "user.blend"
    subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import bpy
            bpy.ops.mesh.primitive_monkey_add()
            bpy.context.active_object.name = "Suzanne_user"
            bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
        """),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    script = tmp_path / "user_scene.py"
    script.write_text(
        textwrap.dedent("""
        import bpy
        import numpy as np
        from gymnasium import spaces
        from blender_side import Scene

        class UserScene(Scene):
            def __init__(self, scale=1.0):
                super().__init__()
                self.scale = scale
                self.action_space = spaces.Discrete(2)
                self.observation_space = spaces.Box(-10, 10, (3,), np.float32)

            def build(self):
                self.monkey = bpy.data.objects["Suzanne_user"]

            def reset(self, seed=None, options=None):
                super().reset(seed=seed, options=options)
                return np.array(self.monkey.location, np.float32), {}

            def step(self, action):
                self.monkey.location.x += self.scale * (1 if action else -1)
                obs = np.array(self.monkey.location, np.float32)
                return obs, 0.0, False, False, {}

            def object_names(self):
                return sorted(o.name for o in bpy.data.objects)
    """)
    )
    with BlenderEnv(f"{script}:UserScene", blend_file=str(blend), scale=0.5) as env:
        assert "Suzanne_user" in env.call("object_names")
        env.reset(seed=0)
        obs, *_ = env.step(1)
        np.testing.assert_allclose(obs, [0.5, 0.0, 0.0])


@pytest.mark.blender
def test_a_blender_binary_can_be_used_instead_of_the_bpy_module(monkeypatch, tmp_path):
    blender = tmp_path / "blender"  # an executable taking Blender's command line
    blender.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT}/tests/fake_blender.py" "$@"\n')
    blender.chmod(0o755)
    monkeypatch.setenv("BTGYM_BLENDER", str(blender))
    with BlenderEnv("envs.cube:CubeScene", width=64, height=48) as env:
        process = psutil.Process(env.launcher[0].process.pid)
        assert "--python" in process.cmdline() and "--background" in process.cmdline()
        obs, info = env.reset(seed=0)
        assert obs.shape == (48, 64, 3)
        assert env.launcher[0].pid == process.pid


def test_a_missing_blender_binary_is_a_clear_error():
    with pytest.raises(LaunchError, match="expected a Blender executable at '/nope/blender'"):
        Launcher(ECHO_SCENE, 1, blender="/nope/blender")


@pytest.mark.blender
def test_oversized_frames_are_refused_before_sending():
    with Launcher(ECHO_SCENE, 1, max_message_bytes=4096) as launcher:
        client = Client(launcher.addresses[0], timeout=10)
        assert client.hello()["max_message_bytes"] == 4096
        with pytest.raises(LimitError, match="at most 4096 bytes.*got 4.... bytes"):
            client.request("call", {"name": "array_sum", "args": [np.zeros(10_000, np.float32)]})
        small = client.request("call", {"name": "array_sum", "args": [np.ones(100, np.float32)]})
        assert small["result"] == 100.0
        client.close()


def test_launcher_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_instances >= 1"):
        Launcher(ECHO_SCENE, 0)
    with pytest.raises(ValueError, match="JSON-serializable"):
        Launcher(ECHO_SCENE, 1, scene_kwargs={"f": object()})
    assert os.environ.get("BTGYM_BLENDER") is None


def test_a_launch_removes_our_directories_of_servers_that_are_gone():
    from btgym.launcher import remove_stale_files
    from btgym.wire.frame_files import frame_directory

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    base = frame_directory()
    stale = os.path.join(base, f"btgym-frames-{gone.pid}-abc")
    live = os.path.join(base, f"btgym-frames-{os.getpid()}-abc")
    run = os.path.join(tempfile.gettempdir(), f"btgym-run-{gone.pid}-abc")
    for path in (stale, live, run):
        os.mkdir(path, 0o700)
        Path(path, "frame-0-0123456789abcdef.tif").write_bytes(b"pixels")
    try:
        assert remove_stale_files() >= 2
        assert not os.path.exists(stale) and not os.path.exists(run)
        assert os.path.exists(live)  # a live process's files stay
    finally:
        for path in (stale, live, run):
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.blender
def test_a_mistyped_scene_keyword_is_named_first_with_a_suggestion():
    with pytest.raises(LaunchError) as caught:
        Launcher("envs.cube:CubeScene", 1, scene_kwargs={"widht": 64})
    first_line = str(caught.value).splitlines()[0]
    assert "TypeError: CubeScene() got unexpected keyword arguments ['widht']" in first_line
    assert "'widht': did you mean 'width'?" in first_line
