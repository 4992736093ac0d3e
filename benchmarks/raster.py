"""engine="raster" against engine="workbench": env steps, 2-instance streams, draw-only loop.

For each scene, in one run with the rounds interleaved (every loop once per round, in
turn, the order reversed every other round): the env (``BlenderEnv.step``, sampled
actions, resets at episode ends) and the stream (``StreamDataset`` with ``--instances``
instances, items in this process) with each engine at its defaults (Workbench
anti-aliasing off; labels on: Cube's projected corners, Parts' annotations), and the
raster engine's own draw-only loop (the scene's frame drawn into a frame file again and
again: ``python -m blender_side.render_loop``). After each loop the run waits until the
loop's processes are idle (a stream refills its buffer, which would otherwise render
during the next loop). Prints each loop's median over the rounds, and each ratio
(raster/workbench env and stream, env over draw-only) as the median of its rounds'
ratios between two loops that ran back to back, and the load average before and after
(the host is shared).

    python benchmarks/raster.py [--rounds 5 --frames 40 --raster-frames 200 --instances 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym._launch_config import LaunchConfig  # noqa: E402
from btgym.bench import EnvLoop, RenderOnlyLoop, StreamLoop  # noqa: E402

SCENES = {
    "Cube-v0": ("envs.cube:CubeScene", {"width": 640, "height": 512}),
    "Parts-v0": ("envs.parts:PartsScene", {"width": 640, "height": 512}),
}
ENGINES = ("workbench", "raster")


def loops_for(spec: str, kwargs: dict[str, Any], instances: int) -> dict[str, Any]:
    """The loops of one scene, by name, started (close them with :func:`close_all`)."""
    launch = LaunchConfig()
    engine_kwargs = {engine: {**kwargs, "engine": engine} for engine in ENGINES}
    stream = f"stream x{instances}"
    loops: dict[str, Any] = {}
    try:
        # In the order they run, each compared pair side by side (see pairs()).
        loops["workbench env"] = EnvLoop(spec, engine_kwargs["workbench"], launch, seed=0)
        loops["raster env"] = EnvLoop(spec, engine_kwargs["raster"], launch, seed=0)
        loops["raster draw-only"] = RenderOnlyLoop(
            spec, engine_kwargs["raster"], None, launch.gpu_backend
        )
        for engine in reversed(ENGINES):
            loops[f"{engine} {stream}"] = StreamLoop(
                spec, engine_kwargs[engine], launch, instances, seed=0
            )
    except BaseException:
        close_all(loops)
        raise
    return loops


def pairs(instances: int) -> list[tuple[str, str, str]]:
    """The ratios reported: (what, loop over, loop under), each taken per round between two
    loops that ran one right after the other (a burst of load from outside the benchmark
    then hits both), and reported as the median of the rounds' ratios.
    """
    stream = f"stream x{instances}"
    return [
        ("env raster / workbench", "raster env", "workbench env"),
        (f"{stream} raster / workbench", f"raster {stream}", f"workbench {stream}"),
        ("raster env / draw-only", "raster env", "raster draw-only"),
    ]


def settle(loop: Any, rate: float) -> None:
    """After a round, wait (untimed) until the loop's processes are idle, so that the next
    loop does not share the machine with them: a stream's instances refill the items
    they buffer (at least ``buffered / rate`` seconds, often longer: a Parts-v0 refill
    may hold new arrangements), an env's instance may still be writing its spare frame.
    """
    if isinstance(loop, StreamLoop):
        time.sleep(loop.buffered / rate)
    wait_for_idle_children()


def wait_for_idle_children(busy: float = 0.05, window: float = 0.1, longest: float = 10.0) -> float:
    """Wait until this process's child processes together use under ``busy`` of a core
    over ``window`` seconds (at most ``longest``); returns the seconds waited.
    """
    me = psutil.Process()
    started = time.monotonic()
    before = _children_cpu_seconds(me)
    while time.monotonic() - started < longest:
        time.sleep(window)
        now = _children_cpu_seconds(me)
        if now - before < busy * window:
            break
        before = now
    return time.monotonic() - started


def _children_cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def close_all(loops: dict[str, Any]) -> None:
    """Close every loop (their Blender processes end)."""
    for loop in reversed(list(loops.values())):
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument(
        "--raster-frames", type=int, default=200, help="frames per round of the raster's loops"
    )
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--scenes", default=",".join(SCENES))
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.rounds} interleaved rounds x {args.frames} frames per Workbench loop, "
        f"{args.raster_frames} per raster loop, 640x512\n"
    )
    print("| scene | loop | frames/s (median) | rounds |")
    print("|---|---|---|---|")
    ratios = []
    for name in args.scenes.split(","):
        spec, kwargs = SCENES[name]
        loops = loops_for(spec, kwargs, args.instances)
        rates: dict[str, list[float]] = {key: [] for key in loops}
        try:
            for round_index in range(args.rounds):
                order = list(loops.items())
                if round_index % 2:  # every pair runs in both orders, as often
                    order.reverse()
                for key, loop in order:
                    frames = args.raster_frames if key.startswith("raster") else args.frames
                    rates[key].append(frames / loop.run(frames))
                    settle(loop, rates[key][-1])
        finally:
            close_all(loops)
        for key, values in rates.items():
            shown = " ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {key} | {statistics.median(values):.1f} | {shown} |")
        for what, over, under in pairs(args.instances):
            per_round = [a / b for a, b in zip(rates[over], rates[under], strict=True)]
            ratios.append((name, what, statistics.median(per_round), per_round))
    print("\n| scene | ratio | median of the rounds' ratios | rounds |")
    print("|---|---|---|---|")
    for name, what, value, per_round in ratios:
        shown = " ".join(f"{v:.2f}" for v in per_round)
        print(f"| {name} | {what} | {value:.2f} | {shown} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
