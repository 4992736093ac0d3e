"""Today's Blender: the graphics backend chosen on purpose and reported, .blend files from
newer Blenders refused with both versions named, no deprecated API used under 5.3, and
scenes that leave nothing behind for the next one in the same process."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from btgym import BlenderEnv, LaunchConfig
from btgym.errors import ConfigError, LaunchError
from btgym.wire import gpu_backend

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"width": 96, "height": 72}
BPY = tuple(int(n) for n in importlib.metadata.version("bpy").split(".")[:2])


# -- the choice, without Blender ----------------------------------------------------------
def test_opengl_hides_the_vulkan_drivers_behind_a_file_nobody_can_replace():
    env = gpu_backend.environment("opengl", {"PATH": "/bin"})
    assert env["VK_ICD_FILENAMES"] == env["VK_DRIVER_FILES"] == "/dev/null"
    assert env["BTGYM_GPU_BACKEND"] == "opengl" and env["PATH"] == "/bin"


def test_vulkan_is_blenders_own_choice_and_undoes_an_earlier_hiding():
    hidden = gpu_backend.environment("opengl", {})
    env = gpu_backend.environment("vulkan", {**hidden, "VK_ICD_FILENAMES": "/dev/null"})
    assert "VK_ICD_FILENAMES" not in env and "VK_DRIVER_FILES" not in env
    mine = {"VK_ICD_FILENAMES": "/opt/my_icd.json"}  # the user's own drivers stay
    assert gpu_backend.environment("vulkan", mine)["VK_ICD_FILENAMES"] == "/opt/my_icd.json"


def test_auto_is_opengl_without_a_gpu_and_blenders_choice_with_one(monkeypatch):
    monkeypatch.setattr(gpu_backend, "host_has_gpu", lambda: False)
    assert gpu_backend.resolve("auto") == "opengl"
    monkeypatch.setattr(gpu_backend, "host_has_gpu", lambda: True)
    assert gpu_backend.resolve("auto") == "vulkan"


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(
        ConfigError, match=r"gpu_backend in \('auto', 'opengl', 'vulkan'\), got 'metal'"
    ):
        LaunchConfig(gpu_backend="metal")


def test_instances_share_the_software_rasterizer_threads(monkeypatch):
    monkeypatch.setattr(gpu_backend, "host_has_gpu", lambda: False)
    share = gpu_backend.share_software_rasterizer
    assert share({"PATH": "/bin"}, 2, cpus=2) == {"PATH": "/bin", "LP_NUM_THREADS": "1"}
    assert share({}, 2, cpus=16)["LP_NUM_THREADS"] == "8"
    assert share({}, 3, cpus=2)["LP_NUM_THREADS"] == "1"  # never 0: Mesa's own default
    assert "LP_NUM_THREADS" not in share({}, 1, cpus=2)  # one instance: all cores
    assert share({"LP_NUM_THREADS": "4"}, 2, cpus=2)["LP_NUM_THREADS"] == "4"  # the user's
    monkeypatch.setattr(gpu_backend, "host_has_gpu", lambda: True)
    assert "LP_NUM_THREADS" not in share({}, 2, cpus=2)  # a GPU draws: nothing to share


@pytest.mark.parametrize(
    ("head", "version"),
    [
        (b"BLENDER_v304REND", (3, 4)),  # 3.x/4.x layout, 4-byte pointers
        (b"BLENDER-V402REND", (4, 2)),  # 8-byte pointers, big-endian
        (b"BLENDER17-01v0500REND", (5, 0)),  # the 5.0 layout
        (b"BLENDER17-01v0503REND", (5, 3)),
        (b"PK\x03\x04 not a blend", None),
        (b"BLENDER17-01vXY00", None),
    ],
)
def test_blend_headers_give_the_version_that_saved_them(head, version):
    from blender_side.loading import parse_blend_header

    assert parse_blend_header(head) == version


# -- real Blender processes ----------------------------------------------------------------
def expected_backend(choice: str) -> str:
    """What bpy draws with here: Vulkan only where chosen and this bpy prefers it (5.3+)."""
    if choice == "vulkan" and BPY >= (5, 3):
        return "VULKAN"
    return "OPENGL"


@pytest.mark.blender
@pytest.mark.parametrize("choice", ["auto", "opengl", "vulkan"])
def test_instances_draw_with_the_chosen_backend_and_report_it(choice):
    assert not gpu_backend.host_has_gpu()  # this host: software rendering only
    launch = LaunchConfig(gpu_backend=choice)
    with BlenderEnv("envs.cube:CubeScene", launch=launch, **SMALL) as env:
        obs, _ = env.reset(seed=0)
        blender = env.unwrapped.remote["blender"]
        launched = env.unwrapped.connection.launcher.instances[0].blender
    assert obs.std() > 5
    assert blender["gpu_backend"] == expected_backend(choice)
    assert blender["gpu_backend_choice"] == choice
    assert blender["version"].split(".")[:2] == [str(n) for n in BPY]
    assert launched == blender  # the ready file says the same as hello


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_workbench_shadows_render_the_same_state_identically():
    # On bpy 5.3's Vulkan (lavapipe) the same state rendered twice differed by a few black
    # pixels in 25-45 of 200 frames; the default backend must draw every frame the same.
    kwargs = {"width": 320, "height": 256, "shadows": True, "max_objects": 6}
    with BlenderEnv("envs.parts:PartsScene", **kwargs) as env:
        differing = []
        for seed in range(24):
            first, _ = env.reset(seed=seed)
            again, _ = env.reset(seed=seed)
            if not np.array_equal(first, again):
                differing.append((seed, int((first != again).any(-1).sum())))
    assert differing == []


def process_environment(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_two_instances_split_the_cores_and_draw_the_same_pixels(monkeypatch):
    from btgym.launcher import Launcher

    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    with Launcher("envs.cube:CubeScene", 2, scene_kwargs=SMALL, seed=0) as launcher:
        pids = [instance.process.pid for instance in launcher.instances]
        shares = [process_environment(pid).get("LP_NUM_THREADS") for pid in pids]
    assert shares == [str(max(1, cpus // 2))] * 2
    frames = {}
    for threads in ("1", None):  # Mesa draws a tile whole in one thread: same pixels
        launch = LaunchConfig(env={"LP_NUM_THREADS": threads} if threads else None)
        kwargs = {"width": 160, "height": 128, "engine": "raster"}
        with BlenderEnv("envs.parts:PartsScene", launch=launch, **kwargs) as env:
            frames[threads] = [env.reset(seed=seed)[0] for seed in range(3)]
    assert frames["1"][0].std() > 5
    assert all(np.array_equal(a, b) for a, b in zip(frames["1"], frames[None], strict=True))


def save_blend(path: Path) -> tuple[int, int]:
    """Save Blender's default file with this bpy; return the version in its header."""
    from blender_side.loading import blend_file_version

    code = f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(path)!r}, compress=False)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    version = blend_file_version(str(path))
    assert version is not None
    return version


