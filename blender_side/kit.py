"""Blender builders that scenes share: scene reset, meshes, camera, lights, looks, physics.

Everything a scene's ``build`` repeats, built with ``foreach_set`` and data-block calls
(no ``bpy.ops`` except the rigid-body ones, which have no data API). Geometry itself is
numpy in :mod:`blender_side.geometry`. Calls that changed between Blender versions
(flat shading, sharp edges) take the path the running Blender has, back to Blender 3.4.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from blender_side.geometry import Polygons, orient_outward, sharp_edges

Vec3 = Sequence[float]


# -- scene --------------------------------------------------------------------------------------
def clear_scene() -> None:
    """Remove every object and every mesh, camera and light of the current file, and put
    the scene's display settings (Workbench's look) back as they were before the first
    scene of this process changed them: a scene leaves nothing behind for the next.
    """
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    for collection in (bpy.data.meshes, bpy.data.cameras, bpy.data.lights):
        for block in list(collection):
            collection.remove(block)
    display = bpy.context.scene.display
    for struct, key in ((display, "display"), (display.shading, "shading")):
        saved = _FIRST_DISPLAY.setdefault(key, plain_settings(struct))
        for name, value in saved.items():
            setattr(struct, name, value)


#: The display settings found by the first :func:`clear_scene` of this process.
_FIRST_DISPLAY: dict[str, dict[str, Any]] = {}


#: Unset in background bpy (reading it prints "matches no enum"); never rendered.
_VIEWPORT_ONLY = frozenset({"wireframe_color_type"})


def plain_settings(struct: Any) -> dict[str, Any]:
    """The writable bool, number, enum and string properties of an RNA struct, by name."""
    plain = ("BOOLEAN", "INT", "FLOAT", "ENUM", "STRING")
    values: dict[str, Any] = {}
    for prop in struct.bl_rna.properties:
        if prop.is_readonly or prop.type not in plain or prop.identifier == "rna_type":
            continue
        if prop.identifier in _VIEWPORT_ONLY:
            continue
        value = getattr(struct, prop.identifier)
        values[prop.identifier] = (
            value[:] if hasattr(value, "__len__") and not isinstance(value, str) else value
        )
    return values


def linked_scene(name: str, collection: Any, camera: Any) -> Any:
    """A new scene showing ``collection`` (shared, not copied) through ``camera``, black world.

    Objects moved in the main scene move here too, but the new scene evaluates them on
    its own (no rigid-body world, its own frame): annotation passes render the main scene
    itself instead (:mod:`blender_side.passes`).
    """
    scene = bpy.data.scenes.new(name)
    scene.collection.children.link(collection)
    scene.camera = camera
    world = bpy.data.worlds.new(name)
    world.color = (0.0, 0.0, 0.0)
    scene.world = world
    return scene


def add_object(name: str, data: Any, collection: Any = None) -> Any:
    """A new object showing ``data`` (None: an empty), linked to ``collection`` (the scene's)."""
    obj = bpy.data.objects.new(name, data)
    (collection or bpy.context.scene.collection).objects.link(obj)
    return obj


# -- meshes -------------------------------------------------------------------------------------
def new_mesh(name: str, vertices: np.ndarray, polygons: Polygons | np.ndarray) -> Any:
    """A mesh from vertices ``(V, 3)`` and polygons of any sizes, with ``foreach_set``."""
    polygons = list(polygons)
    sizes = np.array([len(p) for p in polygons], np.int32)
    loops = np.concatenate(polygons).astype(np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.asarray(vertices, np.float32).reshape(-1))
    mesh.loops.add(len(loops))
    mesh.loops.foreach_set("vertex_index", loops)
    mesh.polygons.add(len(sizes))
    mesh.polygons.foreach_set("loop_start", (np.cumsum(sizes) - sizes).astype(np.int32))
    mesh.polygons.foreach_set("loop_total", sizes)
    mesh.update(calc_edges=True)
    mesh.validate()
    return mesh


def set_vertices(mesh: Any, vertices: np.ndarray) -> None:
    """Move a mesh's vertices in place (same count, same topology)."""
    mesh.vertices.foreach_set("co", np.asarray(vertices, np.float32).reshape(-1))
    mesh.update()


def shade_flat(mesh: Any) -> None:
    """Shade every face flat (``Mesh.shade_flat`` where it exists: Blender 4.1 and later)."""
    if hasattr(mesh, "shade_flat"):
        mesh.shade_flat()
    else:
        mesh.polygons.foreach_set("use_smooth", np.zeros(len(mesh.polygons), bool))


def shade_smooth_but_sharp(mesh: Any, angle: float = math.radians(30.0)) -> None:
    """Shade smooth, with edges whose faces meet at more than ``angle`` (radians) sharp."""
    loop_edges = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("edge_index", loop_edges)
    totals = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    normals = np.empty(len(mesh.polygons) * 3, np.float32)
    mesh.polygons.foreach_get("normal", normals)
    sharp = sharp_edges(loop_edges, totals, normals.reshape(-1, 3), len(mesh.edges), angle)
    # A face with only sharp edges is flat. Say so: Cycles (bpy 5.0) shades such faces
    # with interpolated vertex normals, where Workbench and EEVEE shade them flat.
    flat = np.zeros(len(totals), bool)
    if len(totals):
        flat = np.logical_and.reduceat(sharp[loop_edges], np.cumsum(totals) - totals)
    if "use_auto_smooth" in mesh.bl_rna.properties:  # before Blender 4.1: edge flags
        mesh.edges.foreach_set("use_edge_sharp", sharp)
        mesh.use_auto_smooth, mesh.auto_smooth_angle = True, math.pi
    else:
        attribute = mesh.attributes.get("sharp_edge") or mesh.attributes.new(
            "sharp_edge", "BOOLEAN", "EDGE"
        )
        attribute.data.foreach_set("value", sharp)
    mesh.polygons.foreach_set("use_smooth", ~flat)
    mesh.update()


def solid_mesh(name: str, vertices: np.ndarray, polygons: Polygons) -> Any:
    """A closed mesh, faces turned outward, smooth but sharp at 30 degrees, one material slot.

    The slot is empty: objects link their own material to it (``link = "OBJECT"``).
    """
    mesh = new_mesh(name, vertices, orient_outward(vertices, polygons))
    shade_smooth_but_sharp(mesh)
    mesh.materials.append(None)
    return mesh


def add_flat_mesh(name: str, vertices: np.ndarray, polygons: np.ndarray) -> Any:
    """A flat-shaded mesh object in the scene's collection (polygons as given)."""
    mesh = new_mesh(name, vertices, polygons)
    shade_flat(mesh)
    return add_object(name, mesh)


# -- camera and lights ----------------------------------------------------------------------
def look_at(location: Vec3, target: Vec3) -> Any:
    """The Euler rotation of a camera (or light) at ``location`` facing ``target``, +z up."""
    direction = Vector(tuple(map(float, target))) - Vector(tuple(map(float, location)))
    return direction.to_track_quat("-Z", "Y").to_euler()


def aim(obj: Any, location: Vec3, target: Vec3) -> None:
    """Move ``obj`` to ``location`` and turn it to face ``target``."""
    obj.location = tuple(map(float, location))
    obj.rotation_euler = look_at(location, target)


def add_camera(
    location: Vec3,
    target: Vec3 = (0.0, 0.0, 0.0),
    lens: float = 50.0,
    clip: tuple[float, float] | None = None,
    collection: Any = None,
) -> Any:
    """A perspective camera at ``location`` facing ``target``, made the scene's camera."""
    data = bpy.data.cameras.new("Camera")
    data.lens = lens
    if clip is not None:
        data.clip_start, data.clip_end = clip
    camera = add_object("Camera", data, collection)
    aim(camera, location, target)
    bpy.context.scene.camera = camera
    return camera


def add_sun(rotation: Vec3 = (0.6, 0.2, 0.8), strength: float = 4.0, collection: Any = None):
    """A sun lamp, so Cycles and EEVEE light what Workbench's studio light shows."""
    data = bpy.data.lights.new("Sun", type="SUN")
    data.energy = strength
    sun = add_object("Sun", data, collection)
    sun.rotation_euler = rotation
    return sun


def add_area_light(
    location: Vec3,
    target: Vec3 = (0.0, 0.0, 0.0),
    power: float = 500.0,
    size: float = 2.0,
    collection: Any = None,
) -> Any:
    """A square area light of ``size`` at ``location`` facing ``target``; ``power`` in watts."""
    data = bpy.data.lights.new("Area", type="AREA")
    data.energy, data.size = power, size
    light = add_object("Area", data, collection)
    aim(light, location, target)
    return light


def workbench_look(color_type: str, background: Vec3 | None = None) -> Any:
    """Studio light in Workbench, colours from ``color_type`` (``OBJECT``, ``MATERIAL``...),
    and a world (created when missing) of ``background`` colour; returns the world.
    """
    scene = bpy.context.scene
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = color_type
    scene.world = scene.world or bpy.data.worlds.new("World")
    if background is not None:
        scene.world.color = tuple(background)
    return scene.world


def randomize_workbench_light(rng: np.random.Generator, studio_lights: Sequence[str]) -> None:
    """A random Workbench studio light, shadow strength and shadow direction.

    Workbench's shadow light is given in view space (x right, y up, z towards the viewer)
    as the direction towards the light: it is kept above and in front.
    """
    display = bpy.context.scene.display
    display.shading.studio_light = studio_lights[int(rng.integers(len(studio_lights)))]
    display.shading.shadow_intensity = float(rng.uniform(0.2, 0.6))
    towards = np.array([rng.uniform(-0.7, 0.7), rng.uniform(0.2, 0.8), rng.uniform(0.4, 1.0)])
    display.light_direction = (towards / np.linalg.norm(towards)).tolist()


def set_background(world: Any, color: np.ndarray) -> None:
    """The world colour in every engine: Workbench's and the Background node's (ambient)."""
    world.color = color.tolist()
    node = world.node_tree.nodes.get("Background") if world.node_tree else None
    if node is not None:
        node.inputs["Color"].default_value = (*color.tolist(), 1.0)


# -- materials ------------------------------------------------------------------------------
def node_material(name: str) -> Any:
    """A new material with a shader node tree (a Principled BSDF) in every Blender.

    Blender 5 gives every new material its node tree (``use_nodes`` is deprecated and
    goes away in 6.0); 3.x and 4.x need ``use_nodes`` switched on.
    """
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    return material


def object_color_material(name: str = "ObjectColor") -> Any:
    """A material whose base colour is the object's colour (``obj.color``) in every engine."""
    material = node_material(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    info = nodes.new("ShaderNodeObjectInfo")
    links.new(info.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def surface_material(name: str) -> Any:
    """A material with a Principled BSDF, coloured later by :func:`set_surface`."""
    return node_material(name)


def set_surface(material: Any, color: np.ndarray, roughness: float, brightness: float) -> None:
    """Colour a surface material in linear RGB. Workbench shows ``diffuse_color`` (scaled by
    ``brightness``: it has no light strength); Cycles and EEVEE the BSDF's base colour.
    """
    lit = np.clip(color * brightness, 0.0, 1.0)
    material.diffuse_color = (*lit.tolist(), 1.0)
    material.roughness = float(roughness)
    material.metallic = 0.0
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*color.tolist(), 1.0)
        bsdf.inputs["Roughness"].default_value = float(roughness)


def give_material(obj: Any, material: Any) -> None:
    """Put ``material`` in the object's own first slot (the mesh may be shared)."""
    if len(obj.material_slots):
        obj.material_slots[0].link = "OBJECT"
        obj.material_slots[0].material = material


def hsv_colors(
    rng: np.random.Generator,
    count: int,
    sat_max: float,
    value: tuple[float, float],
    sat_min: float = 0.0,
) -> np.ndarray:
    """``count`` display (sRGB) colours: hue uniform, saturation in [sat_min, sat_max],
    value range.
    """
    hue = rng.uniform(0.0, 1.0, count)
    sat = rng.uniform(sat_min, sat_max, count)
    val = rng.uniform(value[0], value[1], count)
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, sat, val, strict=True)])


