"""What a raster draw of Parts-v0 costs per look, as a stream instance draws them.

Parts-v0 in this process (``blender_side.testing.SceneEnv``, ``engine="raster"``,
640x512), stepped the way a stream steps it: sampled actions (so sampled looks: studio
light, matcap or flat, shadows), an autoreset every ``views`` steps. Each draw
(``Raster.draw``: shadow map, frame, labels, read-back) is timed and filed under its
look's shader variant; prints the median per variant and the median and mean over all
draws (the mean is what a stream's throughput follows). Run it with
``LP_NUM_THREADS=1`` to draw as one of two instances on two cores does (the launcher's
share). ``--root`` measures another checkout's code (e.g. a worktree of an older commit)
for a before/after on the same host.

    LP_NUM_THREADS=1 python benchmarks/raster_looks.py [--arrangements 30 --root PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {0: "flat", 1: "studio", 2: "matcap"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrangements", type=int, default=30)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    import bpy  # noqa: F401  (Blender first: the scene's modules import it)

    from blender_side import raster, raster_look
    from blender_side.testing import SceneEnv

    draws: dict[str, list[float]] = defaultdict(list)
    original = raster.Raster.draw

    def timed(self, scene, depsgraph):
        started = time.perf_counter()
        frame = original(self, scene, depsgraph)
        elapsed = time.perf_counter() - started
        look = raster_look.read_look(scene, scene.camera.matrix_world.inverted())
        mode, specular, _, shadows, _ = raster_look.shader_key(look, True)
        name = MODES.get(mode, str(mode)) + (" specular" if specular else "")
        draws[name + (" shadows" if shadows else "")].append(elapsed)
        return frame

    raster.Raster.draw = timed
    env = SceneEnv("envs.parts:PartsScene", width=640, height=512, engine="raster")
    try:
        scene = env.scene
        env.reset(seed=0)
        scene.action_space.seed(0)
        draws.clear()  # the first draw compiles shaders
        for arrangement in range(args.arrangements):
            for _ in range(scene.views):
                scene.run_step(scene.action_space.sample())
            scene.run_autoreset(1000 + arrangement)
    finally:
        env.close()
    every = [t for times in draws.values() for t in times]
    print(f"code: {args.root.resolve()}")
    print("| look | draws | ms (median) | ms (mean) |")
    print("|---|---|---|---|")
    for name, times in [*sorted(draws.items(), key=lambda item: -len(item[1])), ("all", every)]:
        median, mean = statistics.median(times) * 1e3, statistics.fmean(times) * 1e3
        print(f"| {name} | {len(times)} | {median:.1f} | {mean:.1f} |")


if __name__ == "__main__":
    main()
