"""Images/s with instances placed through Ray vs the local launcher, side by side.

    python benchmarks/ray_scaling.py [--rounds 3] [--items 300]

Streams Cube-v0 frames (StreamDataset, in-process) from 1 and 2 instances; rounds
alternate between the backends, in ABBA order. The data path is the same ZeroMQ
connection either way, so the difference is what Ray's placement and actor processes
cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym.data import StreamDataset  # noqa: E402

FRAME = {"width": 640, "height": 512}


def rate(backend: str, n: int, items: int) -> float:
    options = {"backend": "ray", "num_cpus": 1} if backend == "ray" else {}
    warm = 20
    dataset = StreamDataset(
        "btgym/Cube-v0", n, items=warm + items, seed=0, env_kwargs=FRAME, launch_options=options
    )
    started = None
    for count, _ in enumerate(dataset, start=1):
        if count == warm:
            started = time.perf_counter()
    return items / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print("| instances | local frames/s | Ray frames/s | Ray / local |\n|---|---|---|---|")
    for n in (1, 2):
        rates: dict[str, list[float]] = {"local": [], "ray": []}
        for round_index in range(args.rounds):
            # ABBA order: neither backend always runs first (warm-up, drift).
            order = list(rates) if round_index % 2 == 0 else list(reversed(rates))
            for backend in order:
                rates[backend].append(rate(backend, n, args.items))
        local, remote = (statistics.median(rates[b]) for b in ("local", "ray"))
        print(f"| {n} | {local:.1f} | {remote:.1f} | {remote / local:.3f} |", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