def image_texture(material: Any, name: str, size: int) -> Any:
    """An Image Texture node in ``material`` with a new ``size`` x ``size`` float (linear)
    image of its own, not linked yet (:func:`show_texture` links it).
    """
    image = bpy.data.images.new(name, size, size, alpha=True, float_buffer=True)
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    return node


def show_texture(material: Any, node: Any, pixels: np.ndarray | None) -> None:
    """Show ``pixels`` (``(S, S, 4)`` linear RGBA) through ``node`` as the material's base
    colour (Cycles, EEVEE; Workbench with ``color_type = 'TEXTURE'``), or, None, unlink it.
    """
    tree = material.node_tree
    bsdf = tree.nodes.get("Principled BSDF")
    for link in list(bsdf.inputs["Base Color"].links):
        tree.links.remove(link)
    if pixels is None:
        return
    node.image.pixels.foreach_set(np.ascontiguousarray(pixels, np.float32).reshape(-1))
    node.image.update()
    tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    tree.nodes.active = node  # what Workbench's Texture colour shows


def planar_uvs(mesh: Any, metres_per_repeat: float, offset: tuple[float, float] = (0, 0)) -> None:
    """UVs from the vertices' x and y: a texture repeats every ``metres_per_repeat``."""
    layer = mesh.uv_layers[0] if len(mesh.uv_layers) else mesh.uv_layers.new(name="UVMap")
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    points = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", points)
    uv = points.reshape(-1, 3)[corners, :2] / float(metres_per_repeat) + np.asarray(offset)
    layer.data.foreach_set("uv", uv.astype(np.float32).reshape(-1))


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Colours are drawn in display (sRGB) terms, Blender's colour properties are linear."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# -- rigid bodies -----------------------------------------------------------------------------
def rigid_body_world(
    substeps: int, solver_iterations: int, frames: tuple[int, int], time_scale: float = 1.0
) -> Any:
    """The scene's rigid-body world (created when missing), enabled, caching ``frames``."""
    scene = bpy.context.scene
    if scene.rigidbody_world is None:
        bpy.ops.rigidbody.world_add()
    world = scene.rigidbody_world
    world.enabled = True
    world.time_scale = time_scale
    world.substeps_per_frame = substeps
    world.solver_iterations = solver_iterations
    scene.frame_start, scene.frame_end = frames
    world.point_cache.frame_start, world.point_cache.frame_end = frames
    return world


