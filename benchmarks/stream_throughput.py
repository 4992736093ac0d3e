"""Images/s into PyTorch: StreamDataset vs the bare render loop vs BlendTorch's transport.

For each scene and instance count, side by side, rounds alternating:
  bare        - the scene stepped in-process in N bpy processes (no transport at all)
  stream      - btgym.data.StreamDataset through a DataLoader (1 worker, batches of 8)
  blendtorch  - the same bpy processes publishing pickled dicts over PUSH/PULL, unpickled
Then the transport alone: a scene returning a ready frame, StreamDataset vs pickled PUSH.

    python benchmarks/stream_throughput.py [--rounds 3] [--scenes cube,parts]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btgym.data import StreamDataset, collate  # noqa: E402

WORKER = str(ROOT / "benchmarks" / "bare_scene_worker.py")
SCENES = {
    "cube": ("envs.cube:CubeScene", {"width": 640, "height": 512}, 150),
    "parts": ("envs.parts:PartsScene", {"width": 640, "height": 512}, 60),
    "frame": ("benchmarks.scenes:FrameScene", {}, 3000),
}


def bare(spec: str, kwargs: dict[str, Any], n: int, frames: int) -> float:
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, spec, json.dumps(kwargs), "loop"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(n)
    ]
    try:
        for worker in workers:
            while worker.stdout.readline().strip() != "ready":
                pass
        for worker in workers:  # warm-up, then the timed run, all workers at once
            worker.stdin.write(f"{max(3, frames // 10)}\n")
            worker.stdin.flush()
        for worker in workers:
            worker.stdout.readline()
        for worker in workers:
            worker.stdin.write(f"{frames // n}\n")
            worker.stdin.flush()
        return sum(json.loads(worker.stdout.readline())["fps"] for worker in workers)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def stream(spec: str, kwargs: dict[str, Any], n: int, frames: int) -> float:
    warm = max(8, frames // 10)
    dataset = StreamDataset(spec, n, items=warm + frames, seed=0, env_kwargs=kwargs)
    loader = DataLoader(dataset, batch_size=8, num_workers=1, collate_fn=collate)
    count, started = 0, None
    for batch in loader:
        count += len(batch["env_id"])
        if started is None and count >= warm:
            started, count = time.perf_counter(), 0
    return count / (time.perf_counter() - started)


def blendtorch(spec: str, kwargs: dict[str, Any], n: int, frames: int) -> float:
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.setsockopt(zmq.RCVHWM, 10)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, spec, json.dumps(kwargs), "push", f"tcp://127.0.0.1:{port}"],
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    try:
        for _ in range(max(8, frames // 10)):  # warm-up
            pickle.loads(socket.recv())
        started = time.perf_counter()
        for _ in range(frames):
            pickle.loads(socket.recv())  # what BlendTorch's receiver does with each frame
        return frames / (time.perf_counter() - started)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        socket.close(linger=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenes", default="cube,parts")
    args = parser.parse_args()
    contenders = {"bare": bare, "stream": stream, "blendtorch": blendtorch}
    print(
        "| scene (640x512) | instances | bare loop fps | StreamDataset fps | "
        "BlendTorch-style fps | stream / bare | stream / blendtorch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.scenes.split(","):
        spec, kwargs, frames = SCENES[name]
        for n in (1, 2):
            rates: dict[str, list[float]] = {c: [] for c in contenders}
            for _ in range(args.rounds):
                for contender, run in contenders.items():
                    rates[contender].append(run(spec, kwargs, n, frames))
            m = {c: statistics.median(v) for c, v in rates.items()}
            print(
                f"| {name} | {n} | {m['bare']:.1f} | {m['stream']:.1f} | "
                f"{m['blendtorch']:.1f} | {m['stream'] / m['bare']:.2f} | "
                f"{m['stream'] / m['blendtorch']:.2f} |",
                flush=True,
            )
    spec, kwargs, frames = SCENES["frame"]
    ours = statistics.median(stream(spec, kwargs, 1, frames) for _ in range(args.rounds))
    theirs = statistics.median(blendtorch(spec, kwargs, 1, frames) for _ in range(args.rounds))
    print(
        f"\ntransport only (ready 640x512 frames, 1 instance): StreamDataset {ours:.0f} "
        f"frames/s ({1000 / ours:.3f} ms/frame), pickled PUSH/PULL {theirs:.0f} frames/s "
        f"({1000 / theirs:.3f} ms/frame): {ours / theirs:.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()
