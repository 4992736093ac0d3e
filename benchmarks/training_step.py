"""What one training step of Experiment 2's detector costs on this host, and where.

Two loops, rounds interleaved (the host's speed drifts, so the ratio is what travels):

- ``recipe``: :func:`agents.experiments.detection.train` on the cached photo-realistic
  set exactly as the ``photoreal`` condition trains (augmentation, targets, replay
  echoes, AdamW, bfloat16 where the CPU has it), ``--iterations`` batches of
  ``Config.echo`` steps each;
- ``network``: the detector's forward, backward and AdamW step alone on a fixed batch
  (the arithmetic floor of a step).

The photo-realistic set must be cached (``runs/detection/cache``, made by the
experiment; read as it is, never re-rendered; another cached photo-realistic set of
the experiment's when that one is missing); without one only the network loop runs.
Each loop prints milliseconds per optimizer step (median of the rounds). Run it with
another checkout's code (``--root``) to compare code versions on the same host.

    python benchmarks/training_step.py [--rounds 3 --iterations 10 --threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def network_step_ms(width: int, steps: int, bf16: bool) -> float:
    """Median milliseconds of the detector's forward, backward and AdamW step."""
    import torch

    from agents.experiments.centernet import ResidualCenterNet

    torch.manual_seed(0)
    model = ResidualCenterNet(6, width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(16, 3, 128, 160).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(steps + 3):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = sum(v.float().square().mean() for v in out.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[3:]) * 1e3


def recipe_step_ms(cfg, dataset, iterations: int) -> float:
    """Milliseconds per optimizer step of ``iterations`` batches of the full recipe."""
    import torch
    from torch.utils.data import DataLoader

    from agents.experiments import transfer
    from agents.experiments.detection import replay_buffer, train
    from btgym.data import collate

    run = dataclasses.replace(cfg, iterations=iterations, warmup=2)
    order = torch.Generator().manual_seed(0)
    loader = DataLoader(
        dataset, run.batch, shuffle=True, drop_last=True, generator=order, collate_fn=collate
    )
    draws = torch.Generator().manual_seed(1)
    model = transfer.ResidualCenterNet(len(transfer.CLASS_NAMES), run.model_width)

    def augmented(inputs, labels):
        return transfer.augment(inputs, labels, draws)

    started = time.perf_counter()
    train(model, loader, run, augment=augmented, replay=replay_buffer(run, 2))
    return (time.perf_counter() - started) / (iterations * run.echo) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs/detection/cache")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    import torch

    from agents.experiments import transfer

    torch.set_num_threads(args.threads)
    cfg = transfer.Config()
    size = f"{cfg.width}x{cfg.height}"
    name = f"photoreal-{size}-n{cfg.train_images}-s{cfg.cycles_samples}-seed{cfg.seed}"
    found = [args.cache / name, *sorted(args.cache.glob("photoreal-*"))]
    found = [d for d in found if (d / "meta.json").is_file()]
    dataset = transfer.ReplayDataset(found[0]) if found else None
    if found:
        print(f"set: {found[0]} ({len(dataset)} images)")
    print(f"code: {args.root.resolve()}; bf16 {cfg.bf16}; {torch.get_num_threads()} threads")
    if dataset is None:
        print(f"no cached photo-realistic set in {args.cache}: network loop only")
    recipe, network = [], []
    for _ in range(args.rounds):
        if dataset is not None:
            recipe.append(recipe_step_ms(cfg, dataset, args.iterations))
        network.append(network_step_ms(cfg.model_width, args.iterations * 4, cfg.bf16))
    if recipe:
        print(f"recipe  ms/step {statistics.median(recipe):.1f}  rounds {_shown(recipe)}")
    print(f"network ms/step {statistics.median(network):.1f}  rounds {_shown(network)}")


def _shown(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
