"""What the raster engine draws a scene with: its shader and the look it reads from the scene.

The raster engine (:mod:`blender_side.raster`) shades with a shader of its own, fed from
the same settings Workbench renders with, so a scene randomizes one set of settings for
both engines:

* colour (``scene.display.shading.color_type``): ``OBJECT`` (``obj.color``), ``MATERIAL``
  (each slot's ``diffuse_color``, ``roughness`` and ``metallic``), ``SINGLE``
  (``single_color``), ``TEXTURE`` (as ``MATERIAL``, but a material whose base colour is an
  image texture shows the image's mean colour: the pattern itself is not drawn); other
  colour types (vertex colours, random) are refused;
* light (``shading.light``): ``FLAT``; ``STUDIO``: the studio light's (or the Default
  one's) up to four lights, ambient, specular on ``show_specular_highlight``, in view
  space or, with ``use_world_space_lighting``, in world space turned by
  ``studiolight_rotate_z``; ``MATCAP``: the matcap (:mod:`blender_side.matcaps`) looked up, as
  Workbench does, by the view-space normal turned towards each pixel's view direction,
  times the base colour, plus its specular pass on ``show_specular_highlight``;
* background: ``world.color``; view transform ``Standard`` (sRGB) or ``Raw``, nothing else.

Shadows (``show_shadows``, ``shadow_intensity``, ``display.light_direction``): a shadow
map (:mod:`blender_side.raster_shadow`). Not drawn: cavity, outlines, textures,
transparency, lamps (Cycles and EEVEE light sources). The mapping and its limits are in
``docs/raster.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy
import gpu
import numpy as np
from mathutils import Matrix, Vector

from btgym.errors import RenderError

#: Light modes the shader knows.
FLAT, STUDIO, MATCAP = 0, 1, 2
LIGHT_MODES = {"FLAT": FLAT, "STUDIO": STUDIO, "MATCAP": MATCAP}
COLOR_TYPES = ("OBJECT", "MATERIAL", "SINGLE", "TEXTURE")
VIEWS = ("Standard", "Raw")
#: Workbench's roughness where no material gives one.
DEFAULT_ROUGHNESS = 0.5
DEFAULT_COLOR = (0.8, 0.8, 0.8)

#: The frame's uniforms (std140: only mat4 and vec4, no padding); see :func:`frame_block`.
_FRAME_STRUCT = """
struct RasterFrame {
  mat4 projection;
  vec4 ambient;
  vec4 flags;
  vec4 light_dir[4];
  vec4 light_diffuse[4];
  vec4 light_specular[4];
  mat4 shadow_matrix;
  vec4 shadow;
  vec4 shadow_dir;
};
"""

_VERTEX = """
void main()
{
  vec4 p = model_view * vec4(pos, 1.0);
  view_pos = p.xyz;
  view_nor = transpose(inverse(mat3(model_view))) * nor;
  gl_Position = frame.projection * p;
  vec3 base = surface.rgb;
  shade = base;
#if defined(BTGYM_SHADOW)
  vec3 sn = normalize(view_nor);
  vec3 sv = frame.flags.x > 0.5 ? vec3(0.0, 0.0, 1.0) : normalize(-view_pos);
  facing = dot(dot(sn, sv) < 0.0 ? -sn : sn, frame.shadow_dir.xyz);
  shadow_coord = (frame.shadow_matrix * p).xyz;
#endif
#if defined(BTGYM_STUDIO)
  /* Lit per vertex (Gouraud): per-pixel specular costs llvmpipe 4x the whole draw. */
  vec3 n = normalize(view_nor);
  vec3 v = frame.flags.x > 0.5 ? vec3(0.0, 0.0, 1.0) : normalize(-view_pos);
  if (dot(n, v) < 0.0) {
    n = -n; /* both sides lit, as Workbench */
  }
  float roughness = material.x;
  float metallic = material.y;
  vec3 diffuse = frame.ambient.rgb;
  vec3 specular = vec3(0.0);
  for (int i = 0; i < 4; i++) {
    vec3 l = frame.light_dir[i].xyz;
    float wrap = frame.light_dir[i].w;
    float nl = dot(n, l);
    diffuse += clamp((nl + wrap) / ((1.0 + wrap) * (1.0 + wrap)), 0.0, 1.0) *
               frame.light_diffuse[i].rgb;
#  if defined(BTGYM_SPECULAR)
    vec3 h = normalize(l + v);
    float shininess = exp2(10.0 * (1.0 - roughness) * (1.0 - wrap) + 1.0);
    float s = pow(max(dot(n, h), 0.0), shininess) * (shininess + 8.0) / 8.0;
    specular += s * max(nl, 0.0) * frame.light_specular[i].rgb;
#  endif
  }
  vec3 f0 = mix(vec3(0.05), base, metallic);
  shade = diffuse * base * (1.0 - metallic) + specular * f0;
#endif
}
"""

_FRAGMENT = """
vec3 srgb_encode(vec3 c)
{
  c = clamp(c, 0.0, 1.0);
  vec3 low = c * 12.92;
  vec3 high = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
  return mix(high, low, vec3(lessThanEqual(c, vec3(0.0031308))));
}

