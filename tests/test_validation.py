"""Actions are checked against their space before anything is sent (no Blender needed)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from btgym.errors import InvalidActionError
from btgym.wire.validation import check_action

BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)


def test_valid_box_action_is_returned_in_the_space_dtype():
    out = check_action(BOX, [0.5, -1, 1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.5, -1, 1])


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(2), r"expected action in Box\(-1.0, 1.0, \(3,\), float32\), got shape \(2,\)"),
        ([0.0, np.nan, 0.0], "expected finite action"),
        ([0.0, 2.0, 0.0], r"element \(1,\) = 2.0 is outside \[-1.0, 1.0\]"),
        (["a", "b", "c"], "expected numeric action"),
        (None, "expected numeric action"),
    ],
)
def test_bad_box_actions_name_the_space_and_the_problem(action, match):
    with pytest.raises(InvalidActionError, match=match):
        check_action(BOX, action)


def test_invalid_action_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        check_action(BOX, [9, 9, 9])


def test_discrete_accepts_integers_in_range_only():
    space = spaces.Discrete(3, start=1)
    assert check_action(space, np.int64(3)) == 3
    with pytest.raises(InvalidActionError, match=r"1 <= action < 4, got 0"):
        check_action(space, 0)
    with pytest.raises(InvalidActionError, match="an integer"):
        check_action(space, 1.5)


def test_multi_discrete_and_multi_binary():
    md = spaces.MultiDiscrete([2, 3])
    np.testing.assert_array_equal(check_action(md, [1, 2]), [1, 2])
    with pytest.raises(InvalidActionError, match="MultiDiscrete"):
        check_action(md, [2, 0])
    with pytest.raises(InvalidActionError, match="expected integer action"):
        check_action(md, [0.5, 1])
    mb = spaces.MultiBinary(2)
    with pytest.raises(InvalidActionError, match=r"got shape \(3,\)"):
        check_action(mb, [0, 1, 1])


def test_dict_and_tuple_errors_point_at_the_bad_entry():
    space = spaces.Dict({"a": BOX, "b": spaces.Tuple((spaces.Discrete(2), BOX))})
    good = {"a": np.zeros(3), "b": (1, np.zeros(3))}
    out = check_action(space, good)
    assert out["b"][0] == 1
    with pytest.raises(InvalidActionError, match=r"action\['b'\]\[1\]"):
        check_action(space, {"a": np.zeros(3), "b": (1, np.ones(3) * 5)})
    with pytest.raises(InvalidActionError, match=r"keys \['a', 'b'\]"):
        check_action(space, {"a": np.zeros(3)})


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_box_actions_leave_with_positive_zeros_and_the_input_untouched(dtype):
    space = spaces.Box(0.0, 1.0, (3,), dtype)
    action = np.array([-0.0, 0.2, 1.0], dtype)
    out = check_action(space, action)
    assert out.dtype == dtype and not np.signbit(out).any()
    np.testing.assert_array_equal(out, action)
    assert np.signbit(action[0])  # the caller's array is not modified


def test_zero_dimensional_box_actions_stay_arrays():
    out = check_action(spaces.Box(0.0, 1.0, (), np.float32), np.float32(-0.0))
    assert isinstance(out, np.ndarray) and out.shape == () and not np.signbit(out)


def test_integer_box_actions_are_returned_as_they_are():
    space = spaces.Box(0, 9, (2,), np.int64)
    action = np.array([0, 9])
    assert check_action(space, action) is action


def test_cube_rotation_ranges_with_negative_zeros_give_a_valid_uniform_range():
    pytest.importorskip("bpy")  # envs.cube imports bpy; nothing here starts Blender
    from envs.cube import _as_range

    rotation_range = _as_range(np.array([-0.0, 0.2, 0.2], np.float32))
    assert rotation_range.dtype == np.float32 and not np.signbit(rotation_range).any()
    limits = rotation_range.astype(np.float64) * np.pi  # as CubeScene._randomize_and_render
    rotation = np.random.default_rng(0).uniform(-limits, limits)
    assert rotation[0] == 0 and np.all(np.abs(rotation) <= limits)
    with pytest.raises(ValueError, match="rotation_range as 3 values"):
        _as_range([-0.1, 0.2, 0.2])


@pytest.mark.parametrize(
    "space, action",
    [
        (BOX, ["a", "b", "c"]),
        (BOX, None),
        (spaces.Discrete(3), 1.5),
        (spaces.Dict({"a": BOX}), [0.0, 0.0, 0.0]),
        (spaces.Tuple((spaces.Discrete(2),)), 1),
        (spaces.Text(4), 42),
        (spaces.Sequence(spaces.Discrete(2)), 1),
    ],
    ids=["box-str", "box-none", "discrete-float", "dict-list", "tuple-int", "text", "seq"],
)
def test_wrong_types_are_type_errors_and_still_invalid_actions(space, action):
    from btgym.errors import InvalidActionTypeError

    with pytest.raises(InvalidActionTypeError) as caught:
        check_action(space, action)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)


def test_wrong_values_stay_value_errors_not_type_errors():
    for space, action in [(BOX, np.zeros(2)), (spaces.Discrete(3), 7), (spaces.Text(2), "abc")]:
        with pytest.raises(InvalidActionError) as caught:
            check_action(space, action)
        assert not isinstance(caught.value, TypeError)


def test_text_sequence_one_of_and_graph_actions_come_back_as_gymnasium_values():
    text = spaces.Text(5, min_length=1, charset="abc")
    assert check_action(text, "cab") == "cab"
    with pytest.raises(InvalidActionError, match="1 to 5 characters from 'abc'"):
        check_action(text, "xyz")
    sequence = spaces.Sequence(spaces.Box(0.0, 1.0, (2,), np.float32))
    out = check_action(sequence, [[0.5, 0.5], np.ones(2)])  # a list, as msgpack delivers it
    assert isinstance(out, tuple) and sequence.contains(out)
    with pytest.raises(InvalidActionError, match=r"action\[1\]"):
        check_action(sequence, ([0.5, 0.5], [2.0, 0.0]))
    stacked = spaces.Sequence(spaces.Discrete(3), stack=True)
    assert stacked.contains(check_action(stacked, np.array([0, 2])))
    assert stacked.contains(check_action(stacked, np.zeros(0, np.int64)))  # empty is fine
    one_of = spaces.OneOf([spaces.Discrete(2), BOX])
    index, value = check_action(one_of, [1, [0.0, 0.5, 1.0]])
    assert one_of.contains((index, value)) and value.dtype == np.float32
    with pytest.raises(InvalidActionError, match=r"action\[0\] in \[0, 2\)"):
        check_action(one_of, (2, 0))
    graph = spaces.Graph(spaces.Box(0.0, 1.0, (2,), np.float32), spaces.Discrete(3))
    sample = graph.sample(num_nodes=3, num_edges=2)
    back = check_action(graph, list(sample))  # [nodes, edges, edge_links] off the wire
    assert isinstance(back, spaces.GraphInstance) and graph.contains(back)
    with pytest.raises(InvalidActionError, match="edge_links"):
        check_action(graph, (sample.nodes, sample.edges, np.array([[0, 9], [0, 1]])))
