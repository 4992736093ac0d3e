"""btgym.wire.params: a scene's randomization parameters by name, on either side of the wire."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium import spaces

from btgym.errors import BtgymError
from btgym.wire import protocol
from btgym.wire.params import ParamSpace, ParamValueError, UnknownParamError
from envs.parts_params import parts_param_space
from tests.conftest import ROOT


@pytest.fixture
def space() -> ParamSpace:
    return ParamSpace(
        {"light": (0.5, 2.0), "saturation": (0.0, 1.0, 0.1), "w0": (0, 1, 1), "w1": (0, 1, 0)},
        groups={"weights": ["w0", "w1"]},
    )


def test_box_names_and_defaults(space):
    assert space.box == spaces.Box(
        np.array([0.5, 0, 0, 0], np.float32), np.array([2, 1, 1, 1], np.float32), dtype=np.float32
    )
    assert space.names == ("light", "saturation", "w0", "w1") and len(space) == 4
    np.testing.assert_array_equal(space.default, np.float32([1.25, 0.1, 1.0, 0.0]))
    assert space.default.dtype == np.float32
    named = space.defaults()
    assert list(named) == ["weights", "light", "saturation"] and named["weights"] == [1.0, 0.0]
    assert named["saturation"] == float(np.float32(0.1))  # what the float32 action holds
    assert space.defaults(grouped=False) == pytest.approx(
        {"light": 1.25, "saturation": 0.1, "w0": 1.0, "w1": 0.0}
    )
    assert "light" in space and "weights" in space and "colour" not in space
    assert space.index("w1") == 3


def test_to_action_sets_names_and_groups_on_the_defaults_or_a_base(space):
    action = space.to_action({"light": 1.5, "weights": [0.25, 0.75]})
    np.testing.assert_array_equal(action, np.float32([1.5, 0.1, 0.25, 0.75]))
    assert action.dtype == np.float32 and space.box.contains(action)
    np.testing.assert_array_equal(space.to_action(), space.default)
    again = space.to_action({"saturation": 0.5}, base=action)
    np.testing.assert_array_equal(again, np.float32([1.5, 0.5, 0.25, 0.75]))
    np.testing.assert_array_equal(action, np.float32([1.5, 0.1, 0.25, 0.75]))  # not changed
    assert space.to_action({"light": 1.5}) is not space.default


def test_to_dict_and_to_action_are_inverse(space):
    space.box.seed(0)
    for _ in range(20):
        sample = space.box.sample()
        named = space.to_dict(sample)
        assert list(named) == ["weights", "light", "saturation"]
        assert all(isinstance(v, float) for v in [*named["weights"], named["light"]])
        np.testing.assert_array_equal(space.to_action(named), sample)
        np.testing.assert_array_equal(space.to_action(space.to_dict(sample, grouped=False)), sample)


def test_an_unknown_name_is_a_key_error_with_the_closest_names(space):
    with pytest.raises(UnknownParamError) as caught:
        space.to_action({"ligth": 1.0})
    error = caught.value
    assert isinstance(error, KeyError) and isinstance(error, BtgymError)
    message = str(error)
    assert message.startswith("expected a parameter in ['light', 'saturation', 'w0', 'w1'")
    assert "got 'ligth'; did you mean 'light'?" in message
    with pytest.raises(KeyError, match="got 'zzz'$"):  # nothing close: no suggestion
        space.index("zzz")
    with pytest.raises(UnknownParamError, match="did you mean 'weights'"):
        space.to_action({"weight": [0, 1]})


def test_values_out_of_bounds_are_value_errors_naming_each(space):
    with pytest.raises(ParamValueError) as caught:
        space.to_action({"light": 5, "saturation": -1})
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BtgymError)
    assert str(caught.value) == (
        "expected parameters within their bounds: light=5 not in [0.5, 2], "
        "saturation=-1 not in [0, 1]"
    )
    with pytest.raises(ParamValueError, match="light=nan not in"):
        space.to_action({"light": float("nan")})
    with pytest.raises(ParamValueError, match="expected weights with 2 entries"):
        space.to_action({"weights": [1.0]})
    with pytest.raises(ParamValueError, match="expected a number for light, got 'bright'"):
        space.to_action({"light": "bright"})
    with pytest.raises(ParamValueError, match="expected params as a dict, got list"):
        space.to_action([("light", 1.0)])
    with pytest.raises(ParamValueError, match=r"expected an action of shape \(4,\)"):
        space.to_dict(np.zeros(3))
    with pytest.raises(ParamValueError, match="w1=2 not in"):
        space.check(np.float32([1, 0, 0, 2]))


@pytest.mark.parametrize(
    "params, groups, match",
    [
        ({}, None, "non-empty mapping"),
        ({"a": (1.0, 0.0)}, None, "low <= default <= high"),
        ({"a": (0.0, 1.0, 2.0)}, None, "low <= default <= high"),
        ({"a": (0.0, float("inf"))}, None, "as \\(low, high\\) or"),
        ({"a": (0.0,)}, None, "as \\(low, high\\) or"),
        ({"a": "01"}, None, "as \\(low, high\\) or"),
        ({"": (0.0, 1.0)}, None, "non-empty str"),
        ({"a": (0.0, 1.0)}, {"a": ["a"]}, "group name apart"),
    ],
)
def test_a_malformed_table_is_refused(params, groups, match):
    with pytest.raises(ValueError, match=match):
        ParamSpace(params, groups)


def test_a_group_of_unknown_names_is_refused():
    with pytest.raises(UnknownParamError, match="got 'alpah'; did you mean 'alpha'"):
        ParamSpace({"alpha": (0.0, 1.0)}, {"g": ["alpha", "alpah"]})


def test_the_description_travels_over_the_wire_and_rebuilds_the_space(space):
    frames = protocol.encode(protocol.REPLY_OK, {"params": space.to_data()})
    data = protocol.decode([bytes(f) for f in frames]).body["params"]
    again = ParamSpace.from_data(data)
    assert again == space and again.box == space.box and again.groups == space.groups
    np.testing.assert_array_equal(again.to_action({"w1": 1}), space.to_action({"w1": 1}))
    with pytest.raises(ValueError, match="expected a ParamSpace description"):
        ParamSpace.from_data({"names": []})


def test_parts_table_names_bounds_and_defaults():
    parts = parts_param_space(6, 20)
    assert parts.names[:6] == tuple(f"class_prob_{k}" for k in range(6))
    assert parts.names[6:8] == ("count_min", "count_max") and len(parts) == 34
    assert parts.groups == {"class_probs": parts.names[:6]}
    named = parts.defaults()
    assert named["class_probs"] == pytest.approx([1 / 6] * 6)
    assert (named["count_min"], named["count_max"], named["occluder_prob"]) == (6.0, 12.0, 0.5)
    assert parts.box.high[parts.index("count_max")] == 20.0
    few = parts_param_space(3, 5)  # counts are bounded (and their defaults cut) by max_objects
    assert few.defaults()["count_min"] == 5.0 and few.box.high[few.index("count_max")] == 5.0
    action = parts.to_action({"class_probs": [0, 0, 1, 0, 0, 0], "count_max": 3})
    assert action[2] == 1.0 and action[parts.index("count_max")] == 3.0
    # The lens kwarg is the focal-length range's default, kept inside its bounds.
    assert parts.defaults()["lens_min"] == parts.defaults()["lens_max"] == 50.0
    wide = parts_param_space(6, 20, lens=24.0).defaults()
    assert (wide["lens_min"], wide["lens_max"]) == (24.0, 24.0)
    assert parts_param_space(6, 20, lens=500.0).defaults()["lens_max"] == 120.0


def test_the_trainer_builds_parameter_spaces_without_blender():
    code = (
        "import sys; sys.modules['bpy'] = sys.modules['mathutils'] = None\n"
        "import btgym.wire.params, envs.parts_params\n"
        "assert not [m for m in sys.modules if m.startswith('blender_side')]\n"
        "envs.parts_params.parts_param_space().to_action({'count_max': 3})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
