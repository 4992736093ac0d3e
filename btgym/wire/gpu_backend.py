"""Which graphics backend Blender draws with, chosen on purpose and reported.

Blender 5.3 prefers Vulkan wherever a Vulkan driver answers, also Mesa's software
driver (lavapipe) on a host without a GPU; there the Cube scene renders 1.6-1.85x
slower than with OpenGL (llvmpipe), Workbench shadows leave random black pixels and
EEVEE with ray tracing crashes (``docs/benchmarks.md``). ``preferences.system.
gpu_backend`` does nothing in the bpy module, and 3.x has no ``--gpu-backend``, so
the choice is made the one way every Blender honours: a Vulkan loader that finds no
driver (``VK_ICD_FILENAMES`` / ``VK_DRIVER_FILES`` pointing at ``/dev/null``, a file
no other user can replace) makes Blender fall back to OpenGL.

* ``"opengl"``: hide the Vulkan drivers (always OpenGL);
* ``"vulkan"``: Blender's own choice (Vulkan where Blender picks it, else OpenGL);
* ``"auto"`` (the default): OpenGL on a host with no GPU device node (software
  rendering, where OpenGL is faster and correct), Blender's own choice where a GPU is.

The same environment applies to the bpy module in this process
(:func:`apply_to_this_process`, before Blender's first draw), to servers the launcher
starts and to the benchmark's render loops. The server reports what Blender ended up
with (:func:`backend_in_use`) in its ``hello`` reply and ready file.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping

from btgym.errors import ConfigError

GPU_BACKENDS: tuple[str, ...] = ("auto", "opengl", "vulkan")
#: The environment variable that carries the choice to a child process.
CHOICE_VARIABLE = "BTGYM_GPU_BACKEND"
#: The Vulkan loader's driver lists (older and newer name); /dev/null holds no driver.
_DRIVER_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")
_NO_DRIVERS = os.devnull
#: Device nodes of GPUs (DRM render nodes, NVIDIA's proprietary driver).
_GPU_NODES = ("/dev/dri/renderD*", "/dev/nvidia[0-9]*")


def check_choice(choice: str) -> str:
    """``choice`` if it names a backend choice, else a :class:`ConfigError`."""
    if choice not in GPU_BACKENDS:
        raise ConfigError(f"expected gpu_backend in {GPU_BACKENDS}, got {choice!r}")
    return choice


def host_has_gpu() -> bool:
    """Whether this host has a GPU device node (a DRM render node or an NVIDIA device)."""
    return any(glob.glob(pattern) for pattern in _GPU_NODES)


def resolve(choice: str) -> str:
    """``"opengl"`` or ``"vulkan"`` (Blender's own choice) for a choice on this host."""
    check_choice(choice)
    if choice == "auto":
        return "vulkan" if host_has_gpu() else "opengl"
    return choice


def environment(choice: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` changed so that a Blender started with it follows ``choice``."""
    resolved = resolve(choice)
    env = dict(base)
    for name in _DRIVER_VARIABLES:
        if resolved == "opengl":
            env[name] = _NO_DRIVERS
        elif env.get(name) == _NO_DRIVERS:  # hidden by an earlier choice: show them again
            del env[name]
    env[CHOICE_VARIABLE] = choice
    return env


#: Mesa's software rasterizers (llvmpipe for OpenGL, lavapipe for Vulkan) start this many
#: drawing threads, one per core when it is unset; GPU drivers ignore it.
RASTERIZER_THREADS_VARIABLE = "LP_NUM_THREADS"


def share_software_rasterizer(
    env: Mapping[str, str], instances: int, cpus: int | None = None
) -> dict[str, str]:
    """``env`` with the software rasterizer's threads split among ``instances`` Blenders.

    On a host without a GPU every Blender draws on the CPU, and Mesa gives *each*
    process one drawing thread per core: two instances on two cores run four drawing
    threads beside their two Blender threads, and the oversubscription costs the
    raster engine's 2-instance Parts-v0 stream about a tenth of its frames
    (``docs/benchmarks.md``). Sets ``LP_NUM_THREADS`` to ``cpus // instances`` (at least
    1) for more than one instance; a value already in ``env`` (the user's) and hosts
    with a GPU are left alone. Pixels do not depend on it (Mesa splits a frame into
    tiles, each drawn whole by one thread).
    """
    shared = dict(env)
    if instances <= 1 or RASTERIZER_THREADS_VARIABLE in shared or host_has_gpu():
        return shared
    if cpus is None:
        affinity = getattr(os, "sched_getaffinity", None)  # Linux: the cores this may use
        cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    shared[RASTERIZER_THREADS_VARIABLE] = str(max(1, cpus // instances))
    return shared


def apply_to_this_process(choice: str | None = None) -> str:
    """Apply ``choice`` (default: ``BTGYM_GPU_BACKEND`` or ``"auto"``) to ``os.environ``.

    Effective when it runs before Blender's first draw in this process (the server and
    the in-process helpers call it before they import ``bpy``). Returns the choice.
    """
    choice = choice or os.environ.get(CHOICE_VARIABLE) or "auto"
    changed = environment(choice, os.environ)
    for name in _DRIVER_VARIABLES:
        if name not in changed:
            os.environ.pop(name, None)
    os.environ.update(changed)
    return choice


def backend_in_use() -> str:
    """The backend Blender draws with in this process: ``"OPENGL"``, ``"VULKAN"``, ...

    Blender makes its drawing context lazily in background mode: ``gpu.init()`` makes
    it where it exists (5.1+); before that a first render does (a throwaway 8x8
    Workbench scene: the context costs the same here as in the scene's first frame).
    Blenders before ``gpu.platform.backend_type_get`` (3.x) draw with OpenGL only.
    """
    import gpu

    get = getattr(gpu.platform, "backend_type_get", None)
    if get is None:
        return "OPENGL"
    try:
        backend = str(get())
    except SystemError:  # "... not available in background mode" / "... see gpu.init"
        backend = "NONE"
    if backend != "NONE":
        return backend
    init = getattr(gpu, "init", None)  # 3.x answers "NONE" until a context exists
    try:
        init() if init is not None else first_render()
        return str(get())
    except (SystemError, RuntimeError) as exc:  # no drawing context can be made here
        print(f"btgym: Blender has no drawing context: {exc}", file=sys.stderr, flush=True)
        return "NONE"


def first_render() -> None:
    """Render a tiny throwaway scene, which makes Blender's drawing context."""
    import bpy

    scene = bpy.data.scenes.new("btgym-gpu-probe")
    camera = bpy.data.cameras.new("btgym-gpu-probe")
    holder = bpy.data.objects.new("btgym-gpu-probe", camera)
    scene.collection.objects.link(holder)
    scene.camera = holder
    try:
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.resolution_x = scene.render.resolution_y = 8
        bpy.ops.render.render(scene=scene.name)
    finally:  # the scene first: Blender 3.4 crashes at exit after the other order
        bpy.data.scenes.remove(scene)
        bpy.data.objects.remove(holder)
        bpy.data.cameras.remove(camera)


__all__ = [
    "CHOICE_VARIABLE",
    "GPU_BACKENDS",
    "RASTERIZER_THREADS_VARIABLE",
    "apply_to_this_process",
    "backend_in_use",
    "check_choice",
    "environment",
    "first_render",
    "host_has_gpu",
    "resolve",
    "share_software_rasterizer",
]
