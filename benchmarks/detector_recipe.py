"""Which detector recipe learns most per CPU-second: own-domain mAP of the massive-DR
stream's frames only (the target is never evaluated here).

Each variant trains on the first ``--images`` of a fixed set of massive-DR frames (seed
60000, rendered once into ``runs/detection/cache``) with the experiment's augmentation and
``detection.train``, and is scored with COCO mAP on the experiment's own-domain set (200
fresh massive-DR frames, seed 50000) and on 200 of its own training frames (the gap is
over-fitting). Variants, one change at a time from the first rebuilt run's recipe:

    python benchmarks/detector_recipe.py [--variants echo,replay,...] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from agents.experiments import transfer as tr  # noqa: E402
from agents.experiments.centernet import CenterNet, ResidualCenterNet  # noqa: E402
from agents.experiments.detection import (  # noqa: E402
    coco_metrics,
    detect,
    ground_truth,
    replay_buffer,
    train,
)
from btgym.data import collate  # noqa: E402

BASE = {"model": "small", "replay": False, "bf16": False, "lr": 2e-3, "echo": 20, "images": 1600}
RESIDUAL = {"replay": True, "model": "residual"}
FAST = {**RESIDUAL, "bf16": True}
#: name -> changes from BASE (the first rebuilt run's recipe: CenterNet, batch echoing)
VARIANTS = {
    "echo": {},
    "replay": {"replay": True},
    "residual": RESIDUAL,
    "residual-lr5e-3": {**RESIDUAL, "lr": 5e-3},
    "bf16": {**FAST, "lr": 5e-3},
    "bf16-3200-images": {**FAST, "lr": 5e-3, "images": 3200, "echo": 10},
    "bf16-lr1e-2": {**FAST, "lr": 1e-2},
    "bf16-lr1e-2-3000-steps": {**FAST, "lr": 1e-2, "echo": 30},
    "bf16-lr1e-2-4000-steps": {**FAST, "lr": 1e-2, "echo": 40},
    "bf16-3200-images-4000-steps": {**FAST, "lr": 5e-3, "images": 3200, "echo": 20},
}


def run_variant(name: str, seed: int, cache: Path) -> dict:
    recipe = {**BASE, **VARIANTS[name]}
    cfg = replace(
        tr.Config(),
        lr=recipe["lr"],
        echo=recipe["echo"],
        iterations=recipe["images"] // 16,
        replay=recipe["replay"],
        bf16=recipe["bf16"],
    )
    frames = tr.render_parts(
        cache / "massive-160x128-n3200-seed60000",
        3200,
        tr.scene_kwargs(cfg),
        tr.MASSIVE_ACTION,
        60_000,
        cfg.instances,
    )
    domain = tr.cached_set(cfg, cache, "domain")
    torch.manual_seed(seed)
    net = ResidualCenterNet if recipe["model"] == "residual" else CenterNet
    model = net(len(tr.CLASS_NAMES), cfg.model_width)
    generator = torch.Generator().manual_seed(100 + seed)
    loader = DataLoader(Subset(frames, range(recipe["images"])), cfg.batch, collate_fn=collate)
    log = train(
        model,
        loader,
        cfg,
        augment=lambda x, labels: tr.augment(x, labels, generator),
        replay=replay_buffer(cfg, 101 + seed),
    )
    seen = Subset(frames, range(200))
    own = coco_metrics(ground_truth(domain, tr.CLASS_NAMES, cfg), detect(model, domain, 100))
    fit = coco_metrics(ground_truth(seen, tr.CLASS_NAMES, cfg), detect(model, seen, 100))
    return {
        "variant": name,
        **recipe,
        "steps": cfg.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_s": log.seconds,
        "own_domain_mAP": own["mAP"],
        "own_domain_AP50": own["AP50"],
        "training_frames_mAP": fit["mAP"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("runs/detection/cache"))
    parser.add_argument("--out", type=Path, default=Path("runs/detector_recipe.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| variant | model | replay | bf16 | lr | images | steps | train s | own-domain mAP "
          "| AP50 | mAP on training frames |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for name in args.variants.split(","):
        r = run_variant(name, args.seed, args.cache)
        with args.out.open("a") as out:
            out.write(json.dumps(r) + "\n")
        print(
            f"| {name} | {r['model']} | {r['replay']} | {r['bf16']} | {r['lr']:g} | "
            f"{r['images']} | {r['steps']} | {r['train_s']:.0f} | "
            f"{100 * r['own_domain_mAP']:.1f} | {100 * r['own_domain_AP50']:.1f} | "
            f"{100 * r['training_frames_mAP']:.1f} |",
            flush=True,
        )
    print(f"\nwall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
