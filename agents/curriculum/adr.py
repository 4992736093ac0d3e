"""Automatic Domain Randomization (OpenAI et al., 2019, "Solving Rubik's Cube with a Robot Hand").

Every parameter starts at its nominal value (a range of width 0). A fraction of the
proposals fixes one parameter at one of its bounds (boundary sampling) while the others
are drawn uniformly from their ranges. Outcomes of boundary samples go to a queue per
(parameter, bound); when a queue holds ``queue_length`` outcomes, their mean decides:
at least ``threshold_high`` widens that bound by ``step``, below ``threshold_low``
narrows it, and the queue is cleared.

Defaults: ``boundary_prob = 0.5`` as in OpenAI's paper; ``queue_length = 256`` as in
IsaacGymEnvs' ADR. Thresholds depend on the outcome's scale: IsaacGymEnvs uses 5 and 20
consecutive successes; for a success rate in [0, 1] we default to 0.25 and 0.75.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.curriculum.base import Controller, Proposal, Record

LOW, HIGH = 0, 1


class ADRController(Controller):
    """ADR over a vector of parameters with nominal values and absolute limits."""

    def __init__(
        self,
        nominal: Any,
        step: Any,
        limit_low: Any,
        limit_high: Any,
        boundary_prob: float = 0.5,
        queue_length: int = 256,
        threshold_low: float = 0.25,
        threshold_high: float = 0.75,
        seed: int | None = None,
    ) -> None:
        self.nominal = np.asarray(nominal, dtype=np.float64)
        self.step = np.broadcast_to(np.asarray(step, dtype=np.float64), self.nominal.shape).copy()
        self.limit_low = np.broadcast_to(np.asarray(limit_low, float), self.nominal.shape).copy()
        self.limit_high = np.broadcast_to(np.asarray(limit_high, float), self.nominal.shape).copy()
        if np.any(self.limit_low > self.nominal) or np.any(self.nominal > self.limit_high):
            raise ValueError("expected limit_low <= nominal <= limit_high")
        if threshold_low >= threshold_high:
            raise ValueError("expected threshold_low < threshold_high")
        self.low, self.high = self.nominal.copy(), self.nominal.copy()
        self.boundary_prob, self.queue_length = boundary_prob, queue_length
        self.threshold_low, self.threshold_high = threshold_low, threshold_high
        self.queues: dict[tuple[int, int], list[float]] = {}
        self.rng = np.random.default_rng(seed)

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """Uniform draws in the ranges; some (``boundary_prob``) pin one parameter to a bound."""
        proposals = []
        for _ in env_ids:
            params = self.rng.uniform(self.low, self.high)
            tag = None
            if self.rng.random() < self.boundary_prob:
                i, side = int(self.rng.integers(len(params))), int(self.rng.integers(2))
                params[i] = self.low[i] if side == LOW else self.high[i]
                tag = (i, side)
            proposals.append(Proposal(params, tag))
        return proposals

    def update(self, records: Sequence[Record]) -> None:
        """Queue the outcomes of boundary samples; a full queue widens or narrows its bound."""
        for record in records:
            if record.tag is None:
                continue  # not a boundary sample
            i, side = (int(v) for v in record.tag)
            queue = self.queues.setdefault((i, side), [])
            queue.append(float(record.outcome))  # type: ignore[arg-type]
            if len(queue) >= self.queue_length:
                self._adjust(i, side, float(np.mean(queue)))
                queue.clear()

    def _adjust(self, i: int, side: int, performance: float) -> None:
        if performance >= self.threshold_high:
            change = self.step[i]  # widen: the policy copes with this bound
        elif performance < self.threshold_low:
            change = -self.step[i]  # narrow: too hard
        else:
            return
        if side == HIGH:
            self.high[i] = np.clip(self.high[i] + change, self.nominal[i], self.limit_high[i])
        else:
            self.low[i] = np.clip(self.low[i] - change, self.limit_low[i], self.nominal[i])

    def state_dict(self) -> dict[str, Any]:
        """Ranges, queues and the generator's state (JSON-able)."""
        return {
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "queues": [[i, s, q] for (i, s), q in self.queues.items()],
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.low = np.asarray(state["low"], dtype=np.float64)
        self.high = np.asarray(state["high"], dtype=np.float64)
        self.queues = {(int(i), int(s)): list(q) for i, s, q in state["queues"]}
        self.rng.bit_generator.state = state["rng"]

    def metrics(self) -> dict[str, float]:
        """Each parameter's range (``adr/<i>/low``, ``adr/<i>/high``) and their log-volume."""
        out = {}
        for i in range(len(self.nominal)):
            out[f"adr/{i}/low"] = float(self.low[i])
            out[f"adr/{i}/high"] = float(self.high[i])
        out["adr/entropy"] = float(np.sum(np.log(np.maximum(self.high - self.low, 1e-6))))
        return out
