"""The ``btgym`` command.

    btgym serve envs.cube:CubeScene -n 4 --bind 0.0.0.0 --keys keys/ --info launch.json

starts ``n`` instances of a scene on this machine, writes a launch-info file (scene,
addresses, the server's public key) that a trainer elsewhere loads with
:func:`load_launch_info`, and serves until interrupted. Off loopback, CURVE keys are
required: ``--keys DIR`` must hold ``server.key_secret`` and a ``clients/`` directory of
authorized client public keys.

    btgym keys keys/ --clients trainer

creates them: ``keys/server.key`` and ``keys/server.key_secret`` for the server, and per
client ``keys/trainer.key`` and ``keys/trainer.key_secret`` (for the trainer's
``ClientKeys.load("keys/trainer.key_secret", "keys/server.key")``), with only the public
key copied into the allow-list ``keys/clients/trainer.key``. It refuses a directory that
already holds keys unless ``--force`` is given.

For scene authors (``btgym COMMAND --help`` for each; SCENE is a registered id such as
``btgym/Cube-v0`` or a spec, ``module:Class`` or ``file.py:Class``):

    btgym list [--spaces] [--only PATTERN ...]     the registered btgym scenes
    btgym preview SCENE -n 16 -o sheet.png         a contact sheet, annotations drawn
    btgym view SCENE --steps 100 --fps 10          the scene live in Blender's window
    btgym bench SCENE --frames 100 --instances 2   frames/s: env, stream, render-only
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import importlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from btgym.errors import BtgymError
from btgym.launch_config import LaunchConfig
from btgym.launcher import Launcher
from btgym.wire import protocol
from btgym.wire.security import allow_client, check_key_name, generate_keys, is_loopback


def serve(args: argparse.Namespace) -> int:
    """``btgym serve``: launch, write the launch info, restart dead instances until a signal."""
    bind = f"tcp://{args.bind}:0"
    keys = Path(args.keys) if args.keys else None
    curve: dict[str, Any] = {}
    if keys is not None:
        curve = {"curve_secret": keys / "server.key_secret", "curve_clients": keys / "clients"}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Launcher(
        args.scene,
        args.instances,
        scene_kwargs=json.loads(args.kwargs),
        seed=args.seed,
        blend_file=args.blend,
        blender=args.blender,
        bind=bind,
        log_dir=args.log_dir,
        **curve,
    ) as launcher:
        host = args.host or (socket.gethostname() if not is_loopback(bind) else "127.0.0.1")
        info = {
            "protocol": protocol.PROTOCOL_VERSION,
            "scene": args.scene,
            "blend_file": None if args.blend is None else str(Path(args.blend).resolve()),
            "addresses": [a.replace("0.0.0.0", host) for a in launcher.addresses],
            "server_public_key": str((keys / "server.key").resolve()) if keys else None,
            "seeds": launcher.seeds,
        }
        Path(args.info).write_text(json.dumps(info, indent=2))
        print(f"serving {args.instances} x {args.scene}; launch info in {args.info}", flush=True)
        while not stop.wait(0.5):
            if not all(instance.is_alive() for instance in launcher.instances):
                for instance in launcher.instances:
                    if not instance.is_alive():
                        launcher.restart(instance.index)
                        print(f"restarted instance {instance.index}", flush=True)
                info["addresses"] = [a.replace("0.0.0.0", host) for a in launcher.addresses]
                Path(args.info).write_text(json.dumps(info, indent=2))
    return 0


def load_launch_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``btgym serve`` launch-info file; check its protocol version."""
    info = json.loads(Path(path).read_text())
    if info.get("protocol") != protocol.PROTOCOL_VERSION:
        from btgym.errors import VersionMismatchError

        raise VersionMismatchError(protocol.PROTOCOL_VERSION, info.get("protocol"), "server")
    return info


def _existing_keys(root: Path) -> list[Path]:
    """Key files already in a ``btgym keys`` directory (its top level and ``clients/``)."""
    patterns = ("*.key", "*.key_secret", "clients/*.key")
    return sorted(path for pattern in patterns for path in root.glob(pattern))


