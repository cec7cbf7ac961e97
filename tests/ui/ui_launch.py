"""The pytest side of the window tier: run one driver in Debian's Blender under Xvfb and collect what it wrote.

`launch(driver, out, name=...)` isolates Blender's user folders and temporary folder in `out`, puts Debian's
Python first on PATH (Debian's Blender takes the first python3.11 there), runs the driver with event
simulation, kills the whole process group after `timeout`, reads `result.json`, and copies the screenshots
named `<name>-*.png` (and the `crop-*.png` crops) with the log to build/ui-screenshots/. Nothing here
imports `bpy`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import missing_tool
from test_ui import png_facts

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
DOCS = ROOT / "docs" / "screenshots"
UI_PACKAGES = "blender xvfb xauth python3-requests python3-numpy"
SCREEN = "1280x1200x24"
DROPPED = ("TRIVERSE_API_KEY", "TRIVERSE_API_URL", "PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class Run:
    """One run of a driver: what it recorded and how Blender ended."""

    out: Path
    returncode: int | None
    log: str
    result: dict[str, Any] = field(default_factory=dict)
    killed: bool = False

    def section(self, name: str) -> dict[str, Any]:
        """A section of result.json; the test fails with the diagnosis when it is missing."""
        value = self.result.get(name)
        if not isinstance(value, dict):
            pytest.fail(f"result.json has no {name!r} section.\n{self.diagnosis()}")
        return value

    def diagnosis(self) -> str:
        """How Blender ended, the driver's errors and the log's tail."""
        errors = "\n".join(self.result.get("errors", [])) or "(none recorded)"
        state = "killed after the timeout" if self.killed else f"exit code {self.returncode}"
        return f"Blender {state}. Driver errors:\n{errors}\nLog tail:\n{self.log[-3000:]}"


def check_screenshot(run: Run, name: str) -> None:
    """A full-window screenshot the driver wrote, not blank."""
    path = run.out / name
    assert path.is_file(), f"{name} was not written.\n{run.diagnosis()}"
    facts = png_facts(path)
    assert facts["width"] >= 1000 and facts["height"] >= 600, facts
    assert facts["bytes"] > 50_000 and facts["distinct_bytes"] > 100, f"{name} looks blank: {facts}"


def launch(
    driver: Path,
    out: Path,
    *,
    name: str,
    timeout: float = 240.0,
    screen: str = SCREEN,
    env_extra: Mapping[str, str] | None = None,
    docs: Mapping[str, str] | None = None,
) -> Run:
    """Run `driver` once; `docs` maps a crop's file name (in `out`, without "crop-") to its README picture."""
    if os.environ.get("TRIVERSE_UI_SKIP"):
        pytest.skip(f"UI tier skipped: {os.environ['TRIVERSE_UI_SKIP']}")
    missing = [tool for tool in ("blender", "xvfb-run") if shutil.which(tool) is None]
    if missing:
        missing_tool(f"{' and '.join(missing)} not found (apt-get install {UI_PACKAGES})")
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(env_extra or {})
    blender_dir = str(Path(shutil.which("blender") or "/usr/bin/blender").resolve().parent)
    env["PATH"] = os.pathsep.join([blender_dir, "/usr/bin", env.get("PATH", "")])  # Debian's Python for Blender
    for variable, folder in (
        ("BLENDER_USER_CONFIG", "user-config"),
        ("BLENDER_USER_SCRIPTS", "user-scripts"),
        ("BLENDER_USER_DATAFILES", "user-datafiles"),
        ("TMPDIR", "tmp"),
    ):
        (out / folder).mkdir()
        env[variable] = str(out / folder)
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {screen}", "blender", "--factory-startup"]
    command += ["--enable-event-simulate", "--python-exit-code", "3", "--python", str(driver), "--", "--out", str(out)]
    if env.get("TRIVERSE_UI_ADDON_SOURCE"):
        command += ["--addon-source", env["TRIVERSE_UI_ADDON_SOURCE"]]
    log_path = out / "blender.log"
    killed = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)  # xvfb-run, Xvfb and Blender: the group this test started
            proc.wait()
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        result = {}
    _keep(out, name, log_path, result, docs or {})
    return Run(out, proc.returncode, log_path.read_text(errors="replace"), result, killed)


def _keep(out: Path, name: str, log_path: Path, result: dict[str, Any], docs: Mapping[str, str]) -> None:
    """Copy the run's screenshots, crops, log and result to build/ui-screenshots/ (the README's with
    TRIVERSE_UI_UPDATE_DOCS=1)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob(f"{name}-*"):
        old.unlink()
    for path in out.glob(f"{name}-*.png"):
        shutil.copy2(path, SCREENSHOTS / path.name)
    for crop, picture in docs.items():
        path = out / f"crop-{crop}"
        if path.is_file():
            shutil.copy2(path, SCREENSHOTS / f"{name}-{crop.removeprefix(name + '-').replace('.png', '-crop.png')}")
            if os.environ.get("TRIVERSE_UI_UPDATE_DOCS") == "1":
                shutil.copy2(path, DOCS / picture)
    shutil.copy2(log_path, SCREENSHOTS / f"{name}-blender.log")
    (SCREENSHOTS / f"{name}-result.json").write_text(json.dumps(result, indent=1))