void main()
{
  vec3 lit = shade;
#if defined(BTGYM_MATCAP)
  vec3 n = normalize(view_nor);
  if (!gl_FrontFacing) {
    n = -n;
  }
  /* As Workbench: the normal in the frame that the least rotation from the camera's axis to
   * this pixel's view direction i turns the view frame into (Rodrigues' formula: its first
   * two columns), so that in perspective a flat face's shade varies across the frame. */
  vec3 i = frame.flags.x > 0.5 ? vec3(0.0, 0.0, 1.0) : normalize(-view_pos);
  float k = 1.0 / (1.0 + i.z);
  vec2 uv = vec2(dot(vec3(1.0 - i.x * i.x * k, -i.x * i.y * k, -i.x), n),
                 dot(vec3(-i.x * i.y * k, 1.0 - i.y * i.y * k, -i.y), n));
  uv = uv * 0.496 + 0.5;
  lit *= texture(matcap, uv).rgb;
#  if defined(BTGYM_SPECULAR)
  lit += texture(matcap_specular, uv).rgb;
#  endif
#endif
#if defined(BTGYM_SHADOW)
  float stored = texture(shadow_map, shadow_coord.xy).r;
  if (facing <= 0.0 || shadow_coord.z - frame.shadow.y > stored) {
    lit *= 1.0 - frame.shadow.x;
  }
#endif
#if defined(BTGYM_RAW)
  out_color = vec4(clamp(lit, 0.0, 1.0), 1.0);
#else
  out_color = vec4(srgb_encode(lit), 1.0);
#endif
#if defined(BTGYM_LABELS)
  out_label = vec2(surface.a, -view_pos.z);
#endif
}
"""


def make_shader(look: Look, labels: bool) -> Any:
    """The raster shader for ``look``'s light mode, specular and view (compiled for each:
    llvmpipe pays per pixel for every branch); with ``labels`` it also writes
    ``(id, depth)`` to a second target.
    """
    info = gpu.types.GPUShaderCreateInfo()
    for name, wanted in (
        ("BTGYM_STUDIO", look.mode == STUDIO),
        ("BTGYM_MATCAP", look.mode == MATCAP),
        ("BTGYM_SPECULAR", look.mode != FLAT and look.specular),
        ("BTGYM_RAW", look.view_raw),
        ("BTGYM_SHADOW", look.shadow > 0.0),
    ):
        if wanted:
            info.define(name)
    info.vertex_in(0, "VEC3", "pos")
    info.vertex_in(1, "VEC3", "nor")
    interface = gpu.types.GPUStageInterfaceInfo("btgym_raster_iface")
    interface.smooth("VEC3", "view_pos")
    interface.smooth("VEC3", "view_nor")
    interface.smooth("VEC3", "shade")
    if look.shadow > 0.0:
        interface.smooth("VEC3", "shadow_coord")
        interface.smooth("FLOAT", "facing")
    info.vertex_out(interface)
    info.typedef_source(_FRAME_STRUCT)
    info.uniform_buf(0, "RasterFrame", "frame")
    info.push_constant("MAT4", "model_view")  # per object: 96 bytes, under Vulkan's 128
    info.push_constant("VEC4", "surface")  # base colour, instance id
    info.push_constant("VEC4", "material")  # roughness, metallic (studio light only)
    if look.mode == MATCAP:
        info.sampler(0, "FLOAT_2D", "matcap")
        if look.specular:
            info.sampler(2, "FLOAT_2D", "matcap_specular")
    if look.shadow > 0.0:
        info.sampler(1, "FLOAT_2D", "shadow_map")
    info.fragment_out(0, "VEC4", "out_color")
    if labels:
        info.fragment_out(1, "VEC2", "out_label")
        info.define("BTGYM_LABELS")
    info.vertex_source(_VERTEX)
    info.fragment_source(_FRAGMENT)
    return gpu.shader.create_from_info(info)


@dataclass
class Look:
    """One frame's scene-wide shading inputs, read from the scene's display settings."""

    color_type: str
    mode: int
    background: tuple[float, float, float, float]
    view_raw: bool
    ambient: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: Specular light: the studio light's highlights, or the matcap's specular pass (the
    #: raster clears it for a matcap that has none).
    specular: bool = False
    light_dir: list[float] = field(default_factory=lambda: [0.0] * 16)
    light_diffuse: list[float] = field(default_factory=lambda: [0.0] * 16)
    light_specular: list[float] = field(default_factory=lambda: [0.0] * 16)
    matcap: str | None = None
    single_color: tuple[float, float, float] = DEFAULT_COLOR
    #: Workbench's shadow: darkening in [0, 1] (0: no shadows) and the direction towards
    #: the shadow light in view and in world space.
    shadow: float = 0.0
    shadow_dir: tuple[float, float, float] = (0.0, 0.0, 1.0)
    shadow_world: tuple[float, float, float] = (0.0, 0.0, 1.0)


def read_look(scene: Any, view_matrix: Matrix) -> Look:
    """The look of ``scene`` for a camera with world-to-view ``view_matrix``; refuses what
    the raster engine cannot draw with a :class:`~btgym.errors.RenderError`.
    """
    view = scene.view_settings
    if view.view_transform not in VIEWS:
        raise RenderError(
            f"expected view_transform in {VIEWS} for engine='raster', got "
            f"{view.view_transform!r} (use engine='workbench' for other views)"
        )
    if view.look not in ("None", "") or view.exposure != 0.0 or view.gamma != 1.0:
        raise RenderError(
            "expected no look, exposure 0 and gamma 1 for engine='raster', got "
            f"look {view.look!r}, exposure {view.exposure}, gamma {view.gamma}"
        )
    shading = scene.display.shading
    if shading.color_type not in COLOR_TYPES:
        raise RenderError(
            f"expected display.shading.color_type in {COLOR_TYPES} for engine='raster', got "
            f"{shading.color_type!r} (vertex and random colours are not drawn)"
        )
    if shading.light not in LIGHT_MODES:
        raise RenderError(f"expected shading.light in {sorted(LIGHT_MODES)}, got {shading.light!r}")
    world = scene.world
    background = np.array(world.color if world is not None else (0.0, 0.0, 0.0), np.float64)
    if view.view_transform == "Standard":  # the clear colour is written as it is
        background = srgb_encode(background)
    look = Look(
        color_type=shading.color_type,
        mode=LIGHT_MODES[shading.light],
        background=(*background[:3].tolist(), 1.0),
        view_raw=view.view_transform == "Raw",
        single_color=tuple(shading.single_color),
    )
    if shading.show_shadows and shading.shadow_intensity > 0.0:
        # Workbench reads display.light_direction (x, y, z) as rays travelling along
        # (-x, z, -y) in world space ("more user friendly to control"): towards the light
        # is (x, -z, y).
        x, y, z = scene.display.light_direction
        towards = Vector((x, -z, y))
        if towards.length > 0.0:
            towards.normalize()
            look.shadow = float(shading.shadow_intensity)
            look.shadow_world = tuple(towards)
            look.shadow_dir = tuple((view_matrix.to_3x3() @ towards).normalized())
    if look.mode == STUDIO:
        _studio_lights(look, shading, view_matrix)
    elif look.mode == MATCAP:
        look.matcap = shading.studio_light
        look.specular = bool(shading.show_specular_highlight)  # if the matcap has a pass
    return look


@dataclass(frozen=True)
class StudioLight:
    """A studio light's values: ambient, and per light (up to 4, unused ones zero)
    directions ``(4, 3)``, wrap ("smooth") ``(4,)``, diffuse and specular colours ``(4, 3)``.
    """

    ambient: tuple[float, float, float]
    directions: np.ndarray
    wrap: np.ndarray
    diffuse: np.ndarray
    specular: np.ndarray


#: Studio lights by name, read from the preferences once (a lookup there costs ~1 ms).
_STUDIO_LIGHTS: dict[str, StudioLight] = {}


def studio_light(name: str) -> StudioLight:
    """The values of the studio light ``name`` (``Default``: the preferences' own lights)."""
    known = _STUDIO_LIGHTS.get(name)
    if known is not None:
        return known
    prefs = bpy.context.preferences
    light = prefs.studio_lights.get(name)
    if light is None or light.type != "STUDIO":
        raise RenderError(f"expected a studio light for shading.light='STUDIO', got {name!r}")
    source = prefs.system if not light.path else light
    values = np.zeros((4, 10), np.float64)  # direction, wrap, diffuse, specular
    for i, solid in enumerate(source.solid_lights[:4]):
        direction = np.array(solid.direction, np.float64)
        if solid.use and np.linalg.norm(direction) > 0.0:
            values[i, :3] = direction / np.linalg.norm(direction)
            values[i, 3] = solid.smooth
            values[i, 4:7] = solid.diffuse_color
            values[i, 7:10] = solid.specular_color
    known = StudioLight(
        tuple(source.light_ambient), values[:, :3], values[:, 3], values[:, 4:7], values[:, 7:]
    )
    _STUDIO_LIGHTS[name] = known
    return known


def _studio_lights(look: Look, shading: Any, view_matrix: Matrix) -> None:
    """The studio light's four lights in view space, its ambient, specular on or off."""
    light = studio_light(shading.studio_light)
    look.ambient = light.ambient
    look.specular = bool(shading.show_specular_highlight)
    directions = light.directions
    if shading.use_world_space_lighting:
        turn = view_matrix.to_3x3() @ Matrix.Rotation(shading.studiolight_rotate_z, 3, "Z")
        directions = directions @ np.array(turn, np.float64).T
    look.light_dir = np.column_stack([directions, light.wrap]).reshape(-1).tolist()
    look.light_diffuse = np.column_stack([light.diffuse, np.zeros(4)]).reshape(-1).tolist()
    look.light_specular = np.column_stack([light.specular, np.zeros(4)]).reshape(-1).tolist()


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] as sRGB (the Standard view's curve), as the shader encodes."""
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def shader_key(look: Look, labels: bool) -> tuple[int, bool, bool, bool, bool]:
    """What tells one compiled variant of :func:`make_shader` from another."""
    specular = look.mode != FLAT and look.specular
    return (look.mode, specular, look.view_raw, look.shadow > 0.0, labels)


def frame_block(
    look: Look,
    projection: Matrix,
    ortho: bool,
    shadow_matrix: Matrix | None = None,
    shadow_bias: float = 0.0,
) -> np.ndarray:
    """The frame's uniform block as ``RasterFrame`` lays it out (96 float32, std140);
    ``shadow_matrix`` maps view space to the shadow map's texture coordinates and depth.
    """
    block = np.zeros(96, np.float32)
    block[:16] = np.array(projection, np.float32).T.reshape(-1)  # GLSL: column-major
    block[16:20] = (*look.ambient, float(look.mode))
    block[20:22] = (1.0 if ortho else 0.0, 1.0 if look.view_raw else 0.0)
    block[24:40] = look.light_dir
    block[40:56] = look.light_diffuse
    block[56:72] = look.light_specular
    if shadow_matrix is not None:
        block[72:88] = np.array(shadow_matrix, np.float32).T.reshape(-1)
    block[88:90] = (look.shadow, shadow_bias)
    block[92:95] = look.shadow_dir
    return block


def surface_of(obj: Any, slot: int, look: Look) -> tuple[tuple[float, ...], float, float]:
    """``(rgb, roughness, metallic)`` that ``obj`` shows on material slot ``slot``."""
    if look.color_type == "OBJECT":
        return tuple(obj.color[:3]), DEFAULT_ROUGHNESS, 0.0
    if look.color_type == "SINGLE":
        return look.single_color, DEFAULT_ROUGHNESS, 0.0
    slots = obj.material_slots
    material = slots[slot].material if slot < len(slots) else None
    if material is None:
        return DEFAULT_COLOR, DEFAULT_ROUGHNESS, 0.0
    color = tuple(material.diffuse_color[:3])
    if look.color_type == "TEXTURE":
        color = texture_mean(material) or color
    return color, float(material.roughness), float(material.metallic)


def texture_mean(material: Any) -> tuple[float, ...] | None:
    """The mean linear colour of the image texture that gives ``material`` its base colour
    (what Workbench's ``TEXTURE`` colour shows, averaged), or None without one.
    """
    tree = material.node_tree if bpy.app.version >= (5, 0, 0) or material.use_nodes else None
    bsdf = tree.nodes.get("Principled BSDF") if tree is not None else None
    if bsdf is None or not bsdf.inputs["Base Color"].links:
        return None
    node = bsdf.inputs["Base Color"].links[0].from_node
    image = getattr(node, "image", None)
    if node.type != "TEX_IMAGE" or image is None or not image.size[0]:
        return None
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    rgb = pixels.reshape(-1, image.channels)[::3, :3]  # a third of the texels: ~0.5 ms
    if image.is_float:  # averaged as displayed (sRGB), as the eye averages the pattern
        rgb = srgb_encode(np.clip(rgb, 0.0, 1.0))
    mean = rgb.mean(axis=0)
    linear = np.where(mean <= 0.04045, mean / 12.92, ((mean + 0.055) / 1.055) ** 2.4)
    return tuple(float(c) for c in linear)


__all__ = [
    "COLOR_TYPES",
    "LIGHT_MODES",
    "Look",
    "StudioLight",
    "make_shader",
    "read_look",
    "studio_light",
]
