"""The built zip: Blender's validator passes it, Blender's installer installs it, and it imports a model.

Runs in the Blender version of the tier (4.2 and 5.0), in a separate process with its own user
folder, so the installed copy never meets the one the other tests load from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INSTALL_AND_IMPORT = textwrap.dedent(
    """
    import json, os, sys
    import bpy
    result = {}
    ret = bpy.ops.extensions.package_install_files(
        filepath=sys.argv[1], repo="user_default", enable_on_install=True)
    result["installed"] = "bl_ext.user_default.triverse" in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons["bl_ext.user_default.triverse"].preferences
    prefs.api_key, prefs.base_url = "test-key", os.environ["BASE_URL"]
    bpy.context.preferences.system.use_online_access = True
    bpy.ops.wm.read_homefile(use_empty=True)
    result["import"] = sorted(bpy.ops.triverse.import_task(task_uuid=sys.argv[2]))
    result["objects"] = sorted(ob.name for ob in bpy.data.objects if ob.get("triverse_task_uuid") == sys.argv[2])
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)
    """
)


def test_built_zip_validates_installs_and_imports(standin, sample_glb, tmp_path):
    build = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build.py"), "--python", sys.executable, "--output-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    with open(ROOT / "blender_manifest.toml", "rb") as f:
        manifest = tomllib.load(f)
    zip_path = tmp_path / f"triverse-{manifest['version']}.zip"  # named after the manifest's version
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
    layout = {"service/api.py", "service/version.py", "blender/__init__.py", "blender/importing/operators.py"}
    assert {"blender_manifest.toml", "__init__.py", *layout} <= names
    assert {w.removeprefix("./") for w in manifest["wheels"]} <= names  # Blender installs them from here
    assert (tmp_path / f"triverse-{manifest['version']}-legacy.zip").is_file()  # for Blender 3.x
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    task = str(uuid.uuid4())
    standin.add(task, sample_glb)
    script = tmp_path / "install.py"
    script.write_text(INSTALL_AND_IMPORT)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user"), "BASE_URL": standin.base_url}
    proc = subprocess.run(
        [sys.executable, str(script), str(zip_path), task],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result == {"installed": True, "import": ["FINISHED"], "objects": ["Pedestal", "Suzanne"]}
    assert (tmp_path / "user" / "extensions" / "user_default" / "triverse" / "blender_manifest.toml").is_file()
