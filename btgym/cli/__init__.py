"""The ``btgym`` command.

    btgym serve envs.cube:CubeScene -n 4 --bind 0.0.0.0 --keys keys/ --info launch.json

starts ``n`` instances of a scene on this machine, writes a launch-info file (scene,
addresses, the server's public key) that a trainer elsewhere loads with
:meth:`btgym.LaunchInfo.read`, and serves until interrupted. Without ``--bind`` the
instances listen on Unix-domain sockets in a private (0700) directory: only this user
can reach them. TCP needs CURVE keys, on loopback too (every local user can connect
there): ``--keys DIR`` must hold ``server.key_secret`` and a ``clients/`` directory of
authorized client public keys; ``--insecure-tcp`` serves loopback TCP without keys, with
a warning.

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
import sys
from typing import Any

from btgym._moved import moved_attribute
from btgym.cli._author import AUTHOR_COMMANDS, author_command, author_parsers, resolve_scene
from btgym.cli._ops import OPS_COMMANDS, ops_parsers
from btgym.cli._output import format_table, progress


def main(argv: list[str] | None = None) -> int:
    """The ``btgym`` command; the exit status."""
    parser = argparse.ArgumentParser(
        prog="btgym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ops_parsers(commands)
    author_parsers(commands)
    args = parser.parse_args(argv)
    commands_by_name = {**OPS_COMMANDS, **AUTHOR_COMMANDS}
    return author_command(args.command, commands_by_name[args.command])(args)


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name)  # names that moved, for one release


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["format_table", "main", "progress", "resolve_scene"]
