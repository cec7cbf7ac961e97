"""The report: the machine, the table of comparisons with their targets, results.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from .common import (
    BATCH_DELAY,
    BATCH_JOBS,
    BATCH_TASKS,
    E2E_SIZES,
    ROOT,
    SIZES,
    TARGETS,
    UI_DRIVER,
    UI_SCENARIO,
    ratios,
    summary,
)
from .roundtrip import MESHES as ROUNDTRIP_MESHES
from .stall import _shown
from .startup import NETWORK, RELEASE


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return next((line.strip() for line in out.splitlines() if line.strip()), "not found")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    with open(ROOT / "blender_manifest.toml", "rb") as f:
        addon_version = str(tomllib.load(f).get("version", "unknown"))
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--", "triverse_addon"])
    return {
        "cpu": cpu,
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_GiB": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "addon_version": addon_version,
        "python": platform.python_version(),
        "bpy": pkg("bpy"),
        "requests": pkg("requests"),
        "urllib3": pkg("urllib3"),
        "curl": _first_line([shutil.which("curl") or "curl", "--version"]),
        "ui_blender": _first_line(["blender", "--version"]) if shutil.which("blender") else "not installed",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit + (" (add-on modified)" if dirty not in ("", "not found") else ""),
        "loadavg_start": os.getloadavg(),
    }


# -- report ----------------------------------------------------------------------------------------


def _fmt(s: dict[str, Any], digits: int) -> str:
    if s["median"] is None:
        return "—"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: one row per comparison, with its target and whether it is met."""
    table: list[dict[str, Any]] = []

    def add(measure: str, a: str, b: str, ratio: str, target: str, met: bool | None, n: int | str) -> None:
        verdict = "—" if met is None else ("met" if met else "**missed**")
        table.append({"measure": measure, "a": a, "b": b, "ratio": ratio, "target": target, "met": verdict, "n": n})

    def skipped(measure: str, why: str, target: str) -> None:
        add(measure, f"not measured ({why})", "", "", target, None, 0)

    tp = results.get("throughput")
    for label in SIZES:
        target_applies = label != "1 MB"
        target = f"≥ {TARGETS['throughput']:.2f}" if target_applies else "(none)"
        if not isinstance(tp, dict) or label not in tp:
            skipped(f"Download {label}: client vs curl (MB/s)", _why(tp), target)
            continue
        d = tp[label]
        r = summary(d["ratio_client_over_curl"])
        met = r["median"] >= TARGETS["throughput"] if target_applies else None
        add(
            f"Download {label}: client vs curl (MB/s)",
            _fmt(summary(d["client_MBps"]), 0),
            _fmt(summary(d["curl_MBps"]), 0),
            _fmt(r, 2),
            target,
            met,
            r["n"],
        )
    rss = results.get("rss")
    for label in SIZES:
        target = f"< {TARGETS['rss_mb']:.0f} MB"
        if not isinstance(rss, dict) or label not in rss:
            skipped(f"Peak RSS growth, {label} download (MB)", _why(rss), target)
            continue
        s = summary(rss[label]["growth_MB"])
        add(f"Peak RSS growth, {label} download (MB)", _fmt(s, 1), "", "", target, s["max"] < TARGETS["rss_mb"], s["n"])
    e2e = results.get("e2e")
    for label in E2E_SIZES:
        target = f"≤ {TARGETS['e2e']:.2f}"
        if not isinstance(e2e, dict) or label not in e2e:
            skipped(f"End to end {label}: import_task vs curl + glTF import (s)", _why(e2e), target)
            continue
        d = e2e[label]
        r = summary(d["ratio"])
        add(
            f"End to end {label}: import_task vs curl + glTF import (s)",
            _fmt(summary(d["addon_s"]), 3),
            _fmt(summary(d["native_s"]), 3),
            _fmt(r, 3),
            target,
            r["median"] <= TARGETS["e2e"],
            r["n"],
        )
    defaults = results.get("e2e_defaults")
    for name in (f"{label} {kind}" for kind in ("mesh", "padded") for label in SIZES):
        measure = f"End to end, defaults (library on), {name} GLB: import_task vs curl + glTF import, fastest (s)"
        target = f"≤ {TARGETS['e2e_defaults']:.2f}"
        if not isinstance(defaults, dict) or name not in defaults:
            skipped(measure, _why(defaults), target)
            continue
        d = defaults[name]
        fastest = min(d["addon_s"]) / min(d["native_s"])
        pairs = summary(d["ratio"])
        add(
            measure,
            f"{min(d['addon_s']):.3f} (median {statistics.median(d['addon_s']):.3f})",
            f"{min(d['native_s']):.3f} (median {statistics.median(d['native_s']):.3f})",
            f"fastest {fastest:.3f}; pairs {_fmt(pairs, 3)}",
            target,
            fastest <= TARGETS["e2e_defaults"],
            pairs["n"],
        )
    batch = results.get("batch")
    for jobs in BATCH_JOBS[1:]:
        target = f"≥ {TARGETS['batch']:.1f}x" if jobs == 4 else "(none)"
        for kind, key, label in (("report", "report_s", "report seconds"), ("wall", "wall_s", "wall, with startup")):
            measure = f"Batch of {BATCH_TASKS}, --jobs {jobs} vs --jobs 1 ({label}, s)"
            if not isinstance(batch, dict) or "jobs" not in batch:
                skipped(measure, _why(batch), target)
                continue
            suffix = "" if kind == "report" else "_wall"
            r = summary(batch[f"speedup_{jobs}_over_1{suffix}"])
            met = r["median"] >= TARGETS["batch"] if jobs == 4 and kind == "report" else None
            add(
                measure,
                _fmt(summary(batch["jobs"][str(jobs)][key]), 2),
                _fmt(summary(batch["jobs"]["1"][key]), 2),
                _fmt(r, 2) + "x",
                target if kind == "report" else "(none)",
                met,
                r["n"],
            )
    stall = results.get("stall")
    target = f"< {TARGETS['stall_ms']:.0f} ms"
    if not isinstance(stall, dict) or not stall.get("max_gap_ms"):
        skipped("Longest main-thread stall, sidebar download (ms)", _why(stall), target)
    else:
        s = summary(stall["max_gap_ms"])
        reference = "idle " + _fmt(summary(stall["baseline_max_gap_ms"]), 1)
        if stall.get("redraw_only_max_gap_ms"):
            reference += "; sidebar redraws alone " + _fmt(summary(stall["redraw_only_max_gap_ms"]), 1)
        add(
            "Longest main-thread stall, sidebar download (ms)",
            _fmt(s, 1),
            reference,
            "",
            target,
            s["median"] < TARGETS["stall_ms"],
            s["n"],
        )
        add(
            "Main-thread gaps p95 / add-on's longest callback (ms)",
            _fmt(summary(stall["p95_gap_ms"]), 1),
            _fmt(summary(stall["addon_max_ms"]), 1),
            "",
            "(none)",
            None,
            s["n"],
        )
    _first_click_rows(stall, add, skipped)
    _watch_rows(results.get("watch"), add, skipped)
    _startup_rows(results.get("startup"), add, skipped)
    _roundtrip_rows(results.get("roundtrip"), add, skipped)
    return table


