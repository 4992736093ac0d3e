"""What a client checks in a server's reply before handing it on: shapes against the space.

A server reached by address may be anyone's (``docs/security.md``): an observation
must have the structure and shapes its declared observation space promises, so that a
reply cannot smuggle a huge or misshapen array to the trainer. Only structure and
shapes are checked (cheap: no pass over the values); values are the scene's business
(``BTGYM_CHECK_OBSERVATIONS`` checks them on the server).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

#: Replies whose bodies carry observations, and where.
_OBSERVATION_KEYS = ("obs", "final_obs")


def observation_mismatch(space: spaces.Space, value: Any) -> str | None:
    """Why ``value`` cannot be an observation of ``space`` (shapes, structure), or None."""
    if isinstance(space, spaces.Box | spaces.MultiBinary | spaces.MultiDiscrete):
        shape = value.shape if isinstance(value, np.ndarray) else _shape_of(value)
        if shape != space.shape:
            return f"{_describe(value)} for shape {space.shape}"
        return None
    if isinstance(space, spaces.Discrete):
        if isinstance(value, np.ndarray) and value.size != 1:
            return f"{_describe(value)} for one integer"
        if isinstance(value, list | tuple | dict | str | bytes):
            return f"{_describe(value)} for one integer"
        return None
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict):
            return f"{_describe(value)} for a dict"
        for key, sub in space.spaces.items():
            problem = observation_mismatch(sub, value[key]) if key in value else None
            if problem is not None:
                return f"[{key!r}]: {problem}"
        return None
    if isinstance(space, spaces.Tuple):
        if not isinstance(value, list | tuple) or len(value) != len(space.spaces):
            return f"{_describe(value)} for a tuple of {len(space.spaces)}"
        for index, (sub, item) in enumerate(zip(space.spaces, value, strict=True)):
            problem = observation_mismatch(sub, item)
            if problem is not None:
                return f"[{index}]: {problem}"
    return None  # other spaces (Sequence, Graph, Text, ...) vary in shape by design


def reply_mismatch(space: spaces.Space, op: str, body: Any) -> str | None:
    """Why the reply ``body`` to ``op`` carries an observation outside ``space``, or None."""
    if not isinstance(body, dict):
        return None
    if op == "steps":
        replies = body.get("steps")
        if not isinstance(replies, list):
            return None
    elif op in ("reset", "step"):
        replies = [body]
    else:
        return None
    for number, reply in enumerate(replies):
        if not isinstance(reply, dict):
            continue
        for key in _OBSERVATION_KEYS:
            if key in reply:
                problem = observation_mismatch(space, reply[key])
                if problem is not None:
                    where = f"steps[{number}][{key!r}]" if op == "steps" else repr(key)
                    return f"{where}: {problem}"
    return None


def _shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of a scalar or (nested) list observation; None when it is ragged."""
    try:
        return np.shape(value)
    except ValueError:
        return None


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {value.shape}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


__all__ = ["observation_mismatch", "reply_mismatch"]
