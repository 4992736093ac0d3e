"""The commands for scene authors: ``btgym list``, ``preview``, ``view`` and ``bench``.

SCENE is a registered id or a scene spec, resolved by :mod:`btgym._registry` as every
entry point resolves it.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from btgym._registry import SceneTarget, btgym_ids, resolve_target
from btgym.cli._output import CommandError, format_table, progress
from btgym.errors import BtgymError, ConfigError
from btgym.wire.gpu_backend import GPU_BACKENDS


def resolve_scene(name: str, kwargs: str = "{}", blend: str | None = None) -> SceneTarget:
    """A registered btgym id or a scene spec, with ``--kwargs`` JSON and ``--blend`` applied."""
    try:
        given = json.loads(kwargs)
    except json.JSONDecodeError as exc:
        raise CommandError(f"expected --kwargs as a JSON object, got {kwargs!r} ({exc})") from exc
    if not isinstance(given, dict):
        raise CommandError(f"expected --kwargs as a JSON object, got {kwargs!r}")
    try:
        target = resolve_target(name, given)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    if blend is not None:
        target = SceneTarget(
            target.name,
            target.spec,
            target.scene_kwargs,
            {**target.launch_keywords, "blend_file": blend},
        )
    return target


def list_scenes(args: argparse.Namespace) -> int:
    """The registered btgym scenes; with ``--spaces``, each launched for its spaces."""
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise CommandError(f"expected an importable module for --import, got {exc}") from exc
    ids = [i for i in btgym_ids() if not args.only or any(fnmatch.fnmatch(i, p) for p in args.only)]
    if not ids:
        raise CommandError(f"expected registered btgym scenes matching {args.only}, found none")
    headers = ["id", "scene", "kwargs"]
    rows: list[list[str]] = []
    for env_id in ids:
        kwargs = dict(gym.spec(env_id).kwargs)
        scene = str(kwargs.pop("scene"))
        rows.append([env_id, scene, json.dumps(kwargs, default=str) if kwargs else "-"])
    failed = 0
    if args.spaces:
        from btgym.env import BlenderEnv

        headers += ["action space", "observation space"]
        with progress(len(ids), "launching", unit="scene") as bar:
            for env_id, row in zip(ids, rows, strict=True):
                target = resolve_scene(env_id)
                try:
                    with BlenderEnv(
                        target.spec, launch=target.launch, **target.scene_kwargs
                    ) as env:
                        row += [str(env.action_space), str(env.observation_space)]
                except BtgymError as exc:
                    failed += 1
                    row += [f"error: {str(exc).splitlines()[0]}", "-"]
                bar.update(1)
    print(format_table(headers, rows))
    return 1 if failed else 0


def _frame_of(env: Any, observation: Any) -> Any:
    """The image to show for a step: the observation if it is one, else ``env.render()``."""
    from btgym.preview import image_of

    frame = image_of(observation)
    if frame is not None:
        return frame
    try:
        frame = env.render()
    except BtgymError as exc:
        frame, why = None, f" (render() raised {type(exc).__name__}: {exc})"
    else:
        why = ""
    if frame is None or image_of(frame) is None:
        shape = getattr(observation, "shape", type(observation).__name__)
        raise CommandError(
            "expected an image observation (H, W, 3) or a scene whose render() returns one, "
            f"got an observation of {shape}{why}"
        )
    return frame


def preview(args: argparse.Namespace) -> int:
    """Render ``-n`` frames and write a contact sheet with their annotations drawn."""
    from btgym.env import BlenderEnv
    from btgym.preview import contact_sheet

    if args.n < 1 or args.steps < 0:
        raise CommandError(f"expected -n >= 1 and --steps >= 0, got {args.n} and {args.steps}")
    target = resolve_scene(args.scene, args.kwargs, args.blend)
    launch = target.launch.override(blender=args.blender)
    tiles: list[tuple[Any, dict[str, Any], str]] = []
    with (
        BlenderEnv(target.spec, "rgb_array", launch=launch, **target.scene_kwargs) as env,
        progress(args.n, "rendering") as bar,
    ):
        env.action_space.seed(args.seed)
        seed = args.seed
        while len(tiles) < args.n:
            observation, info = env.reset(seed=seed)
            tiles.append((_frame_of(env, observation), info, f"seed {seed}, step 0"))
            bar.update(1)
            for step in range(1, args.steps + 1):
                if len(tiles) == args.n:
                    break
                observation, _, terminated, truncated, info = env.step(env.action_space.sample())
                tiles.append((_frame_of(env, observation), info, f"seed {seed}, step {step}"))
                bar.update(1)
                if terminated or truncated:
                    break
            seed += 1
    sheet = contact_sheet(tiles, columns=args.columns)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    print(f"{output}: {len(tiles)} frames of {target.name}, {sheet.width}x{sheet.height} pixels")
    return 0


def view(args: argparse.Namespace) -> int:
    """Start the scene in Blender's window and step it with sampled actions."""
    from btgym.env import BlenderEnv

    if args.fps <= 0 or (args.steps is not None and args.steps < 1):
        raise CommandError(f"expected --fps > 0 and --steps >= 1, got {args.fps}, {args.steps}")
    target = resolve_scene(args.scene, args.kwargs, args.blend)
    blender = (
        args.blender
        or target.launch.blender
        or os.environ.get("BTGYM_BLENDER")
        or shutil.which("blender")
    )
    if blender is None:
        raise CommandError(
            "expected a Blender executable for the window (--blender, BTGYM_BLENDER or "
            "'blender' on PATH), found none; the pip bpy module has no window"
        )
    launch = target.launch.override(blender=blender, ui=True)
    with BlenderEnv(target.spec, launch=launch, **target.scene_kwargs) as env:
        print(f"{target.name} in Blender's window ({blender}); Ctrl-C to stop", flush=True)
        env.action_space.seed(args.seed)
        env.reset(seed=args.seed)
        period, due, done = 1.0 / args.fps, time.monotonic(), 0
        with progress(args.steps, "stepping", unit="step") as bar:
            try:
                while args.steps is None or done < args.steps:
                    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                    if terminated or truncated:
                        env.reset()
                    done += 1
                    bar.update(1)
                    due += period
                    time.sleep(max(0.0, due - time.monotonic()))
            except KeyboardInterrupt:
                pass
    print(f"{done} steps", flush=True)
    return 0


