"""The process boundary and the public surface: what each side imports and exports."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import btgym
from tests.conftest import ROOT

#: Modules of the trainer side (and its heavy dependencies) that Blender never needs.
TRAINER_SIDE = (
    "btgym.env",
    "btgym.vector_env",
    "btgym.launcher",
    "btgym.client",
    "btgym.pipeline",
    "btgym._connection",
    "btgym._launch_info",
    "btgym._recycling",
    "btgym.registration",
    "btgym.data",
    "btgym.sb3",
    "btgym._ray_backend",
    "psutil",
    "torch",
)


def loaded_after(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.blender
def test_the_blender_side_loads_only_the_shared_wire_package():
    modules = loaded_after("import blender_side.server, blender_side.testing")
    ours = [m for m in modules if m == "btgym" or m.startswith("btgym.")]
    # The one exception tree both sides raise, and what `import btgym` runs (registering
    # the scenes, the finder of old module paths).
    shared = ("btgym", "btgym.errors", "btgym._registry", "btgym._moved")
    assert all(m in shared or m.startswith("btgym.wire") for m in ours), ours
    assert not [m for m in modules if m.startswith(TRAINER_SIDE)]


def test_importing_a_wire_module_costs_nothing_else():
    modules = loaded_after("import btgym.wire.protocol")
    assert not [m for m in modules if m.startswith(TRAINER_SIDE)]


def test_import_btgym_registers_the_scenes_lazily():
    modules = loaded_after("import btgym, gymnasium; assert 'btgym/Cube-v0' in gymnasium.registry")
    assert not [m for m in modules if m.startswith(TRAINER_SIDE)]


def test_all_lists_exactly_the_public_names_and_each_is_documented():
    for name in btgym.__all__:
        value = getattr(btgym, name)  # lazy names import here
        if callable(value):
            assert value.__doc__, f"btgym.{name} has no docstring"
    public = {
        name
        for name in dir(btgym)
        if not name.startswith("_") and not isinstance(getattr(btgym, name), types.ModuleType)
    }
    assert public | {"__version__"} == set(btgym.__all__)
    assert sorted(btgym.__all__) == list(btgym.__all__)
    assert btgym.__version__ == "0.1.0"
