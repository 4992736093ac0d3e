"""Gymnasium spaces as plain data, so they travel in a message without pickle.

Every space in ``gymnasium.spaces`` travels: the fundamental ones (Box, Discrete,
MultiDiscrete, MultiBinary, Text) and the composite ones (Dict, Tuple, Sequence, OneOf,
Graph). Values travel as msgpack turns them (tuples become lists, a ``GraphInstance`` a
list of its three arrays); :func:`restore` gives them back Gymnasium's types.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from gymnasium import spaces

from btgym.errors import SpaceError

SUPPORTED = (
    "Box",
    "Discrete",
    "MultiDiscrete",
    "MultiBinary",
    "Text",
    "Dict",
    "Tuple",
    "Sequence",
    "OneOf",
    "Graph",
)


def space_to_data(space: spaces.Space) -> dict[str, Any]:
    """Describe ``space`` with msgpack-able values and numpy arrays."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low,
            "high": space.high,
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec,
            "start": space.start,
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Text):
        return {
            "type": "Text",
            "max_length": space.max_length,
            "min_length": space.min_length,
            "charset": "".join(space.character_list),  # in order: flattening indexes it
        }
    return _composite_to_data(space)


def _composite_to_data(space: spaces.Space) -> dict[str, Any]:
    """The description of a space made of other spaces."""
    if isinstance(space, spaces.Dict):
        return {
            "type": "Dict",
            "spaces": [[key, space_to_data(sub)] for key, sub in space.spaces.items()],
        }
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_data(sub) for sub in space.spaces]}
    if isinstance(space, spaces.Sequence):
        return {
            "type": "Sequence",
            "space": space_to_data(space.feature_space),
            "stack": bool(space.stack),
        }
    if isinstance(space, spaces.OneOf):
        return {"type": "OneOf", "spaces": [space_to_data(sub) for sub in space.spaces]}
    if isinstance(space, spaces.Graph):
        edges = None if space.edge_space is None else space_to_data(space.edge_space)
        return {"type": "Graph", "node_space": space_to_data(space.node_space), "edge_space": edges}
    raise SpaceError(
        f"expected one of the spaces {', '.join(SUPPORTED)}, got {type(space).__name__}"
    )


def space_from_data(data: Any) -> spaces.Space:
    """Rebuild a space from :func:`space_to_data`'s output."""
    if not isinstance(data, dict) or "type" not in data:
        raise SpaceError(f"expected a space description with a 'type' key, got {data!r:.80}")
    kind = data["type"]
    build = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if build is None:
        raise SpaceError(f"expected a space type in {SUPPORTED}, got {kind!r}")
    try:
        return build(data)
    except SpaceError:
        raise
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise SpaceError(f"malformed {kind!r} description: {exc!r}") from exc


def _box(data: dict[str, Any]) -> spaces.Box:
    dtype = np.dtype(data["dtype"])
    low, high = np.asarray(data["low"], dtype), np.asarray(data["high"], dtype)
    # Box takes any np.dtype (it calls np.dtype(dtype)); its hint names only scalar types,
    # and passing dtype.type would lose a non-native byte order.
    return spaces.Box(low=low, high=high, shape=low.shape, dtype=cast(Any, dtype))


def _discrete(data: dict[str, Any]) -> spaces.Discrete:
    n, start = int(data["n"]), int(data["start"])
    dtype = np.dtype(data.get("dtype", "<i8"))
    if dtype == np.int64:  # the default: also for Gymnasium versions without ``dtype=``
        return spaces.Discrete(n, start=start)
    return spaces.Discrete(n, start=start, dtype=dtype.str)


def _multi_discrete(data: dict[str, Any]) -> spaces.MultiDiscrete:
    dtype = np.dtype(data["dtype"])
    return spaces.MultiDiscrete(
        np.asarray(data["nvec"]), dtype=dtype.str, start=np.asarray(data["start"])
    )


