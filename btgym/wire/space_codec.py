"""Gymnasium spaces as plain data, so they travel in a message without pickle."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from btgym.errors import SpaceError

SUPPORTED = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple")


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
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec,
            "start": space.start,
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {
            "type": "Dict",
            "spaces": [[key, space_to_data(sub)] for key, sub in space.spaces.items()],
        }
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_data(sub) for sub in space.spaces]}
    raise SpaceError(
        f"expected one of the spaces {', '.join(SUPPORTED)}, got {type(space).__name__}"
    )


def space_from_data(data: Any) -> spaces.Space:
    """Rebuild a space from :func:`space_to_data`'s output."""
    if not isinstance(data, dict) or "type" not in data:
        raise SpaceError(f"expected a space description with a 'type' key, got {data!r:.80}")
    kind = data["type"]
    try:
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            low, high = np.asarray(data["low"], dtype), np.asarray(data["high"], dtype)
            return spaces.Box(low=low, high=high, shape=low.shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]))
        if kind == "MultiDiscrete":
            dtype = np.dtype(data["dtype"])
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"]), dtype=dtype, start=np.asarray(data["start"])
            )
        if kind == "MultiBinary":
            n = data["n"]
            return spaces.MultiBinary(n if isinstance(n, int) else list(n))
        if kind == "Dict":
            return spaces.Dict({key: space_from_data(sub) for key, sub in data["spaces"]})
        if kind == "Tuple":
            return spaces.Tuple([space_from_data(sub) for sub in data["spaces"]])
    except SpaceError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SpaceError(f"malformed {kind} description: {exc!r}") from exc
    raise SpaceError(f"expected a space type in {SUPPORTED}, got {kind!r}")


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
        return np.int64(value)
    if isinstance(space, spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary):
        return np.asarray(value, dtype=space.dtype)
    return value


__all__ = ["SUPPORTED", "restore", "space_from_data", "space_to_data"]
