"""Images/s into PyTorch: StreamDataset vs the bare render loop vs BlendTorch's transport.

For each scene and instance count, side by side, rounds alternating, each counting the
frames that arrive inside the same length of steady-state window (after a warm-up, on
the shared monotonic clock, so N workers' counts add up to the machine's rate):
  bare        - the scene stepped in-process in N bpy processes (no transport at all)
  stream      - btgym.data.StreamDataset (defaults) through a DataLoader (batches of 8,
                no worker)
  blendtorch  - the same bpy processes publishing as BlendTorch's DataPublisher does
                (send_pyobj of a dict with the flipped, non-contiguous frame), received as
                its RemoteIterableDataset does (recv_pyobj) through a DataLoader with torch's
                default collate (batches of 8, no worker), as BlendTorch's examples use it
Then the transport alone (a scene returning a ready frame): wall-clock frames/s and CPU
milliseconds per frame (trainer process, and all processes) for StreamDataset vs the
pickled PUSH/PULL; CPU per frame is what a transport costs, and it is far less noisy than
frames/s on a shared machine.

    python benchmarks/stream_throughput.py [--rounds 3] [--scenes cube,parts] [--seconds 8]
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
from typing import Any

import numpy as np
import psutil
import zmq
from torch.utils.data import DataLoader, IterableDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btgym.data import StreamDataset, collate  # noqa: E402
from btgym.launcher import remove_stale_files  # noqa: E402

WORKER = str(ROOT / "benchmarks" / "bare_scene_worker.py")
SCENES = {
    "cube": ("envs.cube:CubeScene", {"width": 640, "height": 512}),
    "parts": ("envs.parts:PartsScene", {"width": 640, "height": 512}),
    "frame": ("benchmarks.scenes:FrameScene", {}),
    "file": ("benchmarks.scenes:FileFrameScene", {}),
}
#: Seconds every contender runs before its measuring window opens.
WARM_UP_S = 2.0
BLENDTORCH = "BlendTorch (pickled flipped frames, default collate)"
#: What the trainer does with every frame in the transport loops: copy it into a batch.
BATCH_SLOT = np.empty((512, 640, 3), np.uint8)


def consume(obs: np.ndarray) -> None:
    np.copyto(BATCH_SLOT, obs)


class BlendTorchStyleDataset(IterableDataset):
    """What BlendTorch's RemoteIterableDataset does per item: PULL and unpickle a dict."""

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket = socket

    def __iter__(self):
        while True:
            yield self.socket.recv_pyobj()


def blendtorch_batches(socket: zmq.Socket):
    """Batches of 8 through a DataLoader with torch's default collate (BlendTorch's use)."""
    return iter(DataLoader(BlendTorchStyleDataset(socket), batch_size=8, num_workers=0))


def window(seconds: float) -> tuple[float, float]:
    """A measuring window on ``time.monotonic`` that opens after a warm-up."""
    start = time.monotonic() + WARM_UP_S
    return start, start + seconds


def bare(spec: str, kwargs: dict[str, Any], n: int, seconds: float) -> float:
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
        start, end = window(seconds)
        for worker in workers:
            worker.stdin.write(f"{start} {end}\n")
            worker.stdin.flush()
        return sum(json.loads(w.stdout.readline())["steps"] for w in workers) / seconds
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            remove_stale_files()


def stream(spec: str, kwargs: dict[str, Any], n: int, seconds: float) -> float:
    dataset = StreamDataset(spec, n, seed=0, env_kwargs=kwargs)  # endless
    # No DataLoader worker: the Blender instances already work in parallel, and a worker
    # adds a shared-memory hop per batch (see the transport table).
    loader = DataLoader(dataset, batch_size=8, num_workers=0, collate_fn=collate)
    batches = iter(loader)
    next(batches)  # instances launched and streaming
    start, end = window(seconds)
    count = 0
    for batch in batches:
        now = time.monotonic()
        count += len(batch["env_id"]) * (start <= now <= end)
        if now > end:
            break
    del batches  # closes the stream: its instances are stopped and reaped
    return count / seconds