def _first_click_rows(stall: Any, add: Any, skipped: Any) -> None:
    """The first click on Import and the steady download after it, now against 0.2.0 (each with its own driver)."""
    measure = (
        "First click on Import, Debian's Blender 3.4 under Xvfb: longest main-thread gap at the start of the "
        f"download, now vs {RELEASE[0]} (ms)"
    )
    target = f"≤ {TARGETS['first_click_ms']:.0f} ms"
    versions = stall.get("versions") if isinstance(stall, dict) else None
    if not isinstance(versions, dict) or not versions.get("now", {}).get("start_phase_max_gap_ms"):
        skipped(measure, _why(stall) if not versions else "no start-phase figures", target)
        return
    now, old = versions["now"], versions.get(RELEASE[0]) or {}

    def side(d: dict[str, Any], key: str, suffix: Any = None, digits: int = 1) -> str:
        if not d.get(key):
            return f"not measured ({_why(d)})" if d.get("not_measured") else "—"
        return _fmt(summary(d[key]), digits) + (suffix(d) if suffix else "")

    def at(d: dict[str, Any]) -> str:
        return f" at +{statistics.median(d['start_phase_max_gap_at_s']):.3f} s" if d["start_phase_max_gap_at_s"] else ""

    def diff(key: str) -> str:
        if not old.get(key):
            return ""
        return f"{statistics.median(now[key]) - statistics.median(old[key]):+.1f} ms (medians)"

    first = summary(now["start_phase_max_gap_ms"])
    add(measure, side(now, "start_phase_max_gap_ms", at), side(old, "start_phase_max_gap_ms", at),
        diff("start_phase_max_gap_ms"), target, first["median"] <= TARGETS["first_click_ms"], first["n"])  # fmt: skip

    def pair(d: dict[str, Any], a: str, b: str, digits: tuple[int, int]) -> str:
        return (
            f"{side(d, a, None, digits[0])} / {side(d, b, None, digits[1])}"
            if not d.get("not_measured")
            else side(d, a)
        )

    add(f"… the start phase's next-longest gap / the add-on's longest call in it, now vs {RELEASE[0]} (ms)",
        pair(now, "start_phase_next_gap_ms", "start_phase_addon_max_call_ms", (1, 2)),
        pair(old, "start_phase_next_gap_ms", "start_phase_addon_max_call_ms", (1, 2)), "", "(none)", None,
        first["n"])  # fmt: skip
    steady = summary(now["max_gap_ms"])
    add(f"Steady download (the same runs, after the start): longest main-thread gap, now vs {RELEASE[0]} (ms)",
        side(now, "max_gap_ms"), side(old, "max_gap_ms"), diff("max_gap_ms"), f"< {TARGETS['stall_ms']:.0f} ms",
        steady["median"] < TARGETS["stall_ms"], steady["n"])  # fmt: skip
    add("… the add-on's longest call / its longest time between two probe ticks, steady download, now vs "
        f"{RELEASE[0]} (ms)", pair(now, "addon_max_call_ms", "addon_max_ms", (2, 2)), pair(old, "addon_max_call_ms",
        "addon_max_ms", (2, 2)), "", "(none)", None, steady["n"])  # fmt: skip


