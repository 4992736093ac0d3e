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

Version 3 (issue 27, the ``adaptive_v3`` condition of :mod:`agents.experiments.transfer`)
adds what the first version lacked, each optional so that ``adaptive`` stays as it was:

- :class:`CandidateSensor`: every streamed frame passes through its candidate's sensor
  model (:mod:`btgym.sensor`) before the detector and the discriminator see it, so sensor
  parameters are adapted too and clean renders never face noisy target frames;
- :class:`Equalizer`: both stream and target frames pass through one fixed blur and
  fresh noise before the discriminator, so pixel-level noise differences (which alone
  separated every target frame from every clean render) are masked;
- calibrated scores: label smoothing keeps the discriminator's logits graded, and
  ``rescore`` scores every candidate of a generation at its end with one and the same
  discriminator (mean logit of frames kept per candidate), so scores are comparable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from btgym.sensor import SensorModel


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
    """Target vs stream frames at half resolution: 4 strided convolutions, global pooling.

    ``spectral``: spectral normalization of every layer (Miyato et al., "Spectral
    Normalization for GANs", 2018): a bounded Lipschitz constant, so that the logit
    changes in proportion to how far frames are from the target instead of jumping from
    "surely not" to "surely" at one boundary (a graded score for the controller).
    """

    def __init__(self, width: int = 16, spectral: bool = False) -> None:
        super().__init__()
        norm = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            conv = nn.Conv2d(channels, out, 3, stride=2, padding=1)
            layers += [norm(conv), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.logit = norm(nn.Linear(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)`` that frames ``(N, 3, H, W)`` in [-0.5, 0.5] are target frames."""
        x = F.avg_pool2d(x, 2)
        return self.logit(self.features(x).mean(dim=(2, 3))).squeeze(1)


class Equalizer:
    """A fixed Gaussian blur and fresh Gaussian noise for every frame the discriminator
    sees, stream and target alike (frames ``(N, 3, H, W)`` in [-0.5, 0.5]).

    Why: a target photographed by a real sensor carries noise that no clean render has, and
    a CNN separates the two on that alone, whatever else the parameters change. The blur
    (``sigma`` px, edges reflected) cuts pixel noise to a fraction (about
    ``1 / (2 sqrt(pi) sigma)`` of its standard deviation), and the added noise (``noise``,
    of full scale) then dominates what is left on both sides, so noise levels barely
    differ; exposure, tone, colour, vignetting, layout and blur beyond ``sigma`` stay
    visible. The same transform on both sides: symmetric by construction.
    """

    def __init__(self, sigma: float = 1.5, noise: float = 4.0 / 255, seed: int = 0) -> None:
        radius = max(1, int(np.ceil(3 * sigma)))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / sigma) ** 2)
        self.kernel = taps / taps.sum()
        self.radius, self.noise = radius, float(noise)
        self.generator = torch.Generator().manual_seed(seed)

    def blur(self, frames: torch.Tensor) -> torch.Tensor:
        """The fixed blur alone: separable, depthwise, reflected edges."""
        n, c, h, w = frames.shape
        x = frames.reshape(n * c, 1, h, w).float()
        r = self.radius
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), self.kernel.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), self.kernel.view(1, 1, -1, 1))
        return x.reshape(n, c, h, w)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` blurred, plus fresh noise (a new draw every call)."""
        x = self.blur(frames)
        return x + self.noise * torch.randn(x.shape, generator=self.generator)


class DiscriminatorTrainer:
    """Adam steps on stream frames vs as many random target frames: per batch, one on the
    batch itself (whose scores reward the candidates), then ``extra_steps`` on frames
    drawn from the last ``memory`` batches (one step a batch left it near chance).

    ``equalizer``: applied to every frame, stream and target, before the network (see
    :class:`Equalizer`). ``smoothing``: label smoothing (targets ``smoothing`` and
    ``1 - smoothing``), which bounds the optimal logit at ``log((1 - s) / s)`` so that the
    scores stay graded instead of saturating. ``spectral``: see :class:`Discriminator`.
    """

    def __init__(
        self,
        target_frames: torch.Tensor,
        seed: int,
        lr: float = 1e-3,
        extra_steps: int = 0,
        memory: int = 8,
        equalizer: Callable[[torch.Tensor], torch.Tensor] | None = None,
        smoothing: float = 0.0,
        spectral: bool = False,
    ) -> None:
        if len(target_frames) == 0:
            raise ValueError("expected unlabeled target frames for the discriminator, got none")
        if not 0.0 <= smoothing < 0.5:
            raise ValueError(f"expected label smoothing in [0, 0.5), got {smoothing}")
        torch.manual_seed(seed)
        self.model = Discriminator(spectral=spectral)
        self.target = target_frames
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, betas=(0.5, 0.999))
        self.generator = torch.Generator().manual_seed(seed)
        self.extra_steps = extra_steps
        self.recent: deque[torch.Tensor] = deque(maxlen=memory)
        self.losses: list[float] = []
        self.equalizer = equalizer
        self.smoothing = float(smoothing)

    def _seen(self, frames: torch.Tensor) -> torch.Tensor:
        """What the network sees of ``frames``: equalized, when there is an equalizer."""
        return frames if self.equalizer is None else self.equalizer(frames)

    @torch.no_grad()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)`` of ``frames`` with the current network (no training step):
        graded scores, comparable between frames scored by one call's network."""
        self.model.eval()
        return self.model(self._seen(frames.float()))

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
        frames = self._seen(torch.cat([stream, self.target[pick]]))
        s = self.smoothing
        labels = torch.cat([torch.full((len(stream),), s), torch.full((len(stream),), 1 - s)])
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

    ``sensor_names``: the candidates' parameters that belong to the sensor model, not the
    scene: they stay out of the action, and :meth:`sensor_for` finds a frame's sensor
    ranges by the action it carries (:class:`CandidateSensor` applies them). ``rescore``:
    instead of the scores of each batch's own training step (made by a network that
    changes from batch to batch), up to ``keep`` frames per candidate are kept and, at the
    generation's end, all candidates are scored by one network: the mean logit
    (:meth:`DiscriminatorTrainer.score`), comparable across candidates.
    """

    def __init__(
        self,
        strategy: EvolutionStrategy,
        discriminator: DiscriminatorTrainer,
        set_params: Callable[[np.ndarray, list[int]], None],
        to_action: Callable[[dict[str, float]], np.ndarray],
        batches_per_candidate: int,
        instances: int,
        sensor_names: Collection[str] = (),
        rescore: bool = False,
        keep: int = 32,
    ) -> None:
        if strategy.candidates % instances:
            raise ValueError(
                f"expected candidates ({strategy.candidates}) in whole rounds of "
                f"{instances} instances"
            )
        self.strategy, self.discriminator = strategy, discriminator
        self.set_params, self.to_action = set_params, to_action
        self.every, self.instances = batches_per_candidate, instances
        self.sensor_names = frozenset(sensor_names)
        self.rescore, self.keep = rescore, int(keep)
        self.actions: list[np.ndarray] = []
        self.sensors: list[dict[str, float]] = []
        self.previous: list[tuple[np.ndarray, dict[str, float]]] = []
        self.kept: list[list[torch.Tensor]] = []
        self.round = 0
        self.batches = 0
        self._start_generation()

    def _start_generation(self) -> None:
        candidates = self.strategy.propose()
        named = [self.strategy.params(c) for c in candidates]
        self.previous = list(zip(self.actions, self.sensors, strict=True))
        self.sensors = [self._sensor_part(n) for n in named]
        self.actions = [
            self.to_action({k: v for k, v in n.items() if k not in self.sensor_names})
            for n in named
        ]
        self.kept = [[] for _ in candidates]
        self.round = 0
        self._send_round()

    def _sensor_part(self, named: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in named.items() if k in self.sensor_names}

    def _send_round(self) -> None:
        for env_id in range(self.instances):
            self.set_params(self.actions[self.round * self.instances + env_id], [env_id])

    def sensor_for(self, frame_params: np.ndarray) -> dict[str, float]:
        """The sensor ranges of the candidate (this generation's or the last) whose action
        a frame carries; the search mean's for a frame that matches none."""
        pairs = [*zip(self.actions, self.sensors, strict=True), *self.previous]
        for action, sensor in pairs:
            if np.allclose(frame_params, action, atol=1e-5):
                return sensor
        return self._sensor_part(self.strategy.params(self.strategy.mean))

    def after_batch(self, inputs: torch.Tensor, frame_params: list[np.ndarray]) -> None:
        """Train the discriminator on the batch, credit its frames, switch when due."""
        scores = self.discriminator.step(inputs).numpy()
        for k, action in enumerate(self.actions):
            mine = [i for i, p in enumerate(frame_params) if np.allclose(p, action, atol=1e-5)]
            if not mine:
                continue
            if self.rescore:
                room = self.keep - sum(len(f) for f in self.kept[k])
                if room > 0:
                    self.kept[k].append(inputs[mine[:room]].detach().to(torch.float16))
            else:
                self.strategy.report(k, scores[mine])
        self.batches += 1
        if self.batches % self.every:
            return
        self.round += 1
        if self.round * self.instances < len(self.actions):
            self._send_round()
            return
        if self.rescore:
            for k, frames in enumerate(self.kept):
                if frames:
                    logits = self.discriminator.score(torch.cat(frames).float())
                    self.strategy.report(k, logits.numpy())
        self.strategy.update()
        self._start_generation()


class CandidateSensor:
    """Streamed frames through the sensor model of the candidate that rendered them
    (:meth:`AdaptiveRandomization.sensor_for`), before the detector and the discriminator.

    ``base``: the sensor ranges that candidates change (e.g. ``SENSOR_V3``). Each frame's
    noise comes from its own generator (seeded by ``seed`` and the frame's env id, seed,
    episode and step, as :meth:`btgym.sensor.SensorModel.sense_item`): reproducible, fresh
    every frame. A batch's ``obs`` is replaced and its ``sensor`` values added.
    """

    def __init__(self, adaptive: AdaptiveRandomization, base: dict[str, float], seed: int) -> None:
        self.adaptive = adaptive
        self.model = SensorModel(base, seed)
        self.base = self.model.ranges

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """``batch`` (a collated stream batch) with its frames sensed."""
        obs = np.asarray(batch["obs"])
        out = np.empty_like(obs)
        values = []
        places = torch.stack([batch[k] for k in ("env_id", "seed", "episode", "step")], 1)
        for i, info in enumerate(batch["infos"]):
            self.model.ranges = self.base
            self.model.set_params(self.adaptive.sensor_for(np.asarray(info["params"])))
            rng = self.model.frame_rng(*places[i].tolist())
            out[i], drawn = self.model.apply(obs[i], rng)
            values.append(drawn)
        return {**batch, "obs": torch.as_tensor(out), "sensor": torch.as_tensor(np.stack(values))}


__all__ = [
    "ADAPTED",
    "Adapted",
    "AdaptiveRandomization",
    "CandidateSensor",
    "Equalizer",
    "EvolutionStrategy",
    "Discriminator",
    "DiscriminatorTrainer",
]
