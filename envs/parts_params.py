"""Parts-v0's named action, importable without Blender (the trainer builds it too).

``parts_param_space(num_classes, max_objects)`` is the :class:`~btgym.wire.params.ParamSpace`
that :class:`envs.parts.PartsScene` uses as its action space, so a trainer maps names to
actions locally::

    space = parts_param_space(6, 20)
    action = space.to_action({"class_probs": [1, 0, 0, 0, 0, 0], "count_max": 3})
"""

from __future__ import annotations

from btgym.wire.params import ParamSpace

#: ``(name, low, high, default)`` after the ``num_classes`` class probabilities. ``None``
#: as a bound of the counts stands for ``max_objects``.
SCALAR_PARAMS: list[tuple[str, float, float | None, float]] = [
    ("count_min", 1.0, None, 6.0),
    ("count_max", 1.0, None, 12.0),
    ("occluder_prob", 0.0, 1.0, 0.5),
    ("light_min", 0.2, 3.0, 0.7),
    ("light_max", 0.2, 3.0, 1.3),
    ("roughness_min", 0.0, 1.0, 0.25),
    ("roughness_max", 0.0, 1.0, 0.75),
    ("value_min", 0.0, 1.0, 0.45),
    ("value_max", 0.0, 1.0, 0.9),
    ("saturation_max", 0.0, 1.0, 0.1),
    ("background_min", 0.0, 1.0, 0.0),
    ("background_max", 0.0, 1.0, 0.7),
    ("radius_min", 3.0, 30.0, 6.0),
    ("radius_max", 3.0, 30.0, 10.0),
    ("elevation_min", 5.0, 89.0, 25.0),
    ("elevation_max", 5.0, 89.0, 80.0),
    ("lens_min", 10.0, 120.0, 50.0),
    ("lens_max", 10.0, 120.0, 50.0),
    ("matcap_prob", 0.0, 1.0, 0.0),
    ("studio_rotation_max", 0.0, 180.0, 0.0),
    # Appearance (issue 27). The defaults draw nothing new: seeded frames stay the same.
    ("ground_saturation_min", 0.0, 1.0, 0.0),
    ("ground_saturation_max", -1.0, 1.0, -1.0),
    ("ground_texture_prob", 0.0, 1.0, 0.0),
    ("ground_texture_contrast", 0.0, 1.0, 0.5),
    ("pale_prob", 0.0, 1.0, 0.0),
    ("pale_saturation_max", 0.0, 1.0, 0.05),
    ("pale_value_min", 0.0, 1.0, 0.6),
    ("pale_value_max", 0.0, 1.0, 0.95),
]
#: ``ground_saturation_max`` below 0: the ground's saturation is tied to the parts', as
#: before issue 27 (``[ground_saturation_min, min(saturation_max, 0.3)]``).
TIED = -1.0
#: Parameters whose default is the scene's ``lens`` kwarg (focal length in mm).
LENS_PARAMS = ("lens_min", "lens_max")


def parts_param_space(
    num_classes: int = 6, max_objects: int = 20, lens: float = 50.0
) -> ParamSpace:
    """Class weights ``class_prob_<k>`` (the group ``class_probs``), then the scalars;
    ``lens`` is the default of ``lens_min`` and ``lens_max``.
    """
    probs = {f"class_prob_{k}": (0.0, 1.0, 1.0 / num_classes) for k in range(num_classes)}
    most = float(max_objects)
    scalars = {
        name: (low, most, min(default, most)) if high is None else (low, high, default)
        for name, low, high, default in SCALAR_PARAMS
    }
    for name in LENS_PARAMS:
        low, high, _ = scalars[name]
        scalars[name] = (low, high, min(max(float(lens), low), high))
    return ParamSpace({**probs, **scalars}, groups={"class_probs": list(probs)})


__all__ = ["LENS_PARAMS", "SCALAR_PARAMS", "TIED", "parts_param_space"]
