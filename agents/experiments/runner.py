"""What every benchmark experiment's command line shares: options from its ``Config``
dataclass (plus ``--quick``, ``--out``, ``--cache``), and its two outputs
(``results.json`` with everything, ``results.md`` with the table and the command)."""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any


def log_line(text: str) -> None:
    """Progress lines, flushed at once (long runs are watched through a pipe)."""
    print(text, flush=True)


def _option_type(annotation: Any) -> Callable[[str], Any]:
    """The converter of a field's annotation (``int | None`` -> ``int``)."""
    hint = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    kinds = [k for k in hint if k is not type(None)] or [annotation]
    return _boolean if kinds[0] is bool else kinds[0]


def _boolean(text: str) -> bool:
    """``--flag 1``/``true``/``yes`` or ``0``/``false``/``no``."""
    value = text.strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("1", "true", "yes")


def parse_args(
    argv: list[str] | None,
    description: str,
    config: type,
    default_cache: Path,
    figures: bool = False,
) -> argparse.Namespace:
    """``--quick``, ``--out``, ``--cache`` (and ``--figures``), a ``--field`` per config field."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 run (CI)")
    parser.add_argument("--out", type=Path, default=None, help="where the results go")
    parser.add_argument("--cache", type=Path, default=default_cache)
    if figures:
        parser.add_argument("--figures", type=Path, default=None, help="write figures here")
    hints = typing.get_type_hints(config)
    for field in fields(config):
        option = f"--{field.name.replace('_', '-')}"
        parser.add_argument(option, type=_option_type(hints[field.name]), default=None)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace, config: type, quick: dict[str, Any]) -> Any:
    """The full (or ``--quick``) configuration with the options given on top."""
    cfg = config(**quick) if args.quick else config()
    names = {field.name for field in fields(config)}
    return replace(cfg, **{k: v for k, v in vars(args).items() if k in names and v is not None})


def write_outputs(results: dict[str, Any], out: Path, table: Callable[[dict], str]) -> None:
    """``results.json`` and ``results.md`` (the table, then the command if known)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    command = results.get("command", "")
    text = table(results)
    (out / "results.md").write_text(f"{text}\n\n`{command}`\n" if command else text + "\n")


__all__ = ["config_from", "log_line", "parse_args", "write_outputs"]
