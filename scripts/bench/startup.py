"""Start-up: what enabling the add-on adds to Blender's start, release 0.2.0 against the working tree.

Each run is a fresh bpy 5.0 process (`.venv/bpy50`) with a fresh `BLENDER_USER_RESOURCES`: `import bpy`, the
extensions repository registered, the extension's wheel installed (untimed: Blender does it once, when the
extension is installed, not at each start), then `addon_utils.enable("bl_ext.dev.triverse", default_set=True)`
timed alone, with the modules it added to sys.modules. A baseline run is the same process without the enable,
so what the add-on adds to the start is the enable's own time. After the enable, the process runs the add-on's
start-up steps (the network stack imported, My Generations read: in a window a timer runs one step per tick
after Blender's start) and times each: the longest is the most a tick holds the main thread.

The worker is started as `python -c` importing this module only, not through `benchmark.py _name` as the other
workers are: that entry point imports the whole benchmark first (uuid, shutil, tempfile, zlib... which `import
bpy` does not load), and the enable would then find them loaded and neither count nor pay for them. So this
module imports at its top only what `import bpy` loads anyway; the parent side imports the rest where used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

RELEASE = ("0.2.0", "ff70944")  # (label, commit): the release measured against the working tree
VERSIONS = (RELEASE[0], "now")
MODULE = "bl_ext.dev.triverse"
NETWORK = ("requests", "urllib3", "ssl")  # imported at register by 0.2.0; by the start-up steps after it now
STARTUP = f"{MODULE}.blender.common.startup"  # the start-up steps (now only; 0.2.0 did it all in the enable)
BPY_VENV = "bpy50"


# -- the extension, staged from a source tree ------------------------------------------------------


def export_release(commit: str, dest: Path) -> Path:
    """`git archive COMMIT triverse_addon blender_manifest.toml`, unpacked into `dest`; returns `dest`."""
    import io
    import tarfile

    from .common import ROOT

    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "triverse_addon", "blender_manifest.toml"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(dest, filter="data")
    return dest


def stage_tree(source: Path, dest_parent: Path) -> Path:
    """Lay out `<dest_parent>/<id>/` from `source` (a folder with `triverse_addon/` and `blender_manifest.toml`,
    e.g. an exported release) as `build.stage(dest_parent, link=False)` does for the working tree: the package's
    files (no __pycache__), the manifest beside `__init__.py`, and the manifest's wheels under `wheels/`."""
    import shutil
    import tomllib

    import build

    with open(source / "blender_manifest.toml", "rb") as f:
        info = tomllib.load(f)
    have = {path.name: path for path in build.fetch_wheels()}
    wheels = []
    for entry in info.get("wheels", []):
        name = Path(entry).name
        if name not in have:
            raise RuntimeError(f"{source}'s manifest lists {name}, which the current manifest does not fetch")
        wheels.append(have[name])
    package = source / "triverse_addon"
    target = dest_parent / info["id"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    for src in files:
        dst = target / src.relative_to(package)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    shutil.copy2(source / "blender_manifest.toml", target / "blender_manifest.toml")
    for wheel in wheels:
        (target / "wheels").mkdir(exist_ok=True)
        shutil.copy2(wheel, target / "wheels" / wheel.name)
    return target


# -- the measure -------------------------------------------------------------------------------------


def bench_startup(runs: int, tmp: Path) -> dict[str, Any]:
    """Stage both versions, one untimed warm-up run of each, then rounds of (0.2.0, now, baseline); summarise."""
    import shutil
    import statistics

    import _bootstrap

    from .common import ROOT, summary

    python = str(_bootstrap.venv_python(BPY_VENV))
    work = tmp / "startup"
    repos = {
        RELEASE[0]: work / f"repo-{RELEASE[0]}",
        "now": work / "repo-now",
    }
    stage_tree(export_release(RELEASE[1], work / f"src-{RELEASE[0]}"), repos[RELEASE[0]])
    stage_tree(ROOT, repos["now"])
    load_start = os.getloadavg()
    # The first start after an install compiles the package's bytecode into __pycache__; later starts read it.
    first = {version: _run(python, repos[version], True, work, f"warm-{version}") for version in VERSIONS}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in (*VERSIONS, "baseline")}
    for i in range(runs):
        for version in VERSIONS:
            samples[version].append(_run(python, repos[version], True, work, f"{version}-{i}"))
        samples["baseline"].append(_run(python, repos["now"], False, work, f"baseline-{i}"))
    result: dict[str, Any] = {
        "bpy": samples["baseline"][0]["bpy"],
        "python": python,
        "release_commit": RELEASE[1],
        "runs": runs,
        "samples": samples,
        "loadavg": [load_start, os.getloadavg()],
    }
    for name, runs_of in samples.items():
        result[name] = {
            "enable_ms": [s["enable_s"] * 1000 for s in runs_of] if name != "baseline" else [],
            "start_ms": [s["start_s"] * 1000 for s in runs_of],  # import bpy + repository + wheels + enable
            "modules_added": [len(s["modules_added_main"]) for s in runs_of],  # by the main thread
            "modules_in_sys_modules": [len(s["modules_added"]) for s in runs_of],  # any thread, at the return
            "network_before_enable": {m: all(s["network_before"][m] for s in runs_of) for m in NETWORK},
            "network_in_sys_modules_any": {m: any(s["network_in_sys_modules"][m] for s in runs_of) for m in NETWORK},
            "network_at_register": {m: all(s["network"][m] for s in runs_of) for m in NETWORK},
            "network_at_register_any": {m: any(s["network"][m] for s in runs_of) for m in NETWORK},
            "steps_longest_ms": [max(s["steps_s"]) * 1000 for s in runs_of if s["steps_s"]],
            "steps_total_ms": [sum(s["steps_s"]) * 1000 for s in runs_of if s["steps_s"]],
        }
    for version in VERSIONS:  # the first start after the install: no __pycache__ yet, every module compiled
        result[version]["first_start_enable_ms"] = first[version]["enable_s"] * 1000
        result[version]["modules_added_main_names"] = samples[version][0]["modules_added_main"]  # one run's list
        result[version]["thread_modules_names"] = sorted(
            set(samples[version][0]["modules_added"]) - set(samples[version][0]["modules_added_main"])
        )
    for runs_of in samples.values():  # the names once per version (above); counts per run
        for sample in runs_of:
            for key in ("modules_added", "modules_added_main"):
                sample[key] = len(sample[key])
    old, now = (statistics.median(result[v]["enable_ms"]) for v in VERSIONS)
    result["enable_median_diff_ms"] = now - old  # now - 0.2.0, medians
    base = statistics.median(result["baseline"]["start_ms"])
    result["start_over_baseline_ms"] = {v: statistics.median(result[v]["start_ms"]) - base for v in VERSIONS}
    shutil.rmtree(work, ignore_errors=True)
    for version in VERSIONS:
        d = result[version]
        s = summary(d["enable_ms"])
        net = ", ".join(m for m in NETWORK if d["network_at_register_any"][m]) or "none"
        print(
            f"[startup] {version}: enable median {s['median']:.1f} ms ({s['min']:.1f}-{s['max']:.1f}), "
            f"{statistics.median(d['modules_added']):.0f} modules, network stack at register: {net}",
            flush=True,
        )
    longest = result["now"]["steps_longest_ms"]
    print(
        f"[startup] now - {RELEASE[0]}: {now - old:+.1f} ms (medians); start over the baseline "
        f"{result['start_over_baseline_ms'][RELEASE[0]]:.0f} / {result['start_over_baseline_ms']['now']:.0f} ms; "
        f"longest start-up step after the start: {statistics.median(longest) if longest else float('nan'):.1f} ms",
        flush=True,
    )
    return result


