"""Gymnasium's vector info format: one env's info dict added as a row of a batch.

:class:`btgym.BlenderVectorEnv` batches the infos of its instances with :func:`add_info`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def add_info(batch: dict[str, Any], info: Mapping[str, Any], row: int, rows: int) -> dict:
    """Add one env's ``info`` as row ``row`` of ``batch``, Gymnasium's vector info format.

    Each key holds an array of ``rows`` values and ``"_key"`` a boolean mask of the rows
    that have it. Numbers and bools make typed arrays, numpy arrays a stacked array,
    anything else (and ``final_obs``) an object array; a value that does not fit the
    array so far turns it into an object array. Nested dicts are batched the same way.
    """
    for key, value in info.items():
        if isinstance(value, Mapping) and key != "final_obs":
            column: Any = add_info(batch.get(key, {}), value, row, rows)
        else:
            column = _put(batch.get(key), value, row, rows, objects=key == "final_obs")
        mask = batch.get(f"_{key}")
        if mask is None:
            mask = np.zeros(rows, dtype=np.bool_)
        mask[row] = True
        batch[key], batch[f"_{key}"] = column, mask
    return batch


def _put(column: np.ndarray | None, value: Any, row: int, rows: int, objects: bool) -> np.ndarray:
    """Store ``value`` in row ``row`` of ``column`` (made for it when None)."""
    if column is None:
        column = np.full(rows, None, dtype=object) if objects else _column_for(value, rows)
    if column.dtype != object and not _fits(column, value):
        widened = np.full(rows, None, dtype=object)  # never cast a value to fit (1.5 -> 1)
        for earlier in range(rows):
            widened[earlier] = column[earlier]
        column = widened
    column[row] = value
    return column


def _fits(column: np.ndarray, value: Any) -> bool:
    """Whether ``value`` goes into a typed ``column`` unchanged: same shape, no lossy cast."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return array.shape == column.shape[1:] and np.can_cast(array.dtype, column.dtype, "same_kind")


def _column_for(value: Any, rows: int) -> np.ndarray:
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return np.zeros(rows, dtype=type(value))
    if isinstance(value, np.ndarray):
        return np.zeros((rows, *value.shape), dtype=value.dtype)
    return np.full(rows, None, dtype=object)


__all__ = ["add_info"]
