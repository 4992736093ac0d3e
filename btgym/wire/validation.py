"""Check actions against their space before anything is sent to Blender.

A wrong value (shape, bounds, NaN, length) raises :class:`InvalidActionError` (also
``ValueError``); a wrong type (a string for a number, a list for a dict, a float for a
``Discrete``) raises :class:`InvalidActionTypeError`, which is also ``TypeError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array, iterate

from btgym.errors import InvalidActionError, InvalidActionTypeError


def check_action(space: spaces.Space, action: Any, name: str = "action") -> Any:
    """Return ``action`` in the form the wire expects, or raise :class:`InvalidActionError`.

    The error names the space and says what was wrong (type, shape, dtype, NaN, bounds).
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
        return _check_dict(space, action, name)
    if isinstance(space, spaces.Tuple):
        items = _as_items(space, action, name, len(space.spaces))
        return [
            check_action(sub, a, f"{name}[{i}]")
            for i, (sub, a) in enumerate(zip(space, items, strict=True))
        ]
    if isinstance(space, spaces.Text):
        return _check_text(space, action, name)
    if isinstance(space, spaces.Sequence):
        return _check_sequence(space, action, name)
    if isinstance(space, spaces.OneOf):
        return _check_one_of(space, action, name)
    if isinstance(space, spaces.Graph):
        return _check_graph(space, action, name)
    if not space.contains(action):
        raise InvalidActionError(f"expected {name} in {space}, got {_show(action)}")
    return action


def _check_dict(space: spaces.Dict, action: Any, name: str) -> dict[str, Any]:
    if not isinstance(action, dict):
        raise InvalidActionTypeError(
            f"expected {name} as a dict with keys {sorted(space.spaces)} for {space}, got "
            f"{type(action).__name__}"
        )
    if set(action) != set(space.spaces):
        raise InvalidActionError(
            f"expected {name} with keys {sorted(space.spaces)} for {space}, got {sorted(action)}"
        )
    return {k: check_action(sub, action[k], f"{name}[{k!r}]") for k, sub in space.items()}


def _as_items(space: spaces.Space, action: Any, name: str, length: int | None) -> Any:
    """``action`` as a tuple or list (of ``length`` items when given)."""
    if not isinstance(action, (tuple, list)):
        raise InvalidActionTypeError(
            f"expected {name} as a tuple for {space}, got {type(action).__name__} ({_show(action)})"
        )
    if length is not None and len(action) != length:
        raise InvalidActionError(
            f"expected {name} as a sequence of {length} for {space}, got {_show(action)}"
        )
    return action


def _check_text(space: spaces.Text, action: Any, name: str) -> str:
    if not isinstance(action, str):
        raise InvalidActionTypeError(f"expected {name} as a str for {space}, got {_show(action)}")
    if not space.contains(action):
        raise InvalidActionError(
            f"expected {name} of {space.min_length} to {space.max_length} characters from "
            f"{space.characters!r}, got {_show(action)}"
        )
    return action


def _check_sequence(space: spaces.Sequence, action: Any, name: str) -> Any:
    """A tuple of elements (a stacked batch when ``stack=True``), each checked."""
    feature = space.feature_space
    if not space.stack:
        items = _as_items(space, action, name, None)
        return tuple(check_action(feature, a, f"{name}[{i}]") for i, a in enumerate(items))
    try:
        items = list(iterate(space.stacked_feature_space, action))
    except (TypeError, KeyError, IndexError) as exc:
        raise InvalidActionTypeError(
            f"expected {name} as a stacked batch for {space}, got {_show(action)}"
        ) from exc
    checked = [check_action(feature, a, f"{name}[{i}]") for i, a in enumerate(items)]
    out = create_empty_array(feature, len(checked))
    return concatenate(feature, checked, out) if checked else out


def _check_one_of(space: spaces.OneOf, action: Any, name: str) -> tuple[int, Any]:
    """``(index, value)`` with ``value`` in ``space.spaces[index]``."""
    index, value = _as_items(space, action, name, 2)
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise InvalidActionTypeError(
            f"expected {name}[0] as an int index for {space}, got {_show(index)}"
        )
    if not 0 <= index < len(space.spaces):
        raise InvalidActionError(
            f"expected {name}[0] in [0, {len(space.spaces)}) for {space}, got {index}"
        )
    return int(index), check_action(space.spaces[index], value, f"{name}[1]")


def _check_graph(space: spaces.Graph, action: Any, name: str) -> spaces.GraphInstance:
    """A ``GraphInstance`` (or its three parts) whose nodes, edges and links fit ``space``."""
    nodes, edges, links = _as_items(space, action, name, 3)
    if isinstance(nodes, (list, tuple)):
        nodes = np.asarray(nodes)
    graph = spaces.GraphInstance(
        nodes,
        np.asarray(edges) if isinstance(edges, list | tuple) else edges,
        np.asarray(links) if isinstance(links, list | tuple) else links,
    )
    if not isinstance(nodes, np.ndarray):
        raise InvalidActionTypeError(
            f"expected {name}.nodes as an array for {space}, got {type(nodes).__name__}"
        )
    if not space.contains(graph):
        raise InvalidActionError(
            f"expected {name} in {space}: nodes in the node space, edges in the edge space "
            f"(or both edges and edge_links None) and edge_links of shape (edges, 2) indexing "
            f"nodes, got nodes {_show(graph.nodes)}, edges {_show(graph.edges)}, edge_links "
            f"{_show(graph.edge_links)}"
        )
    return graph


def _check_box(space: spaces.Box, action: Any, name: str) -> np.ndarray:
    # Method calls and dtype kinds instead of np.all/np.issubdtype: this runs on every
    # step on both sides, so it must stay a few microseconds.
    array = _as_array(space, action, name, integer=np.dtype(space.dtype).kind in "iu")
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
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise InvalidActionTypeError(
            f"expected {name} in {space} (an integer), got {_show(action)}"
        )
    if array.shape not in ((), (1,)):
        raise InvalidActionError(f"expected {name} in {space} (an integer), got {_show(action)}")
    value = int(array.reshape(-1)[0])
    start, count = int(space.start), int(space.n)
    if not start <= value < start + count:
        raise InvalidActionError(
            f"expected {name} in {space}: {start} <= {name} < {start + count}, got {value}"
        )
    return value


def _as_array(space: spaces.Space, action: Any, name: str, integer: bool) -> np.ndarray:
    try:
        array = np.asarray(action)
    except TypeError as exc:
        raise InvalidActionTypeError(f"expected {name} in {space}, got {_show(action)}") from exc
    except ValueError as exc:  # ragged nesting: a shape problem
        raise InvalidActionError(f"expected {name} in {space}, got {_show(action)}") from exc
    if array.dtype.kind not in "biuf":
        raise InvalidActionTypeError(
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
