"""The render-only loop of ``btgym bench``: a scene's frame rendered again and again in bpy.

    python -m blender_side.render_loop SPEC KWARGS_JSON [--blend FILE]

Builds the scene in this process (:class:`blender_side.testing.SceneEnv`), resets it
once, then answers each line ``N`` on stdin with ``elapsed SECONDS``: the time ``N``
``bpy.ops.render.render(write_still=False)`` calls took (no randomization, read-back or
transport: the physical limit :mod:`btgym.bench` compares the env and the stream with).
With ``engine="raster"`` a loop is the raster's own draw into a frame (its read-back is
the draw's last step), as :meth:`~blender_side.render.Renderer.render` does it.
It prints ``ready`` once warmed up and ends at the end of its input. It runs inside
bpy, so it lives on the Blender side; the trainer starts it as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

#: Renders before ``ready``: the first frames pay for shader compilation and caches.
WARM_UP_FRAMES = 3


def render_loop(spec: str, scene_kwargs: dict[str, Any], blend_file: str | None) -> None:
    """Build the scene, then answer each line ``N`` on stdin with the seconds ``N``
    renders took; end at the end of input.
    """
    import bpy

    from blender_side.render import stdout_silenced
    from blender_side.testing import SceneEnv

    env = SceneEnv(spec, blend_file=blend_file, **scene_kwargs)
    env.reset(seed=0)

    renderer = env.scene.renderer
    raster = renderer is not None and renderer.engine == "raster"

    def renders(count: int) -> float:
        started = time.perf_counter()
        with stdout_silenced(True):  # Blender prints a line per frame
            for _ in range(count):
                if raster:
                    renderer.render()
                else:
                    bpy.ops.render.render(write_still=False)
        return time.perf_counter() - started

    renders(WARM_UP_FRAMES)
    print("ready", flush=True)
    for line in sys.stdin:
        print(f"elapsed {renders(int(line))}", flush=True)
    env.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m blender_side.render_loop SPEC KWARGS_JSON [--blend FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m blender_side.render_loop", description=__doc__)
    parser.add_argument("spec")
    parser.add_argument("kwargs")
    parser.add_argument("--blend", default=None)
    args = parser.parse_args(argv)
    render_loop(args.spec, json.loads(args.kwargs), args.blend)


if __name__ == "__main__":
    main()


__all__ = ["WARM_UP_FRAMES", "render_loop"]
