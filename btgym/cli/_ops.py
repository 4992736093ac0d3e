"""The operations commands: ``btgym serve`` (instances for trainers elsewhere) and
``btgym keys`` (CURVE keys for a server and its clients).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from btgym._launch_config import LaunchConfig
from btgym._launch_info import LaunchInfo
from btgym._recycling import restart_dead
from btgym.cli._output import CommandError
from btgym.launcher import Launcher
from btgym.wire._private_files import check_replaceable
from btgym.wire.gpu_backend import GPU_BACKENDS
from btgym.wire.security import allow_client, check_key_name, generate_keys, is_loopback


def serve(args: argparse.Namespace) -> int:
    """``btgym serve``: launch, write the launch info, restart dead instances until a signal."""
    keys = Path(args.keys) if args.keys else None
    bind = _serve_address(args, keys)
    check_replaceable(args.info, "the launch-info file")  # refused before anything starts
    launch = LaunchConfig(
        blender=args.blender,
        gpu_backend=args.gpu_backend,
        blend_file=args.blend,
        seed=args.seed,
        bind=bind,
        log_dir=args.log_dir,
        curve_secret=None if keys is None else keys / "server.key_secret",
        curve_clients=None if keys is None else keys / "clients",
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scene_kwargs = json.loads(args.kwargs)
    with Launcher(
        args.scene, args.instances, scene_kwargs=scene_kwargs, **launch.launcher_options()
    ) as launcher:
        on_loopback = bind is None or is_loopback(bind)
        host = args.host or (socket.gethostname() if not on_loopback else "127.0.0.1")

        def launch_info() -> LaunchInfo:
            return LaunchInfo(
                scene=args.scene,
                blend_file=None if args.blend is None else str(Path(args.blend).resolve()),
                addresses=[a.replace("0.0.0.0", host) for a in launcher.addresses],
                server_public_key=str((keys / "server.key").resolve()) if keys else None,
                seeds=launcher.seeds,
                blender=[instance.blender for instance in launcher.instances],
            )

        launch_info().write(args.info)
        print(f"serving {args.instances} x {args.scene}; launch info in {args.info}", flush=True)
        while not stop.wait(0.5):
            restarted = restart_dead(launcher)
            for index in restarted:
                print(f"restarted instance {index}", flush=True)
            if restarted:
                launch_info().write(args.info)
    return 0


def _serve_address(args: argparse.Namespace, keys: Path | None) -> str | None:
    """The address instances listen on: None (private IPC sockets) unless ``--bind``.

    TCP without keys is refused, also on loopback (every local user can connect there
    and step or close the instances), unless ``--insecure-tcp`` says so; then a warning.
    """
    if args.bind is None:
        if args.insecure_tcp:
            raise CommandError("expected --bind HOST with --insecure-tcp, got no --bind")
        return None
    bind = f"tcp://{args.bind}:0"
    if keys is not None:
        return bind
    if not is_loopback(bind):
        raise CommandError(
            f"expected --keys DIR (made by 'btgym keys') to serve on the non-loopback "
            f"address {args.bind}, got none"
        )
    if not args.insecure_tcp:
        raise CommandError(
            f"expected --keys DIR to serve on TCP {args.bind}: without keys every local user "
            "can connect, step and close the instances; leave out --bind (private IPC "
            "sockets, the default), give --keys, or pass --insecure-tcp to accept that"
        )
    print(
        f"btgym serve: warning: serving on {bind} without keys (--insecure-tcp): every user "
        "of this host can connect, step and close the instances",
        file=sys.stderr,
        flush=True,
    )
    return bind


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


def ops_parsers(commands: Any) -> None:
    """The ``serve`` and ``keys`` subcommands."""
    run = commands.add_parser("serve", help="serve instances of a scene on this machine")
    run.add_argument("scene", help="module:Class or file.py:Class")
    run.add_argument("-n", "--instances", type=int, default=1)
    run.add_argument("--kwargs", default="{}", help="scene kwargs as JSON")
    run.add_argument("--blend", default=None, help="a .blend file each instance opens first")
    run.add_argument("--blender", default=None, help="a Blender executable (default: bpy)")
    run.add_argument(
        "--gpu-backend",
        choices=GPU_BACKENDS,
        default="auto",
        help="auto (default: OpenGL without a GPU), opengl or vulkan",
    )
    run.add_argument("--seed", type=int, default=None)
    run.add_argument(
        "--bind",
        default=None,
        help="TCP interface to listen on (needs --keys; default: private IPC sockets, "
        "reachable by this user only)",
    )
    run.add_argument(
        "--insecure-tcp",
        action="store_true",
        help="allow --bind on loopback without --keys (any local user can then connect)",
    )
    run.add_argument("--host", default=None, help="host name written into the addresses")
    run.add_argument("--keys", default=None, help="directory made by 'btgym keys'")
    run.add_argument("--info", default="launch.json", help="where to write the launch info")
    run.add_argument("--log-dir", default=None)
    make_keys = commands.add_parser("keys", help="create CURVE keys for a server and clients")
    make_keys.add_argument("directory")
    make_keys.add_argument("--clients", nargs="+", type=_client_name, default=["trainer"])
    make_keys.add_argument("--force", action="store_true", help="replace existing keys")


#: The operations commands by name.
OPS_COMMANDS = {"serve": serve, "keys": keys}

__all__ = ["OPS_COMMANDS", "keys", "ops_parsers", "serve"]
