"""The controller in a supervised loop: its proposals go to a stream's instances."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agents.curriculum.base import Controller, Proposal, Record


class StreamCurriculum:
    """The hook between a controller and a :class:`btgym.data.StreamDataset`.

    ``apply()`` sends the controller's proposals to the instances (they take effect from
    each instance's next request), through ``transform`` (e.g. a clip into the action
    space) when given; ``report(outcomes)`` feeds back outcomes from the trainer, e.g.
    per-class losses: one :class:`Record` per instance that is given.
    """

    def __init__(
        self,
        dataset: Any,
        controller: Controller,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.dataset, self.controller, self.transform = dataset, controller, transform
        self.current: dict[int, Proposal] = {}

    def apply(self, env_ids: Sequence[int] | None = None) -> dict[int, np.ndarray]:
        """Send proposals to the instances (all or ``env_ids``); return what was sent."""
        ids = list(range(self.dataset.num_instances)) if env_ids is None else list(env_ids)
        for env_id, proposal in zip(ids, self.controller.propose(ids), strict=True):
            self.current[env_id] = proposal
            self.dataset.set_params(self._sent(proposal), env_ids=[env_id])
        return {env_id: self._sent(self.current[env_id]) for env_id in ids}

    def _sent(self, proposal: Proposal) -> np.ndarray:
        return proposal.params if self.transform is None else self.transform(proposal.params)

    def report(self, outcomes: dict[int, float | dict[str, float]]) -> None:
        """Feed outcomes per instance back to the controller, with the parameters sent."""
        records = [
            Record(env_id, self.current[env_id].params, outcome, tag=self.current[env_id].tag)
            for env_id, outcome in outcomes.items()
        ]
        self.controller.update(records)

    def metrics(self) -> dict[str, float]:
        """The controller's metrics, named ``curriculum/<name>``."""
        return {f"curriculum/{k}": v for k, v in self.controller.metrics().items()}


__all__ = ["StreamCurriculum"]
