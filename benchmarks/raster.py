"""engine="raster" against engine="workbench": env steps, 2-instance streams, draw-only loop.

For each scene, in one run with the rounds interleaved (every loop once per round, in
turn): the env (``BlenderEnv.step``, sampled actions, resets at episode ends) and the
stream (``StreamDataset`` with ``--instances`` instances, items in this process) with
each engine at its defaults (Workbench anti-aliasing off; labels on: Cube's projected
corners, Parts' annotations), and the raster engine's own draw-only loop (the scene's
frame drawn into a frame file again and again: ``python -m blender_side.render_loop``).
After each round the run waits until the loop's processes are idle (a stream refills
its buffer, which would otherwise render during the next loop). Prints the medians of
the rounds, the ratios raster/workbench and the env over the draw-only loop, and the
load average before and after (the host is shared).

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
    loops: dict[str, Any] = {}
    try:
        for engine in ENGINES:
            scene_kwargs = {**kwargs, "engine": engine}
            loops[f"{engine} env"] = EnvLoop(spec, scene_kwargs, launch, seed=0)
            loops[f"{engine} stream x{instances}"] = StreamLoop(
                spec, scene_kwargs, launch, instances, seed=0
            )
        raster_kwargs = {**kwargs, "engine": "raster"}
        loops["raster draw-only"] = RenderOnlyLoop(spec, raster_kwargs, None, launch.gpu_backend)
    except BaseException:
        close_all(loops)
        raise
    return loops


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
            for _ in range(args.rounds):
                for key, loop in loops.items():
                    frames = args.raster_frames if key.startswith("raster") else args.frames
                    rates[key].append(frames / loop.run(frames))
                    settle(loop, rates[key][-1])
        finally:
            close_all(loops)
        median = {key: statistics.median(values) for key, values in rates.items()}
        for key, values in rates.items():
            shown = " ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {key} | {median[key]:.1f} | {shown} |")
        stream = f"stream x{args.instances}"
        ratios.append(
            (name, "env raster / workbench", median["raster env"] / median["workbench env"])
        )
        ratios.append(
            (
                name,
                f"{stream} raster / workbench",
                median[f"raster {stream}"] / median[f"workbench {stream}"],
            )
        )
        ratios.append(
            (name, "raster env / draw-only", median["raster env"] / median["raster draw-only"])
        )
    print("\n| scene | ratio | value |")
    print("|---|---|---|")
    for name, what, value in ratios:
        print(f"| {name} | {what} | {value:.2f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
