"""The demo: launch Blender, stream Cube-v0 frames, train a small model, adapt the randomization.

    python -m btgym.demo [--steps 400] [--out docs/img]

1. Renders a contact sheet of 640x512 frames with the projected cube corners drawn
   on them (``<out>/cube-demo.png``) and reports frames/s.
2. Trains a small CNN to regress the 8 corner keypoints from 160x128 frames streamed
   from Blender, with feedback: whenever the running loss is low enough, the trainer
   widens the rotation range it sends as the action (a minimal adaptive curriculum).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import btgym  # noqa: F401  (registers btgym/Cube-v0)


def contact_sheet(out: Path, frames: int = 8) -> float:
    """Render ``frames`` Cube-v0 frames at 640x512 and save them as a contact sheet with
    their corners (``info["xy"]``) drawn, by :func:`btgym.preview.contact_sheet`; return fps.
    """
    from btgym.preview import contact_sheet as sheet_of

    tiles: list[tuple[np.ndarray, dict, str]] = []
    with gym.make("btgym/Cube-v0", render_mode="rgb_array") as env:
        env.reset(seed=0)
        started = time.perf_counter()
        steps = 60
        for i in range(steps):
            action = np.full(3, min(1.0, 0.1 + i / steps), np.float32)
            frame, _, _, _, info = env.step(action)
            if i % (steps // frames) == 0 and len(tiles) < frames:
                tiles.append((frame, {"xy": info["xy"]}, f"step {i}, range {action[0]:.2f}"))
        fps = steps / (time.perf_counter() - started)
    out.mkdir(parents=True, exist_ok=True)
    sheet_of(tiles, columns=4).save(out / "cube-demo.png")
    return fps


def train_keypoints(steps: int, batch: int = 16) -> None:
    """Regress corner keypoints from streamed frames; widen the randomization as loss drops."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    width, height = 160, 128
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 16),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scale = torch.tensor([width, height], dtype=torch.float32)
    rotation_range, running = 0.05, None
    with gym.make("btgym/Cube-v0", width=width, height=height) as env:
        env.reset(seed=1)
        started = time.perf_counter()
        for step in range(1, steps + 1):
            frames, targets = [], []
            for _ in range(batch):  # stream a batch; the action is the current randomization
                frame, _, _, _, info = env.step(np.full(3, rotation_range, np.float32))
                frames.append(torch.from_numpy(frame))
                targets.append(torch.from_numpy(info["xy"]) / scale)
            x = torch.stack(frames).permute(0, 3, 1, 2).float() / 255.0
            y = torch.stack(targets).reshape(batch, 16)
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            if running < 0.004 and rotation_range < 1.0:  # feedback to the simulation
                rotation_range = min(1.0, rotation_range + 0.05)
            if step % 25 == 0 or step == steps:
                elapsed = time.perf_counter() - started
                print(
                    f"step {step:4d}  loss {running:.4f}  rotation range {rotation_range:.2f}  "
                    f"{step * batch / elapsed:.0f} frames/s streamed into training",
                    flush=True,
                )


def main() -> None:
    """Save the contact sheet, then train the keypoint model on streamed frames."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    fps = contact_sheet(args.out)
    print(f"contact sheet: {args.out / 'cube-demo.png'}  ({fps:.1f} frames/s at 640x512)")
    train_keypoints(args.steps)


if __name__ == "__main__":
    main()
