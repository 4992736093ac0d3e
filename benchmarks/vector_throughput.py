"""Vector env throughput, side by side: btgym's native vector env vs Python-worker vectorizers.

Contenders, each over the same scene and number of Blender instances:
  native  - btgym.BlenderVectorEnv (gym.make_vec; the trainer talks to every instance)
  async   - gymnasium.vector.AsyncVectorEnv over single btgym envs (a worker per instance)
  subproc - stable_baselines3 SubprocVecEnv over single btgym envs (a worker per instance)

All contenders stay alive and rounds alternate between them; figures are medians of
per-round env steps/s (batch steps/s x num_envs).

    python benchmarks/vector_throughput.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import btgym  # noqa: E402, F401


def make_contenders(env_id: str, n: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    def single() -> gym.Env:

        return gym.make(env_id, **kwargs)

    return {
        "native": gym.make_vec(env_id, num_envs=n, **kwargs),
        "async": gym.make_vec(env_id, num_envs=n, vectorization_mode="async", **kwargs),
        "subproc": SubprocVecEnv([single for _ in range(n)]),
    }


def stepper(name: str, envs: Any, n: int, action_space: gym.Space) -> Callable[[int], float]:
    """A function running ``steps`` batch steps and returning env steps/s."""
    action_space.seed(0)
    actions = [np.stack([action_space.sample() for _ in range(n)]) for _ in range(64)]
    if name == "subproc":
        envs.reset()
    else:
        envs.reset(seed=0)

    def run(steps: int) -> float:
        started = time.perf_counter()
        for t in range(steps):
            envs.step(actions[t % len(actions)])
        return steps * n / (time.perf_counter() - started)

    return run


def compare(env_id: str, n: int, steps: int, rounds: int, kwargs: dict[str, Any]) -> dict:
    contenders = make_contenders(env_id, n, kwargs)
    single_space = contenders["native"].single_action_space
    runs = {name: stepper(name, envs, n, single_space) for name, envs in contenders.items()}
    for run in runs.values():
        run(max(5, steps // 10))  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rates[name].append(run(steps))
    for envs in contenders.values():
        envs.close()
    return {name: statistics.median(values) for name, values in rates.items()} | {"rounds": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workloads = [
        ("btgym/CartPole-v0", 1, 1000, {}),
        ("btgym/CartPole-v0", 2, 1000, {}),
        ("btgym/CartPole-v0", 4, 500, {}),
        ("btgym/Cube-v0", 2, 60, {"width": 640, "height": 512}),
    ]
    print(
        "| scene | instances | native steps/s | async steps/s | subproc steps/s | "
        "native / async | native / subproc |"
    )
    print("|---|---|---|---|---|---|---|")
    for env_id, n, steps, kwargs in workloads:
        result = compare(env_id, n, steps, args.rounds, kwargs)
        label = env_id + (" 640x512" if kwargs else " (state)")
        print(
            f"| {label} | {n} | {result['native']:.0f} | {result['async']:.0f} | "
            f"{result['subproc']:.0f} | {result['native'] / result['async']:.2f} | "
            f"{result['native'] / result['subproc']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