def bench(args: argparse.Namespace) -> int:
    """Frames/s through the env and the stream, as ratios to the render-only loop."""
    from btgym import bench as benchmark

    counts = {"--frames": args.frames, "--rounds": args.rounds, "--instances": args.instances}
    if min(counts.values()) < 1:
        raise CommandError(f"expected {', '.join(counts)} >= 1, got {list(counts.values())}")
    target = resolve_scene(args.scene, args.kwargs, args.blend)
    launch = target.launch.override(gpu_backend=args.gpu_backend)
    loops = 3 + (args.instances > 1)
    with progress(loops * args.rounds * args.frames, "benchmark") as bar:
        results = benchmark.measure(
            target.spec,
            target.scene_kwargs,
            launch=launch,
            frames=args.frames,
            rounds=args.rounds,
            instances=args.instances,
            seed=args.seed,
            on_frames=bar.update,
        )
    kwargs = json.dumps(target.scene_kwargs) if target.scene_kwargs else "default kwargs"
    print(f"{target.name} ({kwargs}): {args.rounds} interleaved rounds x {args.frames} frames")
    blender = results[0].blender or {}
    print(
        f"Blender {blender.get('version', '?')}, graphics backend "
        f"{blender.get('gpu_backend', '?')} (chosen: {blender.get('gpu_backend_choice', '?')})"
    )
    rows = [
        [
            r.name,
            r.instances,
            f"{r.median:.1f}",
            f"{r.median / benchmark.reference(results, r).median:.2f}",
        ]
        for r in results
    ]
    header = ["loop", "instances", "frames/s", "ratio to render-only (same processes)"]
    print(format_table(header, rows))
    return 0


