"""btgym: Blender scenes as Gymnasium environments for adaptive domain randomization.

``import btgym`` registers the built-in scenes (``btgym/Cube-v0``, ...) with Gymnasium
(:mod:`btgym._registry`) and lets old module paths warn with their replacement
(:mod:`btgym._moved`), nothing else: the public names below are imported on first use
(PEP 562), so that importing one submodule (the Blender side imports only
:mod:`btgym.wire`) costs no other. Heavy parts (torch, stable-baselines3) live in the
modules that need them.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from btgym._moved import install as _install_moved
from btgym._registry import BUILTIN_MAX_EPISODE_STEPS, BUILTIN_SCENES, register_scene
from btgym._registry import register_builtin as _register_builtin

__version__ = "0.1.0"

#: Where each public name lives; imported when first asked for.
_LAZY = {
    "BlenderEnv": "btgym.env",
    "BlenderVectorEnv": "btgym.vector_env",
    "BtgymError": "btgym.errors",
    "LaunchConfig": "btgym._launch_config",
    "LaunchInfo": "btgym._launch_info",
    "Launcher": "btgym.launcher",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'btgym' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if _TYPE_CHECKING:
    from btgym._launch_config import LaunchConfig
    from btgym._launch_info import LaunchInfo
    from btgym.env import BlenderEnv
    from btgym.errors import BtgymError
    from btgym.launcher import Launcher
    from btgym.vector_env import BlenderVectorEnv

_register_builtin()
_install_moved()  # old module paths (btgym.security, ...) warn and say what replaced them

__all__ = [
    "BUILTIN_MAX_EPISODE_STEPS",
    "BUILTIN_SCENES",
    "BlenderEnv",
    "BlenderVectorEnv",
    "BtgymError",
    "LaunchConfig",
    "LaunchInfo",
    "Launcher",
    "__version__",
    "register_scene",
]
__all__.sort()