def _watch_rows(watch: Any, add: Any, skipped: Any) -> None:
    """The live watch: SUCCESS -> model in the scene (watched vs polled), and its cost to the main thread."""
    latency = "Live watch: SUCCESS -> model in the scene, watched vs polled, 1 MB GLB (s; median (max))"
    if not isinstance(watch, dict) or "latency_s" not in watch:
        skipped(latency, _why(watch), "(none)")
        return
    lat = watch["latency_s"]

    def med_max(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
        return f"{statistics.median(values) * scale:.{digits}f} ({max(values) * scale:.{digits}f})"

    ratio = statistics.median(lat["polled"]) / statistics.median(lat["watched"])
    add(latency, med_max(lat["watched"]), med_max(lat["polled"]), f"{ratio:.1f}x (medians)", "(none)", None,
        len(lat["watched"]))  # fmt: skip
    alone = summary(lat["import_alone"])
    measure = "… beside it: import_task on a task already SUCCESS (watch opened, status, download, import; s)"
    add(measure, _fmt(alone, 3), "", "", "(none)", None, alone["n"])
    for key, label in (("work_rate", "per wall second"), ("work_rate_cpu", "per main-thread CPU second")):
        a, b = summary(watch[key]["watched_over_alone"]), summary(watch[key]["polled_over_alone"])
        add(f"Main-thread Python work {label} beside a watch vs beside polling (÷ alone, window by window)",
            _fmt(a, 3), _fmt(b, 3), "", "(none)", None, a["n"])  # fmt: skip
    cpu = watch["watcher_cpu_s_per_s"]
    counts = watch["window_counts"]
    per_window = {
        c: [statistics.median([w[k] for w in counts[c]]) for k in ("socket_messages", "status_requests")]
        for c in ("watched", "polled")
    }
    add(f"Watching thread's CPU (ms per s); socket messages / status requests per {watch['window_s']:g} s window",
        f"{_fmt(summary([x * 1000 for x in cpu['watched']]), 2)}; {per_window['watched'][0]:g} / "
        f"{per_window['watched'][1]:g}",
        f"{_fmt(summary([x * 1000 for x in cpu['polled']]), 2)}; {per_window['polled'][0]:g} / "
        f"{per_window['polled'][1]:g}",
        "", "(none)", None, len(cpu["watched"]))  # fmt: skip


def _startup_rows(startup: Any, add: Any, skipped: Any) -> None:
    """What enabling the add-on adds to Blender's start, now against 0.2.0 (fresh bpy 5.0 processes)."""
    measure = "Enabling the add-on at Blender's start (bpy 5.0, fresh process): now vs 0.2.0 (ms)"
    target = f"≤ {TARGETS['startup_ms']:.0f} ms"
    if not isinstance(startup, dict) or "now" not in startup:
        skipped(measure, _why(startup), target)
        return
    old, now = startup[RELEASE[0]], startup["now"]
    a, b = summary(now["enable_ms"]), summary(old["enable_ms"])
    add(measure, _fmt(a, 1), _fmt(b, 1), f"{a['median'] - b['median']:+.1f} ms (medians)", target,
        a["median"] <= TARGETS["startup_ms"], a["n"])  # fmt: skip

    def modules(d: dict[str, Any]) -> str:
        net = [m for m in NETWORK if d["network_at_register_any"][m]]
        loaded = [m for m in NETWORK if d.get("network_before_enable", {}).get(m)]
        said = ("yes (" + ", ".join(net) + ")" if net else "no") + (
            f"; {', '.join(loaded)} already loaded by Blender" if loaded else ""
        )
        return f"{_fmt(summary(d['modules_added']), 0)}; {said}"

    measure = (
        "… modules the enable imports on the main thread; network stack (requests, urllib3, ssl) imported at register"
    )
    add(measure, modules(now), modules(old), "", "network stack not at register",
        not any(now["network_at_register_any"].values()), a["n"])  # fmt: skip
    base = summary(startup["baseline"]["start_ms"])
    over = startup["start_over_baseline_ms"]
    add("… the process's start (import bpy, repository, enable) now / 0.2.0 vs the baseline without the enable (ms)",
        f"{_fmt(summary(now['start_ms']), 0)} / {_fmt(summary(old['start_ms']), 0)}", _fmt(base, 0),
        f"+{over['now']:.0f} / +{over[RELEASE[0]]:.0f} ms (medians)", "(none)", None, base["n"])  # fmt: skip
    if "first_start_enable_ms" in now:
        first = (f"{d['first_start_enable_ms']:.1f}" for d in (now, old))
        add("… the first start after the install (no __pycache__ yet: every module compiled; one run, ms)", *first,
            "", "(none)", None, 1)  # fmt: skip
    longest, total = summary(now["steps_longest_ms"]), summary(now["steps_total_ms"])
    add("… after Blender's start (now: a timer, one step per tick, on the main thread): longest step / all steps (ms)",
        f"{_fmt(longest, 1)} / {_fmt(total, 0)}", "", "", "(none)", None, longest["n"])  # fmt: skip


def _roundtrip_rows(roundtrip: Any, add: Any, skipped: Any) -> None:
    """The scene round trip's own cost: export_group + upload_model against glTF export + curl, per mesh."""
    target = f"≤ {TARGETS['roundtrip']:.2f}"
    for label in ROUNDTRIP_MESHES:
        measure = f"Scene round trip, {label}-triangle mesh: export_group + upload_model vs glTF export + curl (s)"
        if not isinstance(roundtrip, dict) or label not in roundtrip:
            skipped(measure, _why(roundtrip), target)
            continue
        d = roundtrip[label]
        r = summary(d["ratio"])
        add(measure, _fmt(summary(d["addon_s"]), 3), _fmt(summary(d["native_s"]), 3), _fmt(r, 3), target,
            r["median"] <= TARGETS["roundtrip"], r["n"])  # fmt: skip
        add(f"… of which the export, {label} ({statistics.median(d['addon_bytes']) / 1e6:.1f} MB GLB; s)",
            _fmt(summary(d["addon_export_s"]), 3), _fmt(summary(d["native_export_s"]), 3),
            _fmt(summary(ratios(d["addon_export_s"], d["native_export_s"])), 3), "(none)", None, r["n"])  # fmt: skip


def _why(section: Any) -> str:
    if isinstance(section, dict) and section.get("not_measured"):
        return str(section["not_measured"])
    return "not run"


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = (
        "| measure | add-on / subject: median (min-max) | reference: median (min-max) | "
        "ratio: median of pairs (min-max) | target | met | runs |\n|---|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r['measure']} | {r['a']} | {r['b']} | {r['ratio']} | {r['target']} | {r['met']} | {r['n']} |\n"
        for r in table
    )


def cpu_table(results: dict[str, Any]) -> str:
    """CPU time (user + system) per run, which other load on the machine disturbs less than wall time."""
    lines = ["| CPU time per run, median (ms) | add-on | reference | ratio add-on / reference |", "|---|---|---|---|"]
    med = statistics.median
    tp = results.get("throughput") or {}
    for label in SIZES:
        d = tp.get(label)
        if isinstance(d, dict) and d.get("client_cpu_s"):
            a, b = med(d["client_cpu_s"]) * 1000, med(d["curl_cpu_s"]) * 1000
            lines.append(f"| Download {label}: client vs curl | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    e2e = results.get("e2e") or {}
    for label in E2E_SIZES:
        d = e2e.get(label)
        if isinstance(d, dict) and d.get("addon_cpu_s"):
            a, b = med(d["addon_cpu_s"]) * 1000, med(d["native_cpu_s"]) * 1000
            lines.append(f"| End to end {label}: import_task vs curl + glTF import | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    roundtrip = results.get("roundtrip") or {}
    for label in ROUNDTRIP_MESHES:
        d = roundtrip.get(label)
        if isinstance(d, dict) and d.get("addon_cpu_s"):
            a, b = med(d["addon_cpu_s"]) * 1000, med(d["native_cpu_s"]) * 1000
            lines.append(f"| Scene round trip {label}: export_group + upload_model vs glTF export + curl | {a:.1f} "
                         f"| {b:.1f} | {a / b:.2f} |")  # fmt: skip
    defaults = results.get("e2e_defaults") or {}
    for name, d in defaults.items():
        if isinstance(d, dict) and d.get("addon_cpu_s"):
            a, b = med(d["addon_cpu_s"]) * 1000, med(d["native_cpu_s"]) * 1000
            lines.append(f"| End to end, defaults, {name}: import_task vs curl + glTF import | {a:.1f} | {b:.1f} "
                         f"| {a / b:.2f} |")  # fmt: skip
    batch = results.get("batch") or {}
    if isinstance(batch.get("jobs"), dict):
        one = med(batch["jobs"]["1"]["cpu_s"]) * 1000
        for j in BATCH_JOBS[1:]:
            a = med(batch["jobs"][str(j)]["cpu_s"]) * 1000
            lines.append(f"| Batch process (whole), --jobs {j} vs --jobs 1 | {a:.0f} | {one:.0f} | {a / one:.2f} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def write_markdown(path: Path, results: dict[str, Any], table: list[dict[str, Any]]) -> None:
    """results.md: how it was measured, the table, the machine."""
    m = results["machine"]
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python3 scripts/benchmark.py{' --quick' if meta['quick'] else ''}` in {meta['seconds']:.0f} s "
        f"on {m['date']} (commit {m['commit']}). Raw samples: `results.json`; plot: `plot.png`.",
        "",
        markdown_table(table),
        "How each figure is taken (MB = 10^6 bytes; every figure is the median of the runs, with min-max; "
        "A/B pairs alternate which goes first, and the ratio is taken pair by pair, then its median):",
        "",
        "- **Download**: `TriverseClient(settings).download(uuid, dest)` timed in the benchmark's own process "
        "(session made and closed inside the timing) against `curl -s -o FILE -H 'Authorization: Bearer KEY' URL` "
        "timed by curl's own `%{time_total}` (its process start, ~10-20 ms, left out; the wall times are in "
        "results.json). Both fetch `/tasks/download/{uuid}` from the same stand-in server process "
        "(`scripts/standin_server.py` command line, sendfile), after one untimed warm-up each; output files are "
        "removed before each run, outside the timing. Ratio = client MB/s ÷ curl MB/s.",
        "- **Peak RSS growth**: a fresh process makes the client, resets its peak RSS "
        "(`/proc/self/clear_refs` = 5), downloads once, and reports VmHWM after - VmRSS before.",
        "- **End to end**: one bpy process with the extension loaded from an extensions repository "
        "(`bl_ext.dev.triverse`, as the tests load it), library off so every run downloads; "
        "`bpy.ops.triverse.import_task(task_uuid=…)` against curl (a subprocess) + `bpy.ops.import_scene.gltf` on "
        "the same file, each on an emptied scene, after one untimed warm-up of each. Ratio = add-on ÷ native.",
        "- **End to end, defaults**: the same, with the add-on's default settings: library on, in its default "
        "folder (`extension_path_user`), whose copy of the task is removed before each add-on run (untimed) so "
        "every run downloads, verifies and keeps it again (each run checks it was kept). Two kinds of GLB: "
        "*mesh* (a displaced grid made by Blender's exporter, < 3 % padding: the importer reads every byte, as "
        "with a generated model) and *padded* (the download measure's GLBs: the import is nearly free, so "
        "the download path's own cost shows). Files (curl's, the library, the Blender user folder) on a tmpfs "
        "when there is room. The machine's noise makes medians of pairs swing, so the fastest run of each "
        "side is compared (the verdict), with the median and range of pair ratios beside it.",
        f"- **Batch**: `scripts/batch_import.py --jobs N --report R` over {BATCH_TASKS} distinct tasks of the "
        f"1 MB asset, the stand-in answering each download after {BATCH_DELAY * 1000:.0f} ms "
        "(`fail('first_byte_delay')`); each run in a fresh `BLENDER_USER_RESOURCES`, so the library starts "
        "empty and all tasks download. The rounds rotate which --jobs goes first. `report seconds` is the "
        "script's own `seconds` (after Blender and the add-on are loaded, with the save); `wall` is the whole "
        "process. Ratio = time at --jobs 1 ÷ time at --jobs N (speed-up).",
        f"- **Stall**: `{_shown(UI_DRIVER)} --scenario {UI_SCENARIO}` in Debian's Blender under Xvfb "
        "(its result.json: `max_gap_ms`, `p95_gap_ms`, `baseline_max_gap_ms`, `addon_max_ms`, and "
        "`redraw_only_max_gap_ms`, the gaps when the sidebar is only redrawn at the add-on's cadence). The "
        "gaps are between 10 ms ticks of a probe timer; software OpenGL makes each sidebar redraw cost tens of ms. "
        f"The runs alternate {RELEASE[0]} and now: {RELEASE[0]} is the whole tree of commit {RELEASE[1]} "
        "(`git archive`, with this checkout's `build/wheels` copied in), whose own driver stages its own add-on; "
        "now is the working tree's driver and add-on. The *first click* is the driver's start phase "
        "(`start_phase_max_gap_ms`): from the click on the panel's Import button (the pointer already on it) "
        "until 1 s after the download has started and the preview arrived; *at* is when its longest gap began "
        "(the sum of the gaps before it in `start_phase.gaps_ms`), the add-on's longest call is the longest "
        "single call into the add-on's code the driver's profiler saw (`addon_calls`). The *steady download* "
        "is the next window (`max_gap_ms`).",
        "- **Watch** (`scripts/bench/watch.py`): one bpy 5.0 process with the extension enabled (Blender "
        "installs its websocket-client wheel), the stand-in in its own process. Each run adds a task held "
        "RUNNING at 50 % and, 1-4 s later (random), the stand-in sets it SUCCESS, stamped with "
        "`time.monotonic()`; meanwhile `bpy.ops.triverse.import_task(task_uuid=…, wait=True, wait_timeout=60)` "
        "runs; the figure is the operator's return (model in the scene) minus that stamp. *watched*: as shipped; "
        "*polled*: the add-on's `watch.wait_for_success` called with `use_socket=False` (its fallback: first poll "
        "at 2 s, then 1.5 times longer each). The runs check one watch was opened (none when polled). "
        "The stand-in's watch looks at the task every 10 ms. The import alone is `import_task` on a task "
        "already SUCCESS. Cost: a "
        "main-thread loop of fixed Python work in 3 s windows, alone / beside `wait_for_success` on a worker "
        "thread over the socket / beside its polling, on a task whose progress changes every 100 ms; the "
        "conditions rotate, each window is divided by the *alone* window of its round; the watching thread's "
        "own CPU time (`pthread_getcpuclockid`) bounds what it can take from the main thread under the GIL.",
        f"- **Start-up** (`scripts/bench/startup.py`): {RELEASE[0]} (the tree of commit {RELEASE[1]}, "
        "`git archive`) against the working tree, each staged as `scripts/build.py` stages an extension (package, "
        "manifest, websocket-client wheel; copied, bytecode written by one untimed warm-up start of each). Every "
        "run is a fresh bpy 5.0 process (`.venv/bpy50`) with a fresh `BLENDER_USER_RESOURCES`: `import bpy`, the "
        "folder registered as an extensions repository, the wheel installed (untimed: Blender does that once, at "
        "install), then `addon_utils.enable('bl_ext.dev.triverse', default_set=True)` timed alone "
        "(`time.perf_counter()`), with the modules it added to `sys.modules` on the main thread (a finder that "
        "finds nothing, first in `sys.meta_path`, notes the importing thread). "
        "`PYTHONDONTWRITEBYTECODE` is unset for these processes: Blender writes an extension's `__pycache__`. "
        "`ssl` (with socket, email, http) is already loaded by Blender once an extensions repository is "
        "registered, so neither version imports it. Runs alternate "
        f"{RELEASE[0]}, now, baseline; the baseline is the same process with the enable left out, so what the "
        "add-on adds to Blender's start is the enable's own time (the process-start row checks it: start minus "
        "the baseline's). After the enable returns, the process runs the add-on's start-up steps one after "
        "another and times each (in a window a timer runs one per tick after Blender's start, all on the main "
        "thread: two importing threads can deadlock): the longest step is the most one tick holds the window.",
        "- **Scene round trip** (`scripts/bench/roundtrip.py`): one bpy 5.0 process with the extension enabled "
        "(`bl_ext.dev.triverse`), the stand-in in its own process with its upload limit lifted (10 a minute: a "
        "wait is not a cost). Two meshes made by Blender in that process: a smooth, waved grid with a UV map "
        "and a Subdivision modifier, 10k triangles (50x25 quads, level 1) and 1M (250x125 quads, level 2) "
        "once evaluated (checked), selected and active, alone in the scene. Add-on: "
        "`export_group(context, group, with_materials=False)` (the evaluated mesh through a temporary object, "
        "Blender's glTF exporter) + `scene_api.upload_model(client, path, 'geometry')` on a `TriverseClient` "
        "made and closed inside the timing (`time.perf_counter()`; the export's folder removed after, untimed). "
        "Reference: `bpy.ops.export_scene.gltf(export_format='GLB', use_selection=True, export_apply=True)` "
        "on the object + `curl -s -o /dev/null -F file=@model.glb -H 'Authorization: Bearer KEY' "
        "URL/upload/model?modelVariant=geometry`, wall time of both (curl's process start counts, as in the end "
        "to end measure; its `%{time_total}` is in results.json). Files on a tmpfs (`TMPDIR` for the add-on's "
        "export) when there is room; one untimed warm-up of each; after every run the stand-in is asked what "
        "it received (one GLB of the file's size, variant geometry) and forgets it. The *export* row is the "
        "export alone on each side. Ratio = add-on ÷ reference.",
        "",
        "CPU time of the same runs (this process's `time.process_time()` for the client and the bpy process; "
        "`RUSAGE_CHILDREN` for curl and the batch process), less disturbed by other load on the machine:",
        "",
        cpu_table(results),
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores_logical']} logical cores ({m['cores_physical']} physical), "
        f"{m['ram_GiB']} GiB RAM; {m['os']}",
        f"- Triverse for Blender {m.get('addon_version', '?')} (blender_manifest.toml)",
        f"- Python {m['python']}, bpy {m['bpy']}, requests {m['requests']}, urllib3 {m['urllib3']}",
        f"- {m['curl']}",
        f"- UI tier: {m['ui_blender']}",
        f"- Load average at start {tuple(round(x, 2) for x in m['loadavg_start'])}, "
        f"at end {tuple(round(x, 2) for x in meta['loadavg_end'])} (other work on this 2-core machine adds noise)",
        *_merged_runs(results),
        "",
    ]
    path.write_text("\n".join(lines))


def _merged_runs(results: dict[str, Any]) -> list[str]:
    """One line per measure merged in from another run (`--merge-into`): when, which commit, the load."""
    lines = []
    for name, section in results.items():
        run = section.get("run") if isinstance(section, dict) else None
        if run:
            load = " → ".join(str(tuple(round(x, 2) for x in run[k])) for k in ("loadavg_start", "loadavg_end"))
            lines.append(f"- The *{name}* rows come from a separate run, `{run['command']}`, on {run['date']} "
                         f"(commit {run['commit']}), load average {load}")  # fmt: skip
    return lines
