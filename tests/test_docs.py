"""The README's and docs' code snippets: every block compiles and imports, marked ones run.

A block preceded by an HTML comment starting with ``<!-- run`` is executed (in a fresh
interpreter, in a scratch directory holding the example ``shelf.blend`` and a link to
``envs/``); every other ``python`` block must compile, and each of its ``import`` lines
must name modules and attributes that exist. A docs claim the code contradicts fails
here first.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, thread_servers

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(<!-- run[^\n]*-->\n)?```python\n(.*?)```", re.S)


def blocks() -> list[tuple[str, int, str, bool]]:
    """``(page, line, code, runnable)`` for every python block of the pages."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start(2)) + 1
            code = textwrap.dedent(match.group(2))  # blocks inside list items are indented
            found.append((page.name, line, code, match.group(1) is not None))
    return found


BLOCKS = blocks()
IDS = [f"{page}:{line}" for page, line, _, _ in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_every_snippet_compiles_and_its_imports_exist(block):
    page, line, code, _ = block
    tree = ast.parse(code, filename=f"{page}:{line}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or _is_module(node.module, alias.name), (
                    f"{page}:{line}: {node.module} has no {alias.name}"
                )


def _is_module(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
    except ImportError:
        return False
    return True


RUNNABLE = [block for block in BLOCKS if block[3]]


def test_the_readme_quick_start_the_scene_guide_and_the_migration_guide_are_marked_to_run():
    pages = {page for page, _, _, _ in RUNNABLE}
    assert {"README.md", "your-scene.md", "migrating-from-blendtorch.md"} <= pages


ECHO_CLIENT = re.compile(
    r"<!-- echo-client[^\n]*-->\n```python\n(.*?)```\n\nOutput[^\n]*\n\n```\n(.*?)```", re.S
)


def test_the_protocol_pages_client_talks_to_the_echo_scene_as_shown(tmp_path):
    """The raw pyzmq + msgpack client of docs/protocol.md, run against the echo scene."""
    code, shown = ECHO_CLIENT.search((ROOT / "docs" / "protocol.md").read_text()).groups()
    with thread_servers(1, transport="ipc") as (server,):  # a server thread of this process
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({"address": server.address}))
        done = subprocess.run(
            [sys.executable, "-c", code, str(ready)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    times = re.compile(r"'time': [0-9.]+")  # the only value that changes from run to run
    assert times.sub("'time': T", done.stdout) == times.sub("'time': T", shown)


def test_the_scene_guides_shelf_scene_is_the_shipped_example():
    """docs/your-scene.md shows envs/examples/shelf.py's class, docstrings left out."""
    page = (ROOT / "docs" / "your-scene.md").read_text()
    shown = next(code for code in FENCE.findall(page) if "class ShelfScene" in code[1])[1]
    shipped = (ROOT / "envs" / "examples" / "shelf.py").read_text()
    assert _class_without_docstrings(shown, "ShelfScene") == _class_without_docstrings(
        shipped, "ShelfScene"
    )


def _class_without_docstrings(code: str, name: str) -> str:
    tree = ast.parse(textwrap.dedent(code))
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
    for node in ast.walk(cls):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.ClassDef | ast.FunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:]
    return ast.dump(cls)


@pytest.mark.blender
@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"{b[0]}:{b[1]}" for b in RUNNABLE])
def test_marked_snippets_run(block, tmp_path):
    page, line, code, _ = block
    maker = ROOT / "envs" / "examples" / "make_blend.py"
    subprocess.run(
        [sys.executable, str(maker), str(tmp_path / "shelf.blend")],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (tmp_path / "envs").symlink_to(ROOT / "envs")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, f"{page}:{line} failed:\n{done.stderr[-3000:]}"


def test_pages_link_only_to_files_that_exist():
    link = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
    for page in PAGES:
        for target in link.findall(page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
