"""Adaptive domain randomization from unlabeled target images: a discriminator rewards
the randomization parameters whose frames look like the target.

The paper's feedback channel, as in Experiment 1 (``densityopt``) but with a
discriminator instead of a known target distribution:

- :class:`Discriminator`: a small CNN, trained online with logistic loss to tell
  unlabeled target frames (label 1) from streamed frames (label 0); it never sees labels.
- :class:`EvolutionStrategy`: a Gaussian search distribution over a few parameters,
  each the centre of a range of Parts-v0's randomization (:data:`ADAPTED`). Each
  generation tries ``candidates`` antithetic draws, the instances rendering different
  ones at once; a candidate's score is the discriminator's mean target probability of
  the frames rendered with it (frames are matched to candidates by the parameters they
  carry); ranked scores move the mean (evolution strategies).

The detector trains on every streamed frame, whatever candidate rendered it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Adapted:
    """One adapted quantity: a range ``centre +- half_width`` (or one value) of Parts-v0."""

    name: str
    low: float
    high: float
    half_width: float
    params: tuple[str, ...]  # the Parts-v0 parameters it sets: (min, max) or (value,)

    def to_params(self, centre: float) -> dict[str, float]:
        """The Parts-v0 parameters for this centre (ranges clipped to the bounds)."""
        if len(self.params) == 1:
            return {self.params[0]: float(centre)}
        lo = max(self.low, centre - self.half_width)
        hi = min(self.high, centre + self.half_width)
        return {self.params[0]: float(lo), self.params[1]: float(hi)}


#: What the controller adapts, each within the massive-DR ranges' bounds.
ADAPTED = (
    Adapted("object value", 0.05, 1.0, 0.15, ("value_min", "value_max")),
    Adapted("saturation", 0.0, 1.0, 0.0, ("saturation_max",)),
    Adapted("light", 0.3, 2.5, 0.3, ("light_min", "light_max")),
    Adapted("background value", 0.0, 1.0, 0.15, ("background_min", "background_max")),
    Adapted("roughness", 0.0, 1.0, 0.15, ("roughness_min", "roughness_max")),
    Adapted("camera distance", 5.0, 16.0, 1.5, ("radius_min", "radius_max")),
    Adapted("elevation", 10.0, 89.0, 12.0, ("elevation_min", "elevation_max")),
    Adapted("focal length", 25.0, 85.0, 8.0, ("lens_min", "lens_max")),
    Adapted("matcap probability", 0.0, 1.0, 0.0, ("matcap_prob",)),
)


class Discriminator(nn.Module):
    """Target vs stream frames at half resolution: 4 strided convolutions, global pooling."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)`` that frames ``(N, 3, H, W)`` in [-0.5, 0.5] are target frames."""
        x = F.avg_pool2d(x, 2)
        return self.logit(self.features(x).mean(dim=(2, 3))).squeeze(1)


