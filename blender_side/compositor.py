"""A scene's compositor reduced to one link: a render-layer output into the saved image.

Blender 5 keeps the compositor in a node group (``scene.compositing_node_group``, the
image leaves through a Group Output); Blender 3.x and 4.x in ``scene.node_tree`` with
``use_nodes`` and a Composite node. The passes (:class:`~blender_side.annotations.IdPass`
with depth, :class:`~blender_side.normals.NormalPass`) build their trees through this
module so they run in every supported Blender.
"""

from __future__ import annotations

from typing import Any

import bpy


def _output_socket(scene: Any) -> tuple[Any, Any]:
    """A fresh, empty compositor of ``scene``: ``(tree, the socket the saved image comes from)``."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5
        tree = scene.compositing_node_group or bpy.data.node_groups.new(
            f"{scene.name}-compositor", "CompositorNodeTree"
        )
        tree.nodes.clear()
        if not tree.interface.items_tree:
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
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
