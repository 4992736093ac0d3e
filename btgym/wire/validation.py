"""Check actions against their space before anything is sent to Blender."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from btgym.errors import InvalidActionError


def check_action(space: spaces.Space, action: Any, name: str = "action") -> Any:
    """Return ``action`` in the form the wire expects, or raise :class:`InvalidActionError`.

    The error names the space and says what was wrong (shape, dtype, NaN, bounds).
    """
    if isinstance(space, spaces.Box):
        return _check_box(space, action, name)
    if isinstance(space, spaces.Discrete):
        return _check_discrete(space, action, name)
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        array = _as_array(space, action, name, integer=True)
        if not space.contains(array.astype(space.dtype)):
            raise InvalidActionError(f"expected {name} in {space}, got {_show(array)}")
        return array.astype(space.dtype)
    if isinstance(space, spaces.Dict):
        if not isinstance(action, dict) or set(action) != set(space.spaces):
            got = sorted(action) if isinstance(action, dict) else type(action).__name__
            raise InvalidActionError(
                f"expected {name} with keys {sorted(space.spaces)} for {space}, got {got}"
            )
        return {k: check_action(sub, action[k], f"{name}[{k!r}]") for k, sub in space.items()}
    if isinstance(space, spaces.Tuple):
        if not isinstance(action, (tuple, list)) or len(action) != len(space.spaces):
            raise InvalidActionError(
                f"expected {name} as a sequence of {len(space.spaces)} for {space}, got "
                f"{_show(action)}"
            )
        return [
            check_action(sub, a, f"{name}[{i}]")
            for i, (sub, a) in enumerate(zip(space, action, strict=True))
        ]
    if not space.contains(action):
        raise InvalidActionError(f"expected {name} in {space}, got {_show(action)}")
    return action


def _check_box(space: spaces.Box, action: Any, name: str) -> np.ndarray:
    # Method calls and dtype kinds instead of np.all/np.issubdtype: this runs on every
    # step on both sides, so it must stay a few microseconds.
    array = _as_array(space, action, name, integer=space.dtype.kind in "iu")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidActionError(f"expected finite {name} in {space}, got {_show(array)}")
    inside = array >= space.low  # compared before the cast, which could wrap or round
    inside &= array <= space.high
    if not inside.all():
        index = tuple(int(i) for i in np.argwhere(~inside)[0])
        raise InvalidActionError(
            f"expected {name} in {space}, got {_show(array)}: element {index} = "
            f"{array[index]} is outside [{space.low[index]}, {space.high[index]}]"
        )
    out = array.astype(space.dtype, copy=False)
    return _positive_zeros(out) if out.dtype.kind == "f" else out


def _positive_zeros(array: np.ndarray) -> np.ndarray:
    """A copy of a float ``array`` with -0.0 turned into +0.0 (IEEE: -0.0 + 0.0 = +0.0).

    -0.0 is inside ``Box(0, 1)`` (``-0.0 >= 0``), yet a scene using an entry as a bound
    gets a reversed range (``uniform(-a, a)`` fails for a = -0.0), or another sign from
    ``1 / a``, ``copysign`` or ``atan2``. The checked action is what goes on the wire and
    what the server hands its scene, so one canonical zero here covers every scene, for
    about 0.5 us (the copy; the caller's array is left as it is).
    """
    total = array + _zero_of(array.dtype)
    return total if array.ndim else np.asarray(total)  # a 0-d sum is a numpy scalar


_ZEROS: dict[np.dtype, np.ndarray] = {}


def _zero_of(dtype: np.dtype) -> np.ndarray:
    """A cached 0-d +0.0 of ``dtype`` (of the same dtype, so the sum keeps it)."""
    zero = _ZEROS.get(dtype)
    if zero is None:
        zero = _ZEROS[dtype] = np.zeros((), dtype)
    return zero


def _check_discrete(space: spaces.Discrete, action: Any, name: str) -> int:
    array = np.asarray(action)
    if array.shape not in ((), (1,)) or not (
        np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
    ):
        raise InvalidActionError(f"expected {name} in {space} (an integer), got {_show(action)}")
    value = int(array.reshape(-1)[0])
    if not space.start <= value < space.start + space.n:
        raise InvalidActionError(
            f"expected {name} in {space}: {space.start} <= {name} < {space.start + space.n}, "
            f"got {value}"
        )
    return value


def _as_array(space: spaces.Space, action: Any, name: str, integer: bool) -> np.ndarray:
    try:
        array = np.asarray(action)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"expected {name} in {space}, got {_show(action)}") from exc
    if array.dtype.kind not in "biuf":
        raise InvalidActionError(
            f"expected numeric {name} in {space}, got dtype {array.dtype} ({_show(action)})"
        )
    if array.shape != space.shape:
        raise InvalidActionError(f"expected {name} in {space}, got shape {array.shape}")
    if (integer and array.dtype.kind == "f") and (
        not np.isfinite(array).all() or (array != np.round(array)).any()
    ):
        raise InvalidActionError(f"expected integer {name} in {space}, got {_show(array)}")
    return array


def _show(value: Any, limit: int = 80) -> str:
    text = np.array2string(value, threshold=8) if isinstance(value, np.ndarray) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["check_action"]
