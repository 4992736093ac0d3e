"""The Ray backend on a local Ray cluster started by the test (2 CPUs)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import psutil
import pytest

ray = pytest.importorskip("ray")  # btgym[ray]; installed by `make test`

from btgym import BlenderVectorEnv  # noqa: E402
from btgym.data import StreamDataset  # noqa: E402
from tests.conftest import ECHO_SCENE, ROOT  # noqa: E402

RAY = {"backend": "ray", "num_cpus": 0.5}

pytestmark = [pytest.mark.slow, pytest.mark.blender, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_vector_env_runs_on_instances_in_ray_actors_and_survives_a_killed_actor():
    with BlenderVectorEnv(
        ECHO_SCENE, 2, seed=0, timeout=15, autoreset_mode="SameStep", launch_options=RAY
    ) as envs:
        launcher = envs.connection.launcher
        assert type(launcher).__name__ == "RayLauncher"
        envs.reset(seed=0)
        _, _, _, _, infos = envs.step(envs.action_space.sample())
        assert infos["counter"].tolist() == [1, 1]
        # Kill the actor's worker process: Ray recreates the actor, btgym reconnects.
        actor_pid = ray.get(launcher.actors[1].__ray_call__.remote(lambda self: os.getpid()))
        server_pid = launcher[1].pid
        os.kill(actor_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # the server dies with its actor (parent-death signal)
        while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
            if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        _, _, _, truncated, infos = envs.step(envs.action_space.sample())
        assert truncated.tolist() == [False, True] and infos["instance_restarted"][1]
        _, _, _, truncated, infos = envs.step(envs.action_space.sample())
        assert not truncated.any() and infos["counter"].tolist()[0] == 3


def test_a_stream_runs_on_instances_in_ray_actors():
    dataset = StreamDataset(
        "btgym/Cube-v0",
        2,
        items=12,
        seed=0,
        launch_options=RAY,
        env_kwargs={"width": 64, "height": 48},
    )
    items = list(dataset)
    assert len({(i["env_id"], i["episode"], i["step"]) for i in items}) == 12
    assert {i["env_id"] for i in items} == {0, 1}


def test_instance_health_checks_never_block_and_see_a_dead_server(monkeypatch):
    import ray

    from btgym._ray_backend import RayInstance, RayLauncher

    launcher = RayLauncher(ECHO_SCENE, 1, seed=0, num_cpus=0.5)
    try:
        local = launcher[0]
        assert local.node_ip == local.trainer_ip and local.is_alive()
        # An instance seen from another machine asks its actor, without waiting for it.
        remote = RayInstance(0, 0, local.actor, {**_info(local), "node_ip": "192.0.2.1"}, 10.0, "x")
        # Never a blocking round trip: every wait on the actor polls (timeout 0).
        waits: list[object] = []
        real_wait = ray.wait

        def polling_wait(refs, *args, **kwargs):
            waits.append(kwargs.get("timeout", "blocking"))
            return real_wait(refs, *args, **kwargs)

        monkeypatch.setattr(ray, "wait", polling_wait)
        answers, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and len(answers) < 3:
            answers.append(remote.is_alive())
            time.sleep(0.05)
        assert all(answers) and len(answers) == 3
        assert waits and set(waits) == {0}
        monkeypatch.setattr(ray, "wait", real_wait)
        os.kill(local.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (local.is_alive() or remote.is_alive()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not local.is_alive() and not remote.is_alive()
    finally:
        launcher.close()


def _info(instance) -> dict:
    return {
        "address": instance.address,
        "pid": instance.pid,
        "node_ip": instance.node_ip,
        "server_public": instance.server_public,
    }


def test_blender_servers_in_actors_are_not_left_at_rays_worker_niceness():
    from btgym._ray_backend import RayLauncher

    # The fixture's cluster uses Ray's default worker niceness (15).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        launcher = RayLauncher(ECHO_SCENE, 1, seed=0, num_cpus=0.5)
    try:
        server_nice = psutil.Process(launcher[0].pid).nice()
        warned = any("niceness" in str(w.message) for w in caught)
        if os.geteuid() == 0:  # privileged: priority restored for actor and server
            assert server_nice == 0 and not warned
        else:  # unprivileged: stays niced, and the user is told how to fix the cluster
            assert server_nice > 0 and warned
    finally:
        launcher.close()


TRAINER = """
import json, os, sys, time
from btgym._ray_backend import RayLauncher
launcher = RayLauncher("tests.scenes.echo:EchoScene", 2, seed=0, num_cpus=0.5)
print(json.dumps({"servers": [instance.pid for instance in launcher]}), flush=True)
time.sleep(600)
"""


def test_a_killed_trainer_leaves_no_ray_process_and_no_key_file(tmp_path):
    keys_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "btgym-*keys-*")))
    trainer = subprocess.Popen(
        [sys.executable, "-c", TRAINER],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "trainer.err").open("w"),
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = trainer.stdout.readline()  # its cluster and both servers are up
        assert line, (tmp_path / "trainer.err").read_text()[-3000:]
        servers = json.loads(line)["servers"]
        family = psutil.Process(trainer.pid).children(recursive=True)
        names = " ".join(p.name() for p in family)
        assert "raylet" in names and "gcs_server" in names and len(servers) == 2
        assert {p.pid for p in family} >= set(servers)
        # No secret of the trainer's is on disk while it runs.
        assert set(glob.glob(os.path.join(tempfile.gettempdir(), "btgym-*keys-*"))) == keys_before
    finally:
        trainer.kill()
        trainer.wait(30)
    deadline = time.monotonic() + 60
    while _running(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(family), [" ".join(p.cmdline())[:120] for p in _running(family)]
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "btgym-*keys-*"))) == keys_before


def _running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``processes`` that still run (not gone, not zombies)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:
            continue
    return alive
