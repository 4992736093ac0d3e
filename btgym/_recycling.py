"""Restarts and recycling of launched instances, counted in one place.

:class:`InstanceLives` keeps, per instance, the episodes its current process ran and
how often it was replaced, and holds the one rule for replacing a healthy process
(leak protection: after N episodes or above an RSS limit). The vector env and the
stream ask it; ``btgym serve`` restarts dead instances with :func:`restart_dead`.
"""

from __future__ import annotations

from typing import Any

import psutil

from btgym._connection import Connection
from btgym.client import Client


class InstanceLives:
    """Episodes and restarts of ``count`` launched instances, and when to recycle one.

    ``after_episodes`` / ``rss_mb``: replace an instance's process after that many
    episodes, or when it uses more than that many MiB (None: never). Servers that the
    connection did not launch are never recycled.
    """

    def __init__(
        self, count: int, after_episodes: int | None = None, rss_mb: float | None = None
    ) -> None:
        self.after_episodes, self.rss_mb = after_episodes, rss_mb
        #: Episodes each instance's current process ended.
        self.episodes = [0] * count
        #: Replacements of each instance (restarts and recycles).
        self.restarts = [0] * count

    def episode_ended(self, index: int) -> None:
        """Count an episode that instance ``index`` ended."""
        self.episodes[index] += 1

    def fresh_processes(self) -> None:
        """Every instance runs a new process (a relaunch): episodes count from 0 again."""
        self.episodes = [0] * len(self.episodes)

    def recycle_due(self, connection: Connection, index: int) -> bool:
        """Leak protection: whether launched instance ``index`` should get a fresh process."""
        if connection.launcher is None:
            return False
        if self.after_episodes and self.episodes[index] >= self.after_episodes:
            return True
        if self.rss_mb:
            used = rss_mb(connection.launcher[index])
            return used is not None and used > self.rss_mb
        return False

    def restart(
        self, connection: Connection, index: int, why: BaseException | str, env_id: Any = None
    ) -> Client:
        """Replace instance ``index`` by a fresh process (:meth:`Connection.restart`), counted.

        Every process started counts, including those that died or hung while starting
        (nested faults, which the launcher retries within its restart limits).
        """
        before = _launches(connection, index)
        client = connection.restart(index, why, env_id=env_id)
        after = _launches(connection, index)
        self.restarts[index] += 1 if before is None or after is None else max(1, after - before)
        self.episodes[index] = 0
        return client


def _launches(connection: Connection, index: int) -> int | None:
    """Restarts of instance ``index`` the launcher counted so far (None: it does not count)."""
    counts = getattr(connection.launcher, "total_restarts", None)
    return None if counts is None else int(counts[index])


def rss_mb(instance: Any) -> float | None:
    """The resident memory of a launched instance's process in MiB, if it can be measured.

    Only processes on this machine: a pid from another node names some other process.
    """
    pid = getattr(instance, "pid", None)
    node, here = getattr(instance, "node_ip", None), getattr(instance, "trainer_ip", None)
    if not pid or node != here:
        return None
    try:
        return float(psutil.Process(pid).memory_info().rss / 2**20)
    except psutil.Error:
        return None


def restart_dead(launcher: Any) -> list[int]:
    """Restart each instance of ``launcher`` whose process ended; their indices."""
    dead = [instance.index for instance in launcher.instances if not instance.is_alive()]
    for index in dead:
        launcher.restart(index)
    return dead


__all__ = ["InstanceLives", "restart_dead", "rss_mb"]