def _multi_binary(data: dict[str, Any]) -> spaces.MultiBinary:
    n = data["n"]
    return spaces.MultiBinary(n if isinstance(n, int) else list(n))


def _text(data: dict[str, Any]) -> spaces.Text:
    charset = data["charset"]
    if not isinstance(charset, str):
        raise TypeError(f"expected the charset as a str, got {type(charset).__name__}")
    return spaces.Text(int(data["max_length"]), min_length=int(data["min_length"]), charset=charset)


def _graph(data: dict[str, Any]) -> spaces.Graph:
    edges = data["edge_space"]
    return spaces.Graph(
        _graph_part(data["node_space"]), None if edges is None else _graph_part(edges)
    )


def _graph_part(data: Any) -> spaces.Box | spaces.Discrete:
    space = space_from_data(data)
    if not isinstance(space, spaces.Box | spaces.Discrete):
        raise SpaceError(
            "expected a Graph's node and edge spaces as Box or Discrete, "
            f"got {type(space).__name__}"
        )
    return space


_BUILDERS = {
    "Box": _box,
    "Discrete": _discrete,
    "MultiDiscrete": _multi_discrete,
    "MultiBinary": _multi_binary,
    "Text": _text,
    "Dict": lambda data: spaces.Dict({key: space_from_data(sub) for key, sub in data["spaces"]}),
    "Tuple": lambda data: spaces.Tuple([space_from_data(sub) for sub in data["spaces"]]),
    "Sequence": lambda data: spaces.Sequence(
        space_from_data(data["space"]), stack=bool(data["stack"])
    ),
    "OneOf": lambda data: spaces.OneOf([space_from_data(sub) for sub in data["spaces"]]),
    "Graph": _graph,
}


def restore(space: spaces.Space, value: Any) -> Any:
    """Give a decoded value the Python types ``space.contains`` expects.

    msgpack turns tuples into lists and numpy integers into ints; this undoes that.
    """
    if isinstance(space, spaces.Dict) and isinstance(value, dict):
        return {
            key: restore(sub, value[key]) if key in value else None
            for key, sub in space.spaces.items()
        }
    if isinstance(space, spaces.Tuple) and isinstance(value, list | tuple):
        return tuple(restore(sub, item) for sub, item in zip(space.spaces, value, strict=False))
    if isinstance(space, spaces.Discrete) and not isinstance(value, np.ndarray):
        return np.dtype(space.dtype).type(value)
    if isinstance(space, spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary):
        return np.asarray(value, dtype=space.dtype)
    if isinstance(space, spaces.Sequence | spaces.OneOf | spaces.Graph):
        return _restore_composite(space, value)
    return value


def _restore_composite(space: spaces.Space, value: Any) -> Any:
    """:func:`restore` for Sequence (a tuple, or stacked), OneOf (index, value) and Graph."""
    if isinstance(space, spaces.Sequence):
        if space.stack:
            return restore(space.stacked_feature_space, value)
        if isinstance(value, list | tuple):
            return tuple(restore(space.feature_space, item) for item in value)
        return value
    if isinstance(space, spaces.OneOf):
        if isinstance(value, list | tuple) and len(value) == 2 and _is_index(value[0], space):
            index = int(value[0])
            return np.int64(index), restore(space.spaces[index], value[1])
        return value
    if isinstance(space, spaces.Graph) and isinstance(value, list | tuple) and len(value) == 3:
        nodes, edges, links = value
        return spaces.GraphInstance(
            np.asarray(nodes, dtype=space.node_space.dtype),
            None if edges is None or space.edge_space is None
            else np.asarray(edges, dtype=space.edge_space.dtype),
            None if links is None else np.asarray(links),
        )  # fmt: skip
    return value


def _is_index(value: Any, space: spaces.OneOf) -> bool:
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and 0 <= int(value) < len(space.spaces)
    )


__all__ = ["SUPPORTED", "restore", "space_from_data", "space_to_data"]
