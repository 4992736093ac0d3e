"""Parts-v0 with the neutral target's look (:mod:`agents.experiments.target`).

Same parts, physics, cameras and annotations as :class:`envs.parts.PartsScene`; what
changes: EEVEE instead of Workbench, grey plastic materials, a noise-textured table, one
of two light set-ups per arrangement (area key + fill in a grey room, or a soft sun and a
bluish sky), and the sensor effects of :func:`~agents.experiments.target.apply_sensor` on
every frame (annotations are those of the rendered geometry, as Parts-v0 gives them).
"""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np

from agents.experiments.target import apply_sensor, draw_sensor, scene_params, spec_dict
from blender_side import kit
from btgym.wire.frame_files import WRITER
from envs.parts import PartsScene


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """The unit vector at ``azimuth`` and ``elevation`` (radians), +z up."""
    flat = math.cos(elevation)
    return np.array([math.cos(azimuth) * flat, math.sin(azimuth) * flat, math.sin(elevation)])


class TargetScene(PartsScene):
    """The target: ``spec`` is :func:`~agents.experiments.target.spec_dict`'s data
    (None: the committed target); other keywords go to :class:`~envs.parts.PartsScene`."""

    name = "PartsTarget"

    def __init__(
        self,
        width: int = 160,
        height: int = 128,
        views: int = 4,
        spec: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.spec = spec or spec_dict()
        eevee = self.spec["eevee"]
        super().__init__(
            width,
            height,
            engine="eevee",
            samples=int(eevee["samples"]),
            num_classes=int(self.spec["num_classes"]),
            views=views,
            lens=float(self.spec["camera"]["lens"]),
            **kwargs,
        )
        self.renderer.view_transform = eevee["view_transform"]
        self._params = self.param_space.to_action(scene_params(self.spec))
        self.light_setup = ""

    # -- build -----------------------------------------------------------------------------
    def build(self) -> None:
        super().build()
        self._configure_eevee()
        for obj in self.slots + self.occluders:
            self._add_bump(bpy.data.materials[obj["material"]], self.spec["plastic"])
        self.table = self._table_material(bpy.data.materials[self.ground["material"]])
        self.key = kit.add_area_light((6.0, 0.0, 6.0), collection=self.collection)
        self.fill = kit.add_area_light((-6.0, 0.0, 4.0), collection=self.collection)
        self.panels = [self.key, self.fill]
        if "overhead" in self.spec["lights"]:  # the v3 target's ceiling: two more panels
            for x in (-1.0, 1.0):
                self.panels.append(kit.add_area_light((x, 0.0, 6.0), collection=self.collection))
        for light in (*self.panels, self.sun):
            light.data.use_shadow = bool(self.spec["eevee"]["shadows"])
            light.data.use_shadow_jitter = bool(self.spec["eevee"]["shadow_jitter"])

    def _configure_eevee(self) -> None:
        settings, eevee = self.spec["eevee"], self.bpy_scene.eevee
        eevee.use_shadows = bool(settings["shadows"])
        eevee.shadow_ray_count = int(settings["shadow_ray_count"])
        eevee.shadow_step_count = int(settings["shadow_step_count"])
        eevee.use_raytracing = bool(settings["raytracing"])
        eevee.ray_tracing_method = settings["ray_tracing_method"]
        eevee.ray_tracing_options.trace_max_roughness = float(settings["trace_max_roughness"])
        eevee.use_fast_gi = bool(settings["fast_gi"])
        eevee.fast_gi_method = settings["fast_gi_method"]
        eevee.fast_gi_distance = float(settings["fast_gi_distance"])
        self.bpy_scene.view_settings.exposure = float(settings["exposure"])

    @staticmethod
    def _add_bump(material: Any, plastic: dict[str, Any]) -> None:
        """A faint noise bump on a part's Principled BSDF (moulded plastic is not a mirror)."""
        nodes, links = material.node_tree.nodes, material.node_tree.links
        bsdf = nodes["Principled BSDF"]
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = float(plastic["bump_scale"])
        bump = nodes.new("ShaderNodeBump")
        bump.inputs["Strength"].default_value = float(plastic["bump_strength"])
        links.new(noise.outputs["Fac"], bump.inputs["Height"])
        links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])

    def _table_material(self, material: Any) -> dict[str, Any]:
        """Object coordinates -> mapping -> noise -> colour ramp (base colour) and bump."""
        table = self.spec["table"]
        nodes, links = material.node_tree.nodes, material.node_tree.links
        bsdf = nodes["Principled BSDF"]
        coords = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Detail"].default_value = float(table["noise_detail"])
        ramp = nodes.new("ShaderNodeValToRGB")
        bump = nodes.new("ShaderNodeBump")
        bump.inputs["Strength"].default_value = float(table["bump_strength"])
        links.new(coords.outputs["Object"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], noise.inputs["Vector"])
        links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
        links.new(noise.outputs["Fac"], bump.inputs["Height"])
        links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
        return {"material": material, "mapping": mapping, "ramp": ramp, "bsdf": bsdf}

    # -- looks -----------------------------------------------------------------------------
    def _randomize_looks(self, named: dict[str, Any], occluders: list[Any]) -> None:
        """The target's materials, table and light set-up (``named`` looks are not used)."""
        rng, plastic = self.np_random, self.spec["plastic"]
        objects = self.active + occluders
        hsv = kit.hsv_colors(rng, len(objects), plastic["saturation_max"], plastic["value"])
        for obj, colour in zip(objects, kit.srgb_to_linear(hsv), strict=True):
            material = bpy.data.materials[obj["material"]]
            bsdf = material.node_tree.nodes["Principled BSDF"]
            bsdf.inputs["Base Color"].default_value = (*colour.tolist(), 1.0)
            bsdf.inputs["Roughness"].default_value = float(rng.uniform(*plastic["roughness"]))
            level = float(rng.uniform(*plastic["specular_ior_level"]))
            bsdf.inputs["Specular IOR Level"].default_value = level
            bsdf.inputs["IOR"].default_value = float(plastic["ior"])
            bsdf.inputs["Metallic"].default_value = 0.0
            material.diffuse_color = (*colour.tolist(), 1.0)
            kit.give_material(obj, material)
        self._randomize_table(rng)
        lights = self.spec["lights"]
        if "overhead" in lights:  # the v3 target: three set-ups
            choice = int(rng.choice(3, p=np.asarray(lights["probabilities"], np.float64)))
            rig = (self._area_rig, self._sun_rig, self._overhead_rig)[choice]
            rig(rng, lights[("area", "sun", "overhead")[choice]])
        elif rng.random() < lights["area_probability"]:
            self._area_rig(rng, lights["area"])
        else:
            self._sun_rig(rng, lights["sun"])

    def _randomize_table(self, rng: np.random.Generator) -> None:
        table = self.spec["table"]
        finish = table["finishes"][int(rng.integers(len(table["finishes"])))]
        scale = float(rng.uniform(*table["noise_scale"]))
        mapping = self.table["mapping"]
        mapping.inputs["Scale"].default_value = (scale * float(finish["stretch"]), scale, scale)
        mapping.inputs["Location"].default_value = rng.uniform(-50.0, 50.0, 3).tolist()
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, float(rng.uniform(0, math.pi)))
        elements = self.table["ramp"].color_ramp.elements
        for element, colour in zip(elements, (finish["dark"], finish["light"]), strict=True):
            element.color = (*kit.srgb_to_linear(np.array(colour)).tolist(), 1.0)
        roughness = float(rng.uniform(*table["roughness"]))
        self.table["bsdf"].inputs["Roughness"].default_value = roughness
        self.table["finish"] = finish["name"]

    def _set_world(self, colour: list[float], strength: float) -> None:
        world = self.bpy_scene.world
        kit.set_background(world, kit.srgb_to_linear(np.array(colour)))
        world.node_tree.nodes["Background"].inputs["Strength"].default_value = strength

    def _area_rig(self, rng: np.random.Generator, rig: dict[str, Any]) -> None:
        """Area key light from a random side, a fill from the opposite side, a grey room."""
        azimuth = rng.uniform(0.0, 2 * math.pi)
        power = float(rng.uniform(*rig["key_power"]))
        elevation = math.radians(rng.uniform(*rig["key_elevation"]))
        distance = float(rng.uniform(*rig["key_distance"]))
        key_at = distance * direction(azimuth, elevation)
        fill_at = np.array([-key_at[0], -key_at[1], 0.6 * key_at[2]])
        kit.aim(self.key, key_at, (0.0, 0.0, 0.0))
        kit.aim(self.fill, fill_at, (0.0, 0.0, 0.0))
        self.key.data.energy, self.key.data.size = power, float(rng.uniform(*rig["key_size"]))
        self.fill.data.energy = power * float(rng.uniform(*rig["fill_ratio"]))
        self.fill.data.size = float(rig["fill_size"])
        for panel in self.panels:
            panel.hide_render = panel not in (self.key, self.fill)
        self.key.data.color = self.fill.data.color = (1.0, 1.0, 1.0)  # (v3: after overhead)
        self.sun.hide_render = True
        self._set_world(rig["world_colour"], float(rng.uniform(*rig["world_strength"])))
        self.light_setup = "area"

    def _sun_rig(self, rng: np.random.Generator, rig: dict[str, Any]) -> None:
        """A sun from a random direction with a disc of a few degrees, and a sky."""
        azimuth = rng.uniform(0.0, 2 * math.pi)
        elevation = math.radians(rng.uniform(*rig["sun_elevation"]))
        towards = direction(azimuth, elevation)
        self.sun.rotation_euler = kit.look_at(towards * 10.0, np.zeros(3))
        self.sun.data.energy = float(rng.uniform(*rig["sun_strength"]))
        self.sun.data.angle = math.radians(rng.uniform(*rig["sun_angle"]))
        self.sun.hide_render = False
        for panel in self.panels:
            panel.hide_render = True
        self._set_world(rig["sky_colour"], float(rng.uniform(*rig["sky_strength"])))
        self.light_setup = "sun"

    def _overhead_rig(self, rng: np.random.Generator, rig: dict[str, Any]) -> None:
        """A 2x2 grid of square panels straight above the table, pointing down, cool white."""
        height = float(rng.uniform(*rig["height"]))
        half = float(rng.uniform(*rig["spacing"])) / 2
        turn = rng.uniform(0.0, math.pi / 2)
        size = float(rng.uniform(*rig["panel_size"]))
        colour = kit.srgb_to_linear(np.array(rig["colour"])).tolist()
        for panel, (sx, sy) in zip(self.panels, ((1, 1), (-1, 1), (-1, -1), (1, -1)), strict=True):
            x, y = sx * half, sy * half
            at = (x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn))
            kit.aim(panel, (*at, height), (at[0], at[1], 0.0))
            panel.data.energy = float(rng.uniform(*rig["panel_power"]))
            panel.data.size = size
            panel.data.color = colour
            panel.hide_render = False
        self.sun.hide_render = True
        self._set_world(rig["world_colour"], float(rng.uniform(*rig["world_strength"])))
        self.light_setup = "overhead"

    # -- views -----------------------------------------------------------------------------
    def _view(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Parts-v0's view, then the sensor (its draws seeded by arrangement and view)."""
        frame, info = super()._view()
        rng = np.random.default_rng([self.arrangement, self.elapsed_steps, 17])
        drawn = draw_sensor(self.spec["sensor"], rng)
        recorded = apply_sensor(frame, drawn, rng)
        out = WRITER.create(recorded.nbytes).reshape(recorded.shape)
        out[...] = recorded
        out.flags.writeable = False
        self.renderer.last_frame = out
        info["light_setup"] = self.light_setup
        info["table"] = self.table.get("finish", "")
        info["sensor"] = drawn
        return out, info
