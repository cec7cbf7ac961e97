"""Prepare the assets and servers, run the measures asked for, write the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .assets import KINDS, asset_key, ensure_assets, worker_assets
from .batch import bench_batch, worker_serve
from .common import E2E_SIZES, FULL_OUT, QUICK_OUT, RUNS, SIZES, TARGETS, UI_DRIVER, standin_cli
from .e2e import bench_e2e, worker_e2e
from .plot import plot
from .report import machine, markdown_table, rows, write_markdown
from .roundtrip import bench_roundtrip, worker_roundtrip, worker_roundtrip_serve
from .rss import bench_rss, worker_rss
from .stall import bench_stall_versions, ui_unavailable
from .startup import bench_startup
from .throughput import bench_throughput
from .watch import bench_watch, worker_watch, worker_watch_serve

PHASES = ("throughput", "rss", "e2e", "e2e_defaults", "batch", "stall", "watch", "startup", "roundtrip")


def run_phase(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one measure; a failure is recorded as "not measured (why)" and the others still run."""
    started = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one measure failing must not lose the others
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        print(f"[{name}] not measured: {exc}", file=sys.stderr, flush=True)
        results[name] = {"not_measured": message}
    results.setdefault("phase_seconds", {})[name] = round(time.perf_counter() - started, 1)


def main() -> int:
    """Prepare, measure, write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each measure (a smoke test, < 2 min)")
    parser.add_argument(
        "--out", type=Path, help="output folder (docs/benchmarks; build/benchmarks-quick with --quick or --only)"
    )
    parser.add_argument("--only", action="append", choices=PHASES, help="run only this measure (repeatable)")
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="GLBs for e2e_defaults (default: both)"
    )
    parser.add_argument(
        "--merge-into", type=Path, help="also put these measures into DIR's results (json, md, plot), the rest kept"
    )
    parser.add_argument("--ui-driver", type=Path, default=UI_DRIVER, help=argparse.SUPPRESS)  # to test this path
    args = parser.parse_args()
    phases = args.only or list(PHASES)
    pick = 1 if args.quick else 0
    out_dir = (args.out or (QUICK_OUT if args.quick or args.only else FULL_OUT)).resolve()  # docs/: full runs only
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    tmp = Path(tempfile.mkdtemp(prefix="triverse-bench-"))
    kinds = ("padded", "mesh") if "e2e_defaults" in phases and "mesh" in args.kinds else ("padded",)
    assets: dict[str, dict[str, Any]] = {}
    try:
        if set(phases) - {"startup", "roundtrip"}:  # these measures need no GLB and no server of this script's
            assets = ensure_assets(tmp / "assets.log", kinds)
        with contextlib.ExitStack() as stack:
            servers: dict[str, dict[str, Any]] = {}
            for key, asset in assets.items():
                task = str(uuid.uuid5(uuid.NAMESPACE_URL, f"triverse-bench-{key}"))
                log = tmp / f"server-{key.replace(' ', '')}.log"
                server = stack.enter_context(standin_cli(Path(asset["path"]), task, log))
                servers[key] = {**server, "bytes": asset["bytes"], "sha256": asset["sha256"]}
            padded = {label: servers[label] for label in SIZES if label in servers}
            if "throughput" in phases:
                runs = RUNS["throughput"][pick]
                run_phase(results, "throughput", lambda: bench_throughput(padded, assets, runs, tmp))
            if "rss" in phases:
                run_phase(results, "rss", lambda: bench_rss(padded, RUNS["rss"][pick], tmp))
            if "e2e" in phases:
                small = {label: padded[label] for label in E2E_SIZES}
                run_phase(results, "e2e", lambda: bench_e2e(small, RUNS["e2e"][pick], tmp))
            if "e2e_defaults" in phases:
                both: dict[str, dict[str, Any]] = {}
                runs_d: dict[str, int] = {}
                for kind in args.kinds:
                    for label in SIZES:
                        both[f"{label} {kind}"] = servers[asset_key(kind, label)]
                        runs_d[f"{label} {kind}"] = RUNS["e2e_defaults"][pick][kind][label]
                run_phase(results, "e2e_defaults", lambda: bench_e2e(both, runs_d, tmp, defaults=True))
        if "batch" in phases:
            asset_1mb = Path(assets["1 MB"]["path"])
            run_phase(results, "batch", lambda: bench_batch(asset_1mb, RUNS["batch"][pick], tmp))
        if "stall" in phases:
            why = ui_unavailable(args.ui_driver)
            if why:
                results["stall"] = {"not_measured": why}
                print(f"[stall] not measured: {why}", flush=True)
            else:
                runs_s = RUNS["stall"][pick]  # per version: 0.2.0 and now alternate
                run_phase(results, "stall", lambda: bench_stall_versions(args.ui_driver, runs_s, tmp))
        if "watch" in phases:
            asset_1mb = Path(assets["1 MB"]["path"])
            run_phase(results, "watch", lambda: bench_watch(asset_1mb, RUNS["watch"][pick], tmp))
        if "startup" in phases:
            run_phase(results, "startup", lambda: bench_startup(RUNS["startup"][pick], tmp))
        if "roundtrip" in phases:
            run_phase(results, "roundtrip", lambda: bench_roundtrip(RUNS["roundtrip"][pick], tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results["assets"] = {label: {k: v for k, v in a.items() if k != "path"} for label, a in assets.items()}
    results["meta"] = {
        "quick": args.quick,
        "phases": phases,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg_end": os.getloadavg(),
        "targets": TARGETS,
    }
    table = rows(results)
    results["table"] = table
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    write_markdown(out_dir / "results.md", results, table)
    plot(out_dir / "plot.png", results)
    print()
    print(markdown_table(table))
    print(f"Written to {out_dir} in {results['meta']['seconds']:.0f} s.")
    if args.merge_into:
        merge_into(args.merge_into.resolve(), results, " ".join(["python3 scripts/benchmark.py", *sys.argv[1:]]))
    failed = [p for p in phases if isinstance(results.get(p), dict) and results[p].get("not_measured")]
    return 1 if [p for p in failed if p != "stall" or not ui_unavailable(args.ui_driver)] else 0


def merge_into(dest: Path, results: dict[str, Any], command: str) -> None:
    """Replace the measures of `results` in dest/results.json (marked with their own run), rewrite its md and plot."""
    merged = json.loads((dest / "results.json").read_text())
    m = results["machine"]
    run = {"command": command, "date": m["date"], "commit": m["commit"], "loadavg_start": m["loadavg_start"],
           "loadavg_end": results["meta"]["loadavg_end"]}  # fmt: skip
    for phase in results["meta"]["phases"]:
        merged[phase] = {**results[phase], "run": run}
        merged.setdefault("phase_seconds", {})[phase] = results["phase_seconds"].get(phase)
    merged["table"] = rows(merged)
    (dest / "results.json").write_text(json.dumps(merged, indent=1))
    write_markdown(dest / "results.md", merged, merged["table"])
    plot(dest / "plot.png", merged)
    print(f"Merged {', '.join(results['meta']['phases'])} into {dest}.")


WORKERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "_assets": worker_assets,
    "_rss": worker_rss,
    "_e2e": worker_e2e,
    "_serve": worker_serve,
    "_watch": worker_watch,
    "_watch_serve": worker_watch_serve,
    "_roundtrip": worker_roundtrip,
    "_roundtrip_serve": worker_roundtrip_serve,
}