class DiscriminatorTrainer:
    """Adam steps on stream frames vs as many random target frames: per batch, one on the
    batch itself (whose scores reward the candidates), then ``extra_steps`` on frames
    drawn from the last ``memory`` batches (one step a batch left it near chance)."""

    def __init__(
        self,
        target_frames: torch.Tensor,
        seed: int,
        lr: float = 1e-3,
        extra_steps: int = 0,
        memory: int = 8,
    ) -> None:
        if len(target_frames) == 0:
            raise ValueError("expected unlabeled target frames for the discriminator, got none")
        torch.manual_seed(seed)
        self.model = Discriminator()
        self.target = target_frames
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, betas=(0.5, 0.999))
        self.generator = torch.Generator().manual_seed(seed)
        self.extra_steps = extra_steps
        self.recent: deque[torch.Tensor] = deque(maxlen=memory)
        self.losses: list[float] = []

    def step(self, stream: torch.Tensor) -> torch.Tensor:
        """Train on ``stream`` (N, 3, H, W) against N target frames (then the extra steps);
        the target probability of each stream frame before any step (the reward)."""
        logits, loss = self._update(stream)
        self.losses.append(loss)
        self.recent.append(stream)
        if self.extra_steps:
            pool = torch.cat(list(self.recent))
            for _ in range(self.extra_steps):
                pick = torch.randint(len(pool), (len(stream),), generator=self.generator)
                self._update(pool[pick])
        return torch.sigmoid(logits[: len(stream)].detach())

    def _update(self, stream: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One Adam step on ``stream`` vs as many target frames: logits and loss."""
        pick = torch.randint(len(self.target), (len(stream),), generator=self.generator)
        frames = torch.cat([stream, self.target[pick]])
        labels = torch.cat([torch.zeros(len(stream)), torch.ones(len(stream))])
        self.model.train()
        logits = self.model(frames)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return logits, float(loss.detach())


class EvolutionStrategy:
    """A Gaussian search distribution over the normalized centres of :data:`ADAPTED`.

    Antithetic evolution strategies with rank-based utilities (Wierstra et al., "Natural
    Evolution Strategies", 2014): ``propose()`` draws ``candidates`` centres as pairs
    ``mean +- sigma * eps``; ``report(candidate, scores)`` adds discriminator scores of
    frames rendered with a candidate; ``update()`` moves the mean along the ranked
    perturbations (candidates without frames count as the median) and records it.
    """

    def __init__(
        self,
        adapted: tuple[Adapted, ...],
        initial: np.ndarray,
        seed: int,
        candidates: int = 4,
        sigma: float = 0.15,
        step: float = 1.0,
    ) -> None:
        if candidates < 2 or candidates % 2:
            raise ValueError(f"expected an even number of candidates >= 2, got {candidates}")
        self.adapted = adapted
        self.mean = np.asarray(initial, np.float64).copy()
        self.sigma, self.step = float(sigma), float(step)
        self.rng = np.random.default_rng(seed)
        self.candidates = candidates
        self.noise = np.zeros((candidates, len(adapted)))
        self.generation: list[np.ndarray] = []
        self.scores: list[list[float]] = []
        self.history: list[dict[str, list[float]]] = []

    def propose(self) -> list[np.ndarray]:
        """A new generation of normalized candidates (clipped to [0, 1])."""
        half = self.rng.standard_normal((self.candidates // 2, len(self.adapted)))
        self.noise = np.concatenate([half, -half])
        self.generation = list(np.clip(self.mean + self.sigma * self.noise, 0.0, 1.0))
        self.scores = [[] for _ in self.generation]
        return self.generation

    def report(self, candidate: int, scores: np.ndarray) -> None:
        """Discriminator target probabilities of frames rendered with ``candidate``."""
        self.scores[candidate].extend(np.asarray(scores, np.float64).ravel().tolist())

    def update(self) -> None:
        """One step of the mean from this generation's scores (none without two scored)."""
        means = np.array([np.mean(s) if s else np.nan for s in self.scores])
        scored = np.isfinite(means)
        if scored.sum() >= 2:
            fitness = np.where(scored, means, np.nanmedian(means))
            ranks = np.argsort(np.argsort(fitness))
            utility = ranks / (len(ranks) - 1) - 0.5  # -0.5 (worst) .. 0.5 (best)
            gradient = utility @ self.noise / len(utility)
            self.mean = np.clip(self.mean + self.step * self.sigma * gradient, 0.0, 1.0)
        self.history.append(
            {
                "mean": self.physical(self.mean).tolist(),
                "scores": [float(m) for m in means],
            }
        )

    def physical(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized centres in the parameters' own units."""
        lows = np.array([a.low for a in self.adapted])
        highs = np.array([a.high for a in self.adapted])
        return lows + np.asarray(normalized) * (highs - lows)

    def params(self, normalized: np.ndarray) -> dict[str, float]:
        """The Parts-v0 parameters that render a candidate."""
        named: dict[str, float] = {}
        for adapted, centre in zip(self.adapted, self.physical(normalized), strict=True):
            named.update(adapted.to_params(float(centre)))
        return named


class AdaptiveRandomization:
    """Glue for the training loop: which candidates the instances render, and their rewards.

    ``set_params(action, env_ids)`` changes instances' parameters; ``to_action(named)``
    maps Parts-v0 parameters to an action (the massive-DR action with these entries
    replaced). The ``instances`` instances render different candidates at once, each for
    ``batches_per_candidate`` batches; when the generation's candidates are done, the
    strategy updates and proposes the next. Frames are credited to the candidate whose
    action they carry (frames streamed before a switch still carry the old one).
    """

    def __init__(
        self,
        strategy: EvolutionStrategy,
        discriminator: DiscriminatorTrainer,
        set_params: Callable[[np.ndarray, list[int]], None],
        to_action: Callable[[dict[str, float]], np.ndarray],
        batches_per_candidate: int,
        instances: int,
    ) -> None:
        if strategy.candidates % instances:
            raise ValueError(
                f"expected candidates ({strategy.candidates}) in whole rounds of "
                f"{instances} instances"
            )
        self.strategy, self.discriminator = strategy, discriminator
        self.set_params, self.to_action = set_params, to_action
        self.every, self.instances = batches_per_candidate, instances
        self.actions: list[np.ndarray] = []
        self.round = 0
        self.batches = 0
        self._start_generation()

    def _start_generation(self) -> None:
        candidates = self.strategy.propose()
        self.actions = [self.to_action(self.strategy.params(c)) for c in candidates]
        self.round = 0
        self._send_round()

    def _send_round(self) -> None:
        for env_id in range(self.instances):
            self.set_params(self.actions[self.round * self.instances + env_id], [env_id])

    def after_batch(self, inputs: torch.Tensor, frame_params: list[np.ndarray]) -> None:
        """Train the discriminator on the batch, credit its frames, switch when due."""
        scores = self.discriminator.step(inputs).numpy()
        for k, action in enumerate(self.actions):
            mine = [i for i, p in enumerate(frame_params) if np.allclose(p, action, atol=1e-5)]
            if mine:
                self.strategy.report(k, scores[mine])
        self.batches += 1
        if self.batches % self.every:
            return
        self.round += 1
        if self.round * self.instances < len(self.actions):
            self._send_round()
            return
        self.strategy.update()
        self._start_generation()


__all__ = [
    "ADAPTED",
    "Adapted",
    "AdaptiveRandomization",
    "EvolutionStrategy",
    "Discriminator",
    "DiscriminatorTrainer",
]
