"""Curriculum controllers: the trainer decides what the simulation randomizes.

One small protocol serves RL and supervised loops alike (:class:`Controller`):
``propose(env_ids)`` returns parameters per instance, ``update(records)`` feeds back
outcomes, ``state_dict()``/``load_state_dict()`` checkpoint it, ``metrics()`` gives
scalars for TensorBoard under ``curriculum/...``. :class:`StreamCurriculum` connects a
controller to a stream, ``CurriculumCallback`` (:mod:`agents.curriculum.sb3`) to SB3
training; only the latter needs stable-baselines3, and it is imported on first use.
"""

from typing import TYPE_CHECKING, Any

from agents.curriculum.adr import ADRController
from agents.curriculum.base import Controller, Proposal, Record
from agents.curriculum.class_weights import ClassReweighting
from agents.curriculum.fixed import FixedController, UniformController
from agents.curriculum.reinforce import ReinforceController
from agents.curriculum.stream import StreamCurriculum

if TYPE_CHECKING:  # imported on first use at run time (it needs stable-baselines3)
    from agents.curriculum.sb3 import CurriculumCallback


def __getattr__(name: str) -> Any:
    """``CurriculumCallback`` from :mod:`agents.curriculum.sb3`, imported when asked for."""
    if name == "CurriculumCallback":
        from agents.curriculum.sb3 import CurriculumCallback

        return CurriculumCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ADRController",
    "ClassReweighting",
    "Controller",
    "CurriculumCallback",
    "FixedController",
    "Proposal",
    "Record",
    "ReinforceController",
    "StreamCurriculum",
    "UniformController",
]
