"""The controller protocol shared by RL and supervised loops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Record:
    """What a controller learns from: which parameters produced which outcome.

    ``outcome`` is a scalar (an episode return, a success flag, a discriminator score)
    or a mapping of named values (per-class losses or APs from a supervised trainer).
    ``tag`` is whatever the controller attached to the parameters when it proposed them
    (ADR marks boundary samples with it).
    """

    env_id: int
    params: np.ndarray
    outcome: float | dict[str, float]
    seed: int | None = None
    tag: Any = None


@dataclass
class Proposal:
    """Parameters for one instance, with the controller's tag to match the outcome later."""

    params: np.ndarray
    tag: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Controller:
    """Base class: propose parameters per instance, learn from outcomes."""

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """Parameters for each of ``env_ids``, in that order."""
        raise NotImplementedError

    def update(self, records: Sequence[Record]) -> None:
        """Learn from outcomes; the default ignores them (fixed controllers)."""

    def state_dict(self) -> dict[str, Any]:
        """The controller's state for a checkpoint (JSON-able); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; ValueError for a foreign state."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")

    def metrics(self) -> dict[str, float]:
        """Scalars to log, named without the ``curriculum/`` prefix."""
        return {}


__all__ = ["Controller", "Proposal", "Record"]
