"""Baselines: fixed parameters, or parameters drawn uniformly from fixed ranges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.curriculum.base import Controller, Proposal


class FixedController(Controller):
    """Always proposes the same parameters."""

    def __init__(self, params: Any) -> None:
        self.params = np.asarray(params, dtype=np.float64)

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """The same parameters for every instance."""
        return [Proposal(self.params.copy()) for _ in env_ids]


class UniformController(Controller):
    """Draws each parameter uniformly from ``[low, high]`` (the classic DR baseline)."""

    def __init__(self, low: Any, high: Any, seed: int | None = None) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        if self.low.shape != self.high.shape or np.any(self.low > self.high):
            raise ValueError(f"expected low <= high of one shape, got {self.low}, {self.high}")
        self.rng = np.random.default_rng(seed)

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """Uniform draws in ``[low, high]``, one per instance."""
        return [Proposal(self.rng.uniform(self.low, self.high)) for _ in env_ids]

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (JSON-able)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.rng.bit_generator.state = state["rng"]
