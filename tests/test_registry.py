"""The registry: one resolution of ids and scene specs for every entry point (no Blender)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import btgym
from btgym._launch_config import LaunchConfig
from btgym._registry import btgym_ids, resolve_target
from btgym.cli import resolve_scene
from btgym.errors import ConfigError
from tests.conftest import ECHO_SCENE


@pytest.fixture
def registered():
    launch = LaunchConfig(start_timeout=50.0)
    btgym.register_scene(
        "echo-reg-v0", ECHO_SCENE, timeout=20, blend_file="x.blend", launch=launch, label="y"
    )
    yield "echo-reg-v0"
    del gym.registry["echo-reg-v0"]


def test_registered_keywords_split_into_scene_and_launch_as_blender_env_splits_them(registered):
    target = resolve_target(registered)
    assert target.spec == ECHO_SCENE and target.scene_kwargs == {"label": "y"}
    assert target.launch == LaunchConfig(start_timeout=50.0, timeout=20, blend_file="x.blend")
    # An entry point's own arguments win over the registered ones, as in gym.make.
    assert target.launch_config(timeout=5).timeout == 5
    assert target.launch_config(LaunchConfig()).timeout == 20  # a given launch replaces its base
    assert registered in btgym_ids() and "btgym/Cube-v0" in btgym_ids()


def test_the_command_line_and_the_registry_agree(registered):
    cli = resolve_scene(registered, '{"label": "z"}', blend="b.blend")
    assert cli.scene_kwargs == {"label": "z"} and cli.launch.blend_file == "b.blend"
    assert cli.launch.timeout == 20


def test_specs_pass_through_and_unknown_names_say_what_was_expected():
    assert resolve_target("pkg.mod:Scene", {"a": 1}).scene_kwargs == {"a": 1}
    with pytest.raises(ConfigError, match="did you mean 'btgym/Cube-v0'"):
        resolve_target("btgym/Cube-v1")
    with pytest.raises(ConfigError, match="expected a btgym env id, got 'CartPole-v1'"):
        resolve_target("CartPole-v1")