def add_rigid_body(obj: Any, kind: str = "ACTIVE", shape: str = "BOX", **settings: Any) -> Any:
    """Make ``obj`` a rigid body (build time only: it uses ``bpy.ops``); returns the body.

    ``settings`` are set on the body as given (``mass``, ``friction``, ``restitution``,
    ``linear_damping``, ``use_deactivation``...); ``collision_collection=i`` puts it
    alone in collision collection ``i`` of 20. Anything not given keeps Blender's default.
    """
    bpy.context.view_layer.objects.active = obj  # the operators act on the active object
    bpy.ops.rigidbody.object_add(type=kind)
    body = obj.rigid_body
    body.collision_shape = shape
    collection = settings.pop("collision_collection", None)
    if collection is not None:
        body.collision_collections = [i == collection for i in range(20)]
    for name, value in settings.items():
        if not hasattr(body, name):
            raise AttributeError(f"expected a rigid-body setting, got {name!r}")
        setattr(body, name, value)
    return body


def add_constraint(
    name: str, kind: str, a: Any, b: Any, location: Vec3, rotation: Vec3 = (0.0, 0.0, 0.0)
) -> Any:
    """A rigid-body constraint of ``kind`` between ``a`` and ``b`` on a new empty; the empty."""
    empty = add_object(name, None)
    empty.location, empty.rotation_euler = location, rotation
    bpy.context.view_layer.objects.active = empty
    bpy.ops.rigidbody.constraint_add(type=kind)
    constraint = empty.rigid_body_constraint
    constraint.object1, constraint.object2 = a, b
    constraint.disable_collisions = True
    return empty


