"""btgym: Blender scenes as Gymnasium environments for adaptive domain randomization.

``import btgym`` registers the built-in scenes (``btgym/Cube-v0``, ...) with Gymnasium.
Heavy parts (torch, stable-baselines3) are imported only by the modules that need them.
"""

from btgym.env import BlenderEnv
from btgym.errors import BtgymError
from btgym.launcher import Launcher
from btgym.registration import register_builtin, register_scene
from btgym.vector_env import BlenderVectorEnv

__version__ = "0.1.0"

register_builtin()

__all__ = [
    "BlenderEnv",
    "BlenderVectorEnv",
    "BtgymError",
    "Launcher",
    "__version__",
    "register_scene",
]