def blendtorch(spec: str, kwargs: dict[str, Any], n: int, seconds: float) -> float:
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
        batches = blendtorch_batches(socket)
        next(batches)  # instances started and publishing
        start, end = window(seconds)
        count = 0
        while time.monotonic() <= end:
            batch = next(batches)
            count += len(batch["btid"]) * (start <= time.monotonic() <= end)
        return count / seconds
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            remove_stale_files()
        socket.close(linger=0)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (all their threads), by pid."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def transport_stream(
    frames: int, workers: int, per_request: int = 1, scene: str = "frame"
) -> dict[str, float]:
    """Ready frames through StreamDataset: in-process (workers=0) or a DataLoader worker."""
    spec, kwargs = SCENES[scene]
    warm, spare = 304, 64  # spare items keep the servers up until the rates are taken
    dataset = StreamDataset(
        spec,
        1,
        items=warm + frames + spare,
        seed=0,
        env_kwargs=kwargs,
        depth=max(2, 4 // per_request),  # the default depth 2; 4 for single frames
        frames_per_request=per_request,
    )
    if workers:
        loader = DataLoader(dataset, batch_size=8, num_workers=workers, collate_fn=collate)
        items = (obs for batch in loader for obs in batch["obs"].numpy())
    else:
        items = (item["obs"] for item in dataset)
    for _ in range(warm):
        next(items)
    children = [c.pid for c in psutil.Process().children(recursive=True)]
    mine, others, started = _cpu_seconds([os.getpid()]), _cpu_seconds(children), time.perf_counter()
    for _ in range(frames):
        consume(next(items))
    rates = _rates(frames, started, mine, others, children)
    for _ in items:
        pass
    return rates


def transport_blendtorch(frames: int, scene: str = "frame") -> dict[str, float]:
    """Ready frames sent and received as BlendTorch does: pickled flipped frames over
    PUSH/PULL on loopback TCP, torch's default collate into batches of 8."""
    spec, kwargs = SCENES[scene]
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.setsockopt(zmq.RCVHWM, 10)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    worker = subprocess.Popen(
        [sys.executable, WORKER, spec, json.dumps(kwargs), "push", f"tcp://127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        batches = blendtorch_batches(socket)
        for _ in range(300 // 8):
            next(batches)
        mine, others = _cpu_seconds([os.getpid()]), _cpu_seconds([worker.pid])
        started = time.perf_counter()
        for _ in range(frames // 8):
            next(batches)["image"]  # collated into one (8, H, W, 3) tensor
        return _rates(frames // 8 * 8, started, mine, others, [worker.pid])
    finally:
        worker.kill()
        worker.wait()
        remove_stale_files()
        socket.close(linger=0)


def _rates(
    frames: int, started: float, mine: float, others: float, pids: list[int]
) -> dict[str, float]:
    wall = time.perf_counter() - started
    trainer = _cpu_seconds([os.getpid()]) - mine
    rest = _cpu_seconds(pids) - others
    return {
        "fps": frames / wall,
        "trainer_ms": 1000 * trainer / frames,
        "total_ms": 1000 * (trainer + rest) / frames,
    }


def transport(rounds: int, frames: int = 3000) -> None:
    """Transport alone, side by side: wall-clock frames/s and CPU ms per frame."""
    memory, file = "frame in memory", "frame in the renderer's file"
    contenders = {
        f"StreamDataset, 1 frame per request ({memory})": lambda: transport_stream(frames, 0),
        f"StreamDataset, defaults: 4 frames per request ({memory})": lambda: transport_stream(
            frames, 0, 4
        ),
        f"{BLENDTORCH} ({memory})": lambda: transport_blendtorch(frames),
        f"StreamDataset, 1 frame per request ({file})": lambda: transport_stream(
            frames, 0, 1, "file"
        ),
        f"StreamDataset, 2 frames per request ({file})": lambda: transport_stream(
            frames, 0, 2, "file"
        ),
        f"StreamDataset, defaults: 4 frames per request ({file})": lambda: transport_stream(
            frames, 0, 4, "file"
        ),
        f"StreamDataset, defaults, DataLoader worker ({file})": lambda: transport_stream(
            frames, 1, 4, "file"
        ),
        f"{BLENDTORCH} ({file})": lambda: transport_blendtorch(frames, "file"),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            results[name].append(run())
    medians = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    print(
        "\n| transport (ready 640x512 frames, 1 instance, each copied into a batch) | "
        "frames/s | trainer CPU ms/frame | total CPU ms/frame | total CPU vs BlendTorch "
        "| frames/s vs BlendTorch |"
    )
    print("|---|---|---|---|---|---|")
    for name, m in medians.items():
        source = file if file in name else memory
        base = medians[f"{BLENDTORCH} ({source})"]
        print(
            f"| {name} | {m['fps']:.0f} | {m['trainer_ms']:.3f} | {m['total_ms']:.3f} | "
            f"{base['total_ms'] / m['total_ms']:.2f}x | {m['fps'] / base['fps']:.2f}x |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenes", default="cube,parts", help="'' for the transport only")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window")
    args = parser.parse_args()
    contenders = {"bare": bare, "stream": stream, "blendtorch": blendtorch}
    print(
        "| scene (640x512) | instances | bare loop fps | StreamDataset fps | "
        "BlendTorch-style fps | stream / bare | stream / blendtorch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in filter(None, args.scenes.split(",")):
        spec, kwargs = SCENES[name]
        for n in (1, 2):
            rates: dict[str, list[float]] = {c: [] for c in contenders}
            for _ in range(args.rounds):
                for contender, run in contenders.items():
                    rates[contender].append(run(spec, kwargs, n, args.seconds))
            m = {c: statistics.median(v) for c, v in rates.items()}
            print(
                f"| {name} | {n} | {m['bare']:.1f} | {m['stream']:.1f} | "
                f"{m['blendtorch']:.1f} | {m['stream'] / m['bare']:.2f} | "
                f"{m['stream'] / m['blendtorch']:.2f} |",
                flush=True,
            )
    transport(args.rounds)


if __name__ == "__main__":
    main()
