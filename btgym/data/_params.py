"""The feedback channel's codec: a nested action as one flat float64 row, and the
``params`` an item carries when no action made it.

:class:`~btgym.data.StreamDataset` shares one such row per instance with ``DataLoader``
workers (shared memory), so that :meth:`~btgym.data.StreamDataset.set_params` in the
main process reaches every worker's instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from btgym.errors import ConfigError, InvalidActionError


def params_placeholder(space: spaces.Space) -> Any:
    """What an item no action made carries as ``params`` when the stream has none.

    A value shaped like an action: NaN for floating-point entries, the lowest value for
    integer ones (Discrete ``start``, MultiDiscrete ``start``, MultiBinary 0, an integer
    Box its ``low``); ``None`` for spaces without a fixed shape (Text, Sequence, ...).
    """
    if isinstance(space, spaces.Box):
        if np.dtype(space.dtype).kind == "f":
            return np.full(space.shape, np.nan, dtype=space.dtype)
        return space.low.copy()
    if isinstance(space, spaces.Discrete):
        return np.dtype(space.dtype).type(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, dtype=space.dtype)
    if isinstance(space, spaces.Dict):
        return {key: params_placeholder(sub) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(params_placeholder(sub) for sub in space.spaces)
    return None


class ParamsLayout:
    """How a nested action (dicts, lists/tuples, numbers, numeric arrays) maps to one flat
    float64 row: the feedback channel shares one row per instance with DataLoader workers.

    The layout comes from the first value (``params=``); later values must have the same
    structure (keys, lengths, shapes), or :meth:`flatten` says what differs. Integers up
    to 2**53 survive the float64 row exactly.
    """

    def __init__(self, template: Any) -> None:
        self.template = template  # the structure, leaves replaced by (shape, dtype)
        self.size = _leaf_count(template)

    @classmethod
    def of(cls, value: Any) -> ParamsLayout:
        """The layout of ``value``."""
        return cls(_template(value))

    def flatten(self, value: Any) -> np.ndarray:
        """``value`` as a flat float64 row."""
        out: list[np.ndarray] = []
        _flatten_into(self.template, value, out, "params")
        return np.concatenate(out) if out else np.zeros(0)

    def labels(self) -> list[str]:
        """What each entry of a row is, for messages: ``params[2]``, ``params['box'][1, 0]``."""
        out: list[str] = []
        _labels_into(self.template, "params", out)
        return out

    def bounds(self, space: spaces.Space) -> tuple[np.ndarray, np.ndarray] | None:
        """The lowest and highest value of each entry of a row in ``space``; None when the
        space has no numeric bounds in this layout (Text, a structure params do not match).
        """
        try:
            low, high = _space_bounds(space)
            return self.flatten(low), self.flatten(high)
        except ConfigError:
            return None

    def check(self, row: np.ndarray, low: np.ndarray | None, high: np.ndarray | None) -> None:
        """Raise :class:`InvalidActionError` naming each entry of ``row`` that is NaN, or
        (with bounds) below ``low`` or above ``high``: the entry, its bound and its value.
        """
        bad = np.isnan(row)
        if low is not None and high is not None:
            bad |= (row < low) | (row > high)
        if not bad.any():
            return
        labels, problems = self.labels(), []
        for i in np.flatnonzero(bad)[:8]:
            if np.isnan(row[i]):
                problems.append(f"{labels[i]} is NaN")
            elif low is not None and row[i] < low[i]:
                problems.append(f"{labels[i]}={row[i]:g} below its low {low[i]:g}")
            elif high is not None:
                problems.append(f"{labels[i]}={row[i]:g} above its high {high[i]:g}")
        more = int(bad.sum()) - len(problems)
        raise InvalidActionError(
            "expected params within the action space's bounds, got "
            + "; ".join(problems)
            + (f" (and {more} more)" if more > 0 else "")
        )

    def unflatten(self, row: np.ndarray) -> Any:
        """The nested value a row holds."""
        value, used = _unflatten(self.template, np.asarray(row, np.float64), 0)
        if used != len(row):
            raise ConfigError(f"expected a row of {used} parameters, got {len(row)}")
        return value


@dataclass(frozen=True)
class _Leaf:
    """One numeric entry of a params layout: its shape and dtype, and whether it was a
    Python/numpy scalar (given back as a scalar).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    scalar: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _template(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _template(item) for key, item in value.items()}
    if isinstance(value, list | tuple) and not all(
        isinstance(item, int | float | np.number) for item in value
    ):  # a Tuple action; a list of numbers is one array (a Box given as a list)
        return type(value)(_template(item) for item in value)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"expected numeric params, got {array.dtype} in {value!r:.80}")
    return _Leaf(array.shape, array.dtype, not isinstance(value, np.ndarray) and array.ndim == 0)