def author_command(name: str, handler: Callable[[argparse.Namespace], int]) -> Any:
    """``handler`` with its errors printed as ``btgym NAME: message`` instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as exc:
            print(f"btgym {name}: {exc}", file=sys.stderr)
            return 2
        except (BtgymError, FileNotFoundError) as exc:
            print(f"btgym {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"btgym {name}: interrupted", file=sys.stderr)
            return 130

    return run


def _scene_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scene", help="a registered id (btgym/Cube-v0), module:Class or file.py:Class"
    )
    parser.add_argument(
        "--blend", default=None, help="a .blend file opened before the scene is built"
    )
    parser.add_argument(
        "--kwargs", default="{}", help="scene kwargs as JSON, e.g. '{\"width\": 64}'"
    )


def author_parsers(commands: Any) -> None:
    """The ``list``, ``preview``, ``view`` and ``bench`` subcommands."""
    listing = commands.add_parser(
        "list",
        help="the registered btgym scenes (and, with --spaces, their spaces)",
        description="The Gymnasium ids whose entry point is btgym's, their scene and kwargs. "
        "--spaces launches each scene once for its action and observation spaces.",
    )
    listing.add_argument("--spaces", action="store_true", help="launch each scene for its spaces")
    listing.add_argument("--only", nargs="+", default=[], metavar="PATTERN", help="ids or globs")
    listing.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (a module that calls btgym.register_scene); repeatable",
    )
    sheet = commands.add_parser(
        "preview",
        help="render frames into a contact sheet with their annotations drawn",
        description="Renders -n frames through a BlenderEnv and writes a PNG grid. Frames "
        "are reset(seed=S) for S = --seed, --seed + 1, ...; with --steps K each reset is "
        "followed by up to K steps with sampled actions, a tile each. Drawn from info: 2-D "
        "keypoints (arrays (K, 2) in pixels), boxes (bbox_visib, boxes, ...: (M, 4) x0 y0 "
        "x1 y1) labelled with class_id / instance_id; other keys are ignored.",
    )
    _scene_arguments(sheet)
    sheet.add_argument("-n", type=int, default=16, help="frames (tiles), default 16")
    sheet.add_argument("-o", "--output", default="sheet.png", help="the PNG to write")
    sheet.add_argument("--seed", type=int, default=0, help="the first reset seed")
    sheet.add_argument("--steps", type=int, default=0, help="sampled steps after each reset")
    sheet.add_argument("--columns", type=int, default=None, help="tiles per row (default ~sqrt n)")
    sheet.add_argument("--blender", default=None, help="a Blender executable (default: bpy)")
    window = commands.add_parser(
        "view",
        help="watch the scene live in Blender's window (installed Blender, display)",
        description="Starts the scene in Blender's UI mode and steps it with sampled actions "
        "at --fps until Ctrl-C or --steps. Needs an installed Blender and a display (on a "
        "headless machine: xvfb-run -a btgym view ...).",
    )
    _scene_arguments(window)
    window.add_argument(
        "--blender", default=None, help="Blender executable (default: BTGYM_BLENDER, 'blender')"
    )
    window.add_argument("--steps", type=int, default=None, help="stop after N steps")
    window.add_argument("--fps", type=float, default=10.0, help="steps per second, default 10")
    window.add_argument("--seed", type=int, default=0)
    measure = commands.add_parser(
        "bench",
        help="frames/s through the env and the stream, as ratios to the render-only loop",
        description=importlib.import_module("btgym.bench").__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scene_arguments(measure)
    measure.add_argument("--frames", type=int, default=100, help="frames per loop and round")
    measure.add_argument("--rounds", type=int, default=3, help="interleaved rounds, default 3")
    measure.add_argument("--instances", type=int, default=2, help="stream instances, default 2")
    measure.add_argument(
        "--gpu-backend",
        choices=GPU_BACKENDS,
        default=None,
        help="auto (default: OpenGL without a GPU), opengl or vulkan",
    )
    measure.add_argument("--seed", type=int, default=0)


AUTHOR_COMMANDS = {"list": list_scenes, "preview": preview, "view": view, "bench": bench}


__all__ = ["AUTHOR_COMMANDS", "author_command", "author_parsers", "resolve_scene"]
