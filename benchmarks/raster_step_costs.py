"""Where a raster Cube-v0 env step's time goes beyond the draw, side by side in one run.

Rounds interleave five loops (each ``--steps`` iterations, timed one by one; the
median per round, then the median of the rounds):

- ``draw``: the raster's draw into a frame file in this process
  (``Renderer.render()`` of an unchanged scene: ``benchmarks/raster.py``'s draw-only loop);
- ``scene step``: the scene's own step in this process (``SceneEnv.step``: the
  randomization, the changed scene's depsgraph, the draw and the labels);
- ``env step``: ``BlenderEnv.step`` on a launched instance (request, the scene step in
  Blender, reply, the frame mapped by reference here);
- ``ping``: a ``ping`` round trip to that instance (btgym's protocol, no scene work);
- ``raw zmq``: a bare pyzmq REQ/REP round trip of 200 bytes over ipc between two
  processes (the floor of any round trip on this host).

    python benchmarks/raster_step_costs.py [--rounds 7 --steps 200]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPEC = "envs.cube:CubeScene"
KWARGS = {"width": 640, "height": 512, "engine": "raster"}


def echo_server(address: str) -> None:
    """A bare REP socket that echoes until it gets ``q``."""
    socket = zmq.Context().socket(zmq.REP)
    socket.bind(address)
    while True:
        message = socket.recv_multipart()
        socket.send_multipart(message)
        if message == [b"q"]:
            return


def timed(call: Callable[[], object], count: int) -> float:
    """The median milliseconds of ``count`` calls."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    from blender_side.testing import SceneEnv
    from btgym import BlenderEnv

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    local = SceneEnv(SPEC, **KWARGS)
    local.reset(seed=0)
    env = BlenderEnv(SPEC, **KWARGS)
    env.reset(seed=0)
    action = np.ones(3, np.float32)
    directory = tempfile.mkdtemp()  # private (0700): the bare server's socket
    address = f"ipc://{directory}/echo"
    server = multiprocessing.Process(target=echo_server, args=(address,), daemon=True)
    server.start()
    raw = zmq.Context().socket(zmq.REQ)
    raw.connect(address)
    payload = [b"x" * 200]

    def raw_round_trip() -> None:
        raw.send_multipart(payload)
        raw.recv_multipart()

    loops: dict[str, Callable[[], object]] = {
        "draw": local.scene.renderer.render,
        "scene step": lambda: local.step(action),
        "env step": lambda: env.step(action),
        "ping": lambda: env.client.request("ping"),
        "raw zmq": raw_round_trip,
    }
    rounds: dict[str, list[float]] = {name: [] for name in loops}
    try:
        for call in loops.values():
            timed(call, 5)  # warm-up
        for _ in range(args.rounds):
            for name, call in loops.items():
                rounds[name].append(timed(call, args.steps))
    finally:
        raw.send_multipart([b"q"])
        raw.recv_multipart()
        server.join(5)
        env.close()
        local.close()
    median = {name: statistics.median(values) for name, values in rounds.items()}
    print(f"\n{args.rounds} interleaved rounds x {args.steps} calls, 640x512, bpy in both\n")
    print("| loop | ms (median) | rounds | ratio draw / loop |")
    print("|---|---|---|---|")
    for name, values in rounds.items():
        shown = " ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {median[name]:.3f} | {shown} | {median['draw'] / median[name]:.2f} |")
    print(
        f"\nbeyond the draw: scene {median['scene step'] - median['draw']:.3f} ms, "
        f"transport {median['env step'] - median['scene step']:.3f} ms"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
