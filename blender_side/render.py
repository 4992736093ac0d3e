"""Render the current Blender scene into an ``(H, W, 3) uint8`` numpy array.

In background mode Blender keeps the render result out of Python's reach
(``Render Result`` has no pixels, the compositor's Viewer is not computed), so pixels
leave through a file in shared memory (``/dev/shm``, the server's private directory).
Two read-backs, both exact:

* ``tiff`` (the default): write an uncompressed 8-bit RGB TIFF, map it and view its
  pixel strips in place (top-down RGB: no flip, no channel swap, no decode). Every
  engine and view.
* ``exr``: render with ``write_still`` to an uncompressed half-float OpenEXR, then
  index a table of Blender's own view transform by each half's bits
  (:mod:`blender_side.colour`), writing straight into a fresh frame file that travels
  to the trainer by reference. Bit-identical to the TIFF written with dither 0, for
  Workbench with a per-channel view (Standard, Raw). On the 2-core hosts measured so
  far Blender 5.0.1's EXR writer took longer than the TIFF writer (15.2 vs 12.5 ms a
  640x512 step), so it is not the default; see ``docs/benchmarks.md``.

Each frame gets a file of its own, so a client on the same host can map the same
pages (:mod:`btgym.wire.frame_files`). Dither is 0 by default (Blender's 1.0 adds
deterministic +-1 noise to ~29 % of pixels: not what training data should carry).
See ``docs/benchmarks.md`` for figures and ``docs/scenes.md`` for what a user's
``.blend`` keeps.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import bpy
import numpy as np

from blender_side import colour
from blender_side.exr import scanline_planes
from blender_side.stderr_noise import first_render_quiet
from blender_side.tiff import tiff_rgb8
from btgym.errors import ConfigError, RenderError
from btgym.wire import gpu_backend
from btgym.wire.frame_files import WRITER

ENGINES = {
    "workbench": "BLENDER_WORKBENCH",
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",
    "raster": "BLENDER_WORKBENCH",  # drawn by blender_side.raster, from Workbench's settings
}
READBACKS = ("tiff", "exr")


class Renderer:
    """Configures a scene's render settings and renders frames into numpy.

    ``engine`` is ``workbench`` (real time, the default), ``cycles`` (quality; CPU,
    ``samples`` paths per pixel), ``eevee`` (for GPU machines) or ``raster`` (the
    scene's meshes drawn with Blender's ``gpu`` module straight into the frame, several
    times Workbench's rate, a look of its own: :mod:`blender_side.raster`). Anti-aliasing is
    off for Workbench by default: it costs 8-10x the render time on a CPU.
    ``readback``: ``tiff`` (the default) or ``exr`` (half-float EXR + Blender's view
    table; exact for a per-channel view, else a :class:`~btgym.errors.RenderError`).
    ``dither``: Blender's dither intensity; 0 (the default) gives exact, noise-free
    frames (Blender's own default, 1.0, adds +-1 noise to ~29 % of pixels).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 512,
        engine: str = "workbench",
        samples: int | None = None,
        antialiasing: str = "OFF",
        view_transform: str = "Standard",
        quiet: bool = True,
        scene: Any = None,
        readback: str = "tiff",
        dither: float = 0.0,
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"expected engine in {sorted(ENGINES)}, got {engine!r}")
        if readback not in READBACKS:
            raise ConfigError(f"expected readback in {READBACKS}, got {readback!r}")
        if width <= 0 or height <= 0:
            raise ConfigError(f"expected a positive frame size, got {width}x{height}")
        gpu_backend.apply_to_this_process()  # before this process's first draw
        self.width, self.height, self.engine = int(width), int(height), engine
        self.samples, self.antialiasing = samples, antialiasing
        self.view_transform, self.quiet = view_transform, quiet
        self.scene = scene
        self.readback, self.dither = readback, float(dither)
        self.path = WRITER.new_path("tif")  # the file the next render writes (private dir)
        self.last_frame: np.ndarray | None = None
        self._table: np.ndarray | None = None
        self._table_key: tuple[Any, ...] | None = None
        self._raster: Any = None  # blender_side.raster.Raster, made at the first frame
        #: Objects the raster engine labels (``IdPass`` ids from their colours), or None.
        self.labelled: Any = None
        self.configure()

    @property
    def bpy_scene(self) -> Any:
        """The scene rendered: the one given, else Blender's current scene."""
        return self.scene if self.scene is not None else bpy.context.scene

    def configure(self) -> None:
        """Apply engine, size and output settings to the scene (again after loading a file)."""
        scene = self.bpy_scene
        render = scene.render
        render.engine = ENGINES[self.engine]
        render.resolution_x, render.resolution_y = self.width, self.height
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.use_compositing = False
        render.use_sequencer = False
        render.film_transparent = False
        scene.view_settings.view_transform = self.view_transform
        render.dither_intensity = self.dither
        settings = render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5: a .blend saved for video output
            settings.media_type = "IMAGE"
        if hasattr(settings, "color_management"):
            settings.color_management = "FOLLOW_SCENE"  # the scene's view, as the table
        settings.file_format = "TIFF"
        settings.tiff_codec = "NONE"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        render.filepath = self.path
        render.use_file_extension = False
        if self.engine == "workbench":
            scene.display.render_aa = self.antialiasing
        elif self.engine == "cycles":
            cycles = scene.cycles
            cycles.device = "CPU"
            cycles.samples = self.samples or 16
            cycles.use_denoising = False
            cycles.use_adaptive_sampling = False
            render.use_persistent_data = True
        elif self.engine == "eevee":
            scene.eevee.taa_render_samples = self.samples or 1

    def render(self) -> np.ndarray:
        """Render the scene and return the frame as a new ``(H, W, 3) uint8`` array.

        The array is read-only: it views a mapped file, which no later frame reuses.
        Every render writes a fresh file, also after a failed one (which raises
        :class:`~btgym.errors.RenderError` for this frame only).
        """
        if self.engine == "raster":
            frame = self._draw_raster()
        else:
            table = self._view_table()
            frame = self._render_tiff() if table is None else self._render_exr(table)
        frame.flags.writeable = False
        self.last_frame = frame
        return frame

    @property
    def raster(self) -> Any:
        """The raster engine of ``engine="raster"`` (made on first use), else None."""
        if self.engine != "raster":
            return None
        if self._raster is None:
            from blender_side.raster import Raster  # imports gpu: only for this engine

            self._raster = Raster(self.width, self.height)
        return self._raster

    def _draw_raster(self) -> np.ndarray:
        scene = self.bpy_scene
        raster = self.raster
        raster.labelled = self.labelled
        layer = bpy.context.view_layer if scene == bpy.context.scene else scene.view_layers[0]
        depsgraph = layer.depsgraph
        depsgraph.update()
        return raster.draw(scene, depsgraph)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids and depth of the last raster frame (``engine="raster"`` with ``labelled``)."""
        if self.engine != "raster":
            raise RenderError(
                f"expected engine='raster' for labels from the frame, got {self.engine!r}"
            )
        return self.raster.labels()

    @property
    def drawn_ids(self) -> dict[Any, int]:
        """The instance id each labelled object had in the last raster frame."""
        return self._raster.drawn_ids if self._raster is not None else {}

    @property
    def uses_exr(self) -> bool:
        """Whether the next frame is read back through the half-float EXR and the table."""
        return self._view_table() is not None

    def _view_table(self) -> np.ndarray | None:
        """The view table for the scene's current settings, or None for the TIFF path."""
        if self.readback == "tiff":
            return None
        key = colour.settings_key(self.bpy_scene)
        if key is None:
            raise RenderError(
                "expected a per-channel view (Standard or Raw, no look, no curves, dither 0) "
                f"for readback='exr', got {self.bpy_scene.view_settings.view_transform!r}"
            )
        if key != self._table_key:
            self._table = colour.build_table(self.bpy_scene, WRITER.scratch_path("table.tif"))
            self._table_key = key
        return self._table

    def _write_still(self, path: str, file_format: str) -> None:
        scene = self.bpy_scene
        render, settings = scene.render, scene.render.image_settings
        settings.file_format = file_format
        if file_format == "OPEN_EXR":
            settings.color_mode, settings.color_depth, settings.exr_codec = "RGB", "16", "NONE"
        else:
            settings.color_mode, settings.color_depth, settings.tiff_codec = "RGB", "8", "NONE"
        render.filepath = path  # also after a loaded .blend file reset it
        try:
            with stdout_silenced(self.quiet):
                bpy.ops.render.render(write_still=True, scene=scene.name)
        except RuntimeError as exc:  # Blender's "cannot save", a failed engine, ...
            WRITER.discard(path)
            raise RenderError(f"expected Blender to render a frame to {path}: {exc}") from exc
        finally:
            render.filepath = self.path  # a render outside this method writes a fresh name too

    def _render_tiff(self) -> np.ndarray:
        path, self.path = self.path, WRITER.new_path("tif")
        self._write_still(path, "TIFF")
        return tiff_rgb8(WRITER.map(path), path)

    def _render_exr(self, table: np.ndarray) -> np.ndarray:
        path = WRITER.new_path("exr")
        self._write_still(path, "OPEN_EXR")
        data = WRITER.map_private(path)  # the half-float file never travels
        try:
            planes, order = scanline_planes(data, self.width, self.height)
        except ValueError as exc:
            raise RenderError(f"expected Blender's half-float EXR at {path}: {exc}") from exc
        frame = WRITER.create(self.height * self.width * 3).reshape(self.height, self.width, 3)
        colour.apply_table(table, planes.view(np.uint16), order, frame)
        return frame

    def close(self) -> None:
        """Remove the renderer's frame file (and the raster engine's batches)."""
        if self._raster is not None:
            self._raster.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


def __getattr__(name: str) -> Any:
    """Names that moved, back for one release with a :class:`DeprecationWarning`."""
    if name == "read_tiff_rgb8":
        import warnings

        from blender_side.tiff import read_tiff_rgb8

        warnings.warn(
            "blender_side.render.read_tiff_rgb8 moved: use blender_side.tiff.read_tiff_rgb8 "
            "(see CHANGELOG.md); the old path will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return read_tiff_rgb8
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_DEVNULL: int | None = None


@contextlib.contextmanager
def stdout_silenced(enabled: bool):
    """Send the C-level stdout to /dev/null: Blender prints a line per rendered frame.

    The process's first render also loses its EGL_BAD_MATCH noise on stderr
    (:mod:`blender_side.stderr_noise`), whether silenced or not.
    """
    if not enabled:
        with first_render_quiet():
            yield
        return
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_WRONLY)  # opened once, kept for the process
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(_DEVNULL, 1)
        with first_render_quiet():
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
