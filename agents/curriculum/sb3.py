"""The controller in SB3 training: a callback that sets parameters and feeds back returns.

The one module of :mod:`agents.curriculum` that needs stable-baselines3.
"""

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


__all__ = ["CurriculumCallback"]
