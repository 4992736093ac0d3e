"""Curriculum controllers: the trainer decides what the simulation randomizes.

One small protocol serves RL and supervised loops alike (:class:`Controller`):
``propose(env_ids)`` returns parameters per instance, ``update(records)`` feeds back
outcomes, ``state_dict()``/``load_state_dict()`` checkpoint it, ``metrics()`` gives
scalars for TensorBoard under ``curriculum/...``.
"""

from agents.curriculum.adr import ADRController
from agents.curriculum.base import Controller, Proposal, Record
from agents.curriculum.class_weights import ClassReweighting
from agents.curriculum.fixed import FixedController, UniformController
from agents.curriculum.reinforce import ReinforceController

__all__ = [
    "ADRController",
    "ClassReweighting",
    "Controller",
    "FixedController",
    "Proposal",
    "Record",
    "ReinforceController",
    "UniformController",
]
