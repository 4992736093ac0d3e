"""Batching stream items: :func:`collate`, with observations stacked straight into shared
memory in a ``DataLoader`` worker, and infos batched by key.

An item's ``info`` is an :class:`Info` (a ``dict``) whose type torch's ``default_collate``
knows: fixed-shape values batch as torch batches them, and a value whose shape varies
from frame to frame (per-object annotations) raises an error that names the key and
points at :func:`collate`, instead of torch's ``stack expects each tensor to be equal
size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info
from torch.utils.data._utils.collate import collate as torch_collate
from torch.utils.data._utils.collate import default_collate_fn_map

from btgym.data._info import Info
from btgym.errors import ConfigError


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch stream items: observations stacked into a tensor, infos batched by key.

    ``info`` becomes a dict of batched values: a key whose values are numbers or
    numeric arrays of one shape in every item becomes a tensor (``batch["info"]["xy"]``:
    ``(B, 8, 2)``), any other (ragged per-object arrays, strings, keys some items lack,
    missing ones as None) a list of the items' values. ``infos`` keeps each item's info
    dict. ``env_id``, ``episode``, ``step`` and ``seed`` become int64 tensors and numeric
    ``params`` a stacked float64 tensor (NaN rows for items without params); a sensor
    model's ``sensor`` values a stacked float32 tensor.
    """
    infos = [dict(item["info"]) for item in items]
    batch: dict[str, Any] = {
        "obs": _stack([item["obs"] for item in items]),
        "info": batch_infos(infos),
        "infos": infos,
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


def batch_infos(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Info dicts batched by key: same-shape numbers and arrays as tensors, others lists."""
    keys: dict[str, None] = {}
    for info in infos:
        keys.update(dict.fromkeys(info))
    return {key: _batched([info.get(key) for info in infos]) for key in keys}


def _batched(values: list[Any]) -> Any:
    """One tensor for numbers or numeric arrays of one shape and dtype; else the list."""
    if not all(isinstance(v, np.ndarray | np.generic | int | float | bool) for v in values):
        return list(values)
    arrays = [np.asarray(v) for v in values]
    first = arrays[0]
    if first.dtype.kind not in "biuf" or first.dtype.byteorder == ">":
        return list(values)
    if any(a.shape != first.shape or a.dtype != first.dtype for a in arrays):
        return list(values)
    return torch.as_tensor(np.stack(arrays))


def _collate_info(batch: list[Info], *, collate_fn_map: dict[Any, Callable] | None = None):
    """Torch's ``default_collate`` for :class:`Info`: by key, naming a ragged key."""
    keys: dict[str, None] = {}
    for info in batch:
        keys.update(dict.fromkeys(info))
    out: dict[str, Any] = {}
    for key in keys:
        values = [info.get(key) for info in batch]
        try:
            out[key] = torch_collate(values, collate_fn_map=collate_fn_map)
        except (RuntimeError, TypeError) as exc:
            shapes = sorted({str(np.shape(v)) if v is not None else "None" for v in values})
            raise ConfigError(
                f"expected info[{key!r}] of one shape in every item for torch's "
                f"default_collate, got shapes {', '.join(shapes)}: per-object annotations "
                "vary from frame to frame; batch with DataLoader(..., collate_fn="
                "btgym.data.collate) (same-shape values become tensors, the others lists) "
                f"or pad them in the scene ({exc})"
            ) from exc
    return out


default_collate_fn_map[Info] = _collate_info


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


__all__ = ["batch_infos", "collate"]
