"""An RL agent as the controller: its actions are the randomization parameters of a DR env.

This is the protocol's "actions set randomization parameters" shape used end to end:
:class:`TaskFeedbackEnv` wraps a btgym DR env (``Cube-v0``'s action is its rotation
range, ``Parts-v0``'s the class probabilities and ranges) so that each step renders
with the agent's parameters, hands the frame and annotations to the task learner, and
rewards the agent with the learner's signal (its loss on that frame: hard examples; or
its learning progress). Any SB3 algorithm trains on it directly;
:class:`PolicyController` then serves the trained policy through the controller protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.curriculum.base import Controller, Proposal


class TaskFeedbackEnv(gym.Wrapper):
    """Rewards the wrapped DR env's actions with ``learner(obs, info) -> float``.

    The agent observes ``context()`` (default: a constant, i.e. a contextual bandit over
    parameters; pass e.g. the learner's per-class losses to condition on its state).
    Episodes last ``horizon`` steps.
    """

    def __init__(
        self,
        env: gym.Env,
        learner: Callable[[Any, dict[str, Any]], float],
        horizon: int = 16,
        context: Callable[[], np.ndarray] | None = None,
        context_size: int = 1,
    ) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(
                f"expected a DR env whose action (its parameters) is a Box, got {env.action_space}"
            )
        self._bounds = (env.action_space.low, env.action_space.high)
        self.learner, self.horizon = learner, horizon
        self.context = context or (lambda: np.zeros(context_size, np.float32))
        self.observation_space = spaces.Box(-np.inf, np.inf, (context_size,), np.float32)
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the wrapped env; the agent observes only the context."""
        self.env.reset(seed=seed, options=options)
        self.t = 0
        return self.context().astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Render with the action as parameters; reward it with the learner's signal."""
        params = np.clip(action, *self._bounds)
        obs, _, terminated, truncated, info = self.env.step(params.astype(np.float32))
        reward = float(self.learner(obs, info))
        self.t += 1
        done_here = self.t >= self.horizon
        return (
            self.context().astype(np.float32),
            reward,
            terminated,
            truncated or done_here,
            {"params": params},
        )


class PolicyController(Controller):
    """Proposes the parameters a trained SB3 policy chooses for the current context."""

    def __init__(
        self,
        model: Any,
        context: Callable[[], np.ndarray] | None = None,
        deterministic: bool = True,
    ) -> None:
        self.model, self.deterministic = model, deterministic
        size = model.observation_space.shape[0]
        self.context = context or (lambda: np.zeros(size, np.float32))

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """The policy's action for the current context, clipped, for every instance."""
        action, _ = self.model.predict(self.context(), deterministic=self.deterministic)
        low, high = self.model.action_space.low, self.model.action_space.high
        return [Proposal(np.clip(action, low, high).astype(np.float64)) for _ in env_ids]


__all__ = ["PolicyController", "TaskFeedbackEnv"]
