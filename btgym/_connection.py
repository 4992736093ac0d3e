"""Open clients to Blender instances: launched here, or already running at given addresses.

A :class:`Connection` also owns how a launched instance is replaced: a fresh process,
a handshaken client, a notice on the ``btgym`` logger saying why
(:mod:`btgym._recycling` counts the replacements and decides when to recycle).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gymnasium import spaces

from btgym._launch_config import LaunchConfig, resolve_launch
from btgym.client import Client
from btgym.errors import ConfigError, InstanceDiedError, InstanceTimeoutError, SpaceError
from btgym.launcher import Launcher
from btgym.wire.security import ClientKeys
from btgym.wire.space_codec import space_from_data

#: Where restart notices go (warnings for failures, info for recycling).
logger = logging.getLogger("btgym")


@dataclass
class Connection:
    """Clients to N instances of one scene, their handshakes, and the launcher if we own it."""

    clients: list[Client]
    hellos: list[dict[str, Any]]
    launcher: Launcher | None
    action_space: spaces.Space
    observation_space: spaces.Space
    owner_pid: int = field(default_factory=os.getpid)

    def close(self) -> None:
        """Ask launched instances to stop, close every client, reap the processes (idempotent).

        In a forked child nothing is sent or stopped: the instances are the parent's.
        """
        if os.getpid() != self.owner_pid:
            for client in self.clients:
                client.close()
            if self.launcher is not None:
                self.launcher.close()
            return
        try:
            if self.launcher is not None:
                _close_servers(self.clients)
        finally:
            for client in self.clients:
                client.close()
            if self.launcher is not None:
                self.launcher.close()

    def restart(self, index: int, why: BaseException | str, env_id: Any = None) -> Client:
        """Replace launched instance ``index`` by a fresh process; return a client to it.

        The new client has shaken hands (its frame-file reader is set up) and replaces
        the old one, which is closed. A fresh process that dies or hangs while starting or
        shaking hands is replaced again, within the launcher's restart limits. ``why``: the
        error that made the instance unusable, or a reason such as ``"recycled"``; the
        notice on the ``btgym`` logger says it and how the old process ended. ``env_id``:
        the id the caller knows the instance by.
        """
        launcher = self.launcher
        if launcher is None:
            raise ConfigError(
                f"expected a launched instance to restart, got instance {index} at "
                f"{self.clients[index].address} that this connection did not start"
            )
        ended = _exit_description(launcher[index])
        old = self.clients[index]
        old.close()
        while True:  # the launcher counts every try against the instance's restart limits
            instance = launcher.restart(index)
            client = _launched_client(launcher, instance, old.timeout, old.curve)
            try:
                client.hello()
                break
            except (InstanceDiedError, InstanceTimeoutError) as fault:  # a nested fault
                client.close()
                logger.warning(
                    "btgym: instance %s failed right after restarting (%s); restarting it again",
                    index if env_id is None else env_id,
                    type(fault).__name__,
                )
            except BaseException:
                client.close()
                raise
        self.clients[index] = client
        _log_restart(index if env_id is None else env_id, why, ended)
        return client


def connect(
    scene: str | None,
    num_instances: int,
    *,
    addresses: Sequence[str] | None = None,
    launch: LaunchConfig | None = None,
    scene_kwargs: dict[str, Any] | None = None,
    launch_options: dict[str, Any] | None = None,
    **launch_keywords: Any,
) -> Connection:
    """Launch ``num_instances`` of ``scene``, or connect to ``addresses``; shake hands with all.

    Every instance must describe the same spaces; a mismatch is a :class:`SpaceError`.
    ``launch``: the :class:`~btgym._launch_config.LaunchConfig` the entry point resolved
    (backend, timeouts, keys, restart limits, ...). ``launch_options`` and
    ``launch_keywords`` (``seed=``, ``timeout=``, ...) serve callers of the deprecated
    ``btgym.connection.connect`` (see :func:`~btgym._launch_config.resolve_launch`). With
    ``addresses`` only ``timeout`` and ``curve`` matter.
    """
    if (scene is None) == (addresses is None):
        raise ConfigError("expected exactly one of scene= (to launch) or addresses= (to connect)")
    config = resolve_launch(launch, launch_options, **launch_keywords)
    launcher: Any = None
    if addresses is not None:
        if scene_kwargs or config.blend_file:
            given = sorted(scene_kwargs or {}) or ["blend_file"]
            raise ConfigError(
                "scene kwargs and blend_file configure launched instances; servers at "
                f"{list(addresses)} are already built, got {given}"
            )
        clients = [
            Client(address, config.timeout, instance=i, curve=config.curve)
            for i, address in enumerate(addresses)
        ]
    else:
        launcher = launch_instances(str(scene), num_instances, config, scene_kwargs)
        clients = [
            _launched_client(launcher, instance, config.timeout, config.curve)
            for instance in launcher.instances
        ]
    try:
        hellos = [client.hello() for client in clients]
        action_space = space_from_data(hellos[0]["action_space"])
        observation_space = space_from_data(hellos[0]["observation_space"])
        for i, hello in enumerate(hellos[1:], start=1):
            if (
                space_from_data(hello["action_space"]) != action_space
                or space_from_data(hello["observation_space"]) != observation_space
            ):
                raise SpaceError(
                    f"expected every instance to have instance 0's spaces {action_space} / "
                    f"{observation_space}, instance {i} ({hello.get('name')}) differs"
                )
    except BaseException:
        for client in clients:
            client.close()
        if launcher is not None:
            launcher.close()
        raise
    return Connection(clients, hellos, launcher, action_space, observation_space)


def launch_instances(
    scene: str,
    num_instances: int,
    config: LaunchConfig,
    scene_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Start ``num_instances`` of ``scene`` on ``config.backend``; its launcher, all ready."""
    if config.backend == "ray":
        from btgym._ray_backend import RayLauncher

        return RayLauncher(
            scene,
            num_instances,
            scene_kwargs=scene_kwargs,
            seed=config.seed,
            blend_file=config.blend_file,
            start_timeout=config.start_timeout,
            num_cpus=config.num_cpus,
            num_gpus=config.num_gpus,
            max_restarts=config.actor_max_restarts,
            curve=config.curve,
            server_options=config.server_options(),
        )
    return Launcher(scene, num_instances, scene_kwargs=scene_kwargs, **config.launcher_options())


