"""The longest main-thread stall during a sidebar download (the UI tier's driver under Xvfb)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .common import ROOT, TIMEOUT, UI_SCENARIO, UI_SCREEN, run_group
from .startup import RELEASE, VERSIONS


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

# The figures read from the driver's result.json (its "stall" section), by the name used here. 0.2.0's driver
# (tests/ui/ui_panel.py's scenario_slow at ff70944) writes the same keys as the working tree's; a key either
# driver names differently goes in ALIASES (name here -> the driver's name).
KEYS = ("max_gap_ms", "p95_gap_ms", "baseline_max_gap_ms", "addon_max_ms", "redraw_only_max_gap_ms")
START_KEYS = (
    "start_phase_max_gap_ms",  # the first click on Import: the longest gap from the click to 1 s after the start
    "start_phase_max_gap_at_s",  # ... when that gap began, in s after the click (from start_phase.gaps_ms)
    "start_phase_next_gap_ms",  # ... the longest of the other gaps of the start phase
    "start_phase_addon_max_ms",  # ... the add-on's own time between two probe ticks, longest
    "start_phase_addon_max_call_ms",  # ... the add-on's longest single call (from start_phase.addon_calls)
    "addon_max_call_ms",  # the steady download: the add-on's longest single call
    "click_to_job_ms",
    "download_started_after_ms",
)
ALIASES: dict[str, str] = {}


def _figures(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures of one run, from either driver's result.json (None for one it did not write)."""
    stall = result if "max_gap_ms" in result else result.get("stall") or {}
    out: dict[str, float | None] = {}
    for key in (*KEYS, *START_KEYS):
        value = stall.get(ALIASES.get(key, key))
        out[key] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    start = stall.get("start_phase") or {}
    gaps = [float(g) for g in start.get("gaps_ms") or []]
    if gaps:
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        out["start_phase_max_gap_at_s"] = round(sum(gaps[:worst]) / 1000, 3)  # the probe starts at the click
        out["start_phase_next_gap_ms"] = max((g for i, g in enumerate(gaps) if i != worst), default=None)
        if out["start_phase_max_gap_ms"] is None:
            out["start_phase_max_gap_ms"] = gaps[worst]
    calls = start.get("addon_calls") or {}
    if calls:
        out["start_phase_addon_max_call_ms"] = max(float(c["max_ms"]) for c in calls.values())
    return out


def _run_driver(driver: Path, tmp: Path, name: str) -> tuple[int | str, dict[str, Any], Path]:
    """One run of `driver --scenario stall` in Debian's Blender under Xvfb: (exit code, its result.json, log)."""
    out_dir = tmp / name
    user = tmp / f"{name}-user"
    out_dir.mkdir()
    cmd = ["xvfb-run", "-a", "-s", UI_SCREEN, "blender", "--factory-startup", "--enable-event-simulate"]
    cmd += ["--python", str(driver), "--", "--out", str(out_dir), "--scenario", UI_SCENARIO]
    log = tmp / f"{name}.log"
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
        raise RuntimeError(f"{_shown(driver)} (exit code {code}) wrote no result.json:\n{tail}")
    return code, json.loads(result_file.read_text()), log


