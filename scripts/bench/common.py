"""What every measure shares: settings, statistics, child processes, curl."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _bootstrap

ROOT = _bootstrap.ROOT
SCRIPTS = ROOT / "scripts"
ASSET_DIR = ROOT / "build" / "bench-assets"
FULL_OUT = ROOT / "docs" / "benchmarks"
QUICK_OUT = ROOT / "build" / "benchmarks-quick"
UI_DRIVER = ROOT / "tests" / "ui" / "drive_ui.py"
BENCHMARK = SCRIPTS / "benchmark.py"  # the entry point; workers run as `benchmark.py _name SPEC`

VENV = "bench"
REQUIREMENTS = ["bpy==5.0.1", "matplotlib==3.*", "psutil==7.*", "websockets==17.*"]  # websockets: the stand-in's watch
_bootstrap.VENVS.setdefault(VENV, REQUIREMENTS)  # registered here, so _bootstrap.py stays as it is

KEY = "bench-key"
MB = 1_000_000
SIZES = {"1 MB": 1 * MB, "10 MB": 10 * MB, "170 MB": 170 * MB}
E2E_SIZES = ("1 MB", "10 MB")
BATCH_TASKS = 16
BATCH_DELAY = 0.3
BATCH_JOBS = (1, 4, 8)
UI_SCENARIO = "stall"
UI_SCREEN = "-screen 0 1600x900x24"

# (full, quick) runs per measure: about 2.5 minutes here for the full run plus ~30 s per UI run.
RUNS = {
    "throughput": ({"1 MB": 15, "10 MB": 15, "170 MB": 7}, {"1 MB": 1, "10 MB": 1, "170 MB": 1}),
    "rss": (5, 1),
    "e2e": (9, 1),
    "e2e_defaults": (  # by kind of GLB, then size: a 170 MB mesh takes ~8 s each way to import here
        {"padded": {"1 MB": 9, "10 MB": 9, "170 MB": 9}, "mesh": {"1 MB": 9, "10 MB": 9, "170 MB": 5}},
        {"padded": {"1 MB": 1, "10 MB": 1, "170 MB": 1}, "mesh": {"1 MB": 1, "10 MB": 1, "170 MB": 1}},
    ),
    "batch": (5, 1),
    "stall": (3, 1),  # per version (0.2.0, now): ~35 s per run
    "watch": ((8, 8), (2, 2)),  # (latency runs of each way, 3 s work windows of each condition)
    "startup": (15, 3),  # rounds of fresh bpy processes: 0.2.0, now, baseline (about 1.5 s each)
    "roundtrip": ({"10k": 15, "1M": 7}, {"10k": 1, "1M": 1}),  # pairs per mesh (export + upload each way)
}
TIMEOUT = {"server": 20, "assets": 900, "curl": 120, "rss": 120, "e2e": 900, "batch": 180, "ui": 300, "startup": 120}
TIMEOUT["roundtrip"] = 900  # the bpy process of the scene round trip (both meshes)
SERVER_LIFETIME = 3600.0  # a server started by this script stops by itself after this, whatever happens

TARGETS = {
    "throughput": 0.9,  # client/curl, for 10 MB and 170 MB
    "rss_mb": 32.0,
    "e2e": 1.10,  # import_task / (curl + glTF import)
    "e2e_defaults": 1.10,  # the same with the library on, fastest against fastest
    "batch": 3.0,  # jobs 4 over jobs 1
    "stall_ms": 50.0,
    "first_click_ms": 100.0,  # the longest main-thread gap at the start of a download (the Import click)
    "startup_ms": 20.0,  # what enabling the add-on adds to Blender's start (bpy 5.0)
    "roundtrip": 1.15,  # (export_group + upload_model) / (glTF export + curl upload), 10k and 1M triangles
}


# -- statistics ------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float | int | None]:
    """Median, min, max and count (None when there is no value)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratios(a: list[float], b: list[float]) -> list[float]:
    """a[i] / b[i] for each pair."""
    return [x / y for x, y in zip(a, b, strict=True) if y]


# -- processes -------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when this script dies, so no server outlives it (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the servers are still stopped by `server_process` on any exception


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line a child prints, waiting at most `timeout` seconds."""
    assert proc.stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not box or not box[0].strip():
        raise RuntimeError(f"{proc.args!r} printed nothing within {timeout:g} s (exit code {proc.poll()})")
    return box[0]


@contextlib.contextmanager
def server_process(cmd: list[str], log: Path) -> Iterator[dict[str, Any]]:
    """Run a stand-in server process that prints one JSON line; yield that line parsed; stop it after."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=_die_with_parent
        )
        try:
            yield json.loads(_read_line(proc, TIMEOUT["server"]))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def standin_cli(asset: Path, task: str, log: Path) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """The stand-in through its own command line: one task serving `asset`."""
    cmd = [sys.executable, str(SCRIPTS / "standin_server.py"), "--asset", str(asset), "--task", task]
    return server_process([*cmd, "--key", KEY, "--port", "0"], log)


def run_checked(cmd: list[str], timeout: float, log: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command with its output in `log`; raise with the log's tail when it fails."""
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{Path(cmd[1]).name if len(cmd) > 1 else cmd[0]} exited {proc.returncode}:\n{tail}")
    return proc


def run_group(cmd: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> int | str:
    """Run a command in its own process group (Xvfb and Blender under xvfb-run); end the group on timeout."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)  # the group this call made, and nothing else
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            return f"killed after {timeout:g} s"


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def curl_download(curl: str, url: str, dest: Path) -> tuple[float, float, float]:
    """Download with curl as a user would; (curl's own total time, wall time, CPU time of the process) in s."""
    cmd = [curl, "-s", "-o", str(dest), "-H", f"Authorization: Bearer {KEY}", "-w", "%{http_code} %{time_total}", url]
    cpu = children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT["curl"])
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    code, _, total = proc.stdout.strip().partition(" ")
    if proc.returncode != 0 or code != "200":
        raise RuntimeError(f"curl failed: exit {proc.returncode}, HTTP {code}: {proc.stderr.strip()}")
    return float(total), wall, cpu


def ensure_curl() -> str:
    """curl's path; installed with apt-get when missing and this runs as root (bounded in time)."""
    found = shutil.which("curl")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found or "curl"  # a missing curl makes the measures that need it "not measured"
    print("[setup] installing curl with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "curl"]):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, timeout=600, check=False)
    return shutil.which("curl") or "curl"


def unlink(path: Path) -> None:
    """Remove a file if it is there (outside any timed span: truncating a big file costs time)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
