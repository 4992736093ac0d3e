"""blender_side.matcaps: channel names read from an EXR header by hand, checked against
OpenEXR on Blender's own matcaps and against hostile headers.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from blender_side import matcaps
from btgym.errors import RenderError


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _chlist(names: list[str]) -> bytes:
    # per channel: name, pixel type (1: half), pLinear + 3 reserved bytes, x and y sampling
    body = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for n in names)
    return body + b"\0"


def _header(*attributes: bytes) -> bytes:
    return matcaps.EXR_MAGIC + struct.pack("<I", 2) + b"".join(attributes) + b"\0"


def test_channel_names_come_from_the_channels_attribute(tmp_path: Path):
    names = ["diffuse.A", "diffuse.B", "specular.R"]
    path = tmp_path / "m.exr"
    path.write_bytes(
        _header(
            _attribute("comments", "string", b"chlist-looking\0text"),
            _attribute("channels", "chlist", _chlist(names)),
            _attribute("compression", "compression", b"\x08"),
        )
        + b"pixels"
    )
    assert matcaps.exr_channels(str(path)) == names


def test_other_files_and_headers_without_channels_list_none(tmp_path: Path):
    png = tmp_path / "m.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert matcaps.exr_channels(str(png)) == []
    bare = tmp_path / "bare.exr"
    bare.write_bytes(_header(_attribute("compression", "compression", b"\x00")))
    assert matcaps.exr_channels(str(bare)) == []


#: The size field of a one-channel ``chlist`` attribute, which the damage below changes.
ONE_CHANNEL_SIZE = struct.pack("<i", len(_chlist(["R"])))


@pytest.mark.parametrize(
    "damage",
    [
        lambda h: h[:20],  # cut inside an attribute
        lambda h: h.replace(ONE_CHANNEL_SIZE, struct.pack("<i", -5), 1),  # negative size
        lambda h: h.replace(ONE_CHANNEL_SIZE, struct.pack("<i", 1 << 30), 1),  # past the end
    ],
)
def test_a_damaged_header_is_a_render_error_naming_the_file(tmp_path: Path, damage):
    header = _header(_attribute("channels", "chlist", _chlist(["R"])))
    assert ONE_CHANNEL_SIZE in header
    path = tmp_path / "bad.exr"
    path.write_bytes(damage(header))
    with pytest.raises(RenderError, match="bad.exr"):
        matcaps.exr_channels(str(path))


def test_a_header_longer_than_the_bound_is_refused(tmp_path: Path):
    filler = _attribute("comments", "string", b"x" * matcaps.MAX_EXR_HEADER)
    path = tmp_path / "long.exr"
    path.write_bytes(_header(filler, _attribute("channels", "chlist", _chlist(["R"]))))
    with pytest.raises(RenderError, match="within"):
        matcaps.exr_channels(str(path))


def test_blender_matcaps_list_the_channels_openexr_reads():
    import bpy
    import OpenEXR

    from envs.parts import bundled_matcaps

    lights = bpy.context.preferences.studio_lights
    for name in bundled_matcaps()[:4]:
        path = lights[name].path
        with OpenEXR.File(path, separate_channels=True) as file:
            expected = sorted(file.channels())
        assert sorted(matcaps.exr_channels(path)) == expected
        assert {"diffuse.R", "specular.R"} <= set(expected)


def test_without_openexr_a_specular_pass_is_refused_with_the_way_out(monkeypatch):
    import sys

    from envs.parts import bundled_matcaps

    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # import OpenEXR raises ImportError
    name = bundled_matcaps()[0]
    with pytest.raises(RenderError, match="pip install openexr") as caught:
        matcaps.load_matcap(name, specular=True)
    assert name in str(caught.value) and "show_specular_highlight" in str(caught.value)