def park(obj: Any, location: Vec3, mesh: Any, shape: str) -> None:
    """Hide a rigid body and hold it still (kinematic, unrotated, unscaled) at ``location``,
    showing ``mesh`` with collision ``shape``: a pooled object waiting for its next use.
    """
    obj.data = mesh
    obj.rigid_body.collision_shape = shape
    obj.scale = (1.0, 1.0, 1.0)
    obj.hide_render = True
    obj.rigid_body.kinematic = True
    obj.rotation_mode = "QUATERNION"
    obj.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    obj.location = location


def unpark(obj: Any, mesh: Any, shape: str, scale: Vec3 = (1.0, 1.0, 1.0)) -> None:
    """Show a parked rigid body as ``mesh`` with collision ``shape`` and ``scale``, simulated."""
    obj.data = mesh
    obj.rigid_body.collision_shape = shape
    obj.rigid_body.kinematic = False
    obj.hide_render = False
    obj.scale = scale


def set_poses(objects: Sequence[Any], locations: np.ndarray, quaternions: np.ndarray) -> None:
    """Put ``objects[i]`` at ``locations[i]``, turned by ``quaternions[i]`` (w, x, y, z)."""
    for obj, location, quaternion in zip(objects, locations, quaternions, strict=True):
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = quaternion.tolist()
        obj.location = location.tolist()


