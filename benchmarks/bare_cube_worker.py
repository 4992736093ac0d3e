"""Runs inside bpy: the Cube scene stepped in-process, no server, no sockets.

Reads a step count per line on stdin and answers with one JSON line of per-step
timings in ms: the whole step (randomize, render, read back, project corners) and
its parts.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from blender_side.render import stdout_silenced  # noqa: E402
from blender_side.tiff import tiff_rgb8  # noqa: E402
from btgym.wire.frame_files import WRITER  # noqa: E402
from envs.cube import CubeScene  # noqa: E402


def main() -> None:
    width, height = int(sys.argv[1]), int(sys.argv[2])
    scene = CubeScene(width=width, height=height)
    scene.build()
    scene.reset(seed=0)
    action = np.ones(3, np.float32)
    renderer = scene.renderer
    print("ready", flush=True)
    for line in sys.stdin:
        steps = int(line)
        step_ms, render_ms, write_ms, read_ms = [], [], [], []
        for _ in range(steps):
            t0 = time.perf_counter()
            scene.step(action)
            step_ms.append((time.perf_counter() - t0) * 1000)
        # The step's parts, measured separately on the same scene.
        for _ in range(max(5, steps // 4)):
            scene.cube.rotation_euler.z += 0.1
            t0 = time.perf_counter()
            with stdout_silenced(True):
                bpy.ops.render.render(write_still=False)
            t1 = time.perf_counter()
            with stdout_silenced(True):
                bpy.ops.render.render(write_still=True)
            t2 = time.perf_counter()
            tiff_rgb8(WRITER.map(renderer.path))  # what a step does: map, view, unname
            t3 = time.perf_counter()
            render_ms.append((t1 - t0) * 1000)
            write_ms.append((t2 - t1 - (t1 - t0)) * 1000)
            read_ms.append((t3 - t2) * 1000)
        print(
            json.dumps({"step": step_ms, "render": render_ms, "write": write_ms, "read": read_ms}),
            flush=True,
        )


if __name__ == "__main__":
    main()
