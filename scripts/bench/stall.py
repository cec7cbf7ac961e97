"""The longest main-thread stall during a sidebar download (the UI tier's driver under Xvfb)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .common import ROOT, TIMEOUT, UI_SCENARIO, UI_SCREEN, run_group


def ui_unavailable(driver: Path) -> str:
    """Why the UI measure cannot run here, or "" when it can."""
    missing = [name for name in ("blender", "xvfb-run") if not shutil.which(name)]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install blender xvfb xauth python3-requests)"
    if not driver.is_file():
        return f"{_shown(driver)} does not exist yet"
    return ""


def _shown(path: Path) -> str:
    """A path relative to the checkout when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


_ERROR_LINE = re.compile(r"^\s*[A-Z]\w*(Error|Exception): ")


def bench_stall(driver: Path, runs: int, tmp: Path) -> dict[str, Any]:
    """Run the UI tier's stall scenario in Debian's Blender under Xvfb; collect its result.json."""
    keys = ("max_gap_ms", "p95_gap_ms", "baseline_max_gap_ms", "addon_max_ms", "redraw_only_max_gap_ms")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    raw, problems = [], []
    for r in range(runs):
        out_dir = tmp / f"ui-{r}"
        user = tmp / f"ui-{r}-user"
        out_dir.mkdir()
        cmd = ["xvfb-run", "-a", "-s", UI_SCREEN, "blender", "--factory-startup", "--enable-event-simulate"]
        cmd += ["--python", str(driver), "--", "--out", str(out_dir), "--scenario", UI_SCENARIO]
        log = tmp / f"ui-{r}.log"
        env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config")}  # isolated preferences
        # Debian's Blender takes its Python home from the first python3.11 on PATH: a pyenv or venv one
        # put first (pyenv's shim does) gives it the wrong standard library and no numpy.
        blender_dir = str(Path(shutil.which("blender") or "/usr/bin/blender").resolve().parent)
        env["PATH"] = os.pathsep.join([blender_dir, *(d for d in env.get("PATH", "").split(os.pathsep) if d)])
        env.pop("BLENDER_USER_SCRIPTS", None)  # the driver stages the add-on in a scripts folder of its own
        code = run_group(cmd, TIMEOUT["ui"], log, env=env)
        result_file = out_dir / "result.json"
        if not result_file.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"drive_ui.py (exit code {code}) wrote no result.json:\n{tail}")
        result = json.loads(result_file.read_text())
        figures = result if "max_gap_ms" in result else result.get("stall") or {}
        raw.append({"exit_code": code, "figures": {k: figures.get(k) for k in keys}, "result": result})
        if result.get("ok") is False or not isinstance(figures.get("max_gap_ms"), int | float):
            first = next(iter(result.get("errors") or []), "no max_gap_ms in result.json")
            why = str(first).strip().splitlines()[-1][:200]
            # The add-on's own traceback in Blender's output, if any, says more than the driver's timeout.
            errors = [line.strip() for line in log.read_text(errors="replace").splitlines() if _ERROR_LINE.match(line)]
            cause = next((e for e in errors if e != why), "")
            problems.append(f"run {r + 1}: {why}" + (f" (Blender's log: {cause[:200]})" if cause else ""))
            print(f"[stall] run {r + 1}/{runs} failed: {problems[-1]}", flush=True)
            if not samples["max_gap_ms"]:
                break  # the first run failed: the others would fail the same way
            continue
        for k in keys:
            if isinstance(figures.get(k), int | float):
                samples[k].append(float(figures[k]))
        print(f"[stall] run {r + 1}/{runs}: max gap {figures['max_gap_ms']} ms", flush=True)
    if not samples["max_gap_ms"]:
        raise RuntimeError("; ".join(problems) or "no run gave a result")
    return {"driver": _shown(driver), "scenario": UI_SCENARIO, **samples, "problems": problems, "raw": raw}


# -- machine ---------------------------------------------------------------------------------------
