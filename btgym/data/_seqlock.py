"""Rows of float64 in shared memory that readers in other processes never see half written.

A seqlock per row: the writer makes the row's sequence number odd, writes the row, and
makes it even again; a reader copies the row between two reads of the sequence number
and copies again when a write came between (an odd or changed number). Readers take no
lock, so a ``DataLoader`` worker killed while reading blocks nobody; writers of one
process take turns (a thread lock). Rows are written by one process (the one that calls
:meth:`SharedRows.write`, the trainer's main process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from btgym.errors import StaleParamsError

#: Seconds a reader waits for a row that stays mid-write before it gives up (its writer
#: died while writing: no live writer holds a row for more than microseconds).
READ_TIMEOUT = 10.0

_FENCE = threading.Lock()


def fence() -> None:
    """Order memory accesses around it for every core: a lock's acquire and release are
    atomic read-modify-writes with acquire and release order (on x86 stores are ordered
    anyway; this keeps weakly ordered CPUs such as ARM from reordering the copies
    around the sequence number).
    """
    with _FENCE:
        pass


class SharedRows:
    """``count`` rows of ``size`` float64 values in shared memory, each behind a seqlock.

    Picklable (for ``spawn`` DataLoader workers): the tensors travel as shared memory, and
    each process gets its own writer lock.
    """

    def __init__(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.float64)
        if rows.ndim != 2:
            raise ValueError(f"expected a 2-D array of rows, got shape {rows.shape}")
        self._rows = torch.from_numpy(rows.copy()).share_memory_()
        self._sequence = torch.zeros(len(rows), dtype=torch.int64).share_memory_()
        self._writing = threading.Lock()
        self._views: tuple[np.ndarray, np.ndarray] | None = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Views of the rows and the sequence numbers as arrays (made once per process)."""
        if self._views is None:
            self._views = (self._rows.numpy(), self._sequence.numpy())
        return self._views

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._rows.shape[0]), int(self._rows.shape[1]))

    def write(self, ids: Sequence[int], row: np.ndarray) -> None:
        """Set each row in ``ids`` to ``row``; a reader sees the old row or the new one."""
        values = np.asarray(row, np.float64).reshape(-1)
        rows, sequence = self._arrays()
        with self._writing:
            for i in ids:
                sequence[i] += 1  # odd: writing
                fence()
                rows[i] = values
                fence()
                sequence[i] += 1  # even: done

    def read(self, i: int) -> np.ndarray:
        """A copy of row ``i`` as one write left it (never a mix of two writes)."""
        rows, sequence = self._arrays()
        deadline = None
        while True:
            before = int(sequence[i])
            fence()
            copy = rows[i].copy()
            fence()
            if before % 2 == 0 and int(sequence[i]) == before:
                return copy
            if deadline is None:
                deadline = time.monotonic() + READ_TIMEOUT
            elif time.monotonic() > deadline:
                raise StaleParamsError(
                    f"expected params row {i} to be written within {READ_TIMEOUT:g} s, but it "
                    f"stayed mid-write (sequence {before}): the process that set it died "
                    "while writing"
                )
            time.sleep(0)  # let the writer finish

    def __getstate__(self) -> dict[str, Any]:
        return {"_rows": self._rows, "_sequence": self._sequence}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._writing = threading.Lock()
        self._views = None


__all__ = ["READ_TIMEOUT", "SharedRows", "fence"]
