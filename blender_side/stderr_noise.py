"""Blender's harmless first-render noise, kept off stderr (everything else passes).

The first render of a bpy process creates its GPU context through EGL, and Mesa answers
Blender's first tries with ``EGL Error (0x3009): EGL_BAD_MATCH`` three times before a
context works: lines a user reads as an error. :func:`first_render_quiet` wraps a render:
on the process's first one, the C-level stderr goes to a private temporary file and
comes back without those lines; later renders are not touched.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

#: Lines dropped from the first render's stderr.
NOISE = (b"EGL_BAD_MATCH",)

_first_done = False


@contextlib.contextmanager
def stderr_filtered(drop: tuple[bytes, ...] = NOISE) -> Iterator[None]:
    """Run the block with C-level stderr captured; write it back without lines holding
    any of ``drop``.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:  # private (0600), never named on disk
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if not any(d in line for d in drop))
            if kept:
                os.write(2, kept)


@contextlib.contextmanager
def first_render_quiet() -> Iterator[None]:
    """:func:`stderr_filtered` around the process's first render only."""
    global _first_done
    if _first_done:
        yield
        return
    _first_done = True
    with stderr_filtered():
        yield


__all__ = ["NOISE", "first_render_quiet", "stderr_filtered"]