def _client_name(name: str) -> str:
    """An argparse type: a client name usable as a key file name, and not the server's."""
    try:
        check_key_name(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if name == "server":
        raise argparse.ArgumentTypeError("expected client names other than 'server', got 'server'")
    return name


def _usage_error(message: str) -> int:
    print(f"btgym keys: {message}", file=sys.stderr)
    return 2


def keys(args: argparse.Namespace) -> int:
    """Server keys, a key pair per client and an allow-list of their public keys."""
    root = Path(args.directory)
    clients = list(dict.fromkeys(args.clients))
    existing = _existing_keys(root)
    if existing and not args.force:
        return _usage_error(
            f"expected a directory without keys, got {len(existing)} key files in {root} "
            f"(e.g. {existing[0]}); pass --force to replace them"
        )
    try:
        generate_keys(root, "server", force=args.force)
        for name in clients:
            public, _ = generate_keys(root, name, force=args.force)
            allow_client(root / "clients", public, force=args.force)
    except FileExistsError as exc:  # keys made meanwhile
        return _usage_error(str(exc))
    others = sorted({p.stem for p in (root / "clients").glob("*.key")} - set(clients))
    print(f"server keys in {root}; client key pairs in {root}; allow-list in {root / 'clients'}")
    if others:
        allowed = ", ".join(others)
        print(f"note: {root / 'clients'} also allows {allowed} (delete their files to revoke)")
    return 0


# -- commands for scene authors: list, preview, view, bench -------------------------------
class CommandError(ValueError):
    """A command's arguments that cannot work; printed as ``btgym COMMAND: message``."""


class _NoBar:
    """What :func:`progress` returns without tqdm: a bar that shows nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def progress(total: int | None, desc: str, unit: str = "frame") -> Any:
    """A tqdm progress bar on stderr (shown on a terminal), or a silent one without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns (columns of numbers right-aligned)."""
    cells = [[str(cell) for cell in row] for row in rows]
    columns = list(zip(list(headers), *cells, strict=True))
    widths = [max(len(cell) for cell in column) for column in columns]
    numeric = [bool(cells) and all(_is_number(cell) for cell in column[1:]) for column in columns]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), rule, *(line(row) for row in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: ``BlenderEnv`` keywords a registration may carry that belong to the launch.
_LAUNCH_KEYWORDS = ("seed", "blend_file", "blender", "timeout", "start_timeout", "curve")
#: ``BlenderEnv`` keywords that each command chooses itself.
_ENV_KEYWORDS = ("render_mode", "address", "launch_options")


@dataclass(frozen=True)
class SceneTarget:
    """A scene to launch: its spec, its constructor's keyword arguments, how it starts."""

    name: str
    spec: str
    scene_kwargs: dict[str, Any]
    launch: LaunchConfig


def is_btgym_spec(spec: Any) -> bool:
    """Whether a Gymnasium registry entry builds a :class:`btgym.BlenderEnv`."""
    entry = spec.entry_point
    if not isinstance(entry, str):
        entry = f"{getattr(entry, '__module__', '')}:{getattr(entry, '__qualname__', '')}"
    return entry == "btgym.env:BlenderEnv"


def btgym_ids() -> list[str]:
    """The registered ids whose entry point is btgym's, in registration order."""
    return [env_id for env_id, spec in gym.registry.items() if is_btgym_spec(spec)]


def resolve_scene(name: str, kwargs: str = "{}", blend: str | None = None) -> SceneTarget:
    """A registered btgym id or a scene spec, with ``--kwargs`` JSON and ``--blend`` applied."""
    try:
        given = json.loads(kwargs)
    except json.JSONDecodeError as exc:
        raise CommandError(f"expected --kwargs as a JSON object, got {kwargs!r} ({exc})") from exc
    if not isinstance(given, dict):
        raise CommandError(f"expected --kwargs as a JSON object, got {kwargs!r}")
    if name in gym.registry:
        registered = gym.spec(name)
        if not is_btgym_spec(registered):
            raise CommandError(
                f"expected a btgym env id, got {name!r} (entry point {registered.entry_point!r})"
            )
        merged = {**registered.kwargs, **given}
        spec = str(merged.pop("scene"))
    elif ":" in name:
        spec, merged = name, dict(given)
    else:
        close = difflib.get_close_matches(name, btgym_ids(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (see 'btgym list')"
        raise CommandError(
            "expected a registered btgym id or a scene spec (module:Class or file.py:Class), "
            f"got {name!r}{hint}"
        )
    merged.pop("scene", None)
    launch = merged.pop("launch", None) or LaunchConfig()
    for key in _ENV_KEYWORDS:
        merged.pop(key, None)
    launch = launch.override(**{key: merged.pop(key) for key in _LAUNCH_KEYWORDS if key in merged})
    return SceneTarget(name, spec, merged, launch.override(blend_file=blend))


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
    loops = 3 + (args.instances > 1)
    with progress(loops * args.rounds * args.frames, "benchmark") as bar:
        results = benchmark.measure(
            target.spec,
            target.scene_kwargs,
            launch=target.launch,
            frames=args.frames,
            rounds=args.rounds,
            instances=args.instances,
            seed=args.seed,
            on_frames=bar.update,
        )
    kwargs = json.dumps(target.scene_kwargs) if target.scene_kwargs else "default kwargs"
    print(f"{target.name} ({kwargs}): {args.rounds} interleaved rounds x {args.frames} frames")
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


def _author_command(name: str, handler: Callable[[argparse.Namespace], int]) -> Any:
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


def _author_parsers(commands: Any) -> None:
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
    measure.add_argument("--seed", type=int, default=0)


AUTHOR_COMMANDS = {"list": list_scenes, "preview": preview, "view": view, "bench": bench}


def main(argv: list[str] | None = None) -> int:
    """The ``btgym`` command; the exit status."""
    parser = argparse.ArgumentParser(
        prog="btgym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve instances of a scene on this machine")
    run.add_argument("scene", help="module:Class or file.py:Class")
    run.add_argument("-n", "--instances", type=int, default=1)
    run.add_argument("--kwargs", default="{}", help="scene kwargs as JSON")
    run.add_argument("--blend", default=None, help="a .blend file each instance opens first")
    run.add_argument("--blender", default=None, help="a Blender executable (default: bpy)")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--bind", default="127.0.0.1", help="interface to listen on")
    run.add_argument("--host", default=None, help="host name written into the addresses")
    run.add_argument("--keys", default=None, help="directory made by 'btgym keys'")
    run.add_argument("--info", default="launch.json", help="where to write the launch info")
    run.add_argument("--log-dir", default=None)
    make_keys = commands.add_parser("keys", help="create CURVE keys for a server and clients")
    make_keys.add_argument("directory")
    make_keys.add_argument("--clients", nargs="+", type=_client_name, default=["trainer"])
    make_keys.add_argument("--force", action="store_true", help="replace existing keys")
    _author_parsers(commands)
    args = parser.parse_args(argv)
    handlers = {name: _author_command(name, f) for name, f in AUTHOR_COMMANDS.items()}
    return {"serve": serve, "keys": keys, **handlers}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
