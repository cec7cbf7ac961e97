"""Blender 3.x users: Debian's Blender 3.4 installs the legacy zip with its own Install... operator.

Runs the real `blender` program (`-b`) with its own user config and scripts folders, driven by a small
script: `bpy.ops.preferences.addon_install` (what **Preferences > Add-ons > Install...** runs), then
`addon_utils.enable`, a real task imported from the stand-in service, then the preferences saved; a
second Blender start finds the add-on enabled.
Run with `.venv/bpy50/bin/python -m pytest tests/binary` (the zip is built with scripts/build.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import tomllib
import uuid
from pathlib import Path

import pytest
from support import missing_tool

ROOT = Path(__file__).resolve().parents[2]


DRIVER = textwrap.dedent(
    """
    import json, sys
    import bpy, addon_utils

    args = sys.argv[sys.argv.index("--") + 1 :]
    step, out = args[0], args[1]
    result = {"step": step, "blender": bpy.app.version_string}
    try:
        if step == "install":
            result["install"] = sorted(bpy.ops.preferences.addon_install(filepath=args[2]))
        # What the add-ons list shows before anything is imported: bl_info read with ast.literal_eval.
        listed = [m for m in addon_utils.modules(refresh=True) if m.__name__ == "triverse"]
        result["listed"] = [[m.__file__, list(addon_utils.module_bl_info(m)["version"])] for m in listed]
        if step == "install":
            result["enable"] = addon_utils.enable("triverse", default_set=True) is not None
            bpy.ops.wm.save_userpref()
        result["enabled"] = "triverse" in bpy.context.preferences.addons
        result["panel"] = hasattr(bpy.types, "TRIVERSE_PT_import")
        result["operator"] = hasattr(bpy.types, "TRIVERSE_OT_import_task")
        result["operator_name"] = bpy.ops.triverse.import_task.get_rna_type().name if result["operator"] else None
        if result["enabled"]:
            import triverse.service.transport, triverse.service.version
            result["version"] = triverse.service.version.VERSION
            result["user_agent"] = triverse.service.transport.USER_AGENT
        if step == "install":  # the operator works: a real task from the stand-in service
            import numpy
            numpy.bool = bool  # Debian's Blender 3.4 glTF importer vs Debian's numpy 1.24: a driver fix
            prefs = bpy.context.preferences.addons["triverse"].preferences
            prefs.api_key, prefs.base_url = args[3], args[4]
            result["import"] = sorted(bpy.ops.triverse.import_task(task_uuid=args[5]))
            result["objects"] = sorted(o.name for o in bpy.data.objects if o.get("triverse_task_uuid") == args[5])
            try:
                import websocket  # Blender 3.x cannot install the extension's wheel: the zip ships none
                result["websocket"] = websocket.__file__
            except ImportError:
                result["websocket"] = None
    except Exception as ex:
        import traceback
        result["error"] = traceback.format_exc()
    with open(out, "w") as f:
        json.dump(result, f)
    sys.exit(0)
    """
)


@pytest.fixture(scope="module")
def blender_bin() -> str:
    """Debian's Blender 3.x (the `blender` program)."""
    found = shutil.which("blender")
    if found is None:
        missing_tool("Debian's Blender (`blender`) is not installed: apt-get install blender python3-requests")
        raise AssertionError("unreachable")
    return found


def manifest_version() -> str:
    with open(ROOT / "blender_manifest.toml", "rb") as f:
        return str(tomllib.load(f)["version"])


def run_blender(blender: str, tmp: Path, step: str, *args: str, factory: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(["/usr/bin", env.get("PATH", "")])  # the system Python Blender was built for
    for name, folder in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts")):
        env[name] = str(tmp / folder)
    env.pop("TRIVERSE_API_KEY", None)
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    out = tmp / f"{step}.json"
    cmd = [blender, "-b", *(["--factory-startup"] if factory else []), "--python-exit-code", "3"]
    cmd += ["--python", str(driver), "--", step, str(out), *args]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=180)
    assert run.returncode == 0 and out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    return result


def test_blender_3_installs_and_enables_the_legacy_zip(blender_bin, tmp_path):
    import build
    import sample_asset  # Blender 5.0's glTF exporter (this tier's Python is the bpy50 environment)
    from standin_server import StandinServer

    version = manifest_version()
    zip_path = build.build_legacy(tmp_path / "dist")
    assert zip_path.name == f"triverse-{version}-legacy.zip"

    task = str(uuid.uuid4())
    with StandinServer(api_key="legacy-key") as server:
        server.add(task, sample_asset.make_glb(tmp_path / "sample.glb"))
        args = (str(zip_path), "legacy-key", server.base_url, task)
        first = run_blender(blender_bin, tmp_path, "install", *args, factory=True)
        agents = {v for r in server.requests for k, v in r.headers.items() if k.lower() == "user-agent"}
    assert first["blender"].startswith("3.")
    assert first["install"] == ["FINISHED"]
    installed = tmp_path / "scripts" / "addons" / "triverse" / "__init__.py"
    assert first["listed"] == [[str(installed), [int(p) for p in version.split(".")]]]
    assert first["enable"] and first["enabled"]
    assert first["panel"] and first["operator"] and first["operator_name"]
    assert first["version"] == version and first["user_agent"] == f"triverse-blender/{version}"
    assert first["websocket"] is None  # nothing in the zip for Blender 3.x to install, and none needed
    assert first["import"] == ["FINISHED"] and first["objects"] == ["Pedestal", "Suzanne"]
    assert agents == {f"triverse-blender/{version}"}

    # A restart: Blender reads the saved preferences and enables the add-on again.
    again = run_blender(blender_bin, tmp_path, "restart", factory=False)
    assert again["enabled"] and again["panel"] and again["operator"]
    assert again["version"] == version
