"""A watchdog that ends the local Ray cluster a trainer started when the trainer dies.

``ray.init()`` without an address starts the cluster's processes (GCS, raylet,
dashboard and runtime-env agents, workers holding btgym's actors) as children of the
trainer. A trainer killed by SIGKILL runs no shutdown: Ray's daemons notice late, and
its agents were seen orphaned for over a minute. :func:`start` launches this module as
a separate process (its own session, so a terminal's Ctrl-C does not reach it); it
polls its parent, keeps the list of the cluster's processes up to date while the
trainer lives, and kills every one of them (checked by creation time, so no reused
pid is hit) as soon as the trainer is gone, however it ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

#: Seconds between looks at the parent (and at the cluster's processes).
POLL_INTERVAL = 0.25


def start(cluster_pids: Iterable[int]) -> subprocess.Popen[bytes]:
    """Watch this process; kill ``cluster_pids`` and their descendants when it dies."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    environment = {**os.environ, "PYTHONPATH": package_parent}
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "btgym._ray_watchdog", str(os.getpid())]
        + [str(pid) for pid in cluster_pids],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env=environment,
    )


def _refresh(known: dict[int, float], roots: list[int]) -> None:
    """Add the roots and all their descendants, by pid, with their creation times."""
    for pid in roots:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                known.setdefault(process.pid, process.create_time())
        except psutil.Error:
            continue


def _kill(known: dict[int, float]) -> None:
    """SIGKILL every process in ``known`` that is still the one recorded."""
    for pid, created in known.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.create_time() == created:
                process.kill()


def main(argv: list[str]) -> int:
    trainer, roots = int(argv[0]), [int(pid) for pid in argv[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    known: dict[int, float] = {}
    while os.getppid() == trainer:
        _refresh(known, roots)
        time.sleep(POLL_INTERVAL)
    _refresh(known, roots)  # whatever was started since, while they still hang together
    for pid in list(known):
        with contextlib.suppress(psutil.Error):  # orphans the roots left (reparented)
            for child in psutil.Process(pid).children(recursive=True):
                known.setdefault(child.pid, child.create_time())
    _kill(known)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
