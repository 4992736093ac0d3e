"""Old import paths: every path earlier docs told users to import still resolves, and each
one that moved warns (DeprecationWarning) naming its replacement (CHANGELOG.md lists them).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings

import pytest

from btgym._moved import MOVED_MODULES, MOVED_NAMES
from tests.conftest import ROOT

#: Every module path and name that README.md and docs/*.md told users to import, in any
#: commit since the first release (collected from the history; dots: attributes).
_DOCUMENTED = """
    blender_side:Scene blender_side.annotations:Annotator blender_side.annotations:IdPass
    blender_side.camera:depth blender_side.camera:project blender_side.camera:object_vertices
    blender_side.camera:bound_box_corners blender_side.geometry:CUBE_EDGE
    blender_side.image_stats:silhouette_areas blender_side.kit:aim blender_side.kit:look_at
    blender_side.loading:open_blend_file blender_side.normals:NormalPass
    blender_side.render:Renderer blender_side.server:Server blender_side.testing:SceneEnv
    blender_side.testing:check_scene btgym:BUILTIN_MAX_EPISODE_STEPS btgym:BUILTIN_SCENES
    btgym:BlenderEnv btgym:BlenderVectorEnv btgym:LaunchConfig btgym:Launcher
    btgym:register_scene btgym.bench:measure btgym.cli:load_launch_info btgym.client:Client
    btgym.coco:to_coco btgym.coco:write_coco btgym.connection:connect btgym.data:IDLE_TIMEOUT
    btgym.data:ParamsLayout btgym.data:ReplayDataset btgym.data:StreamDataset
    btgym.data:collate btgym.data:params_placeholder btgym.env:BlenderEnv
    btgym.errors:BtgymError btgym.errors:NotPicklableError btgym.errors:RemoteAttributeError
    btgym.errors:RemoteError btgym.launcher:Launcher btgym.pipeline:PipelinedClient
    btgym.preview:contact_sheet btgym.recording:record btgym.registration:register_scene
    btgym.registration:BUILTIN_SCENES btgym.sb3:BlenderVecEnv btgym.sb3:SB3VecEnv
    btgym.sb3:make_vec_env btgym.security:ClientKeys btgym.security:allow_client
    btgym.security:generate_keys btgym.validation:check_action btgym.vector_env:add_info
    btgym.wire.params:ParamSpace btgym.wire.security:ClientKeys
    btgym.wire.validation:check_action
"""
DOCUMENTED = _DOCUMENTED.split()


def resolve(path: str) -> tuple[object, list[warnings.WarningMessage]]:
    """The object at ``module:name`` and the warnings that resolving it raised."""
    module, _, name = path.partition(":")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if module in MOVED_MODULES:  # imported afresh: the import itself warns
            sys.modules.pop(module, None)
        value = getattr(importlib.import_module(module), name)
    return value, caught


@pytest.mark.parametrize("path", DOCUMENTED)
def test_every_documented_path_resolves_and_moved_ones_warn_with_their_replacement(path):
    module, _, name = path.partition(":")
    value, caught = resolve(path)
    assert value is not None
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    moved = module in MOVED_MODULES or (module, name) in MOVED_NAMES
    moved = moved or path in ("blender_side.camera:object_vertices", "btgym.sb3:BlenderVecEnv")
    if moved:
        assert deprecations, f"{path} moved but did not warn"
        message = str(deprecations[0].message)
        assert "use " in message or "renamed" in message or "moved" in message, message
        assert deprecations[0].filename == __file__  # attributed to the code that used it
    else:
        assert not deprecations, [str(w.message) for w in deprecations]


def test_moved_modules_serve_the_new_modules_objects():
    _, caught = resolve("btgym.security:ClientKeys")
    import btgym.security as old

    import btgym.wire.security as new

    assert old.ClientKeys is new.ClientKeys and old.__all__ == new.__all__
    assert "btgym.wire.security" in str(caught[0].message)
    with pytest.warns(DeprecationWarning, match=r"btgym\.register_scene"):
        sys.modules.pop("btgym.registration", None)
        from btgym.registration import register_scene
    import btgym

    assert register_scene is btgym.register_scene


def test_moved_names_say_what_replaced_them_and_others_stay_attribute_errors():
    import btgym
    import btgym.cli
    import btgym.vector_env
    from btgym._launch_info import LaunchInfo

    with pytest.warns(DeprecationWarning, match=r"btgym\.LaunchInfo\.read"):
        load = btgym.cli.load_launch_info
    assert load.__doc__ and LaunchInfo is btgym.LaunchInfo
    with pytest.warns(DeprecationWarning, match="private"):
        assert callable(btgym.vector_env.add_info)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        btgym.cli.nothing_here  # noqa: B018


def test_importing_an_old_path_in_a_fresh_process_warns_once_at_the_import():
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import btgym.connection\nexcept DeprecationWarning as w:\n    print(w)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "btgym.connection is deprecated" in done.stdout
    assert "btgym.BlenderVectorEnv" in done.stdout


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_every_moved_module_warns_naming_its_replacement_and_serves_its_names(old):
    new, replacement = MOVED_MODULES[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(replacement)):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    for name in getattr(target, "__all__", []):
        assert getattr(module, name) is getattr(target, name)
