"""Open clients to Blender instances: launched here, or already running at given addresses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gymnasium import spaces

from btgym.client import Client
from btgym.errors import SpaceError
from btgym.launcher import Launcher
from btgym.wire.security import ClientKeys
from btgym.wire.space_codec import space_from_data


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


def connect(
    scene: str | None,
    num_instances: int,
    *,
    addresses: Sequence[str] | None = None,
    seed: int | None = None,
    blend_file: str | None = None,
    blender: str | None = None,
    timeout: float = 30.0,
    start_timeout: float = 120.0,
    scene_kwargs: dict[str, Any] | None = None,
    curve: ClientKeys | None = None,
    launch_options: dict[str, Any] | None = None,
) -> Connection:
    """Launch ``num_instances`` of ``scene``, or connect to ``addresses``; shake hands with all.

    Every instance must describe the same spaces; a mismatch is a :class:`SpaceError`.
    ``curve``: client keys for CURVE servers. ``launch_options``: more
    :class:`~btgym.launcher.Launcher` arguments (``bind``, ``curve_secret``, ...).
    """
    if (scene is None) == (addresses is None):
        raise ValueError("expected exactly one of scene= (to launch) or addresses= (to connect)")
    launcher: Any = None
    options = dict(launch_options or {})
    backend = options.pop("backend", "local")
    if addresses is not None:
        if scene_kwargs or blend_file:
            given = sorted(scene_kwargs or {}) or ["blend_file"]
            raise ValueError(
                "scene kwargs and blend_file configure launched instances; servers at "
                f"{list(addresses)} are already built, got {given}"
            )
        clients = [
            Client(address, timeout, instance=i, curve=curve) for i, address in enumerate(addresses)
        ]
    else:
        if backend == "ray":
            from btgym.ray_backend import RayLauncher

            launcher = RayLauncher(
                str(scene),
                num_instances,
                scene_kwargs=scene_kwargs,
                seed=seed,
                blend_file=blend_file,
                start_timeout=start_timeout,
                curve=curve,
                **options,
            )
        elif backend == "local":
            launcher = Launcher(
                str(scene),
                num_instances,
                scene_kwargs=scene_kwargs,
                seed=seed,
                blend_file=blend_file,
                blender=blender,
                start_timeout=start_timeout,
                **options,
            )
        else:
            raise ValueError(f"expected backend 'local' or 'ray', got {backend!r}")
        clients = [
            Client(
                str(instance.address),
                timeout,
                instance=instance.index,
                is_alive=instance.is_alive,
                log_tail=instance.log_tail,
                curve=instance_keys(launcher, instance, curve),
            )
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


def instance_keys(launcher: Any, instance: Any, default: ClientKeys | None) -> ClientKeys | None:
    """The CURVE keys to reach ``instance``: the backend's own (Ray), else ``default``."""
    keys_for = getattr(launcher, "client_keys", None)
    return keys_for(instance) if keys_for is not None else default


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


__all__ = ["Connection", "connect", "instance_keys"]