class _Series:
    """The runs of one driver: samples of each figure, the problems, the raw results."""

    def __init__(self, label: str, driver: Path) -> None:
        self.label, self.driver = label, driver
        self.samples: dict[str, list[float]] = {k: [] for k in (*KEYS, *START_KEYS)}
        self.raw: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.given_up = False

    def run(self, tmp: Path, r: int, runs: int) -> None:
        """One run; a failed first run gives up the series (the others would fail the same way)."""
        code, result, log = _run_driver(self.driver, tmp, f"ui-{self.label}-{r}")
        figures = _figures(result)
        self.raw.append({"exit_code": code, "figures": figures, "result": result})
        tag = f"[stall] {self.label}: run {r + 1}/{runs}"
        if result.get("ok") is False or figures["max_gap_ms"] is None:
            first = next(iter(result.get("errors") or []), "no max_gap_ms in result.json")
            why = str(first).strip().splitlines()[-1][:200]
            # The add-on's own traceback in Blender's output, if any, says more than the driver's timeout.
            errors = [line.strip() for line in log.read_text(errors="replace").splitlines() if _ERROR_LINE.match(line)]
            cause = next((e for e in errors if e != why), "")
            self.problems.append(f"run {r + 1}: {why}" + (f" (Blender's log: {cause[:200]})" if cause else ""))
            print(f"{tag} failed: {self.problems[-1]}", flush=True)
            self.given_up = not self.samples["max_gap_ms"]
            return
        for key, value in figures.items():
            if value is not None:
                self.samples[key].append(value)
        print(
            f"{tag}: first click {figures['start_phase_max_gap_ms']} ms at +{figures['start_phase_max_gap_at_s']} s, "
            f"steady {figures['max_gap_ms']} ms, add-on's longest call {figures['start_phase_addon_max_call_ms']} / "
            f"{figures['addon_max_call_ms']} ms",
            flush=True,
        )

    def result(self) -> dict[str, Any]:
        """The samples (raises when no run gave a result)."""
        if not self.samples["max_gap_ms"]:
            raise RuntimeError(f"{self.label}: " + ("; ".join(self.problems) or "no run gave a result"))
        return {"driver": _shown(self.driver), "scenario": UI_SCENARIO, **self.samples, "problems": self.problems,
                "raw": self.raw}  # fmt: skip


def bench_stall(driver: Path, runs: int, tmp: Path) -> dict[str, Any]:
    """Run the UI tier's stall scenario in Debian's Blender under Xvfb; collect its result.json."""
    series = _Series("now", driver)
    for r in range(runs):
        series.run(tmp, r, runs)
        if series.given_up:
            break
    return series.result()


def export_release_tree(commit: str, dest: Path) -> Path:
    """The whole tree of `commit` (`git archive COMMIT | tar -x`) in `dest`, with this checkout's wheel cache
    (build/wheels) copied into it so its scripts/build.py fetches nothing; returns `dest`."""
    import io
    import tarfile

    import build

    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True,
                             timeout=120).stdout  # fmt: skip
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(dest, filter="data")
    build.fetch_wheels()  # the working tree's cache, filled if empty (0.2.0 lists the same wheel)
    shutil.copytree(ROOT / "build" / "wheels", dest / "build" / "wheels", dirs_exist_ok=True)
    return dest


def bench_stall_versions(driver: Path, runs: int, tmp: Path) -> dict[str, Any]:
    """The stall scenario of 0.2.0 (its own tree's driver, staging its own add-on) and of now (`driver`), runs
    alternating 0.2.0, now, 0.2.0, now...; now's samples also at the top level, as `bench_stall` gives them."""
    release = export_release_tree(RELEASE[1], tmp / f"release-{RELEASE[0]}")
    series = {RELEASE[0]: _Series(RELEASE[0], release / "tests" / "ui" / "drive_ui.py"), "now": _Series("now", driver)}
    load_start = os.getloadavg()
    for r in range(runs):
        for version in VERSIONS:
            if not series[version].given_up:
                series[version].run(tmp, r, runs)
    now = series["now"].result()  # raises when now gave nothing: the measure failed
    versions: dict[str, Any] = {"now": now}
    try:
        versions[RELEASE[0]] = series[RELEASE[0]].result()
    except RuntimeError as exc:
        versions[RELEASE[0]] = {"not_measured": " ".join(str(exc).split())[:300]}
    top = {k: v for k, v in now.items() if k != "raw"}
    return {**top, "release_commit": RELEASE[1], "order": [*VERSIONS], "runs": runs,
            "loadavg": [load_start, os.getloadavg()], "versions": versions}  # fmt: skip


# -- machine ---------------------------------------------------------------------------------------
