"""Save a ``.blend`` the way many Blender users do: EEVEE, movie output, AA, Filmic/AgX.

Runs in any supported Blender (3.4 and newer) or with the ``bpy`` module::

    blender --background --python envs/examples/make_blend.py -- shelf.blend
    python envs/examples/make_blend.py shelf.blend

The file holds a table, three coloured parts named ``Part.*``, a camera and two
lights; its render settings are the ones btgym must cope with (see ``docs/your-scene.md``:
what the renderer overrides and what it keeps).
"""

from __future__ import annotations

import sys

import bpy


def build() -> None:
    """Replace the current file's content with the example shelf."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(0.0, 0.0, 0.0))
    bpy.context.active_object.name = "Table"
    colours = [(0.8, 0.2, 0.1, 1.0), (0.1, 0.5, 0.9, 1.0), (0.9, 0.8, 0.1, 1.0)]
    for i, colour in enumerate(colours):
        location = (i - 1.0, 0.0, 0.4)
        if i % 2 == 0:
            bpy.ops.mesh.primitive_cube_add(size=0.8, location=location)
        else:
            bpy.ops.mesh.primitive_cylinder_add(radius=0.4, depth=0.8, location=location)
        part = bpy.context.active_object
        part.name = f"Part.{i:03d}"
        part.color = colour
    bpy.ops.object.camera_add(location=(0.0, -5.0, 3.5), rotation=(1.0, 0.0, 0.0))
    scene.camera = bpy.context.active_object
    bpy.ops.object.light_add(type="SUN", location=(2.0, -2.0, 5.0))
    bpy.ops.object.light_add(type="AREA", location=(-2.0, -1.0, 3.0))
    old_user_settings(scene)


def old_user_settings(scene) -> None:
    """Render settings of a file made for a movie in EEVEE (what users hand us)."""
    scene.render.engine = "BLENDER_EEVEE" if "BLENDER_EEVEE" in _engines() else _engines()[0]
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 50
    scene.render.film_transparent = True
    scene.render.dither_intensity = 1.0
    scene.display.render_aa = "8"
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5 groups formats by media type
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.filepath = "//render/shelf_"
    scene.view_settings.view_transform = "Filmic"  # 3.x's default; 4.x and 5.x have it too
    scene.view_settings.exposure = 0.3


def _engines() -> list[str]:
    return [
        item.identifier for item in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items
    ]


def main(argv: list[str]) -> None:
    """Build the scene and save it to the ``.blend`` file named on the command line."""
    argv = argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]
    if len(argv) != 1:
        raise SystemExit("usage: make_blend.py OUT.blend")
    build()
    bpy.ops.wm.save_as_mainfile(filepath=argv[0])


if __name__ == "__main__":
    main(sys.argv)
