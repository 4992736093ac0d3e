"""``btgym bench``: a scene's frames/s through the env and the stream, next to its render-only loop.

Three loops, run in the same session with their rounds interleaved (render only, env,
stream, render only, env, ...), so that each round of each loop sees the machine in
the same state; every figure is the median of the rounds' frames/s:

- **render only**: the scene built in a bpy subprocess
  (:class:`blender_side.testing.SceneEnv`), reset once, then
  ``bpy.ops.render.render(write_still=False)`` again and again: the frame rendered and
  nothing else (no randomization, read-back or transport), the physical limit, as in
  ``benchmarks/readback.py``;
- **env**: :class:`btgym.BlenderEnv` steps with sampled actions (one instance, a round
  trip per frame);
- **stream**: :class:`btgym.data.StreamDataset` with ``instances`` instances, items
  consumed in this process (no ``DataLoader``). Each round first takes the items the
  stream buffered while the other loops ran, untimed.

- **render only, N processes at once** (with ``instances = N > 1``): N such loops
  sharing the machine, the stream's physical limit.

The ratios are frames/s over the render-only loop's with as many processes (the env's
over one loop, the stream's over N at once).
The render-only loop runs in a bpy subprocess: ``python -m blender_side.render_loop``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btgym._launch_config import LaunchConfig
from btgym.errors import ConfigError, LaunchError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WARM_UP_FRAMES = 3


@dataclass
class LoopRate:
    """One loop's frames/s, one entry per round."""

    name: str
    instances: int
    rates: list[float] = field(default_factory=list)
    blender: dict[str, Any] | None = None  # version and graphics backend, where known

    @property
    def median(self) -> float:
        """The median of the rounds' rates."""
        return statistics.median(self.rates)


class RenderOnlyLoop:
    """The scene in a bpy subprocess that renders its frame again and again, on request."""

    def __init__(
        self,
        spec: str,
        scene_kwargs: dict[str, Any],
        blend_file: str | None = None,
        gpu_backend: str = "auto",
    ) -> None:
        from btgym.launcher import child_env

        command = [sys.executable, "-m", "blender_side.render_loop", spec]
        command += [json.dumps(scene_kwargs), *(["--blend", blend_file] if blend_file else [])]
        env = child_env(gpu_backend=gpu_backend)  # the instances' environment and backend
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        try:
            self._answer("ready")
        except BaseException:
            self.close()
            raise

    def run(self, frames: int) -> float:
        """Seconds ``frames`` renders took."""
        self.send(frames)
        return self.receive()

    def send(self, frames: int) -> None:
        """Ask for ``frames`` renders (answered by :meth:`receive`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{frames}\n")
        self.process.stdin.flush()

    def receive(self) -> float:
        """Seconds the renders asked for by :meth:`send` took, measured by the worker."""
        return float(self._answer("elapsed"))

    def _answer(self, word: str) -> str:
        """The rest of the worker's next line starting with ``word`` (Blender prints too)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(word):
                return line[len(word) :].strip()
        self.process.wait(30)
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace")[-3000:]
        raise LaunchError(
            f"expected the render-only loop to answer {word!r}, but it exited with code "
            f"{self.process.returncode}",
            log_tail=tail,
        )

    def close(self) -> None:
        """End the worker (end of input), killing it after 30 s; close its log."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # end of input: the worker closes its scene and exits
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


class ParallelRenderOnlyLoop:
    """``count`` render-only loops at once, one bpy process each: what ``count`` instances
    could render together on this machine with no read-back, randomization or transport.
    """

    def __init__(
        self,
        spec: str,
        scene_kwargs: dict[str, Any],
        blend_file: str | None,
        count: int,
        gpu_backend: str = "auto",
    ) -> None:
        self.loops: list[RenderOnlyLoop] = []
        try:
            for _ in range(count):
                self.loops.append(RenderOnlyLoop(spec, scene_kwargs, blend_file, gpu_backend))
        except BaseException:
            self.close()
            raise

    def run(self, frames: int) -> float:
        """Seconds the loops took for ``frames`` renders in all (shared out, run at once)."""
        count = len(self.loops)
        each = -(-frames // count)
        started = time.perf_counter()
        for loop in self.loops:
            loop.send(each)
        for loop in self.loops:
            loop.receive()
        return (time.perf_counter() - started) * frames / (each * count)

    def close(self) -> None:
        """End every loop."""
        for loop in self.loops:
            loop.close()


class EnvLoop:
    """A :class:`~btgym.BlenderEnv` stepped with sampled actions (reset at episode ends)."""

    def __init__(
        self, spec: str, scene_kwargs: dict[str, Any], launch: LaunchConfig, seed: int
    ) -> None:
        from btgym.env import BlenderEnv

        self.env = BlenderEnv(spec, launch=launch, **scene_kwargs)
        #: The instance's Blender version and graphics backend (its hello reply).
        self.blender: dict[str, Any] | None = self.env.remote.get("blender")
        self.env.action_space.seed(seed)
        self.env.reset(seed=seed)
        self.run(WARM_UP_FRAMES)

    def run(self, frames: int) -> float:
        """Seconds ``frames`` steps took (resets at episode ends included)."""
        started = time.perf_counter()
        for _ in range(frames):
            _, _, terminated, truncated, _ = self.env.step(self.env.action_space.sample())
            if terminated or truncated:
                self.env.reset()
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the env and its instance."""
        self.env.close()


