"""Merge the runs of several ``transfer`` result files (e.g. runs 0-2 and 3-4 made by two
invocations with ``--first-run``) into one, with its table and figures.

    python -m agents.experiments.merge_runs runs/transfer runs/transfer-runs34 \\
        --out runs/transfer --figures docs/img/transfer
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from agents.experiments import transfer
from agents.experiments.figures import write_figures
from agents.experiments.runner import write_outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", type=Path, nargs="+", help="directories with results.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=Path("runs/detection/cache"))
    args = parser.parse_args(argv)
    parts = [json.loads((p / "results.json").read_text()) for p in args.parts]
    merged = dict(parts[0])
    merged["runs"] = [row for part in parts for row in part["runs"]]
    keys = [(r["condition"], r["run"]) for r in merged["runs"]]
    if len(keys) != len(set(keys)):
        raise SystemExit(f"expected each (condition, run) once, got {sorted(keys)}")
    merged["command"] = " + ".join(part.get("command", "?") for part in parts)
    merged["wall_s"] = sum(part.get("wall_s", 0.0) for part in parts)
    merged["summary"] = transfer.summarize(merged["runs"])
    write_outputs(merged, args.out, transfer.markdown_table)
    names = {f.name for f in fields(transfer.Config)}
    cfg = transfer.Config(**{k: v for k, v in parts[0]["config"].items() if k in names})
    write_figures(merged, args.figures or args.out, cfg, args.cache, transfer)
    print(transfer.markdown_table(merged))


if __name__ == "__main__":
    main()