def _run(python: str, repo_parent: Path, enable: bool, work: Path, name: str) -> dict[str, Any]:
    """One fresh bpy process with its own fresh user folder; its measures."""
    import tempfile

    from .common import ROOT, SCRIPTS, TIMEOUT

    user = Path(tempfile.mkdtemp(prefix="user-", dir=work))
    out = work / f"{name}.json"
    spec = {"repo": str(repo_parent), "enable": enable, "out": str(out)}
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    # PYTHONDONTWRITEBYTECODE would make every start compile the add-on's sources (about 35 ms here); Blender
    # writes __pycache__ beside an extension's files like any Python, so the warm-up start writes it here too.
    for var in ("TRIVERSE_API_KEY", "TRIVERSE_API_URL", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    launch = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); from bench.startup import worker_startup; "
        "worker_startup(sys.argv[1])"
    )
    log = work / f"{name}.log"
    with open(log, "w") as f:
        proc = subprocess.run([python, "-c", launch, json.dumps(spec)], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                              env=env, timeout=TIMEOUT["startup"], check=False)  # fmt: skip
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"the start-up worker ({name}) exited {proc.returncode}:\n{tail}")
    sample: dict[str, Any] = json.loads(out.read_text())
    if enable and not sample["enabled"]:
        raise RuntimeError(f"{MODULE} did not enable ({name}): {log.read_text(errors='replace')[-800:]}")
    return sample


