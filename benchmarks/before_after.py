"""Two checkouts' ``render_ratios.py`` tables side by side, runs alternated.

A change is "no slowdown" when its ratios to the render-only loop (measured in the same
run as the loop itself) match the old checkout's. Because the host is shared and noisy,
the two checkouts run in turn (before, after, before, after, ...) and each cell is the
median over the repeats.

    python benchmarks/before_after.py --before /path/to/old/checkout --after . \
        [--repeats 3] [-- --rounds 2 --frames 60]

Arguments after ``--`` go to ``benchmarks/render_ratios.py`` of each checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

Row = tuple[str, str, str]  # scene, loop, processes


def run_ratios(checkout: Path, extra: list[str]) -> dict[Row, tuple[float, float]]:
    """Run one checkout's render_ratios.py; its table as {row: (frames/s, ratio)}."""
    script = checkout / "benchmarks" / "render_ratios.py"
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run(
        [sys.executable, str(script), *extra],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    ).stdout
    table: dict[Row, tuple[float, float]] = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("scene", "---"):
            try:
                table[(cells[0], cells[1], cells[2])] = (float(cells[3]), float(cells[4]))
            except ValueError:
                continue
    if not table:
        raise RuntimeError(f"no table in the output of {script}:\n{out}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--repeats", type=int, default=3)
    args, extra = parser.parse_known_args()
    extra = [arg for arg in extra if arg != "--"]
    runs: dict[str, list[dict[Row, tuple[float, float]]]] = {"before": [], "after": []}
    for repeat in range(args.repeats):
        for label, checkout in (("before", args.before), ("after", args.after)):
            print(f"repeat {repeat + 1}/{args.repeats}: {label} ({checkout})", file=sys.stderr)
            runs[label].append(run_ratios(checkout.resolve(), extra))
    print(f"{args.repeats} alternated repeats; cells are medians; load {os.getloadavg()[0]:.1f}\n")
    print("| scene | loop | processes | ratio before | ratio after | frames/s before | after |")
    print("|---|---|---|---|---|---|---|")
    for row in runs["after"][0]:
        if not all(row in run for run in runs["before"]):
            continue

        def median(label: str, column: int, row: Row = row) -> float:
            return statistics.median(run[row][column] for run in runs[label])

        print(
            f"| {' | '.join(row)} | {median('before', 1):.2f} | {median('after', 1):.2f} "
            f"| {median('before', 0):.1f} | {median('after', 0):.1f} |"
        )


if __name__ == "__main__":
    main()
