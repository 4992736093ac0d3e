"""Stands in for a Blender binary: runs ``--python FILE`` with the bpy module, as Blender would."""

import os
import runpy
import sys

args = sys.argv[1:]
for flag in ("--background", "--factory-startup"):
    assert flag in args, f"expected {flag} in {args}"
script = args[args.index("--python") + 1]
sys.argv = [script, *args[args.index("--") :]]
os.environ["BTGYM_FAKE_BLENDER"] = "1"
runpy.run_path(script, run_name="__main__")
