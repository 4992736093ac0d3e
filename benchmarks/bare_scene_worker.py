"""Runs inside bpy: a scene stepped in a loop in-process (no server), or published
BlendTorch's way (``send_pyobj`` of a dict holding the flipped, non-contiguous frame its
offscreen renderer returns, over ZeroMQ PUSH) for the transport comparison.

    python bare_scene_worker.py SPEC KWARGS_JSON loop      # reads "T0 T1" windows on stdin
    python bare_scene_worker.py SPEC KWARGS_JSON push ADDR # publishes frames until killed
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blender_side.loading import load_scene_class  # noqa: E402


def main() -> None:
    spec, kwargs, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    scene = load_scene_class(spec)(**kwargs)
    scene.build()
    scene.run_reset(seed=0)
    scene.action_space.seed(0)
    action = scene.action_space.sample()

    def step():  # run_step/run_reset, as the server: they apply the scene's step limit
        obs, _, terminated, truncated, info = scene.run_step(action)
        if terminated or truncated:
            obs, info = scene.run_reset()
        return obs, info

    if mode == "loop":
        # Steps until T1 (time.monotonic, the same clock in every process) and answers with
        # the number of steps that ended inside [T0, T1]: a steady-state window shared by
        # all workers, so their counts add up to the machine's rate.
        print("ready", flush=True)
        for line in sys.stdin:
            start, end = map(float, line.split())
            count = 0
            while time.monotonic() < end:
                step()
                count += start <= time.monotonic() <= end
            print(json.dumps({"steps": count}), flush=True)
    else:  # BlendTorch's transport, as its DataPublisher does it
        import numpy as np
        import zmq

        socket = zmq.Context.instance().socket(zmq.PUSH)
        socket.setsockopt(zmq.SNDHWM, 10)  # DataPublisher's queue
        socket.connect(sys.argv[4])
        while True:
            obs, info = step()
            # Its OffScreenRenderer returns the GPU buffer flipped to top-down with
            # np.flipud: a view with a negative row stride, which pickle must copy.
            image = np.flipud(np.ascontiguousarray(obs[::-1]))
            socket.send_pyobj({"btid": 0, "image": image, **info})


if __name__ == "__main__":
    main()
