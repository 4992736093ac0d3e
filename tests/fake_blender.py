"""Stands in for a Blender binary: runs ``--python FILE`` (or ``--python-expr CODE``) with
the bpy module, as Blender would."""

import os
import runpy
import sys

args = sys.argv[1:]
if args == ["--version"]:  # how btgym tells a Blender executable from a Python interpreter
    print("Blender (a stand-in running the bpy module)")
    sys.exit(0)
for flag in ("--background", "--factory-startup"):
    assert flag in args, f"expected {flag} in {args}"
os.environ["BTGYM_FAKE_BLENDER"] = "1"
if "--python-expr" in args:  # btgym.blender_python's probe of Blender's own Python
    exec(args[args.index("--python-expr") + 1], {"__name__": "__main__"})
    sys.exit(0)
script = args[args.index("--python") + 1]
sys.argv = [script, *args[args.index("--") :]]
runpy.run_path(script, run_name="__main__")
