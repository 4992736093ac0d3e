"""The Ray launcher backend (``btgym[ray]``): each Blender server lives in a Ray actor.

Ray places the actors by their declared resources (``num_cpus``, optional ``num_gpus``)
anywhere in the cluster and restarts an actor whose process dies (``max_restarts``);
the data path stays ZeroMQ, directly between the trainer and each Blender server. An
actor on the trainer's machine binds to loopback; on another machine it binds to its
node's address with CURVE: it creates the server keys there and allow-lists the
trainer's public key, so the trainer's traffic is authenticated and encrypted.

    envs = BlenderVectorEnv("envs.cube:CubeScene", 8, launch=LaunchConfig(backend="ray"))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import psutil
import ray
import zmq

from btgym import _ray_watchdog
from btgym._launch_config import DEFAULTS
from btgym.errors import ConfigError, LaunchError
from btgym.launcher import InstanceSet, Launcher
from btgym.wire.security import ClientKeys, generate_keys


def _remove_keys(path: Path, owner: int) -> None:
    """Delete a temporary key directory, but only in the process that created it."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


class _TemporaryKeys:
    """A temporary directory holding the key pair ``name`` (its secret, too).

    Deleted on :meth:`close`, when garbage-collected or at interpreter exit, and only by
    the process that made it: a forked child inherits the object, not the deletion.
    """

    def __init__(self, prefix: str, name: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._remove = weakref.finalize(self, _remove_keys, self.path, os.getpid())
        self.public, self.secret = generate_keys(self.path, name)

    def close(self) -> None:
        self._remove()


class _BlenderServerActor:
    """Runs one Blender server process (through a local :class:`Launcher`) on its node."""

    def __init__(
        self,
        scene: str,
        index: int,
        seed: int,
        scene_kwargs: dict[str, Any],
        blend_file: str | None,
        start_timeout: float,
        trainer_ip: str,
        trainer_public_key: bytes | None,
        server_options: dict[str, Any] | None = None,
    ) -> None:
        self.node_ip = ray.util.get_node_ip_address()
        self.niceness = _restore_priority()
        self.server_public: bytes | None = None
        self.keys: _TemporaryKeys | None = None
        options: dict[str, Any] = {}
        if self.node_ip != trainer_ip:  # off the trainer's machine: CURVE, always
            if trainer_public_key is None:
                raise LaunchError("expected the trainer's public key for a remote instance")
            self.keys = _TemporaryKeys("btgym-keys-", "server")
            keys, public, secret = self.keys.path, self.keys.public, self.keys.secret
            (keys / "clients").mkdir()
            (keys / "clients" / "trainer.key").write_text(
                'metadata\ncurve\n    public-key = "' + trainer_public_key.decode() + '"\n'
            )
            self.server_public = public.read_text().split('"')[1].encode()
            options = {
                "bind": f"tcp://{self.node_ip}:0",
                "curve_secret": secret,
                "curve_clients": keys / "clients",
            }
        self.launcher = Launcher(
            scene,
            1,
            scene_kwargs=scene_kwargs,
            seed=seed,
            blend_file=blend_file,
            start_timeout=start_timeout,
            first_index=index,
            **options,
            **(server_options or {}),
        )

    def info(self) -> dict[str, Any]:
        instance = self.launcher[0]
        return {
            "address": instance.address,
            "pid": instance.pid,
            "node_ip": self.node_ip,
            "server_public": self.server_public,
            "niceness": self.niceness,
        }

    def is_alive(self) -> bool:
        return self.launcher[0].is_alive()

    def log_tail(self, lines: int = 30) -> str:
        return self.launcher[0].log_tail(lines)

    def restart(self) -> dict[str, Any]:
        self.launcher.restart(0)
        return self.info()

    def close(self) -> None:
        self.launcher.close()
        if self.keys is not None:
            self.keys.close()


def _restore_priority() -> int:
    """Undo Ray's worker niceness (15 by default) for this actor and its Blender server.

    Ray starts worker processes niced, so that its own daemons stay responsive; a render
    server inheriting that loses CPU to everything else on the node (measured: ~5 % of
    the throughput with 2 instances on 2 cores). Raising priority back needs privilege
    (root, CAP_SYS_NICE or RLIMIT_NICE); without it the niceness stays and is returned.
    """
    current = os.nice(0)
    if current > 0:
        with contextlib.suppress(PermissionError):
            os.nice(-current)
    return os.nice(0)


class RayInstance:
    """The trainer's view of one actor-hosted server (the :class:`Instance` interface)."""

    def __init__(
        self,
        index: int,
        seed: int,
        actor: Any,
        info: dict[str, Any],
        timeout: float,
        trainer_ip: str | None = None,
    ) -> None:
        self.index, self.seed, self.actor, self.timeout = index, seed, actor, timeout
        self.trainer_ip = trainer_ip
        self._probe_sent = 0.0
        self._update(info)

    def _update(self, info: dict[str, Any]) -> None:
        self.address, self.pid = info["address"], info["pid"]
        self.node_ip, self.server_public = info["node_ip"], info["server_public"]
        self._probe: Any = None  # an is_alive call to the actor in flight
        self._alive = True

    def is_alive(self) -> bool:
        """Whether the server process runs; never blocks the trainer.

        Streams ask several times a second. On the trainer's machine the process is
        looked up directly; elsewhere the answer is that of the last completed call to
        the actor (a call that takes longer than ``timeout`` counts as dead).
        """
        if self.node_ip == self.trainer_ip:
            try:
                return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False
        now = time.monotonic()
        if self._probe is None:
            self._probe, self._probe_sent = self.actor.is_alive.remote(), now
        ready, _ = ray.wait([self._probe], timeout=0)
        if ready:
            try:
                self._alive = bool(ray.get(self._probe))
            except Exception:  # noqa: BLE001 - a dead, restarting or unreachable actor
                self._alive = False
            self._probe = None
        elif now - self._probe_sent > self.timeout:
            self._alive = False
        return self._alive

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the actor's server log, or why it is unavailable."""
        try:
            return str(ray.get(self.actor.log_tail.remote(lines), timeout=self.timeout))
        except Exception as exc:  # noqa: BLE001 - the actor (and its log) may be gone
            return f"(log unavailable: {type(exc).__name__})"


class RayLauncher(InstanceSet):
    """The :class:`~btgym.launcher.Launcher` interface, with instances in Ray actors.

    ``num_cpus``/``num_gpus`` are each actor's resource request; ``max_restarts`` how
    often Ray recreates a dead actor. Connects to a running Ray cluster, or starts a
    local one (``ray.init``) if none is up. ``curve`` holds the trainer's keys for
    instances on other machines (created when not given). ``server_options``: more
    :class:`~btgym.launcher.Launcher` arguments for each actor's server
    (:meth:`btgym._launch_config.LaunchConfig.server_options`: restart limits, ...).
    """

    def __init__(
        self,
        scene: str,
        num_instances: int = 1,
        *,
        scene_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        blend_file: str | None = None,
        start_timeout: float = DEFAULTS.start_timeout,
        num_cpus: float = DEFAULTS.num_cpus,
        num_gpus: float = DEFAULTS.num_gpus,
        max_restarts: int = DEFAULTS.actor_max_restarts,
        curve: ClientKeys | None = None,
        server_options: dict[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        if unused.pop("backend", "ray") != "ray" or unused:
            raise ConfigError(f"unexpected options for the ray backend: {sorted(unused)}")
        if not ray.is_initialized():
            _start_local_cluster()
        self.scene, self.seeds = scene, [(seed or 0) + i for i in range(num_instances)]
        self.trainer_ip = ray.util.get_node_ip_address()
        # The trainer's key pair lives in memory only: no secret file outlives the trainer.
        if curve is None:
            self.trainer_public, self._trainer_secret = zmq.curve_keypair()
        else:
            self.trainer_public, self._trainer_secret = curve.public, curve.secret
        actor_class = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts)(
            _BlenderServerActor
        )
        self._closed = False
        self.start_timeout = start_timeout
        # Handles, typed Any as _RayInstance.actor: Ray types ``handle.method.remote`` only
        # for methods decorated with @ray.method.
        self.actors: list[Any] = [
            actor_class.remote(
                scene,
                i,
                s,
                dict(scene_kwargs or {}),
                blend_file,
                start_timeout,
                self.trainer_ip,
                self.trainer_public,
                server_options,
            )
            for i, s in enumerate(self.seeds)
        ]
        try:
            infos = ray.get([a.info.remote() for a in self.actors], timeout=start_timeout)
        except Exception as exc:
            self.close()
            raise LaunchError(
                f"expected {num_instances} Ray actors to start a server: {exc}"
            ) from exc
        niced = sorted({info.get("niceness") or 0 for info in infos} - {0})
        if niced:
            warnings.warn(
                f"btgym: Blender servers in Ray actors run at niceness {niced} (Ray's "
                "worker_niceness) and lose CPU to other processes; start the cluster with "
                "RAY_worker_niceness=0 (or ray.init(_system_config={'worker_niceness': 0}))",
                stacklevel=2,
            )
        self.instances = [
            RayInstance(i, s, a, info, 10.0, self.trainer_ip)
            for i, (s, a, info) in enumerate(zip(self.seeds, self.actors, infos, strict=True))
        ]

    def restart(self, index: int) -> RayInstance:
        """A fresh server for instance ``index``: in the same actor, or in the actor Ray
        recreated after its process died.
        """
        instance = self.instances[index]
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                info = ray.get(instance.actor.restart.remote(), timeout=self.start_timeout)
                break
            except ray.exceptions.RayActorError:
                # The actor died; Ray is recreating it (its __init__ starts a new server).
                try:
                    info = ray.get(instance.actor.info.remote(), timeout=self.start_timeout)
                    break
                except ray.exceptions.RayActorError as exc:
                    if time.monotonic() > deadline:
                        raise LaunchError(f"expected actor {index} to come back: {exc}") from exc
                    time.sleep(0.5)
        instance._update(info)
        return instance

    def client_keys(self, instance: RayInstance) -> ClientKeys | None:
        """The trainer's CURVE keys for a remote instance (None on the trainer's node)."""
        if instance.server_public is None:
            return None
        return ClientKeys(self.trainer_public, self._trainer_secret, instance.server_public)

    def close(self) -> None:
        """Close and kill every actor; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # a dead actor has nothing left to close
                ray.get(actor.close.remote(), timeout=10)
            ray.kill(actor, no_restart=True)


#: The watchdog of the local cluster this process started (kept alive with the process).
_WATCHDOG: list[Any] = []


def _start_local_cluster() -> None:
    """``ray.init()`` a cluster of our own, and a watchdog that ends it with this process.

    Workers (and so the Blender servers) run at normal priority. The watchdog
    (:mod:`btgym._ray_watchdog`) kills the cluster's processes once this process is
    gone, also after a SIGKILL, which runs no ``ray.shutdown()``.
    """
    before = {child.pid for child in psutil.Process().children()}
    ray.init(
        ignore_reinit_error=True,
        log_to_driver=False,
        include_dashboard=False,
        _system_config={"worker_niceness": 0},
    )
    started = [child.pid for child in psutil.Process().children() if child.pid not in before]
    _WATCHDOG.append(_ray_watchdog.start(started))


__all__ = ["RayInstance", "RayLauncher"]