class _ImportLog:
    """A finder that finds nothing: it notes which thread imports each new module, then the real finders run
    (about a microsecond per module imported)."""

    def __init__(self) -> None:
        self.thread: dict[str, str] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        """Note the importing thread; leave the finding to the next finder."""
        self.thread.setdefault(name, threading.current_thread().name)


def worker_startup(spec_json: str) -> None:
    """(fresh bpy 5.0 process) import bpy, register the repository, install the wheel, time the enable."""
    spec = json.loads(spec_json)
    started = time.perf_counter()
    import bpy  # noqa: I001 - addon_utils exists only once bpy is imported

    import addon_utils

    bpy_s = time.perf_counter() - started
    prefs = bpy.context.preferences
    prefs.extensions.repos.new(name="Dev", module="dev", custom_directory=spec["repo"], source="USER")
    wheels = time.perf_counter()
    # The wheel is installed when the extension is installed, not at each start: done here, untimed. The enable
    # below still runs Blender's extension refresh (scan, compatibility, wheels up to date), as a start does.
    addon_utils.extensions_refresh(ensure_wheels=True, addon_modules_pending=[MODULE])
    wheels_s = time.perf_counter() - wheels
    importers = _ImportLog()
    sys.meta_path.insert(0, importers)
    before = set(sys.modules)
    t0 = time.perf_counter()
    if spec["enable"]:
        addon_utils.enable(MODULE, default_set=True)
    t1 = time.perf_counter()
    added = sorted(set(sys.modules) - before)
    on_main = [m for m in added if importers.thread.get(m, "MainThread") == "MainThread"]
    start_s = t1 - started
    steps: list[float] = []
    startup = sys.modules.get(STARTUP) if spec["enable"] else None
    while startup is not None:  # what a window's timer does after the start, one step per tick
        began = time.perf_counter()
        more = startup.step()
        steps.append(time.perf_counter() - began)
        if not more:
            break
    out = {
        "bpy": bpy.app.version_string,
        "enabled": MODULE in prefs.addons,
        "bpy_import_s": bpy_s,
        "wheels_s": wheels_s,
        "enable_s": t1 - t0,
        "start_s": start_s,
        "modules_added": added,  # in sys.modules when the enable returns, whichever thread imported them
        "modules_added_main": on_main,  # ... imported by the main thread: what Blender's start waits for
        "network": {m: m in on_main for m in NETWORK},
        "network_in_sys_modules": {m: m in added for m in NETWORK},
        "network_before": {m: m in before for m in NETWORK},  # ssl: Blender's extensions code loads it with a repo
        "thread_imports_total": sum(t != "MainThread" for t in importers.thread.values()),
        "steps_s": steps,  # each start-up step's time on the main thread (empty for 0.2.0: none after the enable)
    }
    Path(spec["out"]).write_text(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # bpy may crash at interpreter exit with an add-on's thread still running; the work is done
