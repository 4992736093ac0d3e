"""Start a btgym server inside Blender.

With the ``bpy`` module:  ``python -m blender_side --scene envs.cube:CubeScene``
With a Blender binary:    ``blender -b --python blender_side/__main__.py -- --scene ...``

When ready it writes ``{"address", "pid", "instance", "protocol"}`` as JSON to
``--ready-file`` (atomically) and prints the address on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

#: The directory that holds ``blender_side`` and ``btgym``.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _append_site_paths(argv: list[str]) -> None:
    """``--site DIR`` (repeatable): where the trainer provides numpy, pyzmq, ... for Blender.

    Appended after Blender's own paths, before anything imports them; see
    ``btgym.blender_python``.
    """
    for i, arg in enumerate(argv[:-1]):
        if arg == "--site" and argv[i + 1] not in sys.path:
            sys.path.append(argv[i + 1])


def _guard_sys_path(argv: list[str]) -> None:
    """Import nothing from a working directory another user could have planted code in.

    ``python -m`` puts the working directory first on ``sys.path`` (the launcher runs
    ``python -P -m blender_side``, which does not); it stays only when no other user can
    change it. ``--path DIR`` (repeatable; the launcher's checked list, e.g. the
    trainer's working directory for ``package.module:Class`` scenes) goes first instead,
    and must pass the same check. Run before anything else is imported.
    """
    cwd = os.getcwd()
    implicit = [
        p
        for p in sys.path
        if os.path.abspath(p or ".") == cwd and os.path.abspath(p or ".") != _PROJECT
    ]
    sys.path[:] = [p for p in sys.path if p not in implicit]
    script = __package__ in (None, "")  # run as a script by a Blender binary
    if script:
        sys.path.insert(0, _PROJECT)
    _append_site_paths(argv)  # what btgym imports (numpy, gymnasium, ...) for Blender
    from btgym.errors import UntrustedPathError
    from btgym.wire._private_files import untrusted_reason

    if implicit and untrusted_reason(cwd) is None:
        sys.path.insert(int(script), cwd)
    explicit = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--path"]
    for path in reversed(explicit):
        reason = untrusted_reason(path)
        if reason is not None:
            raise UntrustedPathError(
                f"expected --path {path} to be a directory only uid {os.geteuid()} can "
                f"change, got one that another user could: {reason}"
            )
        if path not in sys.path:
            sys.path.insert(int(script), path)


_guard_sys_path(sys.argv)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of ``python -m blender_side`` (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m blender_side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scene", required=True, help="module:Class or file.py:Class")
    parser.add_argument("--kwargs", default="{}", help="scene constructor kwargs as JSON")
    parser.add_argument("--blend", default=None, help=".blend file to open before building")
    parser.add_argument("--bind", default="tcp://127.0.0.1:0", help="ZeroMQ address; port 0 = any")
    parser.add_argument("--instance", default="0", help="instance id shown in errors")
    parser.add_argument("--seed", type=int, default=None, help="seed used until reset(seed=...)")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it is gone")
    parser.add_argument("--ready-file", default=None, help="where to announce the address")
    parser.add_argument("--max-message-bytes", type=int, default=None)
    parser.add_argument(
        "--max-connections", type=int, default=None, help="most peers served at once"
    )
    parser.add_argument(
        "--max-server-bytes", type=int, default=None, help="most bytes queued for all peers"
    )
    parser.add_argument("--curve-secret", default=None, help="server secret key file (CURVE)")
    parser.add_argument("--curve-clients", default=None, help="directory of client public keys")
    parser.add_argument(
        "--site", action="append", default=[], help="extra module directory (appended)"
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        help="module directory searched first (e.g. the trainer's project); checked",
    )
    parser.add_argument(
        "--ui", action="store_true", help="Blender's UI mode: serve from its event loop"
    )
    parser.add_argument(
        "--remove-with-parent",
        default=None,
        help="the launcher's own directory: removed when this server dies after its parent",
    )
    if "--" in argv:  # Blender binary: our arguments follow "--"
        argv = argv[argv.index("--") + 1 :]
    return parser.parse_args(argv)


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to kill us when the parent dies (the server's watchdog covers the rest)."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)


def start_janitor(frame_directory: str, owned: str | None, parent_pid: int | None) -> None:
    """Fork a tiny process that removes our files once this server is gone, however it died.

    A server killed with its trainer (parent-death SIGKILL, the OOM killer) cannot clean
    up; the janitor waits for the end of a pipe whose other end only this process holds,
    then removes the private frame directory and, when the trainer is gone too, the
    launcher's directory (logs, sockets). It forks before Blender is imported.
    """
    from btgym.wire._private_files import process_gone, remove_owned_tree

    read_end, write_end = os.pipe()
    if os.fork() != 0:
        os.close(read_end)
        _JANITOR_PIPE.append(write_end)  # held open until this process ends
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the group: clean up anyway
        os.close(write_end)
        while os.read(read_end, 1):
            pass
        remove_owned_tree(frame_directory)
        if owned and parent_pid is not None and process_gone(parent_pid):
            remove_owned_tree(owned)
    finally:
        os._exit(0)


_JANITOR_PIPE: list[int] = []


def main(argv: list[str] | None = None) -> int | None:
    """Serve the scene until it is closed; the exit status (None with ``--ui``: its UI serves)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from btgym.wire.gpu_backend import apply_to_this_process

    apply_to_this_process()  # before Blender's first draw; the launcher set it already
    die_with_parent(args.parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    from btgym.wire.frame_files import WRITER

    if sys.platform.startswith("linux"):
        start_janitor(WRITER.directory, args.remove_with_parent, args.parent_pid)
    if args.ui:  # the UI's event loop serves after this script returns
        serve(args)
        return None
    try:
        return serve(args)
    finally:
        WRITER.close()


def serve(args: argparse.Namespace) -> int:
    """Build the scene and serve it until ``close`` or the parent's death."""
    from blender_side.loading import build_scene, open_blend_file, scene_from
    from blender_side.server import Server
    from btgym.wire import protocol
    from btgym.wire.gpu_backend import backend_in_use

    instance = int(args.instance) if args.instance.isdigit() else args.instance
    try:
        if args.blend:
            open_blend_file(args.blend)
        scene = scene_from(args.scene, json.loads(args.kwargs))
        if args.seed is not None:
            scene.seed(args.seed)
        build_scene(scene)
        blender_info = _blender_info(backend_in_use())
        server = Server(
            scene,
            bind=args.bind,
            instance=instance,
            parent_pid=args.parent_pid,
            max_message_bytes=args.max_message_bytes or protocol.DEFAULT_MAX_MESSAGE_BYTES,
            curve_secret=args.curve_secret,
            curve_clients=args.curve_clients,
            blender_info=blender_info,
            **({"max_connections": args.max_connections} if args.max_connections else {}),
            **({"max_server_bytes": args.max_server_bytes} if args.max_server_bytes else {}),
        )
    except Exception as exc:  # the launcher's error leads with this, not with a log tail
        _announce(args.ready_file, {"error": f"{type(exc).__name__}: {exc}"})
        raise
    _announce(
        args.ready_file,
        {
            "address": server.address,
            "pid": os.getpid(),
            "instance": instance,
            "protocol": protocol.PROTOCOL_VERSION,
            "blender": blender_info,
        },
    )
    print(f"btgym server {instance} ready at {server.address}", flush=True)
    if args.ui:
        _serve_in_ui(server, scene, instance)
        return 0
    try:
        reason = server.serve_forever()
    finally:
        scene.close()
    print(f"btgym server {instance} stopped: {reason}", flush=True)
    return 0


def _blender_info(gpu_backend: str) -> dict[str, Any]:
    """What the trainer is told about this Blender: version, graphics backend and choice."""
    import bpy

    from btgym.wire.gpu_backend import CHOICE_VARIABLE

    return {
        "version": ".".join(map(str, bpy.app.version)),
        "gpu_backend": gpu_backend,
        "gpu_backend_choice": os.environ.get(CHOICE_VARIABLE, "auto"),
    }


def _announce(ready_file: str | None, announcement: dict[str, Any]) -> None:
    """Write the ready file atomically (the launcher waits for it)."""
    if not ready_file:
        return
    tmp = ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(announcement, f)
    os.replace(tmp, ready_file)


#: Seconds between two updates of the viewports' look in UI mode (the scene may change it).
LOOK_INTERVAL = 0.5


def _look_through_the_camera() -> float:
    """Show the scene as the camera renders it in every 3D viewport (UI mode), again every
    :data:`LOOK_INTERVAL` seconds: its own look, never the id pass's colours.
    """
    import bpy

    scene = bpy.context.scene
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type != "VIEW_3D":
                continue
            space = area.spaces.active
            if scene.camera is not None:
                space.region_3d.view_perspective = "CAMERA"
            show_render_look(space.shading, scene)
            area.tag_redraw()
    return LOOK_INTERVAL


def show_render_look(shading: Any, scene: Any) -> None:
    """Make a viewport's ``shading`` draw like the scene's renders: Workbench's settings
    (``scene.display.shading``: lighting, colours, shadows) in Solid mode, Material
    Preview for Cycles and EEVEE. The id pass never shows (it switches the scene's
    settings only for its own renders).
    """
    from blender_side.kit import plain_settings

    if scene.render.engine != "BLENDER_WORKBENCH":
        shading.type = "MATERIAL"
        return
    shading.type = "SOLID"
    for name, value in plain_settings(scene.display.shading).items():
        if name == "type" or not hasattr(shading, name):
            continue
        try:
            setattr(shading, name, value)
        except (TypeError, ValueError, AttributeError):  # a viewport-only choice
            continue


def _serve_in_ui(server: Any, scene: Any, instance: Any) -> None:
    """Hand serving to Blender's event loop; quit Blender when serving ends."""
    import bpy

    from btgym.wire.frame_files import WRITER

    # Renders from the timer must not open a render window over the scene, nor the splash.
    bpy.context.preferences.view.render_display_type = "NONE"
    bpy.context.preferences.view.show_splash = False
    # Each change of the scene makes Blender redraw the window before the server's timer
    # runs again; the server answers requests in bursts between redraws (serve_in_ui),
    # and the redraws stay cheap without viewport anti-aliasing (Blender's 8 samples
    # cost ~2.8x the CPU in software OpenGL, as under Xvfb).
    bpy.context.preferences.system.viewport_aa = os.environ.get("BTGYM_UI_VIEWPORT_AA", "OFF")
    burst = float(os.environ.get("BTGYM_UI_BURST_MS", "100")) / 1000
    bpy.app.timers.register(_look_through_the_camera, first_interval=0.0)

    def on_stop(reason: str) -> None:
        scene.close()
        WRITER.close()
        print(f"btgym server {instance} stopped: {reason}", flush=True)
        # Blender's own quit from inside a timer crashes 3.4 (addon teardown); nothing
        # is left to save or flush, so leave at once.
        os._exit(0)

    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.serve_in_ui(on_stop, burst=burst)


if __name__ == "__main__":
    code = main()
    if code is not None:  # UI mode returns None: Blender's event loop goes on serving
        sys.exit(code)
