"""``btgym/Parts-v0``: a T-LESS-like pile of texture-less industrial parts, with annotations."""

from __future__ import annotations

import math
import time
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene, kit
from blender_side.annotations import Annotator, set_instance_ids
from blender_side.geometry import (
    drop_grid,
    normalized,
    part_geometry,
    pile_extent,
    prism,
    random_rotations,
    random_supershape,
    random_view,
    supershape,
)
from blender_side.render import Renderer
from blender_side.textures import procedural_texture
from btgym.errors import ConfigError
from envs.parts_params import parts_param_space

START_FRAME = 1
SETTLE_CHECK = 4  # frames between two "has everything stopped?" checks
SETTLE_TOLERANCE = 0.025  # largest move of a body over SETTLE_CHECK frames that counts as rest
TIME_SCALE = 3.0  # simulated seconds per 1/24 s frame, x3: a pile settles in fewer frames
SUBSTEPS = 10  # Bullet steps per frame (12.5 ms each at TIME_SCALE 3)
CELL = 1.5  # drop grid spacing (parts have a bounding radius below 0.75)
PARK = 500.0  # where unused slots wait, far from the pile
#: Rough, heavily damped bodies: parts stop rolling soon.
BODY = {"mass": 1.0, "friction": 0.9, "restitution": 0.0}
BODY |= {"linear_damping": 0.4, "angular_damping": 0.8}
#: Workbench studio lights drawn from (``rim.sl`` is left out: it leaves the pile almost black).
STUDIO_LIGHTS = ("Default", "basic.sl", "outdoor.sl", "paint.sl", "studio.sl")
#: Matcaps drawn with ``matcap_prob``: Blender's bundled ones, minus test patterns.
MATCAP_SKIP = ("check_", "brush_")
SQUARE = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])
TEXTURE_SIZE = 256  # pixels of the ground's procedural texture (it repeats)
TEXTURE_REPEAT = (1.0, 6.0)  # metres per repeat of the ground texture (parts: ~1 m)
SKY_SATURATION_MAX = 0.3  # the sky's saturation cap (also the tied ground's)


def bundled_matcaps() -> list[str]:
    """Names of Blender's bundled matcaps (they differ between versions), sorted."""
    lights = bpy.context.preferences.studio_lights
    names = [light.name for light in lights if light.type == "MATCAP"]
    return sorted(n for n in names if not n.startswith(MATCAP_SKIP))


