"""Connect controllers to training loops: an SB3 callback and a StreamDataset hook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.curriculum.base import Controller, Proposal, Record


class CurriculumCallback(BaseCallback):
    """Pushes a controller's parameters into SB3 training envs and feeds back episode returns.

    At the start and whenever an instance finishes an episode, the controller proposes
    parameters for it, which are set on the scene with ``set_attr(attribute, value)``
    (a scene applies them from its next episode). The finished episode's return is the
    outcome of the parameters it ran with. Metrics are logged as ``curriculum/...``.
    ``to_value`` turns a parameter vector into what the scene attribute expects.
    """

    def __init__(
        self,
        controller: Controller,
        attribute: str,
        to_value: Callable[[np.ndarray], Any] = lambda p: p.tolist(),
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.controller, self.attribute, self.to_value = controller, attribute, to_value
        self.current: dict[int, Proposal] = {}
        self.records: list[Record] = []

    def _on_training_start(self) -> None:
        self._push(list(range(self.training_env.num_envs)))

    def _on_step(self) -> bool:
        finished = []
        for env_id, info in enumerate(self.locals.get("infos", [])):
            if "episode" in info and env_id in self.current:
                proposal = self.current[env_id]
                record = Record(
                    env_id, proposal.params, float(info["episode"]["r"]), tag=proposal.tag
                )
                self.records.append(record)
                finished.append(env_id)
        if finished:
            self.controller.update(self.records[-len(finished) :])
            self._push(finished)
            for name, value in self.controller.metrics().items():
                self.logger.record(f"curriculum/{name}", value)
        return True

    def _push(self, env_ids: Sequence[int]) -> None:
        for env_id, proposal in zip(env_ids, self.controller.propose(env_ids), strict=True):
            self.current[env_id] = proposal
            self.training_env.set_attr(self.attribute, self.to_value(proposal.params), env_id)


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
        ids = list(range(self.dataset.num_instances)) if env_ids is None else list(env_ids)
        for env_id, proposal in zip(ids, self.controller.propose(ids), strict=True):
            self.current[env_id] = proposal
            self.dataset.set_params(self._sent(proposal), env_ids=[env_id])
        return {env_id: self._sent(self.current[env_id]) for env_id in ids}

    def _sent(self, proposal: Proposal) -> np.ndarray:
        return proposal.params if self.transform is None else self.transform(proposal.params)

    def report(self, outcomes: dict[int, float | dict[str, float]]) -> None:
        records = [
            Record(env_id, self.current[env_id].params, outcome, tag=self.current[env_id].tag)
            for env_id, outcome in outcomes.items()
        ]
        self.controller.update(records)

    def metrics(self) -> dict[str, float]:
        return {f"curriculum/{k}": v for k, v in self.controller.metrics().items()}


__all__ = ["CurriculumCallback", "StreamCurriculum"]
