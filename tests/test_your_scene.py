"""A user's own .blend and script through every entry point (issue 14), real Blender processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from torch.utils.data import DataLoader

import btgym
from btgym.data import StreamDataset, collate
from btgym.launcher import child_env
from tests.conftest import ROOT, blender_fixture

SCRIPT = str(ROOT / "envs" / "examples" / "shelf.py") + ":ShelfScene"
SMALL = {"width": 64, "height": 48}


def make_blend(path, blender: str | None = None) -> str:
    """The example .blend, saved by the bpy module or by a Blender executable."""
    maker = str(ROOT / "envs" / "examples" / "make_blend.py")
    if blender is None:
        command = [sys.executable, maker, str(path)]
    else:
        command = [blender, "--background", "--factory-startup", "--python", maker, "--", str(path)]
    # child_env: without what this process's bpy set (its OCIO config aborts Blender 3.4)
    subprocess.run(command, check=True, capture_output=True, timeout=180, env=child_env())
    return str(path)


@blender_fixture(scope="module")
def shelf_blend(tmp_path_factory):
    """Saved by the oldest Blender at hand (Debian's 3.4 in CI), as older users save theirs."""
    return make_blend(tmp_path_factory.mktemp("blend") / "shelf.blend", shutil.which("blender"))


def test_a_blend_saved_for_a_movie_in_eevee_renders_with_btgym_settings(shelf_blend):
    import bpy

    from blender_side.testing import SceneEnv, check_scene

    env = SceneEnv(SCRIPT, blend_file=shelf_blend, **SMALL)
    try:
        scene = bpy.context.scene
        assert scene.render.engine == "BLENDER_WORKBENCH"
        assert scene.render.image_settings.file_format == "TIFF"
        assert scene.render.dither_intensity == 0.0
        obs, info = env.reset(seed=0)
        assert obs.shape == (48, 64, 3) and obs.std() > 5 and info["locations"].shape == (3, 3)
        check_scene(env, seeds=(0,), steps=2)
    finally:
        env.close()


def test_a_users_blend_and_script_stream_into_a_dataloader_from_two_instances(shelf_blend):
    dataset = StreamDataset(SCRIPT, 2, blend_file=shelf_blend, env_kwargs=SMALL, items=8)
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collate))
    assert len(batches) == 2
    frames = np.concatenate([b["obs"].numpy() for b in batches])
    assert frames.shape == (8, 48, 64, 3) and frames.std() > 5
    assert {int(i) for b in batches for i in b["env_id"]} == {0, 1}


def test_btgym_serve_with_a_blend_streams_into_another_process(shelf_blend, tmp_path):
    info_file = tmp_path / "launch.json"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "btgym",
            "serve",
            SCRIPT,
            "-n",
            "2",
            "--blend",
            shelf_blend,
            "--kwargs",
            json.dumps(SMALL),
            "--info",
            str(info_file),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not info_file.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert info_file.exists(), server.stderr.read() if server.poll() is not None else "no info"
        info = json.loads(info_file.read_text())
        assert len(info["addresses"]) == 2 and info["blend_file"] == os.path.abspath(shelf_blend)
        items = list(StreamDataset(launch_info=str(info_file), items=6))
        assert {item["env_id"] for item in items} == {0, 1}
        assert all(item["obs"].shape == (48, 64, 3) for item in items)
        one = list(StreamDataset(info["addresses"][1], items=2))  # an address as the env id
        assert len(one) == 2 and one[0]["obs"].std() > 5
        with btgym.BlenderVectorEnv(launch_info=str(info_file)) as envs:  # the same file
            obs, _ = envs.reset(seed=0)
            assert obs.shape == (2, 48, 64, 3)
        with btgym.BlenderEnv(launch_info=str(info_file)) as env:
            assert env.reset(seed=0)[0].shape == (48, 64, 3)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def test_remote_streams_refuse_what_only_a_launch_can_use(tmp_path):
    with pytest.raises(ValueError, match="already running"):
        StreamDataset("tcp://127.0.0.1:1", env_kwargs=SMALL)
    with pytest.raises(ValueError, match="match the 1 addresses"):
        StreamDataset(addresses=["tcp://127.0.0.1:1"], num_instances=2)
