"""What writing a frame into a fresh frame file costs, with and without a spare.

``FrameFileWriter.create`` gives every frame a new file in shared memory; its pages are
allocated and zeroed by the kernel when first written. A server makes spares between
requests (``prepare_spares``), so the frame is written into pages already mapped. Rounds
alternate the two loops (``--frames`` frames of 640x512 RGB each, a client keeping one
request in flight); each prints the median milliseconds of ``create`` plus the write,
and for spares also of ``prepare_spares`` (off the step's path in a server).

    python benchmarks/frame_file_cost.py [--rounds 5 --frames 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym.wire.frame_files import FrameFileWriter  # noqa: E402

SHAPE = (512, 640, 3)


def frames_ms(writer: FrameFileWriter, pixels: np.ndarray, count: int, spares: bool):
    """Median ms of create + write, and of prepare_spares (0 without spares)."""
    writes, prepares = [], []
    for request in range(1, count + 1):
        writer.begin_request(request, keep=1)
        started = time.perf_counter()
        frame = writer.create(pixels.nbytes).reshape(SHAPE)
        np.copyto(frame, pixels[::-1])  # as the raster engine flips the GPU's rows
        writes.append(time.perf_counter() - started)
        del frame
        if spares:
            started = time.perf_counter()
            writer.prepare_spares()
            prepares.append(time.perf_counter() - started)
    prepared = statistics.median(prepares) * 1e3 if prepares else 0.0
    return statistics.median(writes) * 1e3, prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    pixels = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    results: dict[str, list[tuple[float, float]]] = {"fresh file": [], "spare": []}
    for _ in range(args.rounds):
        for name in results:
            writer = FrameFileWriter()
            try:
                results[name].append(frames_ms(writer, pixels, args.frames, name == "spare"))
            finally:
                writer.close()
    print(f"{args.rounds} rounds x {args.frames} frames of 640x512 RGB in {writer.base}")
    for name, rounds in results.items():
        write = statistics.median(w for w, _ in rounds)
        prepare = statistics.median(p for _, p in rounds)
        print(f"{name:10s} create + write {write:.3f} ms, prepare_spares {prepare:.3f} ms")


if __name__ == "__main__":
    main()
