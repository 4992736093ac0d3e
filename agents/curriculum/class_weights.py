"""Adaptive class probabilities from per-class loss (the BlendTorch paper's detection setup).

Classes the model finds hard are drawn more often: the probability of class ``c`` is a
softmax over its smoothed loss, mixed with a uniform floor so that no class disappears.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.curriculum.base import Controller, Proposal, Record


class ClassReweighting(Controller):
    """Class probabilities ``(1 - floor) * softmax(loss / temperature) + floor / K``.

    Outcomes are per-class mappings ``{class_index: value}``. With ``higher_is_better``
    (an AP, an accuracy) the value is turned into a difficulty ``1 - value``.
    ``smoothing`` is the weight of the old estimate in the exponential average.
    """

    def __init__(
        self,
        num_classes: int,
        temperature: float = 0.5,
        floor: float = 0.2,
        smoothing: float = 0.9,
        higher_is_better: bool = False,
    ) -> None:
        if not 0.0 <= floor <= 1.0 or temperature <= 0 or not 0.0 <= smoothing < 1.0:
            raise ValueError("expected 0 <= floor <= 1, temperature > 0, 0 <= smoothing < 1")
        self.num_classes = num_classes
        self.temperature, self.floor, self.smoothing = temperature, floor, smoothing
        self.higher_is_better = higher_is_better
        self.difficulty = np.ones(num_classes)
        self.seen = np.zeros(num_classes, dtype=bool)

    @property
    def probabilities(self) -> np.ndarray:
        """The class probabilities now: softmax of the difficulties, mixed with the floor."""
        logits = self.difficulty / self.temperature
        weights = np.exp(logits - logits.max())
        return (1.0 - self.floor) * weights / weights.sum() + self.floor / self.num_classes

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """The current class probabilities, the same for every instance."""
        return [Proposal(self.probabilities) for _ in env_ids]

    def update(self, records: Sequence[Record]) -> None:
        """Smooth each class's difficulty with the per-class outcomes."""
        for record in records:
            if not isinstance(record.outcome, dict):
                raise ValueError(f"expected per-class outcomes, got {record.outcome!r}")
            for key, value in record.outcome.items():
                c = int(key)
                difficulty = 1.0 - value if self.higher_is_better else value
                if self.seen[c]:
                    old = self.difficulty[c]
                    self.difficulty[c] = self.smoothing * old + (1 - self.smoothing) * difficulty
                else:
                    self.difficulty[c], self.seen[c] = difficulty, True

    def state_dict(self) -> dict[str, Any]:
        """The smoothed difficulties and which classes were seen (JSON-able)."""
        return {"difficulty": self.difficulty.tolist(), "seen": self.seen.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.difficulty = np.asarray(state["difficulty"], dtype=np.float64)
        self.seen = np.asarray(state["seen"], dtype=bool)

    def metrics(self) -> dict[str, float]:
        """Each class's probability (``class_prob/<c>``)."""
        return {f"class_prob/{c}": float(p) for c, p in enumerate(self.probabilities)}
