"""Rendered sets cached as tar shards, shared by the experiments' target and training sets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from btgym.data import ReplayDataset
from btgym.recording import record


def rendered(items: Iterable[dict[str, Any]], params: np.ndarray) -> Iterator[dict[str, Any]]:
    """Items rendered with ``params``: a stream's first arrangement per instance is reset
    with a seed and uses the scene's own parameters, so it is left out."""
    for item in items:
        if np.allclose(np.asarray(item["info"]["params"], np.float64), params, atol=1e-5):
            yield item


def cached_shards(
    directory: Path,
    meta: dict[str, Any],
    count: int,
    items: Callable[[], Iterator[dict[str, Any]]],
) -> ReplayDataset:
    """``count`` items of ``items()`` recorded once under ``directory``; reused while its
    ``meta.json`` equals ``meta`` (a changed spec renders afresh)."""
    marker = directory / "meta.json"
    if marker.exists() and json.loads(marker.read_text()) == meta:
        return ReplayDataset(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for stale in directory.glob("shard-*"):
        stale.unlink()
    stream = items()
    try:
        record(stream, directory, shard_size=500, limit=count)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    marker.write_text(json.dumps(meta))
    replay = ReplayDataset(directory)
    if len(replay) != count:
        raise RuntimeError(f"expected {count} frames in {directory}, got {len(replay)}")
    return replay