def instance_keys(launcher: Any, instance: Any, default: ClientKeys | None) -> ClientKeys | None:
    """The CURVE keys to reach ``instance``: the backend's own (Ray), else ``default``."""
    keys_for = getattr(launcher, "client_keys", None)
    return keys_for(instance) if keys_for is not None else default


def _launched_client(
    launcher: Any, instance: Any, timeout: float, curve: ClientKeys | None
) -> Client:
    """A client to a launched instance: it knows the process's liveness and log."""
    return Client(
        str(instance.address),
        timeout,
        instance=instance.index,
        is_alive=instance.is_alive,
        log_tail=instance.log_tail,
        curve=instance_keys(launcher, instance, curve),
    )


def _exit_description(instance: Any) -> str:
    """How an instance's process ended, where the backend can tell (``""`` otherwise)."""
    describe = getattr(instance, "exit_description", None)
    return describe() if describe is not None else ""


def _log_restart(name: Any, why: BaseException | str, ended: str) -> None:
    """The restart notice: a warning when the instance failed, info when it was recycled."""
    if isinstance(why, BaseException):
        first_line = (str(why).splitlines() or [""])[0]
        process = f"; the old process {ended}" if ended else ""
        logger.warning(
            "btgym: restarted instance %s after %s: %s%s",
            name,
            type(why).__name__,
            first_line,
            process,
        )
    else:
        logger.info("btgym: restarted instance %s (%s)", name, why)


def _close_servers(clients: list[Client]) -> None:
    """Send ``close`` to every open client at once; errors are ignored (we reap anyway)."""
    sent = []
    for client in clients:
        if not client.closed and client.pending is None:
            try:
                client.send("close")
                sent.append(client)
            except Exception:  # noqa: BLE001 - a broken instance is terminated by the launcher
                continue
    for client in sent:
        try:
            client.recv(timeout=2.0)
        except Exception:  # noqa: BLE001 - same: best effort before the launcher terminates
            continue


__all__ = ["Connection", "connect", "instance_keys", "launch_instances"]