@pytest.mark.blender
def test_a_blend_file_from_a_newer_blender_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / "newer.blend"
    save_blend(path)
    data = bytearray(path.read_bytes())
    assert data[:13] == b"BLENDER17-01v"  # bpy 5.x writes the 5.0 layout
    data[13:17] = b"0907"  # as if Blender 9.7 had saved it
    path.write_bytes(bytes(data))
    with pytest.raises(LaunchError) as err:
        BlenderEnv("envs.cube:CubeScene", blend_file=str(path), **SMALL)
    message = str(err.value)
    ours = ".".join(map(str, BPY))
    assert "saved by Blender 9.7" in message and f"Blender {ours} (this instance)" in message
    assert "LaunchConfig(blender=" in message


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Debian's Blender 3.4")
@pytest.mark.timeout(300)
def test_an_older_installed_blender_refuses_a_5x_file_naming_both_versions(tmp_path):
    path = tmp_path / "five.blend"
    saved_by = save_blend(path)
    blender = shutil.which("blender")
    with pytest.raises(LaunchError) as err:
        BlenderEnv("envs.cube:CubeScene", blender=blender, blend_file=str(path), **SMALL)
    assert f"saved by Blender {saved_by[0]}.{saved_by[1]}" in str(err.value)
    assert "Blender 3.4 (this instance)" in str(err.value)


def run_in_bpy(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh bpy process with every DeprecationWarning shown."""
    return subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


@pytest.mark.blender
@pytest.mark.timeout(600)
def test_built_in_scenes_use_no_deprecated_blender_api():
    done = run_in_bpy(
        """
        from blender_side.testing import SceneEnv
        scenes = [
            ("envs.cube:CubeScene", {}),
            ("envs.cartpole:CartPoleScene", {}),
            ("envs.supershape:SupershapeScene", {}),
            ("envs.parts:PartsScene", {"masks": True, "depth": True, "normals": True,
                                       "max_objects": 4}),
        ]
        for spec, kwargs in scenes:
            env = SceneEnv(spec, width=64, height=48, **kwargs)
            env.reset(seed=0)
            env.step(env.action_space.sample())
            env.close()
        print("built", len(scenes))
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built 4" in done.stdout
    lines = done.stderr.splitlines()
    project = [f"{ROOT}/{part}/" for part in ("btgym", "blender_side", "envs")]
    ours = [line for line in lines if "Warning" in line and any(p in line for p in project)]
    blenders = [line for line in lines if "removed in Blender" in line]
    assert ours == [] and blenders == []


@pytest.mark.blender
@pytest.mark.timeout(300)
def test_a_scene_leaves_nothing_behind_for_the_next_one_in_the_process():
    done = run_in_bpy(
        """
        import bpy
        from blender_side.kit import plain_settings
        from blender_side.testing import SceneEnv
        def look():
            display = bpy.context.scene.display
            return plain_settings(display), plain_settings(display.shading)
        env = SceneEnv("envs.cube:CubeScene", width=64, height=48); env.close()
        alone = look()
        env = SceneEnv("envs.parts:PartsScene", width=64, height=48, shadows=True)
        env.close()
        assert bpy.context.scene.display.shading.show_shadows
        env = SceneEnv("envs.cube:CubeScene", width=64, height=48); env.close()
        after = look()
        changed = {k: (alone[1][k], after[1][k]) for k in alone[1] if alone[1][k] != after[1][k]}
        assert alone == after, changed
        print("same look")
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "same look" in done.stdout


def test_what_this_processs_bpy_set_stays_out_of_other_blenders(monkeypatch):
    import bpy  # noqa: F401  (sets MaterialX paths now, OCIO at its first render)

    from btgym.launcher import child_env

    package = Path(importlib.util.find_spec("bpy").origin).parent
    monkeypatch.setenv("OCIO", str(package / "5.3/datafiles/colormanagement/config.ocio"))
    monkeypatch.setenv("MY_OWN", "/opt/studio/config.ocio")
    env = child_env()
    assert "OCIO" not in env and "MATERIALX_SEARCH_PATH" not in env
    assert env["MY_OWN"] == "/opt/studio/config.ocio"  # anything else is passed on
    monkeypatch.setenv("OCIO", "/opt/studio/config.ocio")  # a user's own configuration stays
    assert child_env()["OCIO"] == "/opt/studio/config.ocio"
