"""Step time of one scene in Blender's UI mode (window, under a display) and in
background mode: the same installed Blender, the same scene, interleaved rounds.

Modes: ``background``; ``ui`` (btgym's UI mode: requests served in bursts of up to 100 ms
between redraws, viewport anti-aliasing off); ``ui-before`` (as before issue 24: one
request per timer tick, Blender's default 8-sample viewport anti-aliasing; through
``BTGYM_UI_BURST_MS=0 BTGYM_UI_VIEWPORT_AA=8``).

    python benchmarks/ui_steps.py --blender /usr/bin/blender

Each UI instance gets an Xvfb display of its own (1280x800x24): Blender skips drawing a
window that another covers, so two windows on one display measure nothing. Prints, per
mode and round, the median (and mean) wall-clock ms per step and the CPU ms per step of the Blender
process (all its threads: llvmpipe draws in several), and the medians over rounds. On a
loaded host the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from btgym import BlenderEnv, LaunchConfig  # noqa: E402


def step_times(env: BlenderEnv, steps: int) -> list[float]:
    """Milliseconds of each of ``steps`` env steps (resets between episodes not counted)."""
    times = []
    env.reset(seed=0)
    for _ in range(steps):
        started = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        times.append((time.perf_counter() - started) * 1000)
        if terminated or truncated:
            env.reset()
    return times


def start_display() -> tuple[subprocess.Popen[bytes], str]:
    """A fresh Xvfb server and its DISPLAY value."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    return server, f":{number}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blender", default="/usr/bin/blender")
    parser.add_argument("--scene", default="envs.cartpole:CartPoleScene")
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kwargs = json.loads(args.kwargs)
    displays = [start_display() for _ in range(2)]
    os.environ.setdefault("DISPLAY", displays[0][1])  # the launcher checks for one
    ui = {"ui": {"DISPLAY": displays[0][1]}}
    ui["ui-before"] = {
        "DISPLAY": displays[1][1],
        "BTGYM_UI_VIEWPORT_AA": "8",
        "BTGYM_UI_BURST_MS": "0",
    }
    modes = {
        "background": LaunchConfig(blender=args.blender, timeout=120),
        **{
            mode: LaunchConfig(blender=args.blender, ui=True, timeout=120, env=env)
            for mode, env in ui.items()
        },
    }
    envs = {mode: BlenderEnv(args.scene, launch=launch, **kwargs) for mode, launch in modes.items()}
    medians: dict[str, list[float]] = {mode: [] for mode in envs}
    cpu: dict[str, list[float]] = {mode: [] for mode in envs}
    means: dict[str, list[float]] = {mode: [] for mode in envs}
    try:
        for env in envs.values():
            step_times(env, 5)  # warm-up: first draws, caches
        for round_ in range(args.rounds):
            for mode, env in envs.items():
                assert env.launcher is not None
                blender = psutil.Process(env.launcher[0].pid)
                before = sum(blender.cpu_times()[:2])
                times = step_times(env, args.steps)
                median = statistics.median(times)
                cpu_ms = (sum(blender.cpu_times()[:2]) - before) * 1000 / args.steps
                medians[mode].append(median)
                means[mode].append(statistics.mean(times))
                cpu[mode].append(cpu_ms)
                print(
                    f"round {round_} {mode:10s} {median:8.2f} ms/step (mean {means[mode][-1]:8.2f})"
                    f"  {cpu_ms:8.2f} CPU ms/step",
                    flush=True,
                )
    finally:
        for env in envs.values():
            env.close()
        for server, _ in displays:
            server.terminate()
            server.wait(10)
    for mode, values in medians.items():
        print(
            f"{mode:10s} median of rounds {statistics.median(values):8.2f} ms/step "
            f"(mean {statistics.median(means[mode]):8.2f})  "
            f"{statistics.median(cpu[mode]):8.2f} CPU ms/step"
        )


if __name__ == "__main__":
    main()
