"""Cube-v0 steps/s through the env vs the same scene stepped bare in one bpy process.

Both run side by side in one invocation: rounds alternate between the bare loop and
the env so that machine noise hits both alike; figures are medians over rounds.

    python benchmarks/cube_throughput.py [--width 640 --height 512 --rounds 5 --steps 200]
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

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import btgym  # noqa: E402, F401


def env_round(env: gym.Env, steps: int) -> list[float]:
    action = np.ones(3, np.float32)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        env.step(action)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def ping_round(env: gym.Env, count: int = 200) -> float:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        env.unwrapped.ping()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    bare = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bare_cube_worker.py"),
            str(args.width),
            str(args.height),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    while bare.stdout.readline().strip() != "ready":
        pass
    env = gym.make("btgym/Cube-v0", width=args.width, height=args.height)
    os.environ["BTGYM_FRAME_FILES"] = "0"  # the same env with every byte on the socket
    byte_env = gym.make("btgym/Cube-v0", width=args.width, height=args.height)
    del os.environ["BTGYM_FRAME_FILES"]
    assert env.unwrapped.connection.clients[0].frame_files is not None
    assert byte_env.unwrapped.connection.clients[0].frame_files is None
    for e in (env, byte_env):
        e.reset(seed=0)
        env_round(e, 20)  # warm-up both sides
    bare.stdin.write("20\n")
    bare.stdin.flush()
    bare.stdout.readline()

    bare_medians, env_medians, byte_medians, parts, pings = [], [], [], [], []
    for _ in range(args.rounds):
        bare.stdin.write(f"{args.steps}\n")
        bare.stdin.flush()
        result = json.loads(bare.stdout.readline())
        bare_medians.append(statistics.median(result["step"]))
        parts.append({k: statistics.median(v) for k, v in result.items() if k != "step"})
        env_medians.append(statistics.median(env_round(env, args.steps)))
        byte_medians.append(statistics.median(env_round(byte_env, args.steps)))
        pings.append(ping_round(env))
    env.close()
    byte_env.close()
    bare.stdin.close()
    bare.wait(30)

    bare_ms, env_ms = statistics.median(bare_medians), statistics.median(env_medians)
    byte_ms = statistics.median(byte_medians)
    part = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    print(
        f"Cube-v0 {args.width}x{args.height}, {args.rounds} rounds x {args.steps} steps, "
        "medians of per-round medians\n"
    )
    print("| loop | ms/step | steps/s |")
    print("|---|---|---|")
    print(
        f"| bare bpy loop (render + read + corners, one process) | {bare_ms:.2f} | "
        f"{1000 / bare_ms:.1f} |"
    )
    print(
        f"| BlenderEnv.step (protocol + server + same work) | {env_ms:.2f} | {1000 / env_ms:.1f} |"
    )
    print(
        f"| BlenderEnv.step, frames as bytes on the socket (BTGYM_FRAME_FILES=0) | "
        f"{byte_ms:.2f} | {1000 / byte_ms:.1f} |"
    )
    print(
        f"\nprotocol share of a step: {env_ms - bare_ms:+.2f} ms "
        f"(env/bare time ratio {env_ms / bare_ms:.3f}); with bytes on the socket "
        f"{byte_ms - bare_ms:+.2f} ms; ping round trip {statistics.median(pings):.3f} ms"
    )
    print(
        f"parts of the bare step: render {part['render']:.2f} ms, write TIFF "
        f"{part['write']:.2f} ms, map and view {part['read']:.3f} ms"
    )
    print("per-round bare ms: ", " ".join(f"{v:.2f}" for v in bare_medians))
    print("per-round env ms:  ", " ".join(f"{v:.2f}" for v in env_medians))
    print("per-round bytes ms:", " ".join(f"{v:.2f}" for v in byte_medians))


if __name__ == "__main__":
    main()
