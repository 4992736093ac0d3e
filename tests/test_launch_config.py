"""LaunchConfig: one set of defaults, old keywords and launch_options mapped onto it."""

from __future__ import annotations

import inspect
import logging

import pytest

import btgym
from btgym._connection import connect
from btgym._launch_config import DEFAULTS, LaunchConfig, resolve_launch
from btgym.client import Client
from btgym.data import StreamDataset
from btgym.launcher import Launcher
from btgym.pipeline import PipelinedClient
from tests.conftest import ECHO_SCENE


def test_every_entry_point_takes_launch_and_its_defaults():
    for entry in (btgym.BlenderEnv, btgym.BlenderVectorEnv, StreamDataset):
        parameters = inspect.signature(entry).parameters
        assert "launch" in parameters, entry
        for name in ("timeout", "start_timeout", "curve", "launch_options"):
            assert parameters[name].default is None, (entry, name)  # None: the config's
    assert DEFAULTS.timeout == 30.0 and DEFAULTS.start_timeout == 120.0
    launcher = inspect.signature(Launcher).parameters
    for name in ("start_timeout", "max_restarts", "restart_window", "max_lifetime_restarts"):
        assert launcher[name].default == getattr(DEFAULTS, name)
    assert inspect.signature(Client).parameters["timeout"].default == DEFAULTS.timeout
    assert inspect.signature(PipelinedClient).parameters["timeout"].default == DEFAULTS.timeout
    assert btgym.LaunchConfig is LaunchConfig


def test_keywords_that_are_given_replace_fields_of_launch():
    base = LaunchConfig(timeout=5.0, seed=3, max_restarts=2)
    config = resolve_launch(base, timeout=7.0, seed=None, curve=None)
    assert config == LaunchConfig(timeout=7.0, seed=3, max_restarts=2)
    assert resolve_launch(None) == DEFAULTS
    with pytest.raises(TypeError, match="expected launch as a LaunchConfig"):
        resolve_launch({"timeout": 1.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got \['timout'\] \(did you mean 'timeout'\?\)"):
        resolve_launch(None, timout=3.0)


def test_the_private_connect_takes_one_resolved_config_and_old_keywords_for_the_alias():
    parameters = inspect.signature(connect).parameters
    assert "launch" in parameters and "timeout" not in parameters  # no list kept twice
    with pytest.raises(TypeError, match="did you mean 'start_timeout'"):
        connect(ECHO_SCENE, 1, start_timout=5.0)


def test_launch_options_are_a_deprecated_alias_with_an_explicit_backend():
    with pytest.warns(DeprecationWarning, match="launch_options= is deprecated"):
        config = resolve_launch(None, {"backend": "ray", "num_cpus": 0.5, "max_restarts": 4})
    # For Ray, max_restarts always meant how often Ray recreates an actor.
    assert config.backend == "ray" and config.num_cpus == 0.5 and config.actor_max_restarts == 4
    assert config.max_restarts == DEFAULTS.max_restarts
    with pytest.warns(DeprecationWarning):
        local = resolve_launch(None, {"bind": "tcp://127.0.0.1:0", "max_restarts": 1})
    assert local.backend == "local" and local.max_restarts == 1
    with pytest.raises(ValueError, match=r"expected launch options among .* got \['nope'\]"):
        LaunchConfig.from_options({"nope": 1})
    with pytest.raises(ValueError, match="got both"):
        resolve_launch(LaunchConfig(), {"bind": "tcp://127.0.0.1:0"})


def test_bad_configs_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="expected backend 'local' or 'ray', got 'gpu'"):
        LaunchConfig(backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected timeout > 0 seconds, got 0"):
        LaunchConfig(timeout=0)
    with pytest.raises(ValueError, match=r"backend='ray' .* got bind='tcp://x:1'"):
        LaunchConfig(backend="ray", bind="tcp://x:1")
    with pytest.raises(ValueError, match=r"backend='local' .* got num_cpus=2"):
        LaunchConfig(num_cpus=2)


def test_launcher_options_carry_every_launcher_argument():
    config = LaunchConfig(seed=4, max_restarts=1, env={"A": "1"}, keep_logs=True)
    options = config.launcher_options()
    assert set(options) <= set(inspect.signature(Launcher).parameters)
    assert options["seed"] == 4 and options["max_restarts"] == 1 and options["env"] == {"A": "1"}
    assert "backend" not in options and "timeout" not in options


@pytest.mark.blender
def test_a_config_reaches_the_launcher_and_the_clients():
    launch = LaunchConfig(timeout=12.0, seed=40, max_restarts=1, restart_window=9.0)
    with btgym.BlenderVectorEnv(ECHO_SCENE, 2, launch=launch, timeout=11.0) as envs:
        launcher = envs.connection.launcher
        assert launcher.seeds == [40, 41]
        assert (launcher.max_restarts, launcher.restart_window) == (1, 9.0)
        assert [client.timeout for client in envs.clients] == [11.0, 11.0]
        assert envs.launch.timeout == 11.0


@pytest.mark.blender
def test_old_launch_options_still_launch():
    with pytest.warns(DeprecationWarning, match="launch_options"):
        env = btgym.BlenderEnv(ECHO_SCENE, launch_options={"max_restarts": 0})
    with env:
        assert env.launcher.max_restarts == 0 and env.launch.max_restarts == 0
        env.reset(seed=0)


@pytest.mark.blender
def test_a_restart_is_logged_with_how_the_old_process_ended(caplog):
    with btgym.BlenderVectorEnv(ECHO_SCENE, 1, seed=0, timeout=10) as envs:
        envs.reset(seed=0)
        envs.connection.launcher[0].process.kill()
        envs.connection.launcher[0].process.wait(10)
        with caplog.at_level(logging.WARNING, logger="btgym"):
            _, _, _, truncated, _ = envs.step(envs.action_space.sample())
    assert truncated.tolist() == [True]
    (record,) = [r for r in caplog.records if r.name == "btgym"]
    assert record.levelno == logging.WARNING
    assert "restarted instance 0 after InstanceDiedError" in record.getMessage()
    assert "killed by SIGKILL" in record.getMessage()
    assert envs.restarts == [1]
