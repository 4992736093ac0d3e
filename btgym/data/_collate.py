"""Batching stream items: :func:`collate`, with observations stacked straight into shared
memory in a ``DataLoader`` worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch stream items: observations stacked into a tensor; infos kept as a list.

    Annotations vary in length from item to item, so ``info`` stays a list of dicts;
    ``env_id``, ``episode``, ``step`` and ``seed`` become int64 tensors and numeric
    ``params`` a stacked float64 tensor (NaN rows for items without params); a sensor
    model's ``sensor`` values a stacked float32 tensor.
    """
    batch: dict[str, Any] = {
        "obs": _stack([item["obs"] for item in items]),
        "info": [item["info"] for item in items],
    }
    for key in ("env_id", "episode", "step", "seed"):
        batch[key] = torch.as_tensor([item[key] for item in items], dtype=torch.int64)
    params = [item["params"] for item in items]
    shapes = {np.shape(p) for p in params if p is not None}
    if len(shapes) == 1 and all(p is None or np.asarray(p).dtype.kind in "biuf" for p in params):
        # Numeric params stack into one tensor; items without params get a NaN row.
        (shape,) = shapes
        rows = [np.full(shape, np.nan) if p is None else np.asarray(p, np.float64) for p in params]
        batch["params"] = torch.as_tensor(np.stack(rows))
    else:
        batch["params"] = params
    if all("sensor" in item for item in items):  # a sensor model's per-frame values
        batch["sensor"] = torch.as_tensor(np.stack([item["sensor"] for item in items]))
    return batch


def _stack(arrays: list[Any]) -> torch.Tensor:
    """Stack observations into one tensor; in a DataLoader worker, straight into shared memory.

    A worker's batch crosses to the trainer as a shared-memory tensor. Stacking into
    shared memory up front saves the DataLoader a second copy of every frame.
    """
    first = np.asarray(arrays[0])
    if get_worker_info() is None or first.dtype.kind not in "biuf" or first.dtype.byteorder == ">":
        return torch.as_tensor(np.stack(arrays))
    dtype = torch.from_numpy(first.reshape(-1)[:0]).dtype
    storage = torch.UntypedStorage._new_shared(first.nbytes * len(arrays))
    size = (len(arrays), *first.shape)
    stride = torch.empty(size, device="meta").stride()  # contiguous, without allocating
    out = torch.empty(0, dtype=dtype).set_(storage, 0, size, stride)
    np.stack(arrays, out=out.numpy())
    return out


__all__ = ["collate"]
