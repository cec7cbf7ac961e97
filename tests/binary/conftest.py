"""Binary tier: the real Blender program (Debian's `blender`, 3.4 here) run as a user runs it.

Nothing here imports `bpy`: each check starts `blender -b --factory-startup ...` in a subprocess with
its own user folders and temp folder (so what a run leaves behind is seen exactly), against the
stand-in service started in this process. Shared by every test module of the tier.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from standin_server import StandinServer

ROOT = Path(__file__).resolve().parents[2]


def _load_missing_tool():  # type: ignore[no-untyped-def]
    """tests/conftest.py's `missing_tool`: loaded by path, as `import conftest` here would find this file."""
    spec = importlib.util.spec_from_file_location("triverse_tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.missing_tool


missing_tool = _load_missing_tool()  # re-exported: test modules of this tier may `from conftest import missing_tool`
BPY50_PYTHON = ROOT / ".venv" / "bpy50" / "bin" / "python"
PACKAGES = "blender xvfb xauth python3-requests python3-numpy"  # as the UI tier: `scripts/test.py` installs them
API_KEY = "binary-tier-key"
RUN_TIMEOUT = 120.0  # seconds for one Blender run before it is killed


@pytest.fixture(scope="session")
def blender() -> str:
    """The path of the `blender` program; a missing tool (a failure unless skips are allowed) without it."""
    path = shutil.which("blender")
    if path is None:
        missing_tool(f"`blender` not found (apt-get install {PACKAGES})")
    assert path is not None
    return path


@pytest.fixture
def blender_env(tmp_path: Path) -> dict[str, str]:
    """An environment for one Blender run: isolated user config, scripts and temp folder, the system Python.

    Debian's Blender takes the first python3.11 on PATH as its Python: /usr/bin comes first so that a
    venv's or pyenv's interpreter (without Debian's numpy and requests) is not picked up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIVERSE_", "BLENDER_", "PYTHON"))}
    folders = {"BLENDER_USER_CONFIG": "config", "BLENDER_USER_SCRIPTS": "scripts", "TMPDIR": "tmp"}
    for var, name in folders.items():
        (tmp_path / "blender-user" / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp_path / "blender-user" / name)
    env["BLENDER_USER_DATAFILES"] = str(tmp_path / "blender-user" / "datafiles")
    env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    return env


def temp_left(env: dict[str, str]) -> list[str]:
    """What a run left in its own temp folder (the add-on's staging, Blender's session folder, ...)."""
    return sorted(p.name for p in Path(env["TMPDIR"]).iterdir())


def blender_cmd(blender: str, *args: str | os.PathLike[str]) -> list[str]:
    """`blender -b --factory-startup -noaudio ARGS`: background, factory settings, no user startup file.

    No audio device: PulseAudio's client would leave its own `pulse-*` folder in the run's temp folder.
    """
    return [blender, "-b", "--factory-startup", "-noaudio", *map(str, args)]


def run_blender(
    blender: str, args: Sequence[str | os.PathLike[str]], env: dict[str, str], timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run Blender to the end, output captured as text."""
    return subprocess.run(
        blender_cmd(blender, *args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def blend_contents(blender: str, path: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """Open a saved .blend in the same Blender: its objects' names by their `triverse_task_uuid` tag."""
    code = (
        "import bpy, json, sys\n"
        "tags = {}\n"
        "for ob in bpy.data.objects:\n"
        "    tags.setdefault(str(ob.get('triverse_task_uuid', '')), []).append(ob.name)\n"
        "print('CONTENTS=' + json.dumps(tags), flush=True)\n"
    )
    proc = run_blender(blender, [path, "--python-expr", code], env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CONTENTS=")]
    assert proc.returncode == 0 and lines, f"could not open {path}:\n{proc.stdout}{proc.stderr}"
    return json.loads(lines[0].removeprefix("CONTENTS="))


@pytest.fixture(scope="session")
def server() -> Iterator[StandinServer]:
    """The stand-in service (API on 127.0.0.1, assets on 127.0.0.2) for the whole session."""
    with StandinServer(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def standin(server: StandinServer) -> StandinServer:
    """The stand-in with no failure installed and no request recorded."""
    server.clear_failures()
    server.requests.clear()
    return server


@pytest.fixture(scope="session")
def sample_glb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A textured GLB with two objects, written once by Blender 5.0's exporter (the bpy50 environment)."""
    if not BPY50_PYTHON.exists():
        missing_tool(f"{BPY50_PYTHON} not found (python3 scripts/test.py makes it)")
    path = tmp_path_factory.mktemp("assets") / "sample.glb"
    code = (
        f"import sys, pathlib; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import sample_asset; "
        f"sample_asset.make_glb(pathlib.Path({str(path)!r}))"
    )
    proc = subprocess.run([str(BPY50_PYTHON), "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and path.is_file(), proc.stdout + proc.stderr
    return path


def pytest_report_header() -> str:
    """Which Blender the tier runs."""
    path = shutil.which("blender")
    return f"blender: {path or 'not found'} (python: {sys.executable})"
