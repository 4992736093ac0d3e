"""The ``btgym`` command.

    btgym serve envs.cube:CubeScene -n 4 --bind 0.0.0.0 --keys keys/ --info launch.json

starts ``n`` instances of a scene on this machine, writes a launch-info file (scene,
addresses, the server's public key) that a trainer elsewhere loads with
:func:`load_launch_info`, and serves until interrupted. Off loopback, CURVE keys are
required: ``--keys DIR`` must hold ``server.key_secret`` and a ``clients/`` directory of
authorized client public keys (``btgym keys DIR`` creates them).
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

from btgym import protocol
from btgym.launcher import Launcher
from btgym.security import generate_keys, is_loopback


def serve(args: argparse.Namespace) -> int:
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
        bind=bind,
        log_dir=args.log_dir,
        **curve,
    ) as launcher:
        host = args.host or (socket.gethostname() if not is_loopback(bind) else "127.0.0.1")
        info = {
            "protocol": protocol.PROTOCOL_VERSION,
            "scene": args.scene,
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


def load_launch_info(path: str | Path) -> dict[str, Any]:
    """Read a ``btgym serve`` launch-info file; check its protocol version."""
    info = json.loads(Path(path).read_text())
    if info.get("protocol") != protocol.PROTOCOL_VERSION:
        from btgym.errors import VersionMismatchError

        raise VersionMismatchError(protocol.PROTOCOL_VERSION, info.get("protocol"), "server")
    return info


def keys(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    generate_keys(root, "server")
    for name in args.clients:
        generate_keys(root / "clients", name)
    print(f"server keys in {root}; client keys in {root / 'clients'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="btgym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve instances of a scene on this machine")
    run.add_argument("scene", help="module:Class or file.py:Class")
    run.add_argument("-n", "--instances", type=int, default=1)
    run.add_argument("--kwargs", default="{}", help="scene kwargs as JSON")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--bind", default="127.0.0.1", help="interface to listen on")
    run.add_argument("--host", default=None, help="host name written into the addresses")
    run.add_argument("--keys", default=None, help="directory made by 'btgym keys'")
    run.add_argument("--info", default="launch.json", help="where to write the launch info")
    run.add_argument("--log-dir", default=None)
    make_keys = commands.add_parser("keys", help="create CURVE keys for a server and clients")
    make_keys.add_argument("directory")
    make_keys.add_argument("--clients", nargs="+", default=["trainer"])
    args = parser.parse_args(argv)
    return {"serve": serve, "keys": keys}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
