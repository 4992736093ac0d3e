"""REINFORCE over a parametric distribution of simulation parameters.

"Learning to Simulate" (Ruiz et al., 2019) and BlendTorch's ``densityopt`` example: the
simulation parameters are drawn from a distribution with learnable parameters (here a
diagonal Gaussian, or a log-normal for positive parameters); each outcome is a reward
for the sample that produced it, and the distribution follows the score-function
gradient ``(reward - baseline) * grad log p(params)``, with a moving-average baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.curriculum.base import Controller, Proposal, Record


class ReinforceController(Controller):
    """Learns ``mean`` and ``log_std`` of the parameter distribution from rewards.

    ``log_normal=True`` samples ``exp(z)`` with ``z ~ N(mean, std)``, so ``mean`` is the
    log of the typical value. Updates use Adam with learning rate ``lr``;
    ``learn_std=False`` keeps the exploration width fixed (steadier with noisy rewards
    such as a discriminator's); ``standardize`` uses batch-standardized advantages;
    ``lr_half_life`` halves the learning rate every that many updates.
    """

    def __init__(
        self,
        mean: Any,
        std: Any,
        lr: float = 0.05,
        log_normal: bool = False,
        baseline_smoothing: float = 0.9,
        min_std: float = 1e-3,
        learn_std: bool = True,
        standardize: bool = False,
        lr_half_life: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64).copy()
        self.log_std = np.log(np.broadcast_to(np.asarray(std, float), self.mean.shape)).copy()
        self.lr, self.log_normal = lr, log_normal
        self.baseline_smoothing, self.min_std = baseline_smoothing, min_std
        self.learn_std, self.standardize, self.lr_half_life = learn_std, standardize, lr_half_life
        self.baseline: float | None = None
        self.rng = np.random.default_rng(seed)
        self._adam_m = np.zeros(2 * self.mean.size)
        self._adam_v = np.zeros(2 * self.mean.size)
        self._t = 0

    @property
    def std(self) -> np.ndarray:
        """The standard deviation per parameter, never below ``min_std``."""
        return np.maximum(np.exp(self.log_std), self.min_std)

    def typical(self) -> np.ndarray:
        """The distribution's centre in parameter units (the median for log-normal)."""
        return np.exp(self.mean) if self.log_normal else self.mean.copy()

    def propose(self, env_ids: Sequence[int]) -> list[Proposal]:
        """Draws from the distribution (log-normal: ``exp`` of a normal draw, tagged with it)."""
        proposals = []
        for _ in env_ids:
            z = self.rng.normal(self.mean, self.std)
            proposals.append(Proposal(np.exp(z) if self.log_normal else z, tag=z))
        return proposals

    def update(self, records: Sequence[Record]) -> None:
        """One REINFORCE step (Adam) on the mean and log-std from the records' rewards."""
        if not records:
            return
        z = np.stack([np.asarray(r.tag, dtype=np.float64) for r in records])
        rewards = np.array([float(r.outcome) for r in records])  # type: ignore[arg-type]
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = rewards - self.baseline
        if self.standardize:  # the batch is its own baseline; the reward's scale drops out
            advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
        self.baseline = self.baseline_smoothing * self.baseline + (
            1 - self.baseline_smoothing
        ) * float(rewards.mean())
        std = self.std
        grad_mean = (advantages[:, None] * (z - self.mean) / std**2).mean(axis=0)
        grad_log_std = (advantages[:, None] * (((z - self.mean) / std) ** 2 - 1)).mean(axis=0)
        if not self.learn_std:  # a fixed exploration width: only the mean moves
            grad_log_std = np.zeros_like(grad_log_std)
        self._ascend(np.concatenate([grad_mean, grad_log_std]))

    def _ascend(self, gradient: np.ndarray) -> None:
        self._t += 1
        self._adam_m = 0.9 * self._adam_m + 0.1 * gradient
        self._adam_v = 0.999 * self._adam_v + 0.001 * gradient**2
        m_hat = self._adam_m / (1 - 0.9**self._t)
        v_hat = self._adam_v / (1 - 0.999**self._t)
        lr = self.lr if self.lr_half_life is None else self.lr * 0.5 ** (self.t_decay())
        step = lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        n = self.mean.size
        self.mean += step[:n]
        self.log_std += step[n:]

    def t_decay(self) -> float:
        """Updates so far in learning-rate half-lives."""
        return self._t / float(self.lr_half_life or 1.0)

    def state_dict(self) -> dict[str, Any]:
        """Distribution, baseline, optimizer and generator state (JSON-able)."""
        return {
            "mean": self.mean.tolist(),
            "log_std": self.log_std.tolist(),
            "baseline": self.baseline,
            "adam": [self._adam_m.tolist(), self._adam_v.tolist()],
            "t": self._t,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.log_std = np.asarray(state["log_std"], dtype=np.float64)
        self.baseline = state["baseline"]
        self._adam_m, self._adam_v = (np.asarray(a, dtype=np.float64) for a in state["adam"])
        self._t = state["t"]
        self.rng.bit_generator.state = state["rng"]

    def metrics(self) -> dict[str, float]:
        """The distribution's centre and width per parameter."""
        out = {f"reinforce/mean/{i}": float(v) for i, v in enumerate(self.typical())}
        out |= {f"reinforce/std/{i}": float(v) for i, v in enumerate(self.std)}
        return out
