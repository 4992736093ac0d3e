"""Compositors of annotation passes: a render-layer output into the saved image.

Blender 5.3 keeps compositors as effects (``scene.compositor_effects``, each with a
node group; ``compositing_node_group`` goes away in 6.0), Blender 5.0-5.2 in one node
group (``scene.compositing_node_group``); in both the image leaves through a Group
Output. Blender 3.x and 4.x use ``scene.node_tree`` with ``use_nodes`` and a Composite
node. The passes (:class:`~blender_side.annotations.IdPass`
with depth, :class:`~blender_side.normals.NormalPass`) build their trees through this
module so they run in every supported Blender, beside the scene's own compositor.
"""

from __future__ import annotations

from typing import Any

import bpy

from btgym.errors import ConfigError


class PassCompositor:
    """The compositor of a pass rendered *in* ``scene``, beside the scene's own one.

    :attr:`tree` holds :attr:`layers` (the Render Layers node) and :attr:`output` (the
    socket the saved image comes from); :attr:`overrides` are the ``(struct, attribute,
    value)`` settings (:func:`blender_side.passes.overridden`) that switch the scene's
    compositing to this pass for its render only, and :meth:`select` runs before that
    render. Blender 5 keeps a node group per pass, so the scene's own compositor (and
    its frames) stay as they were. Blender 3.x and 4.x have one tree per scene: the
    passes share it (each ends in a reroute that :meth:`select` links to the one
    Composite node), and a scene compositing on its own is refused
    (:class:`~btgym.errors.ConfigError`).
    """

    def __init__(self, scene: Any, name: str) -> None:
        self.overrides: list[tuple[Any, str, Any]] = []
        self._composite: Any = None
        if hasattr(scene, "compositor_effects"):  # Blender 5.3+
            self.tree = _pass_group(name)
            for effect in scene.compositor_effects:
                self.overrides.append((effect, "enable_for_render", False))
            effect = scene.compositor_effects.new(name=name)
            effect.node_group = self.tree
            effect.enable_for_render = effect.enable_for_preview = False
            self.overrides.append((effect, "enable_for_render", True))
            self.output = self.tree.nodes.new("NodeGroupOutput").inputs[0]
        elif hasattr(scene, "compositing_node_group"):  # Blender 5.0-5.2
            self.tree = _pass_group(name)
            self.overrides.append((scene, "compositing_node_group", self.tree))
            self.output = self.tree.nodes.new("NodeGroupOutput").inputs[0]
        else:
            self.tree, self._composite = _shared_tree(scene)
            reroute = self.tree.nodes.new("NodeReroute")
            self.output, self._source = reroute.inputs[0], reroute.outputs[0]
        self.overrides.append((scene.render, "use_compositing", True))
        self.layers = self.tree.nodes.new("CompositorNodeRLayers")
        self.layers.scene = scene

    def select(self) -> None:
        """Make this pass's image the one saved (Blender 3.x/4.x: link it to Composite)."""
        if self._composite is not None:
            self.tree.links.new(self._source, self._composite.inputs[0])


def _pass_group(name: str) -> Any:
    """A new compositor node group with one image output (Blender 5)."""
    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    return tree


_SHARED = "btgym_pass_compositor"


def _shared_tree(scene: Any) -> tuple[Any, Any]:
    """Blender 3.x/4.x: the scene's one tree, taken for the passes; its Composite node."""
    tree = scene.node_tree if scene.use_nodes else None
    if tree is not None and len(tree.nodes) and not scene.get(_SHARED):
        raise ConfigError(
            f"expected scene {scene.name!r} without a compositor of its own for annotation "
            f"passes in Blender {bpy.app.version_string} (Blender 5 keeps both)"
        )
    if not scene.get(_SHARED):
        scene.use_nodes = True
        scene.node_tree.nodes.clear()
        composite = scene.node_tree.nodes.new("CompositorNodeComposite")
        composite.use_alpha = True
        scene[_SHARED] = True
    tree = scene.node_tree
    return tree, next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")


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


__all__ = ["PassCompositor", "replace_alpha"]
