"""A scene's compositor reduced to one link: a render-layer output into the saved image.

Blender 5.3 keeps compositors as effects (``scene.compositor_effects``, each with a
node group; ``compositing_node_group`` goes away in 6.0), Blender 5.0-5.2 in one node
group (``scene.compositing_node_group``); in both the image leaves through a Group
Output. Blender 3.x and 4.x use ``scene.node_tree`` with ``use_nodes`` and a Composite
node. The passes (:class:`~blender_side.annotations.IdPass`
with depth, :class:`~blender_side.normals.NormalPass`) build their trees through this
module so they run in every supported Blender.
"""

from __future__ import annotations

from typing import Any

import bpy


def _output_socket(scene: Any) -> tuple[Any, Any]:
    """A fresh, empty compositor of ``scene``: ``(tree, the socket the saved image comes from)``."""
    if hasattr(scene, "compositor_effects"):  # Blender 5.3+
        scene.compositor_effects.clear()
        tree = _empty_group(scene)
        effect = scene.compositor_effects.new(name="btgym")
        effect.node_group = tree
        effect.enable_for_render = True
        output = tree.nodes.new("NodeGroupOutput")
    elif hasattr(scene, "compositing_node_group"):  # Blender 5.0-5.2
        tree = scene.compositing_node_group or _empty_group(scene)
        tree.nodes.clear()
        output = tree.nodes.new("NodeGroupOutput")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite")
        output.use_alpha = True
    scene.render.use_compositing = True
    return tree, output.inputs[0]


def _empty_group(scene: Any) -> Any:
    """A new compositor node group with one image output (Blender 5)."""
    tree = bpy.data.node_groups.new(f"{scene.name}-compositor", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    return tree


def render_layers(scene: Any) -> tuple[Any, Any, Any]:
    """``(tree, Render Layers node of scene, output socket)`` of a fresh compositor."""
    tree, output = _output_socket(scene)
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    return tree, layers, output


def replace_alpha(tree: Any, image: Any, alpha: Any, output: Any) -> None:
    """Link ``image`` with its alpha replaced by ``alpha`` (a float socket) into ``output``."""
    node = tree.nodes.new("CompositorNodeSetAlpha")
    if "Type" in node.inputs:  # Blender 5: the mode is an input socket
        node.inputs["Type"].default_value = "Replace Alpha"
    else:
        node.mode = "REPLACE_ALPHA"
    tree.links.new(image, node.inputs["Image"])
    tree.links.new(alpha, node.inputs["Alpha"])
    tree.links.new(node.outputs[0], output)


__all__ = ["render_layers", "replace_alpha"]