class PartsScene(Scene):
    """A pile of procedurally generated industrial parts, viewed from random poses.

    ## Description

    ``num_classes`` part classes built from numpy (:func:`blender_side.geometry.part_geometry`:
    cube, flanged bushing, chamfered block, knob, L-bracket, stepped plug, then supershapes
    fixed per class), a ground box, up to ``max_occluders`` occluders (supershapes with
    random parameters), grey-ish materials, random studio light, sun and background. An
    *arrangement* is an episode: parts drawn by the class probabilities and occluders
    drawn with ``occluder_prob`` are dropped from a jittered grid and simulated by the
    rigid-body world until they stop moving (at most ``max_settle_frames`` frames), then
    frozen. Every ``reset`` and ``step`` renders a new view from a camera on a hemisphere
    around the pile (random azimuth, elevation and radius) looking at it.

    ## Action Space

    The randomization parameters, ``Box(low, high, (num_classes + 28,), float32)`` with
    named entries (:attr:`param_space`, a :class:`~btgym.wire.params.ParamSpace`; names in
    ``param_names``; bounds and defaults in ``docs/scenes.md``). A step's parameters take
    effect from the next arrangement started by an unseeded ``reset()`` or by the servers'
    (seeded) autoreset, see :meth:`autoreset`; a seeded ``reset(seed=s)`` discards them, so
    it is reproducible whatever came before. ``reset(options={"params": {...}})`` and
    ``set_params({...})`` set them explicitly; ``get_params()`` reads them.

    ## Observation Space

    The rendered frame, ``Box(0, 255, (height, width, 3), uint8)``. Annotations are in
    ``info`` (variable length, see :func:`blender_side.annotations.annotate`): ``class_id``,
    ``bbox_visib``, ``bbox_full``, ``px_count_visib``, ``px_count_all``, ``visib_fract`` (as
    BOP's), ``obj_pose``, ``K``, ``cam_pose``, ``mask``/``depth``/``normals`` on request, padded to
    ``max_objects`` rows with ``pad_info``. ``options={"layout": {...}}`` places objects, box
    occluders and the camera explicitly (see ``docs/scenes.md``).

    ## Rewards

    Always 0.

    ## Episode End

    Never terminated; truncated after ``views`` steps (the scene's ``max_episode_steps``);
    the next reset starts a new arrangement.

    ## Arguments

    ``width=640, height=512, engine="workbench"`` (or ``"raster"``: ids and depth then come
    from the frame's own raster, see ``docs/raster.md``), ``samples=None, num_classes=6,
    max_objects=20, max_occluders=4, views=8, masks=False, depth=False, normals=False,
    shadows=True, lens=50.0, max_settle_frames=80, pad_info=False``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    name = "Parts"

    def __init__(
        self,
        width: int = 640,
        height: int = 512,
        engine: str = "workbench",
        samples: int | None = None,
        num_classes: int = 6,
        max_objects: int = 20,
        max_occluders: int = 4,
        views: int = 8,
        masks: bool = False,
        depth: bool = False,
        normals: bool = False,
        shadows: bool = True,
        lens: float = 50.0,
        max_settle_frames: int = 80,
        pad_info: bool = False,
    ) -> None:
        if not 1 <= num_classes <= 64:
            raise ConfigError(f"expected num_classes in [1, 64], got {num_classes}")
        if not 1 <= max_objects <= 255:
            raise ConfigError(f"expected max_objects in [1, 255], got {max_objects}")
        if max_occluders < 0 or views < 1 or max_settle_frames < 1:
            raise ConfigError(
                "expected max_occluders >= 0, views >= 1 and max_settle_frames >= 1, got "
                f"{max_occluders}, {views}, {max_settle_frames}"
            )
        super().__init__(max_episode_steps=int(views))
        self.width, self.height = int(width), int(height)
        self.num_classes, self.max_objects = int(num_classes), int(max_objects)
        self.max_occluders = int(max_occluders)
        self.masks, self.depth, self.shadows = bool(masks), bool(depth), bool(shadows)
        self.normals = bool(normals)
        self.lens, self.max_settle_frames = float(lens), int(max_settle_frames)
        self.pad_info = bool(pad_info)
        self.renderer = Renderer(width, height, engine=engine, samples=samples)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.param_space = parts_param_space(self.num_classes, self.max_objects, self.lens)
        self.action_space = self.param_space.box
        #: The name of each action entry, in order.
        self.param_names: list[str] = list(self.param_space.names)
        #: The defaults as an action vector.
        self.default_action = self.param_space.default.copy()
        self._params = self.default_action.copy()
        self._pending: np.ndarray | None = None
        #: Id of the current arrangement, drawn from ``np_random`` (reproducible by seed).
        self.arrangement = -1
        #: Arrangements built since launch.
        self.arrangements = 0
        #: Milliseconds spent on the last view and arrangement (``env.call("timings")``).
        self.timings: dict[str, float] = {}
        self.settle_frames = 0
        self._layout: dict[str, Any] | None = None

    views = property(lambda self: self.max_episode_steps, doc="Views per arrangement.")

    # -- parameters ------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The parameters the next arrangement uses: ``class_probs`` (a list) and scalars."""
        return self.param_space.to_dict(self._params)

    def set_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Update some parameters (names as in :meth:`get_params`; ``class_probs`` or
        ``class_prob_<k>``); they apply from the next arrangement. Returns all of them.
        """
        self._params = self.param_space.to_action(params, base=self._params)
        return self.get_params()

    def default_params(self) -> dict[str, Any]:
        """The default parameters (``set_params(default_params())`` restores them)."""
        return self.param_space.defaults()

    def action_from_params(self, params: dict[str, Any] | None = None) -> np.ndarray:
        """The action vector for ``params`` on top of the defaults (for building actions)."""
        return self.param_space.to_action(params or {})

    # -- build -----------------------------------------------------------------------------
    def build(self) -> None:
        """Build a mesh per class, the ground, pooled slots and occluders, camera, annotator."""
        kit.clear_scene()
        scene = self.bpy_scene = bpy.context.scene
        self.collection = bpy.data.collections.new("Parts")
        scene.collection.children.link(self.collection)
        # Part meshes, one per class, shared by the slots that show that class.
        self.class_meshes, self.class_shapes, self.class_names = [], [], []
        for k in range(self.num_classes):
            name, vertices, polygons, shape = part_geometry(k)
            self.class_meshes.append(kit.solid_mesh(f"part-{k}-{name}", vertices, polygons))
            self.class_shapes.append(shape)
            self.class_names.append(name)
        self.box_mesh = kit.solid_mesh("unit-box", *prism(SQUARE * 0.5, 0.5))
        end = START_FRAME + self.max_settle_frames + 1
        kit.rigid_body_world(SUBSTEPS, 10, (START_FRAME, end), time_scale=TIME_SCALE)

        self.ground = self._new_object("ground", kit.solid_mesh("ground", *prism(SQUARE * 30, 0.5)))
        self.ground.location = (0.0, 0.0, -0.5)
        kit.add_rigid_body(self.ground, "PASSIVE", "BOX", **BODY)
        ground_material = bpy.data.materials[self.ground["material"]]
        self.ground_texture = kit.image_texture(ground_material, "ground-texture", TEXTURE_SIZE)
        self.slots = []
        for i in range(self.max_objects):
            obj = self._new_object(f"part-slot-{i}", self.class_meshes[0])
            kit.add_rigid_body(obj, "ACTIVE", self.class_shapes[0], **BODY)
            self.slots.append(obj)
        self.occluders = []
        for j in range(self.max_occluders):
            vertices, polygons = supershape((4, 2, 2, 2), (4, 2, 2, 2), 24, 10)
            mesh = kit.solid_mesh(f"occluder-{j}", normalized(vertices, 0.5), polygons)
            obj = self._new_object(f"occluder-{j}", mesh)
            obj["own_mesh"] = mesh.name
            kit.add_rigid_body(obj, "ACTIVE", "CONVEX_HULL", **BODY)
            self.occluders.append(obj)
        self._park_all()

        self.camera = kit.add_camera(
            (0.0, 0.0, 10.0), lens=self.lens, clip=(0.05, 500.0), collection=self.collection
        )
        self.sun = kit.add_sun(collection=self.collection)
        kit.workbench_look("MATERIAL")
        shading = scene.display.shading
        shading.use_world_space_lighting = False  # world-space studio light leaves it dim
        shading.show_specular_highlight = True
        shading.show_shadows = self.shadows
        shading.show_cavity = False
        self.renderer.configure()
        pad_to = self.max_objects if self.pad_info else None
        options = {"masks": self.masks, "depth": self.depth, "normals": self.normals}
        options["pad_to"] = pad_to
        self.annotator = Annotator(
            self.collection, self.camera, self.width, self.height, renderer=self.renderer, **options
        )
        self.active: list[Any] = []
        self.active_classes = np.zeros(0, np.int32)

    def _new_object(self, name: str, mesh: Any) -> Any:
        """An object in the scene's collection with a surface material of its own."""
        obj = kit.add_object(name, mesh, self.collection)
        material = kit.surface_material(name)
        kit.give_material(obj, material)
        obj["material"] = material.name
        return obj

    # -- episode ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new arrangement with the pending parameters, ``options['params']`` or ``layout``."""
        super().reset(seed=seed, options=options)
        options = options or {}
        unknown = set(options) - {"params", "layout"}
        if unknown:
            raise ConfigError(f"expected options among ['params', 'layout'], got {sorted(unknown)}")
        if seed is None and self._pending is not None:
            self._params = self._pending
        self._pending = None
        if "params" in options:
            self._params = self.param_space.to_action(options["params"], base=self._params)
        t0 = time.perf_counter()
        self._arrange(options.get("layout"))
        self.timings = {"arrangement_ms": (time.perf_counter() - t0) * 1000}
        return self._view()

    def autoreset(self, seed: int):
        """The servers' autoreset: parameters sent with the last steps apply to the new
        arrangement (a plain seeded reset would discard them; streams depend on this).
        """
        if self._pending is not None:
            self._params, self._pending = self._pending, None
        return self.reset(seed=seed)

    def step(self, action: np.ndarray):
        """Another view; ``action`` (the parameters) applies from the next arrangement."""
        self._pending = np.asarray(action, np.float32).copy()
        observation, info = self._view()
        return observation, 0.0, False, False, info

    def close(self) -> None:
        """Close the renderer and the annotator's id pass."""
        super().close()
        if getattr(self, "annotator", None) is not None:
            self.annotator.close()

    # -- arrangement -----------------------------------------------------------------------
    def _arrange(self, layout: dict[str, Any] | None) -> None:
        """A new arrangement: contents, looks and poses (random, or as ``layout`` says)."""
        self.arrangement = int(self.np_random.integers(0, 2**31 - 1))
        self.arrangements += 1
        self._used_params = self._params.copy()
        named = self.param_space.to_dict(self._used_params)
        self._park_all()
        if layout is None:
            classes, occluding, specs, sizes = *self._draw_contents(named), [], None
        else:
            classes, occluding, specs, sizes = self._layout_contents(layout)
        self._show_parts(classes)
        shown = self._show_occluders(occluding, sizes)
        self._randomize_looks(named, shown)
        set_instance_ids(self.active, [self.ground, *self.occluders])
        t0 = time.perf_counter()
        self._pose_bodies(self.active + shown, layout, specs)
        self._physics_ms = (time.perf_counter() - t0) * 1000
        bpy.context.view_layer.update()
        self._center, self._spread = pile_extent(kit.locations(self.active))
        self._layout = layout

    def _draw_contents(self, named: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Random part classes and which occluders show, by the parameters."""
        rng, k = self.np_random, self.num_classes
        probs = np.asarray(named["class_probs"], np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else np.full(k, 1.0 / k)
        lo, hi = sorted((named["count_min"], named["count_max"]))
        count = int(rng.integers(round(lo), round(hi) + 1))
        classes = rng.choice(k, size=count, p=probs)
        return classes, rng.random(self.max_occluders) < named["occluder_prob"]

    def _layout_contents(self, layout: dict[str, Any]) -> tuple[Any, Any, list, list]:
        """A layout's classes, shown occluders, pose specs and occluder sizes, checked."""
        objects = list(layout.get("objects", []))
        occluders = list(layout.get("occluders", []))
        if len(objects) > self.max_objects or len(occluders) > self.max_occluders:
            raise ConfigError(
                f"expected at most {self.max_objects} objects and {self.max_occluders} "
                f"occluders in the layout, got {len(objects)} and {len(occluders)}"
            )
        classes = np.array([int(o["class"]) for o in objects], np.int64)
        if len(classes) and not (classes.min() >= 0 and classes.max() < self.num_classes):
            raise ConfigError(
                f"expected layout classes in [0, {self.num_classes}), got {classes.tolist()}"
            )
        occluding = np.arange(self.max_occluders) < len(occluders)
        sizes = [o.get("size", (1.0, 1.0, 1.0)) for o in occluders]
        return classes, occluding, objects + occluders, sizes

    def _show_parts(self, classes: np.ndarray) -> None:
        """Slot ``i`` shows class ``classes[i]``."""
        count = len(classes)
        self.active = self.slots[:count]
        self.active_classes = np.asarray(classes, np.int32)
        for obj, c in zip(self.active, self.active_classes, strict=True):  # others stay parked
            kit.unpark(obj, self.class_meshes[c], self.class_shapes[c])

    def _show_occluders(self, occluding: np.ndarray, sizes: list | None) -> list[Any]:
        """Shape the shown occluders: random supershapes, or the layout's boxes (``sizes``)."""
        shown = []
        for j, obj in enumerate(self.occluders):
            if not occluding[j]:  # stays parked (_park_all)
                continue
            shown.append(obj)
            if sizes is None:
                own = bpy.data.meshes[obj["own_mesh"]]
                vertices = random_supershape(self.np_random)
                kit.set_vertices(own, vertices)
                kit.shade_smooth_but_sharp(own)  # for the new face angles
                # Bounding radius up to that of a part (0.75): no overlaps on the drop grid.
                radius = float(np.linalg.norm(vertices, axis=1).max())
                scale = (float(self.np_random.uniform(0.6, 1.0)) * 0.75 / radius,) * 3
                kit.unpark(obj, own, "CONVEX_HULL", scale)
            else:
                kit.unpark(obj, self.box_mesh, "CONVEX_HULL", tuple(map(float, sizes[j])))
        return shown

    def _pose_bodies(self, bodies: list[Any], layout: dict | None, specs: list) -> None:
        """Drop and settle the bodies, or put them where the layout says (then maybe drop)."""
        if layout is None:
            self._drop(bodies)
            self._simulate(bodies)
            return
        for obj, spec in zip(bodies, specs, strict=True):
            obj.rotation_mode = "XYZ"
            obj.location, obj.rotation_euler = spec["location"], spec.get("rotation", (0, 0, 0))
        if layout.get("physics", False):
            self._simulate(bodies)
        else:
            self.bpy_scene.rigidbody_world.enabled = False
            self.settle_frames = 0

    def _park_all(self) -> None:
        """Put every slot and occluder back into one fixed state, evaluated.

        Measured: without this, an arrangement's simulation depended (by up to 2 units after
        80 frames) on what the previous arrangement left in the bodies, so that
        ``reset(seed=s)`` was not reproducible once other arrangements had run between.
        """
        for i, obj in enumerate(self.slots + self.occluders):
            if i < self.max_objects:
                mesh, shape = self.class_meshes[0], self.class_shapes[0]
            else:
                mesh, shape = bpy.data.meshes[obj["own_mesh"]], "CONVEX_HULL"
            kit.park(obj, (PARK + 3.0 * i, PARK, 1.0), mesh, shape)
        bpy.context.view_layer.update()

    def _drop(self, bodies: list[Any]) -> None:
        """Place ``bodies`` on a jittered grid of cells above the ground, random orientations."""
        if not bodies:
            return
        quaternions = random_rotations(self.np_random, len(bodies))
        kit.set_poses(bodies, drop_grid(self.np_random, len(bodies), CELL, 0.8), quaternions)

    def _simulate(self, bodies: list[Any]) -> None:
        """Run the rigid-body world until nothing moves, then freeze the poses."""
        self.bpy_scene.rigidbody_world.enabled = True
        bpy.context.view_layer.update()  # the new meshes and poses, before the world rebuilds
        kit.restart_simulation(START_FRAME)  # drop the last arrangement's simulated frames
        self.settle_frames = kit.settle(
            bodies, START_FRAME, self.max_settle_frames, SETTLE_CHECK, SETTLE_TOLERANCE
        )
        kit.freeze(bodies)

    def _randomize_looks(self, named: dict[str, Any], occluders: list[Any]) -> None:
        """Materials, ground and sky colours, studio light, shadow and sun of an arrangement."""
        rng = self.np_random
        light = rng.uniform(*sorted((named["light_min"], named["light_max"])))
        value = sorted((named["value_min"], named["value_max"]))
        roughness = sorted((named["roughness_min"], named["roughness_max"]))
        sat = named["saturation_max"]
        if named["pale_prob"] > 0 and rng.random() < named["pale_prob"]:  # grey, bright parts
            sat = named["pale_saturation_max"]
            value = sorted((named["pale_value_min"], named["pale_value_max"]))
        objects = self.active + occluders
        colors = kit.srgb_to_linear(kit.hsv_colors(rng, len(objects), sat, value))
        for obj, color, r in zip(
            objects, colors, rng.uniform(*roughness, len(objects)), strict=True
        ):
            material = bpy.data.materials[obj["material"]]
            kit.set_surface(material, color, r, light)
            kit.give_material(obj, material)
        background = sorted((named["background_min"], named["background_max"]))
        sky_sat = min(named["saturation_max"], SKY_SATURATION_MAX)
        ground_sat = named["ground_saturation_max"]
        ground_sat = sky_sat if ground_sat < 0 else ground_sat  # < 0: tied, as in v2
        low_sat = min(named["ground_saturation_min"], ground_sat)
        ground = kit.hsv_colors(rng, 1, ground_sat, background, sat_min=low_sat)[0]
        sky = kit.hsv_colors(rng, 1, sky_sat, background)[0]
        ground_material = bpy.data.materials[self.ground["material"]]
        kit.set_surface(ground_material, kit.srgb_to_linear(ground), 0.8, light)
        kit.set_background(self.bpy_scene.world, kit.srgb_to_linear(sky))
        self._texture_ground(named, ground, (low_sat, ground_sat), background)
        self._randomize_workbench_shading(named)
        sun = rng.normal(size=3)  # the sun (Cycles, EEVEE): from anywhere above, world space
        sun[2] = abs(sun[2]) + 0.5
        self.sun.data.energy = 3.0 * light
        self.sun.rotation_euler = kit.look_at(sun / np.linalg.norm(sun) * 10.0, np.zeros(3))

    def _texture_ground(
        self, named: dict[str, Any], ground: np.ndarray, sat: tuple[float, float], value: list
    ) -> None:
        """With probability ``ground_texture_prob``, a procedural texture on the ground (noise,
        tiles or stripes from its colour towards a second colour by half to all of
        ``ground_texture_contrast``); Workbench then draws textures. Draws nothing at 0.
        """
        rng, shading = self.np_random, self.bpy_scene.display.shading
        material = bpy.data.materials[self.ground["material"]]
        prob = named["ground_texture_prob"]
        if not (prob > 0 and rng.random() < prob):
            kit.show_texture(material, self.ground_texture, None)
            shading.color_type = "MATERIAL"
            return
        other = kit.hsv_colors(rng, 1, sat[1], value, sat_min=sat[0])[0]
        pixels = procedural_texture(
            rng,
            TEXTURE_SIZE,
            kit.srgb_to_linear(ground),
            kit.srgb_to_linear(other),
            contrast=rng.uniform(0.5, 1.0) * named["ground_texture_contrast"],
        )
        kit.planar_uvs(self.ground.data, rng.uniform(*TEXTURE_REPEAT), tuple(rng.random(2)))
        kit.show_texture(material, self.ground_texture, pixels)
        shading.color_type = "TEXTURE"  # untextured materials show their colour, as before

    def _randomize_workbench_shading(self, named: dict[str, Any]) -> None:
        """Studio light (rotated up to ``studio_rotation_max`` degrees) or, with probability
        ``matcap_prob``, a random matcap; shadow strength and direction. Draws nothing
        extra at the defaults (probability 0, no rotation): seeded frames stay the same.
        """
        rng, shading = self.np_random, self.bpy_scene.display.shading
        shading.light = "STUDIO"  # before choosing one: a matcap's names differ
        kit.randomize_workbench_light(rng, STUDIO_LIGHTS)
        if named["matcap_prob"] > 0 and rng.random() < named["matcap_prob"]:
            shading.light = "MATCAP"
            matcaps = bundled_matcaps()
            shading.studio_light = matcaps[int(rng.integers(len(matcaps)))]
        rotation = named["studio_rotation_max"]
        shading.studiolight_rotate_z = (
            math.radians(float(rng.uniform(-rotation, rotation))) if rotation > 0 else 0.0
        )

    # -- views -----------------------------------------------------------------------------
    def _place_camera(self) -> None:
        """The layout's camera, or a random one on a hemisphere around the pile."""
        camera = (self._layout or {}).get("camera")
        if camera is not None:
            location = np.asarray(camera["location"], np.float64)
            target = np.asarray(camera.get("target", (0.0, 0.0, 0.0)), np.float64)
        else:
            named = self.param_space.to_dict(self._used_params)
            radius = (named["radius_min"], named["radius_max"])
            elevation = (named["elevation_min"], named["elevation_max"])
            location, target = random_view(
                self.np_random, self._center, self._spread, radius, elevation
            )
            lens = sorted((named["lens_min"], named["lens_max"]))
            if lens[1] > lens[0]:  # no draw for a fixed lens: seeded views stay the same
                self.camera.data.lens = float(self.np_random.uniform(*lens))
            else:
                self.camera.data.lens = lens[0]
        kit.aim(self.camera, location, target)

    def _view(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Render a new view of the arrangement and annotate it."""
        t0 = time.perf_counter()
        self._place_camera()
        bpy.context.view_layer.update()
        frame = self.renderer.render()
        render_ms = (time.perf_counter() - t0) * 1000
        info = self.annotator(self.active, self.active_classes, self.bpy_scene)
        info["arrangement"] = self.arrangement
        info["view"] = self.elapsed_steps
        info["settle_frames"] = self.settle_frames
        info["params"] = self._used_params.copy()
        physics_ms = getattr(self, "_physics_ms", 0.0)
        self.timings.update(render_ms=render_ms, **self.annotator.timings, physics_ms=physics_ms)
        return frame, info
