"""Shared fixtures: real Blender instances started through the launcher, and the same
scenes served by the real server on a thread of this process (no Blender process).

Tiers: a test that starts a Blender process (``bpy`` or a Blender binary) is marked
``blender``: by hand when it launches one itself, and here, at collection, when it uses
a fixture made with :func:`blender_fixture`. ``make test-fast`` runs the rest
(``-m "not blender and not slow"``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))
# Debug mode for every server the tests start: observations are checked against spaces.
os.environ["BTGYM_CHECK_OBSERVATIONS"] = "1"

ECHO_SCENE = "tests.scenes.echo:EchoScene"
SMALL_CUBE = {"width": 160, "height": 128}
#: What a fixture made with :func:`blender_fixture` carries.
_STARTS_BLENDER = "_btgym_starts_blender"


def blender_fixture(*args: Any, **kwargs: Any) -> Any:
    """``pytest.fixture`` for a fixture that starts Blender: its tests get the ``blender`` mark."""

    def mark(function: Any) -> Any:
        setattr(function, _STARTS_BLENDER, True)
        return pytest.fixture(**kwargs)(function)

    return mark(args[0]) if args and callable(args[0]) else mark


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``blender`` every test that uses a Blender fixture, directly or through another."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        definitions = info.name2fixturedefs if info is not None else {}
        if any(
            getattr(definition.func, _STARTS_BLENDER, False)
            for name in getattr(item, "fixturenames", ())
            for definition in definitions.get(name, ())
        ):
            item.add_marker(pytest.mark.blender)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """One torch thread: its OpenMP threads spin while they wait, so on a busy 2-core
    machine two of them train the tests' small models many times slower than one."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _starts_blender(args: Any) -> bool:
    """Whether a command line runs a Blender instance (``blender_side``) or Blender itself."""
    words = [os.fspath(w) for w in args] if isinstance(args, list | tuple) else [str(args)]
    return any(
        word == "blender_side"
        or word.endswith(("blender_side/__main__.py", "fake_blender.py"))
        or os.path.basename(word).startswith("blender")
        for word in words
    )


def _command(args: Any) -> str:
    words = [os.fspath(w) for w in args] if isinstance(args, list | tuple) else [str(args)]
    return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """A test without the ``blender`` mark fails when it (or a fixture it sets up) starts a
    Blender process."""
    if item.get_closest_marker("blender") is not None:
        return (yield)
    original = subprocess.Popen.__init__

    def refuse_blender(self: Any, args: Any, *more: Any, **options: Any) -> None:
        if _starts_blender(args):
            raise AssertionError(
                f"{item.nodeid} starts Blender ({_command(args)}): mark it @pytest.mark.blender "
                "(or make its fixture with blender_fixture) so that `make test-fast` skips it"
            )
        original(self, args, *more, **options)

    subprocess.Popen.__init__ = refuse_blender  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


@blender_fixture(scope="module")
def echo_launcher():
    from btgym.launcher import Launcher

    with Launcher(ECHO_SCENE, 1, seed=7) as launcher:
        yield launcher


@contextlib.contextmanager
def thread_servers(
    count: int, seed: int = 0, scene: str = ECHO_SCENE, transport: str = "inproc", **kwargs: Any
) -> Iterator[list[Any]]:
    """``count`` servers of ``scene`` on threads, seeded and numbered as a launcher would."""
    from blender_side.thread_server import ThreadServer

    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                ThreadServer(scene, transport=transport, seed=seed + i, instance=i, **kwargs)
            )
            for i in range(count)
        ]


@pytest.fixture(scope="module")
def echo_server():
    """The echo scene served on a thread of this process (``inproc://``), seeded as launched."""
    from blender_side.thread_server import ThreadServer

    with ThreadServer(ECHO_SCENE, seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def echo_env(echo_server):
    """A ``BlenderEnv`` connected to :func:`echo_server`."""
    from btgym import BlenderEnv

    env = BlenderEnv(address=echo_server.address, timeout=20)
    yield env
    env.close()


@blender_fixture(scope="module")
def cube_env():
    import gymnasium as gym

    import btgym  # noqa: F401  (registers the env ids)

    env = gym.make("btgym/Cube-v0", render_mode="rgb_array", **SMALL_CUBE)
    yield env
    env.close()


@blender_fixture
def xvfb_display(monkeypatch):
    """A private Xvfb display as ``DISPLAY`` for Blender's UI mode (skipped without one)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None or shutil.which("blender") is None or shutil.which("import") is None:
        pytest.skip(
            "Blender's UI mode needs Blender, Xvfb and ImageMagick (apt-get install blender "
            "xvfb imagemagick; .ci/run installs them)"
        )
    taken = lambda n: any(  # noqa: E731
        os.path.exists(path) for path in (f"/tmp/.X11-unix/X{n}", f"/tmp/.X{n}-lock")
    )
    number = next(n for n in range(90, 200) if not taken(n))
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/tmp/.X11-unix/X{number}") and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the condition: the display's socket
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield f":{number}"
    server.terminate()
    server.wait(10)