def restart_simulation(start_frame: int) -> None:
    """Drop every simulated frame and go back to ``start_frame``: Bullet's world is rebuilt
    from the objects' current poses, so a simulation repeats whatever ran before.
    """
    bpy.ops.ptcache.free_bake_all()
    bpy.context.scene.frame_set(start_frame)


def locations(objects: Sequence[Any]) -> np.ndarray:
    """World locations ``(n, 3)`` of ``objects`` (as evaluated at the current frame)."""
    return np.array([o.matrix_world.translation for o in objects]).reshape(-1, 3)


def settle(
    bodies: Sequence[Any],
    start_frame: int,
    max_frames: int,
    check_every: int = 4,
    tolerance: float = 0.025,
) -> int:
    """Simulate from ``start_frame`` until no body moved ``tolerance`` over ``check_every``
    frames, or for ``max_frames``; returns the frames simulated. Restart the simulation
    (:func:`restart_simulation`) first. The bodies stay where the simulation left them
    for renders and annotations alike (no :func:`freeze` needed for labels).
    """
    scene = bpy.context.scene
    last = locations(bodies)
    frame = start_frame
    while frame < start_frame + max_frames:
        frame += 1
        scene.frame_set(frame)
        if (frame - start_frame) % check_every == 0:
            now = locations(bodies)
            if np.abs(now - last).max(initial=0.0) < tolerance:
                break
            last = now
    return frame - start_frame


def freeze(bodies: Sequence[Any]) -> None:
    """Disable the rigid-body world and keep the bodies where the simulation left them.

    Optional: frames and labels already show the simulated poses. Freeze to stop the
    simulation (later frame changes no longer move the bodies) or to edit the poses.
    """
    poses = [o.matrix_world.copy() for o in bodies]
    bpy.context.scene.rigidbody_world.enabled = False
    for obj, pose in zip(bodies, poses, strict=True):
        obj.matrix_world = pose


__all__ = [
    "add_area_light",
    "add_camera",
    "add_constraint",
    "add_flat_mesh",
    "add_object",
    "add_rigid_body",
    "add_sun",
    "aim",
    "clear_scene",
    "freeze",
    "give_material",
    "hsv_colors",
    "image_texture",
    "linked_scene",
    "locations",
    "look_at",
    "new_mesh",
    "node_material",
    "object_color_material",
    "park",
    "plain_settings",
    "planar_uvs",
    "randomize_workbench_light",
    "restart_simulation",
    "rigid_body_world",
    "set_background",
    "set_poses",
    "set_surface",
    "set_vertices",
    "settle",
    "shade_flat",
    "shade_smooth_but_sharp",
    "show_texture",
    "solid_mesh",
    "srgb_to_linear",
    "surface_material",
    "unpark",
]
