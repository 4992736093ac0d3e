"""Train and evaluate stable-baselines3 PPO on any btgym env id.

    python -m agents.ppo train btgym/CartPole-v0 --n-envs 4 --timesteps 100000 --out runs/ppo
    python -m agents.ppo eval runs/ppo/model.zip --episodes 20

``train`` runs N Blender instances through :class:`btgym.sb3.SB3VecEnv`, shows a
progress bar, logs to TensorBoard (``<out>/tb``) and saves ``<out>/model.zip``.
``eval`` runs the saved policy deterministically and prints the mean episode return.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def policy_for(observation_space: Any) -> str:
    """``CnnPolicy`` for image observations, ``MlpPolicy`` otherwise."""
    shape = getattr(observation_space, "shape", None)
    is_image = shape is not None and len(shape) == 3 and observation_space.dtype == np.uint8
    return "CnnPolicy" if is_image else "MlpPolicy"


def train(
    env_id: str,
    n_envs: int,
    timesteps: int,
    out: Path,
    seed: int = 0,
    progress_bar: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    ppo_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train PPO; return a summary (wall time, steps/s, model path)."""
    from stable_baselines3 import PPO

    from btgym.sb3 import make_vec_env

    out.mkdir(parents=True, exist_ok=True)
    envs = make_vec_env(env_id, n_envs=n_envs, seed=seed, **(env_kwargs or {}))
    try:
        settings = dict(ppo_kwargs or {})  # SB3's defaults otherwise
        model = PPO(
            policy_for(envs.observation_space),
            envs,
            seed=seed,
            verbose=0,
            tensorboard_log=str(out / "tb"),
            **settings,
        )
        started = time.perf_counter()
        model.learn(total_timesteps=timesteps, progress_bar=progress_bar)
        wall = time.perf_counter() - started
        model.save(out / "model.zip")
    finally:
        envs.close()
    summary = {
        "env_id": env_id,
        "n_envs": n_envs,
        "timesteps": timesteps,
        "wall_s": round(wall, 1),
        "env_steps_per_s": round(timesteps / wall, 1),
        "model": str(out / "model.zip"),
        "env_kwargs": env_kwargs or {},
        "ppo_kwargs": settings,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluate(
    model_path: Path,
    episodes: int = 10,
    seed: int = 1000,
    env_id: str | None = None,
    n_envs: int = 2,
) -> dict[str, float]:
    """Mean and std of the episode return of a saved policy (deterministic actions)."""
    from stable_baselines3 import PPO

    from btgym.sb3 import make_vec_env

    saved = json.loads((model_path.parent / "summary.json").read_text())
    env_id = env_id or saved["env_id"]
    envs = make_vec_env(env_id, n_envs=n_envs, seed=seed, **saved.get("env_kwargs", {}))
    try:
        model = PPO.load(model_path, device="cpu")
        returns: list[float] = []
        obs = envs.reset()
        while len(returns) < episodes:
            actions, _ = model.predict(obs, deterministic=True)
            obs, _, dones, infos = envs.step(actions)
            returns += [infos[i]["episode"]["r"] for i in np.flatnonzero(dones)]
    finally:
        envs.close()
    returns = returns[:episodes]
    return {
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m agents.ppo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train PPO on a btgym env id")
    run.add_argument("env_id")
    run.add_argument("--n-envs", type=int, default=4)
    run.add_argument("--timesteps", type=int, default=100_000)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("runs/ppo"))
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON scene kwargs")
    run.add_argument("--ppo-kwargs", type=json.loads, default={}, help="JSON PPO settings")
    run.add_argument("--eval-episodes", type=int, default=10)
    check = commands.add_parser("eval", help="mean episode return of a saved model")
    check.add_argument("model", type=Path)
    check.add_argument("--episodes", type=int, default=10)
    check.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "train":
        summary = train(
            args.env_id,
            args.n_envs,
            args.timesteps,
            args.out,
            args.seed,
            not args.no_progress,
            args.env_kwargs,
        )
        print(json.dumps(summary, indent=2))
        if args.eval_episodes:
            print(json.dumps(evaluate(args.out / "model.zip", args.eval_episodes), indent=2))
    else:
        print(json.dumps(evaluate(args.model, args.episodes, args.seed), indent=2))


if __name__ == "__main__":
    main()
