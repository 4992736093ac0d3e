"""What the per-frame label statistics cost at 640x512: visible pixels and boxes per id
(``image_stats.visible_stats``) and the raster's id renumbering (``annotations.renumbered``).

Synthetic id frames: 16 square objects (sparse: ~28 % of the frame labelled, like a
Parts-v0 view) and the same with 300 rows of random ids (dense: ~68 %). Prints the best
of 7 repeats of 30 calls, in ms, after a warm-up. ``--root`` measures another checkout's
code (e.g. a worktree of an older commit) for a before/after on the same host.

    python benchmarks/label_stats_cost.py [--root PATH]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def frames() -> dict[str, np.ndarray]:
    """The sparse and the dense id frame."""
    rng = np.random.default_rng(0)
    sparse = np.zeros((512, 640), np.int32)
    for k in range(1, 17):
        y, x = rng.integers(0, 450), rng.integers(0, 580)
        sparse[y : y + 80, x : x + 80] = k
    dense = sparse.copy()
    dense[:300] = rng.integers(0, 17, (300, 640))
    return {"sparse": sparse, "dense": dense}


def best_ms(call, number: int = 30, repeat: int = 7) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    from blender_side.image_stats import visible_stats

    print(f"code: {args.root.resolve()}")
    for ids in frames().values():  # warm up: glibc's malloc adapts its mmap threshold to
        for _ in range(3):  # the temporaries' sizes after the first frees (as a server does)
            visible_stats(ids, 16)
    for name, ids in frames().items():
        share = np.count_nonzero(ids) / ids.size
        ms = best_ms(lambda frame=ids: visible_stats(frame, 16))
        print(f"visible_stats {name} ({share:.0%} labelled): {ms:.2f} ms")
    try:
        from blender_side.annotations import renumbered
    except ImportError:  # bpy missing: the renumbering lives beside bpy code
        return
    objects = [object() for _ in range(40)]
    drawn = {obj: i + 1 for i, obj in enumerate(objects)}
    reordered = objects[:16][::-1]  # not in drawn order: a real renumbering
    ids = frames()["sparse"]
    print(f"renumbered: {best_ms(lambda: renumbered(ids, drawn, reordered)):.2f} ms")


if __name__ == "__main__":
    main()
