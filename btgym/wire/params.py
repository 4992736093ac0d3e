"""Named randomization parameters: one Gymnasium ``Box`` whose entries have names.

A scene whose action is its randomization (Parts-v0) declares its parameters once::

    params = ParamSpace({"light": (0.5, 2.0), "saturation": (0.0, 1.0, 0.1)})
    params.box                                  # Box([0.5, 0.0], [2.0, 1.0], (2,), float32)
    params.to_action({"light": 1.5})            # [1.5, 0.1]: the rest at their defaults
    params.to_dict(params.box.sample())         # {"light": ..., "saturation": ...}

Each entry is ``(low, high)`` (the default is the middle) or ``(low, high, default)``.
``groups`` name runs of entries that travel together as a list (``"class_probs"`` for
``class_prob_0 .. class_prob_5``). The same object works on both sides of the wire:
:meth:`ParamSpace.to_data` is plain data (a scene reports it in ``describe()``), and
:meth:`ParamSpace.from_data` rebuilds it on the trainer side, where names then map to
actions without a round trip. Unknown names raise :class:`UnknownParamError` (a
``KeyError``) with the closest names; values out of bounds raise
:class:`ParamValueError` (a ``ValueError``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from btgym.errors import ConfigError, ParamValueError, UnknownParamError

Bounds = tuple[float, float] | tuple[float, float, float]


class ParamSpace:
    """A scene's randomization parameters by name, as one ``float32`` Gymnasium ``Box``."""

    def __init__(
        self,
        params: Mapping[str, Bounds],
        groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not isinstance(params, Mapping) or not params:
            raise ConfigError(f"expected params as a non-empty mapping, got {params!r}")
        rows = [_row(name, bounds) for name, bounds in params.items()]
        #: The name of each entry of an action, in order.
        self.names: tuple[str, ...] = tuple(params)
        self.low = np.array([r[0] for r in rows], np.float32)
        self.high = np.array([r[1] for r in rows], np.float32)
        #: The default action: every entry at its default.
        self.default = np.array([r[2] for r in rows], np.float32)
        self._index = {name: i for i, name in enumerate(self.names)}
        #: Group name -> the names of its entries (given and taken as one list).
        self.groups: dict[str, tuple[str, ...]] = {}
        for group, members in (groups or {}).items():
            if group in self._index or not isinstance(group, str):
                raise ConfigError(f"expected a group name apart from the entries, got {group!r}")
            self.groups[group] = tuple(self._name(m) for m in members)
        self.box = spaces.Box(self.low, self.high, dtype=np.float32)

    # -- names -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index or name in self.groups

    def index(self, name: str) -> int:
        """The position of entry ``name`` in an action."""
        return self._index[self._name(name)]

    def _name(self, name: Any) -> str:
        if isinstance(name, str) and name in self._index:
            return name
        known = [*self.names, *self.groups]
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownParamError(f"expected a parameter in {known}, got {name!r}{hint}")

    # -- actions and dicts -----------------------------------------------------------------
    def to_action(
        self, params: Mapping[str, Any] | None = None, base: np.ndarray | None = None
    ) -> np.ndarray:
        """The action with ``params`` (names or groups) set on ``base`` (default: defaults).

        Raises :class:`UnknownParamError` for a name the space lacks and
        :class:`ParamValueError` for a value out of its bounds.
        """
        if params is not None and not isinstance(params, Mapping):
            raise ParamValueError(f"expected params as a dict, got {type(params).__name__}")
        action = np.array(self.default if base is None else self.check(base), np.float32)
        for name, value in (params or {}).items():
            if name in self.groups:
                members = self.groups[name]
                values = np.asarray(value, np.float32).reshape(-1)
                if values.shape != (len(members),):
                    raise ParamValueError(
                        f"expected {name} with {len(members)} entries, got {value!r}"
                    )
                action[[self._index[m] for m in members]] = values
            else:
                i = self.index(name)  # an unknown name first, whatever its value
                action[i] = _number(name, value)
        return self.check(action)

    def to_dict(self, action: np.ndarray, grouped: bool = True) -> dict[str, Any]:
        """``action`` by name (floats); with ``grouped``, each group as one list, first."""
        values = [float(v) for v in self._shaped(action)]
        out: dict[str, Any] = {}
        grouped_names: set[str] = set()
        if grouped:
            for group, members in self.groups.items():
                out[group] = [values[self._index[m]] for m in members]
                grouped_names.update(members)
        out.update(
            {n: v for n, v in zip(self.names, values, strict=True) if n not in grouped_names}
        )
        return out

    def defaults(self, grouped: bool = True) -> dict[str, Any]:
        """The default of every parameter, as :meth:`to_dict` gives them."""
        return self.to_dict(self.default, grouped)

    def check(self, action: np.ndarray) -> np.ndarray:
        """``action`` as a new ``float32`` array, or :class:`ParamValueError` naming each
        entry out of its bounds.
        """
        action = np.array(self._shaped(action), np.float32)
        inside = (action >= self.low) & (action <= self.high)
        if not inside.all():
            bad = [
                f"{self.names[i]}={action[i]:g} not in [{self.low[i]:g}, {self.high[i]:g}]"
                for i in np.flatnonzero(~inside)
            ]
            raise ParamValueError(f"expected parameters within their bounds: {', '.join(bad)}")
        return action

    def _shaped(self, action: Any) -> np.ndarray:
        array = np.asarray(action, np.float64)
        if array.shape != (len(self.names),):
            raise ParamValueError(
                f"expected an action of shape ({len(self.names)},), got shape {array.shape}"
            )
        return array

    # -- the wire --------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        """Plain data (lists, floats, str) that :meth:`from_data` turns back into this space."""
        rows = zip(self.names, self.low, self.high, self.default, strict=True)
        return {
            "params": {n: [float(lo), float(hi), float(d)] for n, lo, hi, d in rows},
            "groups": {g: list(m) for g, m in self.groups.items()},
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ParamSpace:
        """The space :meth:`to_data` described (e.g. from a scene's ``describe()``)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping):
            raise ConfigError(f"expected a ParamSpace description with 'params', got {data!r}")
        params = {name: tuple(bounds) for name, bounds in data["params"].items()}
        return cls(params, data.get("groups") or {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpace) and self.to_data() == other.to_data()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ParamSpace({len(self.names)} params: {', '.join(self.names[:6])}...)"


def _row(name: Any, bounds: Any) -> tuple[float, float, float]:
    """``(low, high, default)`` of one entry, checked: finite, ordered, default inside."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a parameter name as a non-empty str, got {name!r}")
    try:
        values = [] if isinstance(bounds, str | bytes) else [float(v) for v in bounds]
    except (TypeError, ValueError):
        values = []
    if len(values) == 2:
        values.append((values[0] + values[1]) / 2)
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ConfigError(
            f"expected {name} as (low, high) or (low, high, default) numbers, got {bounds!r}"
        )
    low, high, default = values
    if not low <= default <= high:
        raise ConfigError(f"expected {name} as low <= default <= high, got {tuple(bounds)!r}")
    return low, high, default


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParamValueError(f"expected a number for {name}, got {value!r}") from None


__all__ = ["ParamSpace", "ParamValueError", "UnknownParamError"]