class StreamLoop:
    """An endless :class:`~btgym.data.StreamDataset`, its items taken here one by one."""

    def __init__(
        self,
        spec: str,
        scene_kwargs: dict[str, Any],
        launch: LaunchConfig,
        instances: int,
        seed: int,
    ) -> None:
        from btgym.data import StreamDataset

        dataset = StreamDataset(spec, instances, seed=seed, env_kwargs=scene_kwargs, launch=launch)
        #: Items a stream holds ready at most (replies queued per instance), skipped untimed.
        self.buffered = dataset.depth * dataset.frames_per_request * instances
        self.items: Iterator[dict[str, Any]] = iter(dataset)
        for _ in range(WARM_UP_FRAMES * instances):
            next(self.items)

    def run(self, frames: int) -> float:
        """Seconds ``frames`` items took, after the items buffered while other loops ran."""
        for _ in range(self.buffered):  # made while the other loops ran
            next(self.items)
        started = time.perf_counter()
        for _ in range(frames):
            next(self.items)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the stream, which stops its instances."""
        close = getattr(self.items, "close", None)
        if close is not None:
            close()  # the stream stops its instances


def measure(
    spec: str,
    scene_kwargs: dict[str, Any],
    *,
    launch: LaunchConfig | None = None,
    frames: int = 100,
    rounds: int = 3,
    instances: int = 2,
    seed: int = 0,
    on_frames: Callable[[int], None] | None = None,
) -> list[LoopRate]:
    """Frames/s of the render-only loop, the env and the stream, in that order; with
    ``instances > 1`` also of that many render-only loops at once, after the first (the
    stream's reference: :func:`reference`).

    ``on_frames(n)`` is called after each round of each loop with its frame count (for a
    progress bar).
    """
    if frames < 1 or rounds < 1 or instances < 1:
        raise ConfigError(
            f"expected frames, rounds and instances >= 1, got {frames}, {rounds}, {instances}"
        )
    launch = launch or LaunchConfig()
    results = [LoopRate("render only (render.render, write_still=False)", 1)]
    if instances > 1:
        results.append(LoopRate(f"render only, {instances} processes at once", instances))
    results.append(LoopRate("env (BlenderEnv.step, sampled actions)", 1))
    results.append(LoopRate("stream (StreamDataset, items in-process)", instances))
    loops: list[Any] = []
    try:
        backend = launch.gpu_backend
        loops.append(RenderOnlyLoop(spec, scene_kwargs, launch.blend_file, backend))
        if instances > 1:
            loops.append(
                ParallelRenderOnlyLoop(spec, scene_kwargs, launch.blend_file, instances, backend)
            )
        env_loop = EnvLoop(spec, scene_kwargs, launch, seed)
        loops.append(env_loop)
        for result in results:
            result.blender = env_loop.blender
        loops.append(StreamLoop(spec, scene_kwargs, launch, instances, seed))
        for _ in range(rounds):
            for loop, result in zip(loops, results, strict=True):
                result.rates.append(frames / loop.run(frames))
                if on_frames is not None:
                    on_frames(frames)
    finally:
        for loop in reversed(loops):
            loop.close()
    return results


def reference(results: list[LoopRate], loop: LoopRate) -> LoopRate:
    """The render-only loop ``loop`` is compared with: the one with as many processes."""
    return next(
        r for r in results if r.name.startswith("render only") and r.instances == loop.instances
    )


__all__ = [
    "EnvLoop",
    "LoopRate",
    "ParallelRenderOnlyLoop",
    "RenderOnlyLoop",
    "StreamLoop",
    "measure",
    "reference",
]
