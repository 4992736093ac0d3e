"""Soak test: stream for a long time while instances are killed (SIGKILL) or hung (SIGSTOP).

Counts items, duplicates and gaps (an episode's steps must run 0, 1, 2, ... without
holes), measures recovery time (from the fault to the instance's next item) and samples
the RSS of the Blender processes. Prints a Markdown report.

    python benchmarks/soak.py --minutes 20 --fault-every 60
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym.data import StreamDataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--max-rate", type=float, default=30.0, help="items/s consumed")
    args = parser.parse_args()
    rng = random.Random(0)
    dataset = StreamDataset(
        "btgym/Cube-v0",
        args.instances,
        seed=0,
        timeout=args.timeout,
        env_kwargs={"width": 160, "height": 128, "max_episode_steps": 200},
    )
    stream = iter(dataset)
    first = next(stream)
    (active,) = dataset.streams
    launcher = active.connection.launcher
    keys: set[tuple[int, int, int]] = set()
    duplicates = 0
    last_step: dict[tuple[int, int], int] = {}
    gaps = 0
    faults: list[tuple[str, float, int]] = []
    recoveries: list[float] = []
    pending_fault: dict[int, tuple[float, int]] = {}
    rss_samples: list[tuple[float, float]] = []
    started = time.monotonic()
    next_fault = started + args.fault_every
    next_sample = started
    items = 0
    item = first
    while time.monotonic() - started < args.minutes * 60:
        if items:
            time.sleep(1.0 / args.max_rate)  # a trainer working on each item
            item = next(stream)
        items += 1
        key = (item["env_id"], item["episode"], item["step"])
        if key in keys:
            duplicates += 1
        keys.add(key)
        episode = (item["env_id"], item["episode"])
        if (episode in last_step and item["step"] != last_step[episode] + 1) or (
            episode not in last_step and item["step"] != 0
        ):
            gaps += 1
            print(f"gap at {key}: previous step {last_step.get(episode)}", file=sys.stderr)
        last_step[episode] = item["step"]
        fault = pending_fault.get(item["env_id"])
        if fault is not None and item["episode"] > fault[1]:  # the restarted instance's first
            recoveries.append(time.monotonic() - fault[0])
            del pending_fault[item["env_id"]]
        now = time.monotonic()
        if now >= next_fault:
            victim = rng.randrange(args.instances)
            how = rng.choice(["SIGKILL", "SIGSTOP"])
            if victim not in pending_fault and launcher[victim].is_alive():
                os.kill(launcher[victim].process.pid, getattr(signal, how))
                faults.append((how, now - started, victim))
                pending_fault[victim] = (now, active.episode[victim])
            next_fault = now + args.fault_every
        if now >= next_sample:
            rss = sum(
                psutil.Process(i.process.pid).memory_info().rss
                for i in launcher.instances
                if i.is_alive()
            )
            rss_samples.append(((now - started) / 60, rss / 2**20))
            next_sample = now + 60
    elapsed = time.monotonic() - started
    del stream
    print(
        f"command: python benchmarks/soak.py --minutes {args.minutes:g} "
        f"--fault-every {args.fault_every:g} --instances {args.instances} "
        f"--max-rate {args.max_rate:g}\n"
    )
    print("| figure | value |\n|---|---|")
    print(f"| duration | {elapsed / 60:.1f} min |")
    print(f"| items delivered | {items} ({items / elapsed:.1f}/s) |")
    print(
        f"| faults injected | {len(faults)} "
        f"({sum(f[0] == 'SIGKILL' for f in faults)} SIGKILL, "
        f"{sum(f[0] == 'SIGSTOP' for f in faults)} SIGSTOP) |"
    )
    print(f"| restarts | {active.restarts} |")
    print(f"| items duplicated | {duplicates} |")
    print(f"| gaps inside episodes (lost items) | {gaps} |")
    if recoveries:
        print(
            f"| recovery time (fault to next item), median / max | "
            f"{statistics.median(recoveries):.2f} s / {max(recoveries):.2f} s |"
        )
    print(
        "\nRSS of all Blender instances (MiB) by minute: "
        + ", ".join(f"{m:.0f}: {r:.0f}" for m, r in rss_samples)
    )


if __name__ == "__main__":
    main()
