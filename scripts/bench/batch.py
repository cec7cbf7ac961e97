"""scripts/batch_import.py over many tasks at several --jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .common import (
    BATCH_DELAY,
    BATCH_JOBS,
    BATCH_TASKS,
    BENCHMARK,
    KEY,
    SCRIPTS,
    SERVER_LIFETIME,
    TIMEOUT,
    children_cpu,
    ratios,
    run_checked,
    server_process,
)


def bench_batch(asset: Path, runs: int, tmp: Path) -> dict[str, Any]:
    """batch_import.py over 16 tasks that each answer after 300 ms, at each --jobs; a fresh library each run."""
    tasks = [str(uuid.uuid4()) for _ in range(BATCH_TASKS)]
    spec = {
        "asset": str(asset),
        "tasks": tasks,
        "failures": [{"mode": "first_byte_delay", "params": {"seconds": BATCH_DELAY}}],
    }
    samples: dict[int, dict[str, list[float]]] = {j: {"wall_s": [], "report_s": [], "cpu_s": []} for j in BATCH_JOBS}
    order: list[list[int]] = []
    with server_process([sys.executable, str(BENCHMARK), "_serve", json.dumps(spec)], tmp / "batch-server.log") as info:
        for r in range(runs):
            shift = r % len(BATCH_JOBS)
            round_order = list(BATCH_JOBS[shift:] + BATCH_JOBS[:shift])  # who goes first rotates
            order.append(round_order)
            for jobs in round_order:
                wall, seconds, cpu = _batch_once(info["base_url"], tasks, jobs, tmp / f"batch-{r}-{jobs}")
                samples[jobs]["wall_s"].append(wall)
                samples[jobs]["report_s"].append(seconds)
                samples[jobs]["cpu_s"].append(cpu)
                print(f"[batch] round {r + 1}/{runs} --jobs {jobs}: {seconds:.2f} s (wall {wall:.2f} s)", flush=True)
    out: dict[str, Any] = {
        "tasks": BATCH_TASKS,
        "first_byte_delay_s": BATCH_DELAY,
        "asset_bytes": asset.stat().st_size,
        "order": order,
        "jobs": {str(j): samples[j] for j in BATCH_JOBS},
    }
    for j in BATCH_JOBS[1:]:
        out[f"speedup_{j}_over_1"] = ratios(samples[1]["report_s"], samples[j]["report_s"])
        out[f"speedup_{j}_over_1_wall"] = ratios(samples[1]["wall_s"], samples[j]["wall_s"])
    return out


def _batch_once(base_url: str, tasks: list[str], jobs: int, work: Path) -> tuple[float, float, float]:
    """One batch_import.py run in a fresh Blender user folder (so a fresh, empty library)."""
    work.mkdir(parents=True)
    report = work / "report.json"
    env = {
        **os.environ,
        "BLENDER_USER_RESOURCES": str(work / "user"),
        "TRIVERSE_API_KEY": KEY,
        "TRIVERSE_API_URL": base_url,
    }
    cmd = [sys.executable, str(SCRIPTS / "batch_import.py"), "--jobs", str(jobs), "--report", str(report)]
    cmd += ["--output", str(work / "batch.blend"), *tasks]
    cpu = children_cpu()
    started = time.perf_counter()
    run_checked(cmd, TIMEOUT["batch"], work / "batch.log", env=env)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    data = json.loads(report.read_text())
    imported = [t for t in data["tasks"] if t["status"] == "imported" and t["source"] == "network"]
    if len(imported) != len(tasks):
        raise RuntimeError(f"--jobs {jobs}: {len(imported)} of {len(tasks)} tasks downloaded and imported")
    shutil.rmtree(work, ignore_errors=True)
    return wall, float(data["seconds"]), cpu


def worker_serve(spec: dict[str, Any]) -> None:
    """The stand-in with many tasks and failures installed (what its command line cannot set)."""
    sys.path.insert(0, str(SCRIPTS))
    from standin_server import StandinServer

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with StandinServer(api_key=KEY) as server:
        for task in spec["tasks"]:
            server.add(task, Path(spec["asset"]))
        for failure in spec["failures"]:
            server.fail(failure["mode"], **failure["params"])
        print(json.dumps({"base_url": server.base_url}), flush=True)
        stop.wait(SERVER_LIFETIME)
