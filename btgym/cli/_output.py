"""What the commands print: tables, progress bars, and the error a command reports."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


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


__all__ = ["CommandError", "format_table", "progress"]
