"""Where the glue to training loops used to live: :mod:`agents.curriculum.stream` and
:mod:`agents.curriculum.sb3` now (both also in :mod:`agents.curriculum`).

``CurriculumCallback`` is imported on first use, so that this module, like the rest
of the package, imports without stable-baselines3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.curriculum.stream import StreamCurriculum

if TYPE_CHECKING:  # imported on first use at run time (it needs stable-baselines3)
    from agents.curriculum.sb3 import CurriculumCallback


def __getattr__(name: str) -> Any:
    """``CurriculumCallback`` from :mod:`agents.curriculum.sb3`, imported when asked for."""
    if name == "CurriculumCallback":
        from agents.curriculum.sb3 import CurriculumCallback

        return CurriculumCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CurriculumCallback", "StreamCurriculum"]
