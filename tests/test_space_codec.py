"""Every Gymnasium space travels: descriptions, values, and envs that use them end to end."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from btgym.errors import SpaceError
from btgym.wire import protocol
from btgym.wire.space_codec import restore, space_from_data, space_to_data

F32 = np.float32


def roundtrip(value):
    return protocol.decode(protocol.encode("x", value)).body


NEW_SPACES = [
    spaces.Text(6, min_length=0, charset="zyx"),  # the charset's order is kept
    spaces.Sequence(spaces.Box(-1.0, 1.0, (2,), F32)),
    spaces.Sequence(spaces.Dict({"a": spaces.Discrete(3)}), stack=True),
    spaces.Sequence(spaces.Tuple((spaces.Discrete(2), spaces.Text(3)))),
    spaces.OneOf([spaces.Discrete(2), spaces.Box(0.0, 1.0, (2,), F32)]),
    spaces.Graph(spaces.Box(0.0, 1.0, (3,), F32), spaces.Discrete(4)),
    spaces.Graph(spaces.Discrete(3), None),
    spaces.Discrete(4, start=1, dtype=np.int32),
]


@pytest.mark.parametrize("space", NEW_SPACES, ids=repr)
def test_the_composite_and_text_spaces_and_their_values_roundtrip(space):
    rebuilt = space_from_data(roundtrip(space_to_data(space)))
    assert rebuilt == space
    space.seed(0)
    for _ in range(5):
        value = restore(rebuilt, roundtrip(space.sample()))
        assert rebuilt.contains(value), value


def test_values_come_back_with_gymnasiums_types():
    assert type(restore(spaces.Discrete(3, dtype=np.int32), 2)) is np.int32
    assert restore(spaces.Text(3), "ab") == "ab"
    sequence = restore(spaces.Sequence(spaces.Discrete(5)), [1, 4])
    assert sequence == (1, 4) and type(sequence[0]) is np.int64
    index, value = restore(spaces.OneOf([spaces.Discrete(2), spaces.Text(2)]), [1, "a"])
    assert (type(index), value) == (np.int64, "a")
    graph = restore(spaces.Graph(spaces.Discrete(3), None), [[0, 2], None, None])
    assert isinstance(graph, spaces.GraphInstance) and graph.nodes.dtype == np.int64


def test_a_space_outside_gymnasium_is_refused_with_the_supported_list():
    class Odd(spaces.Space):
        pass

    with pytest.raises(SpaceError, match="Box, Discrete.*Text.*Graph, got Odd"):
        space_to_data(Odd())
    with pytest.raises(SpaceError, match="malformed 'Graph' description"):
        space_from_data({"type": "Graph"})
    with pytest.raises(SpaceError, match="got 'Odd'"):
        space_from_data({"type": "Odd"})


# -- end to end: a scene with these spaces behind real servers (in threads) ---------------
def shapes_action() -> spaces.Dict:
    return spaces.Dict(
        {
            "text": spaces.Text(6, charset="abc"),
            "seq": spaces.Sequence(spaces.Discrete(4)),
            "one_of": spaces.OneOf([spaces.Discrete(2), spaces.Box(0.0, 1.0, (2,), F32)]),
        }
    )


def shapes_observation() -> spaces.Dict:
    graph = spaces.Graph(spaces.Box(0.0, 1.0, (2,), F32), spaces.Discrete(3))
    return spaces.Dict({**shapes_action().spaces, "graph": graph})


def make_shapes_scene():
    from blender_side import Scene

    class ShapesScene(Scene):
        """Echoes its Text/Sequence/OneOf action and adds a Graph."""

        def __init__(self) -> None:
            super().__init__(max_episode_steps=3)
            self.action_space = shapes_action()
            self.observation_space = shapes_observation()

        def reset(self, seed=None, options=None):
            super().reset(seed=seed, options=options)
            self.observation_space.seed(int(self.np_random.integers(2**31)))
            return self.observation_space.sample(), {}

        def step(self, action):
            assert self.action_space.contains(action), action  # Gymnasium's types arrive
            graph = self.observation_space["graph"].sample(num_nodes=3, num_edges=2)
            return {**action, "graph": graph}, 0.0, False, False, {}

    return ShapesScene()


@pytest.fixture(scope="module")
def servers():
    from blender_side.thread_server import ThreadServer

    with ThreadServer(make_shapes_scene()) as first, ThreadServer(make_shapes_scene()) as second:
        yield [first.address, second.address]


def test_an_env_and_a_vector_env_step_text_sequence_one_of_and_graph_spaces(servers):
    from btgym import BlenderEnv, BlenderVectorEnv

    env = BlenderEnv(address=servers[0], timeout=10)
    try:
        assert env.action_space == shapes_action()
        assert env.observation_space == shapes_observation()
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        action = {"text": "abca", "seq": (1, 3, 0), "one_of": (1, np.array([0.5, 0.25], F32))}
        obs, *_ = env.step(action)
        assert env.observation_space.contains(obs) and obs["seq"] == (1, 3, 0)
        assert obs["text"] == "abca" and obs["one_of"][0] == 1
    finally:
        env.close()
    envs = BlenderVectorEnv(addresses=servers, timeout=10)
    try:
        obs, _ = envs.reset(seed=0)
        assert envs.observation_space.contains(obs)
        envs.action_space.seed(0)
        for _ in range(4):  # through an autoreset
            obs, _, _, truncated, _ = envs.step(envs.action_space.sample())
            assert envs.observation_space.contains(obs)
        assert truncated.tolist() == [False, False]  # step 4: the first of episode 2
    finally:
        envs.close()