def _leaf_count(template: Any) -> int:
    if isinstance(template, dict):
        return sum(_leaf_count(item) for item in template.values())
    if isinstance(template, list | tuple):
        return sum(_leaf_count(item) for item in template)
    return template.size


def _flatten_into(template: Any, value: Any, out: list[np.ndarray], where: str) -> None:
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ConfigError(f"expected {where} with keys {sorted(template)}, got {got}")
        for key, item in template.items():
            _flatten_into(item, value[key], out, f"{where}[{key!r}]")
    elif isinstance(template, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(template):
            raise ConfigError(
                f"expected {where} as a sequence of {len(template)}, got {value!r:.80}"
            )
        for i, (item, part) in enumerate(zip(template, value, strict=True)):
            _flatten_into(item, part, out, f"{where}[{i}]")
    else:
        array = np.asarray(value, np.float64)
        if array.shape != template.shape:
            raise ConfigError(f"expected {where} of shape {template.shape}, got {array.shape}")
        out.append(array.reshape(-1))


def _labels_into(template: Any, where: str, out: list[str]) -> None:
    if isinstance(template, dict):
        for key, item in template.items():
            _labels_into(item, f"{where}[{key!r}]", out)
    elif isinstance(template, list | tuple):
        for i, item in enumerate(template):
            _labels_into(item, f"{where}[{i}]", out)
    elif template.shape == ():
        out.append(where)
    else:
        out += [f"{where}[{', '.join(map(str, i))}]" for i in np.ndindex(template.shape)]


def _space_bounds(space: spaces.Space) -> tuple[Any, Any]:
    """The lowest and the highest action of ``space``, shaped like an action."""
    if isinstance(space, spaces.Box):
        return space.low, space.high
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start), np.int64(space.start + space.n - 1)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start), np.asarray(space.start) + space.nvec - 1
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape), np.ones(space.shape)
    if isinstance(space, spaces.Dict):
        pairs = {key: _space_bounds(sub) for key, sub in space.spaces.items()}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if isinstance(space, spaces.Tuple):
        ends = [_space_bounds(sub) for sub in space.spaces]
        return tuple(e[0] for e in ends), tuple(e[1] for e in ends)
    raise ConfigError(f"expected a space with numeric bounds, got {space}")


def _unflatten(template: Any, row: np.ndarray, start: int) -> tuple[Any, int]:
    if isinstance(template, dict):
        result = {}
        for key, item in template.items():
            result[key], start = _unflatten(item, row, start)
        return result, start
    if isinstance(template, list | tuple):
        parts = []
        for item in template:
            part, start = _unflatten(item, row, start)
            parts.append(part)
        return type(template)(parts), start
    values = row[start : start + template.size].astype(template.dtype).reshape(template.shape)
    return (values[()].item() if template.scalar else values), start + template.size


def as_action(space: spaces.Space, params: Any) -> Any:
    """``params`` in the action's own form (a Box's shape and dtype); others as they are."""
    if isinstance(space, spaces.Box):
        return np.asarray(params, dtype=space.dtype).reshape(space.shape)
    return params


__all__ = ["ParamsLayout", "as_action", "params_placeholder"]
