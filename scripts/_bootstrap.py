"""Create the project's virtual environments on first use, so every command works on a fresh clone.

Blender's `bpy` wheels need CPython 3.11; each environment is made with it and remembered by a
marker file holding its requirements, so a changed list reinstalls and an unchanged one costs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_ROOT = ROOT / ".venv"

# websockets: the stand-in's WebSocket server. The add-on's own WebSocket client (websocket-client) is
# not installed here on purpose: Blender installs it from the wheel the extension ships (build.py), and
# the pure tier imports that same wheel, so what is tested is what users get.
TOOLS = ["pytest==8.*", "hypothesis==6.*", "websockets==17.*"]
VENVS: dict[str, list[str]] = {
    # Blender 5.0 as a module.
    "bpy50": ["bpy==5.0.1", *TOOLS],
    # Blender 4.2 LTS as a module; its Python modules were built against numpy 1.x.
    "bpy42": ["bpy==4.2.23", "numpy<2", *TOOLS],
    # Style and types: no real bpy here, only fake-bpy-module's stubs (for types and editors).
    "lint": [
        "ruff==0.15.*",
        "mypy==1.*",
        "pyright[nodejs]==1.1.*",
        "fake-bpy-module-4.2==20260730",
        "requests",
        "types-requests",
        "websocket-client==1.9.*",
        "websockets==17.*",
    ],
}


def python311() -> str:
    """A CPython 3.11 interpreter (the only one Blender's wheels are built for)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    for name in ("python3.11", "python3"):
        found = shutil.which(name)
        if found:
            out = subprocess.run(
                [found, "-c", "import sys;print(sys.version_info[:2]==(3,11))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.stdout.strip() == "True":
                return found
    sys.exit("Blender's bpy module needs Python 3.11: install it (e.g. apt-get install python3.11) and retry.")


def venv_python(name: str) -> Path:
    """The interpreter of environment `name`, created and filled on first use."""
    venv = VENV_ROOT / name
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    wanted = "\n".join(VENVS[name])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"[setup] preparing .venv/{name} ({', '.join(VENVS[name][:2])}...): first run only", flush=True)
    if not python.exists():
        subprocess.run([python311(), "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *VENVS[name]],
        check=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    marker.write_text(wanted)
    return python


def reexec_in(name: str) -> None:
    """Run the calling script again inside environment `name`, unless it already runs there."""
    python = venv_python(name)
    if Path(sys.prefix).resolve() != (VENV_ROOT / name).resolve():
        os.execv(str(python), [str(python), *sys.argv])
