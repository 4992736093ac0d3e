"""The scene authors' commands: ``btgym list``, ``preview``, ``view``, ``bench``.

The drawing (``btgym.preview``) is tested on synthetic frames, without Blender; the
commands run real Blender processes (the bpy module) on small Cube frames.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from btgym import preview
from btgym._launch_config import LaunchConfig
from btgym.cli import format_table, main, progress, resolve_scene
from tests.conftest import ROOT

SMALL = json.dumps({"width": 64, "height": 48})
COMMANDS = ("serve", "keys", "list", "preview", "view", "bench")


# -- the drawing, on synthetic frames ------------------------------------------------------
def pixel(image: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    return image.getpixel((int(x), int(y)))


def test_a_tile_shows_keypoints_boxes_labels_and_its_caption():
    frame = np.zeros((30, 40, 3), np.uint8)
    info = {
        "xy": np.array([[10.5, 5.5], [30.2, 20.7]], np.float32),
        "bbox_visib": np.array([[2, 12, 20, 28], [-1, -1, -1, -1]], np.float32),
        "class_id": np.array([1, 3], np.int32),
        "instance_id": np.array([1, 2], np.int32),
        "num_objects": 2,
        "rotation": np.zeros(3, np.float32),  # unknown keys and shapes are ignored
        "name": "ignored",
    }
    tile = preview.draw_tile(frame, info, "seed 0, step 0")
    scale = preview.tile_scale(40)
    assert scale == 7 and tile.size == (280, 210 + preview.CAPTION_HEIGHT)
    red, green = preview.KEYPOINT_COLOURS[0], preview.BOX_COLOURS[1]
    assert pixel(tile, 10.5 * scale, 5.5 * scale) == red
    assert pixel(tile, 30.2 * scale, 20.7 * scale) == red
    assert pixel(tile, 2 * scale, 20 * scale) == green  # left edge of class 1's box
    assert pixel(tile, 20 * scale - 1, 20 * scale) == green  # right edge: x1 is exclusive
    assert pixel(tile, 10 * scale, 28 * scale - 1) == green  # bottom edge
    assert pixel(tile, 6 * scale, 24 * scale) == (0, 0, 0)  # inside: the frame
    colours = {colour for _, colour in tile.getcolors(1 << 16)}
    assert preview.BOX_COLOURS[3] not in colours, "the unseen (-1) row was drawn"
    label = np.asarray(tile)[12 * scale - 14 : 12 * scale, 2 * scale : 2 * scale + 20]
    assert (label == green).all(axis=2).any(), "no class label above the box"
    caption = np.asarray(tile)[210:]
    assert caption.max() > 150, "no caption under the frame"


def test_annotations_follow_padding_key_priority_and_labels():
    info = {
        "bbox_full": np.array([[0, 0, 5, 5]], np.float32),
        "boxes": np.array([[1, 1, 4, 4], [2, 2, 8, 9], [0, 0, 3, 3]], np.float64),
        "labels": np.array([7, 8, 9]),
        "num_objects": 2,
        "kp": np.array([[[1, 2], [3, 4]], [[5, np.nan], [7, 8]]]),  # (N, K, 2)
        "K": np.eye(3),
        "mask": np.zeros((4, 5), np.int32),
        "flags": np.array([[True, False]]),
    }
    found = preview.find_annotations(info)
    np.testing.assert_array_equal(found.boxes, [[1, 1, 4, 4], [2, 2, 8, 9]])
    assert found.labels == ["7", "8"] and found.classes == [7, 8]
    assert list(found.keypoints) == ["kp"] and found.keypoints["kp"].shape == (3, 2)
    assert preview.find_annotations({"bbox_visib": np.zeros((0, 4))}).boxes.shape == (0, 4)


def test_a_sheet_is_a_grid_of_tiles_row_by_row():
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
    tiles = [(np.full((48, 64, 3), c, np.uint8), {}, f"seed {i}") for i, c in enumerate(colours)]
    sheet = preview.contact_sheet(tiles)
    tile_w, tile_h = 64 * 4, 48 * 4 + preview.CAPTION_HEIGHT
    assert preview.grid_shape(5) == (3, 2)
    assert sheet.size == preview.sheet_size(5, 64, 48) == (3 * tile_w, 2 * tile_h)
    for i, colour in enumerate(colours):
        assert pixel(sheet, (i % 3 + 0.5) * tile_w, (i // 3) * tile_h + 90) == colour
    assert pixel(sheet, 2.5 * tile_w, 1.5 * tile_h) == preview.BACKGROUND  # the empty cell
    assert preview.contact_sheet(tiles, columns=5).size == (5 * tile_w, tile_h)


def test_frames_are_converted_to_rgb8_and_found_in_observations():
    grey = preview.as_rgb8(np.full((4, 6), 0.5, np.float32))
    assert grey.shape == (4, 6, 3) and grey.dtype == np.uint8 and (grey == 127).all()
    assert preview.as_rgb8(np.zeros((4, 6, 4), np.uint8)).shape == (4, 6, 3)
    with pytest.raises(ValueError, match="expected a frame of shape"):
        preview.as_rgb8(np.zeros(4))
    image = np.zeros((48, 64, 3), np.uint8)
    assert preview.image_of({"state": np.zeros(4), "image": image}) is image
    assert preview.image_of(np.zeros(4, np.float32)) is None


# -- helpers of the command ----------------------------------------------------------------
def test_scene_names_resolve_to_a_spec_kwargs_and_a_launch():
    target = resolve_scene("btgym/Cube-v0", '{"width": 64, "timeout": 5}', "x.blend")
    assert target.spec == "envs.cube:CubeScene" and target.scene_kwargs == {"width": 64}
    assert target.launch == LaunchConfig(timeout=5, blend_file="x.blend")
    assert resolve_scene("envs/examples/shelf.py:ShelfScene").spec.endswith("shelf.py:ShelfScene")
    with pytest.raises(ValueError, match="did you mean 'btgym/Cube-v0'"):
        resolve_scene("btgym/Cub-v0")
    with pytest.raises(ValueError, match="expected a btgym env id"):
        resolve_scene("CartPole-v1")
    with pytest.raises(ValueError, match="expected --kwargs as a JSON object"):
        resolve_scene("btgym/Cube-v0", "width=64")


def test_tables_align_and_progress_bars_work_without_tqdm(monkeypatch):
    table = format_table(["name", "fps"], [["a", "1.5"], ["long name", "10.0"]])
    assert table.splitlines() == [
        "name        fps",
        "---------  ----",
        "a           1.5",
        "long name  10.0",
    ]
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    with progress(3, "test") as bar:
        bar.update(3)


# -- the commands --------------------------------------------------------------------------
def test_btgym_help_lists_every_subcommand(capsys):
    result = subprocess.run(
        [sys.executable, "-m", "btgym", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert all(name in result.stdout for name in COMMANDS)
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert f"usage: btgym {name}" in capsys.readouterr().out


def test_list_shows_the_registered_scenes(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "btgym/Cube-v0" in out and "envs.cube:CubeScene" in out
    assert "btgym/Parts-v0" in out
    assert main(["list", "--only", "nothing/*"]) == 2
    assert "expected registered btgym scenes matching" in capsys.readouterr().err


@pytest.mark.blender
def test_list_spaces_launches_the_scenes_asked_for(capsys):
    assert main(["list", "--spaces", "--only", "btgym/Cube-v0"]) == 0
    out = capsys.readouterr().out
    assert "Box(0.0, 1.0, (3,), float32)" in out and "(512, 640, 3), uint8)" in out
    assert "CartPole" not in out


@pytest.mark.blender
def test_preview_writes_a_sheet_with_the_cubes_keypoints(tmp_path, capsys):
    from btgym import BlenderEnv

    out = tmp_path / "sheet.png"
    args = ["preview", "btgym/Cube-v0", "--kwargs", SMALL, "-n", "4", "-o", str(out)]
    assert main([*args, "--seed", "3"]) == 0
    assert str(out) in capsys.readouterr().out
    sheet = Image.open(out).convert("RGB")
    assert sheet.size == preview.sheet_size(4, 64, 48) == (512, 2 * (192 + 16))
    with BlenderEnv("envs.cube:CubeScene", width=64, height=48) as env:
        corners = [env.reset(seed=seed)[1]["xy"] for seed in (3, 4)]
    tile_w, scale = 256, 4
    for i, xy in enumerate(corners):
        inside = [(x, y) for x, y in xy if 0 <= x < 64 and 0 <= y < 48]
        assert len(inside) >= 4
        for x, y in inside:
            assert pixel(sheet, i * tile_w + x * scale, y * scale) == preview.KEYPOINT_COLOURS[0]


@pytest.mark.blender
def test_bench_prints_frames_per_second_and_ratios(capsys):
    args = ["bench", "btgym/Cube-v0", "--kwargs", SMALL, "--frames", "4", "--rounds", "2"]
    assert main([*args, "--instances", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 interleaved rounds x 4 frames" in lines[0]
    # What renders: Blender's version and backend ("auto": OpenGL on a host without a GPU).
    assert re.fullmatch(
        r"Blender \d+\.\d+\.\d+, graphics backend OPENGL \(chosen: auto\)", lines[1]
    )
    lines = lines[1:]
    assert lines[1].split()[-6:] == [
        "frames/s",
        "ratio",
        "to",
        "render-only",
        "(same",
        "processes)",
    ]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[3:]]
    names = [row[0].split(" (")[0] for row in rows]
    assert names == ["render only", "render only, 2 processes at once", "env", "stream"]
    assert [row[1] for row in rows] == ["1", "2", "1", "2"]
    assert rows[0][3] == "1.00" and rows[1][3] == "1.00"  # each is its own reference
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    assert main(["bench", "btgym/Cube-v0", "--frames", "0"]) == 2


def test_view_says_what_is_missing_without_an_executable_or_a_display(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("BTGYM_BLENDER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'blender' on it
    assert main(["view", "btgym/Cube-v0"]) == 2
    assert "expected a Blender executable for the window" in capsys.readouterr().err
    assert main(["view", "btgym/Cube-v0", "--blender", str(tmp_path / "blender")]) == 1
    assert "expected a Blender executable at" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["view", "btgym/Cube-v0", "--blender", sys.executable]) == 1
    err = capsys.readouterr().err
    assert "expected a display" in err and "Xvfb" in err


@pytest.mark.timeout(300)
def test_view_steps_the_scene_in_blenders_window(xvfb_display, capsys):
    args = ["view", "btgym/Cube-v0", "--kwargs", SMALL, "--steps", "5", "--fps", "20"]
    assert main([*args, "--blender", shutil.which("blender")]) == 0
    out = capsys.readouterr().out
    assert "in Blender's window" in out and "5 steps" in out
