"""The contact sheets of docs/raster.md: the same seeds through both engines.

At 320x256, once with ``engine="workbench"`` and once with ``engine="raster"``, in this
process (``blender_side.testing.SceneEnv``). First row: Parts-v0 and Cube-v0 reset with
seeds 0 and 1 at their default parameters; second row: Parts-v0 seeds 2-5 with
``matcap_prob=1`` (every arrangement lit by a random matcap of Blender's). Annotations
drawn from ``info`` by ``btgym.preview.contact_sheet`` (Parts' boxes with class and
instance ids, Cube's projected corners).

    python docs/img/engine_sheets.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ENGINES = ("workbench", "raster")
SIZE = {"width": 320, "height": 256}
#: (caption, scene, seeds, reset options), tile by tile, row by row (4 columns).
TILES = (
    ("Parts", "envs.parts:PartsScene", (0, 1), None),
    ("Cube", "envs.cube:CubeScene", (0, 1), None),
    ("Parts", "envs.parts:PartsScene", (2, 3, 4, 5), {"params": {"matcap_prob": 1.0}}),
)
COLUMNS = 4


def tiles_for(engine: str) -> list[tuple[Any, dict[str, Any], str]]:
    """``(frame, info, caption)`` for every scene and seed, rendered with ``engine``."""
    from blender_side.testing import SceneEnv

    tiles = []
    for name, spec, seeds, options in TILES:
        env = SceneEnv(spec, engine=engine, **SIZE)
        try:
            for seed in seeds:
                frame, info = env.reset(seed=seed, options=options)
                look = ", matcap" if options else ""
                tiles.append((frame, info, f"{name} {engine} seed {seed}{look}"))
        finally:
            env.close()
    return tiles


def main() -> None:
    """Write sheet-workbench.png and sheet-raster.png into --out."""
    from btgym.preview import contact_sheet

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    for engine in ENGINES:
        path = args.out / f"sheet-{engine}.png"
        contact_sheet(tiles_for(engine), columns=COLUMNS).save(path)
        print(path)


if __name__ == "__main__":
    main()
