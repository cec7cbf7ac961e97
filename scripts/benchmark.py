"""Measure the add-on against plain tools: download speed, memory, end to end, batch, UI stalls.

    python3 scripts/benchmark.py            # full run (about 3-4 minutes here), writes docs/benchmarks/
    python3 scripts/benchmark.py --quick    # one run of each measure (about 1 minute), writes build/benchmarks-quick/

Runs in its own environment, `.venv/bench` (bpy 5.0.1, matplotlib, psutil), made on first use through
`_bootstrap` like the project's other environments. Everything is on loopback: the stand-in service
(`standin_server.py`) runs in its own process, so its Python never shares a GIL with what is measured.

1. Download throughput of `TriverseClient.download` (in this process) against `curl` (its own process,
   timed by its `%{time_total}`), same server process, for GLBs of 1, 10 and 170 MB made by Blender's
   exporter and padded with an unused buffer (cached in build/bench-assets/).
2. Peak RSS growth of a process that only downloads (/proc/self/clear_refs + VmHWM).
3. End to end in bpy 5.0: `bpy.ops.triverse.import_task` (library off) against curl + `import_scene.gltf`.
4. `scripts/batch_import.py` over 16 tasks answering after 300 ms, at --jobs 1, 4 and 8.
5. The longest main-thread stall during a sidebar download (tests/ui/drive_ui.py under Xvfb).

Each figure is the median of several runs with its min-max; A/B pairs alternate which goes first and
their ratio is taken pair by pair. MB = 10^6 bytes. Nothing here passes or fails a test suite: targets
are reported as met or not. Exit status 1 only when a measure could not be taken at all.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap

ROOT = _bootstrap.ROOT
SCRIPTS = ROOT / "scripts"
ASSET_DIR = ROOT / "build" / "bench-assets"
FULL_OUT = ROOT / "docs" / "benchmarks"
QUICK_OUT = ROOT / "build" / "benchmarks-quick"
UI_DRIVER = ROOT / "tests" / "ui" / "drive_ui.py"

VENV = "bench"
REQUIREMENTS = ["bpy==5.0.1", "matplotlib==3.*", "psutil==7.*"]
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
    "batch": (5, 1),
    "stall": (3, 1),
}
TIMEOUT = {"server": 20, "assets": 300, "curl": 120, "rss": 120, "e2e": 300, "batch": 180, "ui": 300}
SERVER_LIFETIME = 3600.0  # a server started by this script stops by itself after this, whatever happens

TARGETS = {
    "throughput": 0.9,  # client/curl, for 10 MB and 170 MB
    "rss_mb": 32.0,
    "e2e": 1.10,  # import_task / (curl + glTF import)
    "batch": 3.0,  # jobs 4 over jobs 1
    "stall_ms": 50.0,
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


# -- assets ----------------------------------------------------------------------------------------


def ensure_assets(log: Path) -> dict[str, dict[str, Any]]:
    """The padded GLBs, made once with Blender's exporter and kept in build/bench-assets/."""
    manifest_path = ASSET_DIR / "assets.json"
    manifest: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads(manifest_path.read_text())
    missing = [
        label
        for label in SIZES
        if label not in manifest
        or manifest[label].get("target") != SIZES[label]
        or not Path(manifest[label]["path"]).is_file()
        or Path(manifest[label]["path"]).stat().st_size != manifest[label]["bytes"]
    ]
    if missing:
        print(f"[assets] making {', '.join(missing)} with Blender's glTF exporter (first run only)", flush=True)
        spec = {"dir": str(ASSET_DIR), "targets": {label: SIZES[label] for label in missing}}
        run_checked([sys.executable, __file__, "_assets", json.dumps(spec)], TIMEOUT["assets"], log)
        manifest.update(json.loads((ASSET_DIR / "made.json").read_text()))
        manifest_path.write_text(json.dumps(manifest, indent=1))
    return {label: manifest[label] for label in SIZES}


def worker_assets(spec: dict[str, Any]) -> None:
    """(bpy) Make a GLB of about each target size: the sample scene plus padding."""
    sys.path.insert(0, str(SCRIPTS))
    import sample_asset

    folder = Path(spec["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    base = sample_asset.make_glb(folder / "base.glb").stat().st_size
    made = {}
    for label, target in spec["targets"].items():
        path = folder / f"asset-{label.replace(' ', '').lower()}.glb"
        sample_asset.make_glb(path, padding_bytes=max(0, target - base))
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        made[label] = {"path": str(path), "target": target, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    (folder / "made.json").write_text(json.dumps(made, indent=1))


# -- 1. throughput ---------------------------------------------------------------------------------


def bench_throughput(
    servers: dict[str, dict[str, Any]], assets: dict[str, dict[str, Any]], runs: dict[str, int], tmp: Path
) -> dict[str, Any]:
    """Client (in this process) against curl (its own process) on the same server process, pair by pair."""
    sys.path.insert(0, str(ROOT))
    from triverse_addon.client import TriverseClient
    from triverse_addon.config import Settings

    curl = ensure_curl()
    out: dict[str, Any] = {}
    for label, info in servers.items():
        settings = Settings(api_key=KEY, base_url=info["base_url"])
        url = f"{info['base_url']}/tasks/download/{info['task_uuid']}"
        size = assets[label]["bytes"]
        dest_client, dest_curl = tmp / "client.bin", tmp / "curl.bin"

        def client_once(
            settings: Settings = settings, info: dict[str, Any] = info, dest: Path = dest_client, size: int = size
        ) -> float:
            unlink(dest)
            cpu = time.process_time()
            started = time.perf_counter()
            with TriverseClient(settings) as client:
                download = client.download(info["task_uuid"], dest)
            elapsed = time.perf_counter() - started
            client_once.cpu = time.process_time() - cpu  # type: ignore[attr-defined]
            if download.size != size:
                raise RuntimeError(f"client got {download.size} bytes of {size}")
            client_once.sha256 = download.sha256  # type: ignore[attr-defined]
            return elapsed

        def curl_once(url: str = url, dest: Path = dest_curl, size: int = size) -> tuple[float, float, float]:
            unlink(dest)
            result = curl_download(curl, url, dest)
            if dest.stat().st_size != size:
                raise RuntimeError(f"curl got {dest.stat().st_size} bytes of {size}")
            return result

        client_once()  # warm-up, untimed: page cache, first connection, lazy imports
        curl_once()
        if client_once.sha256 != assets[label]["sha256"]:  # type: ignore[attr-defined]
            raise RuntimeError(f"the client's SHA-256 of the {label} asset is wrong")
        samples: dict[str, list[Any]] = {
            "client_s": [],
            "curl_s": [],
            "curl_wall_s": [],
            "client_cpu_s": [],
            "curl_cpu_s": [],
            "first": [],
        }
        for i in range(runs[label]):
            if i % 2 == 0:
                client_s = client_once()
                curl_s, wall, curl_cpu = curl_once()
            else:
                curl_s, wall, curl_cpu = curl_once()
                client_s = client_once()
            samples["client_s"].append(client_s)
            samples["curl_s"].append(curl_s)
            samples["curl_wall_s"].append(wall)
            samples["client_cpu_s"].append(client_once.cpu)  # type: ignore[attr-defined]
            samples["curl_cpu_s"].append(curl_cpu)
            samples["first"].append("client" if i % 2 == 0 else "curl")
        unlink(dest_client)
        unlink(dest_curl)
        client_mbs = [size / MB / s for s in samples["client_s"]]
        curl_mbs = [size / MB / s for s in samples["curl_s"]]
        out[label] = {
            "bytes": size,
            **samples,
            "client_MBps": client_mbs,
            "curl_MBps": curl_mbs,
            "ratio_client_over_curl": ratios(client_mbs, curl_mbs),
            "curl_wall_MBps": [size / MB / s for s in samples["curl_wall_s"]],
        }
        med = statistics.median
        print(
            f"[throughput] {label}: client {med(client_mbs):.0f} MB/s, curl {med(curl_mbs):.0f} MB/s, "
            f"ratio {med(out[label]['ratio_client_over_curl']):.2f}",
            flush=True,
        )
    return out


# -- 2. peak RSS -----------------------------------------------------------------------------------


def bench_rss(servers: dict[str, dict[str, Any]], runs: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS growth of a fresh process that only downloads, per size."""
    out: dict[str, Any] = {}
    for label, info in servers.items():
        growth, samples = [], []
        for i in range(runs):
            spec = {"base_url": info["base_url"], "task_uuid": info["task_uuid"], "dest": str(tmp / f"rss-{i}.bin")}
            proc = subprocess.run(
                [sys.executable, __file__, "_rss", json.dumps(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=TIMEOUT["rss"],
            )
            if proc.returncode != 0:
                raise RuntimeError(f"the RSS worker failed: {proc.stderr.strip()[-800:]}")
            sample = json.loads(proc.stdout.strip().splitlines()[-1])
            samples.append(sample)
            growth.append(sample["growth_bytes"] / MB)
        out[label] = {"growth_MB": growth, "samples": samples}
        print(f"[rss] {label}: peak growth {statistics.median(growth):.1f} MB", flush=True)
    return out


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes (Linux)."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def worker_rss(spec: dict[str, Any]) -> None:
    """Download once; print the growth of the peak RSS over the RSS just before the download."""
    sys.path.insert(0, str(ROOT))
    from triverse_addon.client import TriverseClient
    from triverse_addon.config import Settings

    dest = Path(spec["dest"])
    client = TriverseClient(Settings(api_key=KEY, base_url=spec["base_url"]))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        method = "clear_refs+VmHWM"
    except OSError:
        method = "VmHWM"
    before = _proc_status()
    download = client.download(spec["task_uuid"], dest)
    after = _proc_status()
    client.close()
    unlink(dest)
    base = before["VmRSS"] if method == "clear_refs+VmHWM" else before["VmHWM"]
    result = {
        "method": method,
        "bytes": download.size,
        "rss_before": before["VmRSS"],
        "hwm_before": before["VmHWM"],
        "hwm_after": after["VmHWM"],
        "growth_bytes": max(0, after["VmHWM"] - base),
    }
    print(json.dumps(result))


# -- 3. end to end ---------------------------------------------------------------------------------


def bench_e2e(servers: dict[str, dict[str, Any]], runs: int, tmp: Path) -> dict[str, Any]:
    """In a bpy 5.0 process: import_task against curl + the glTF importer, pair by pair."""
    user = tmp / "e2e-user"
    spec = {
        "tasks": {label: servers[label] for label in E2E_SIZES},
        "runs": runs,
        "curl": ensure_curl(),
        "tmp": str(tmp),
        "out": str(tmp / "e2e.json"),
    }
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    for name in ("TRIVERSE_API_KEY", "TRIVERSE_API_URL"):
        env.pop(name, None)
    run_checked([sys.executable, __file__, "_e2e", json.dumps(spec)], TIMEOUT["e2e"], tmp / "e2e.log", env=env)
    result: dict[str, Any] = json.loads(Path(spec["out"]).read_text())
    for label, data in result.items():
        data["ratio"] = ratios(data["addon_s"], data["native_s"])
        print(
            f"[e2e] {label}: import_task {statistics.median(data['addon_s']):.3f} s, curl + glTF "
            f"{statistics.median(data['native_s']):.3f} s, ratio {statistics.median(data['ratio']):.3f}",
            flush=True,
        )
    return result


def worker_e2e(spec: dict[str, Any]) -> None:
    """(bpy) The extension loaded as the tests load it; both ways timed on an empty scene each run."""
    import bpy  # noqa: I001 - addon_utils exists only once bpy is imported

    import addon_utils

    sys.path.insert(0, str(SCRIPTS))
    import build

    user = Path(os.environ["BLENDER_USER_RESOURCES"])
    repo_dir = user / "dev-repo"
    build.stage(repo_dir, link=True)
    prefs = bpy.context.preferences
    prefs.extensions.repos.new(name="Dev", module="dev", custom_directory=str(repo_dir), source="USER")
    module = "bl_ext.dev.triverse"
    addon_utils.enable(module, default_set=True)
    if module not in prefs.addons:
        raise SystemExit(f"{module} did not enable")
    prefs.system.use_online_access = True
    addon = prefs.addons[module].preferences
    addon.api_key = KEY
    addon.use_library = False  # every run really downloads (to a temporary folder)

    tmp = Path(spec["tmp"])
    results: dict[str, Any] = {}
    for label, info in spec["tasks"].items():
        addon.base_url = info["base_url"]
        task = info["task_uuid"]
        url = f"{info['base_url']}/tasks/download/{task}"
        dest = tmp / f"native-{task}.glb"

        def addon_once(task: str = task) -> float:
            bpy.ops.wm.read_homefile(use_empty=True)
            cpu = time.process_time()
            started = time.perf_counter()
            result = bpy.ops.triverse.import_task(task_uuid=task)
            elapsed = time.perf_counter() - started
            addon_once.cpu = time.process_time() - cpu  # type: ignore[attr-defined]
            if result != {"FINISHED"} or not bpy.data.objects:
                raise SystemExit(f"import_task returned {result} with {len(bpy.data.objects)} objects")
            return elapsed

        def native_once(url: str = url, dest: Path = dest) -> tuple[float, float]:
            bpy.ops.wm.read_homefile(use_empty=True)
            unlink(dest)
            cpu = time.process_time()
            started = time.perf_counter()
            curl_cpu = curl_download(spec["curl"], url, dest)[2]
            fetched = time.perf_counter()
            result = bpy.ops.import_scene.gltf(filepath=str(dest))
            elapsed = time.perf_counter() - started
            native_once.cpu = time.process_time() - cpu + curl_cpu  # type: ignore[attr-defined]
            if result != {"FINISHED"} or not bpy.data.objects:
                raise SystemExit(f"import_scene.gltf returned {result} with {len(bpy.data.objects)} objects")
            return elapsed, fetched - started

        addon_once()  # warm-up, untimed: the glTF importer's modules load on first use
        native_once()
        data: dict[str, list[Any]] = {
            "addon_s": [],
            "native_s": [],
            "native_curl_s": [],
            "addon_cpu_s": [],
            "native_cpu_s": [],
            "first": [],
        }
        for i in range(spec["runs"]):
            if i % 2 == 0:
                addon_s = addon_once()
                native_s, curl_s = native_once()
            else:
                native_s, curl_s = native_once()
                addon_s = addon_once()
            data["addon_s"].append(addon_s)
            data["native_s"].append(native_s)
            data["native_curl_s"].append(curl_s)
            data["addon_cpu_s"].append(addon_once.cpu)  # type: ignore[attr-defined]
            data["native_cpu_s"].append(native_once.cpu)  # type: ignore[attr-defined]
            data["first"].append("addon" if i % 2 == 0 else "native")
        unlink(dest)
        results[label] = data
    results_meta = {"bpy": bpy.app.version_string}
    Path(spec["out"]).write_text(json.dumps({k: {**v, **results_meta} for k, v in results.items()}))


# -- 4. batch --------------------------------------------------------------------------------------


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
    with server_process([sys.executable, __file__, "_serve", json.dumps(spec)], tmp / "batch-server.log") as info:
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


# -- 5. UI stall -----------------------------------------------------------------------------------


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

    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--", "triverse_addon"])
    return {
        "cpu": cpu,
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_GiB": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
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
    return table


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
        f"- **Batch**: `scripts/batch_import.py --jobs N --report R` over {BATCH_TASKS} distinct tasks of the "
        f"1 MB asset, the stand-in answering each download after {BATCH_DELAY * 1000:.0f} ms "
        "(`fail('first_byte_delay')`); each run in a fresh `BLENDER_USER_RESOURCES`, so the library starts "
        "empty and all tasks download. The rounds rotate which --jobs goes first. `report seconds` is the "
        "script's own `seconds` (after Blender and the add-on are loaded, with the save); `wall` is the whole "
        "process. Ratio = time at --jobs 1 ÷ time at --jobs N (speed-up).",
        f"- **Stall**: `{_shown(UI_DRIVER)} --scenario {UI_SCENARIO}` in Debian's Blender under Xvfb "
        "(its result.json: `max_gap_ms`, `p95_gap_ms`, `baseline_max_gap_ms`, `addon_max_ms`, and "
        "`redraw_only_max_gap_ms`, the gaps when the sidebar is only redrawn at the add-on's cadence). The "
        "gaps are between 10 ms ticks of a probe timer; software OpenGL makes each sidebar redraw cost tens of ms.",
        "",
        "CPU time of the same runs (this process's `time.process_time()` for the client and the bpy process; "
        "`RUSAGE_CHILDREN` for curl and the batch process), less disturbed by other load on the machine:",
        "",
        cpu_table(results),
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores_logical']} logical cores ({m['cores_physical']} physical), "
        f"{m['ram_GiB']} GiB RAM; {m['os']}",
        f"- Python {m['python']}, bpy {m['bpy']}, requests {m['requests']}, urllib3 {m['urllib3']}",
        f"- {m['curl']}",
        f"- UI tier: {m['ui_blender']}",
        f"- Load average at start {tuple(round(x, 2) for x in m['loadavg_start'])}, "
        f"at end {tuple(round(x, 2) for x in meta['loadavg_end'])} (other work on this 2-core machine adds noise)",
        "",
    ]
    path.write_text("\n".join(lines))


def plot(path: Path, results: dict[str, Any]) -> None:
    """plot.png: throughput, RSS growth, end to end, batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(f"Triverse for Blender benchmarks ({results['machine']['date'][:10]})", fontsize=13)

    def bars(ax: Any, groups: list[str], series: list[tuple[str, list[list[float]], str]], unit: str) -> None:
        width = 0.8 / max(1, len(series))
        for k, (name, per_group, color) in enumerate(series):
            meds = [statistics.median(v) if v else 0 for v in per_group]
            lo = [m - min(v) if v else 0 for m, v in zip(meds, per_group, strict=True)]
            hi = [max(v) - m if v else 0 for m, v in zip(meds, per_group, strict=True)]
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=name, color=color)
            for x, m, v in zip(xs, meds, per_group, strict=True):
                y = max(v) if v else m  # above the min-max whisker, so the two never overlap
                ax.annotate(
                    f"{m:.3g}", (x, y), ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points"
                )
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(unit)
        top = max((max(v) for _, per_group, _ in series for v in per_group if v), default=1.0)
        ax.set_ylim(0, top * 1.25)  # room for the labels and the legend
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(axis="y", alpha=0.3)

    def empty(ax: Any, title: str, why: str) -> None:
        ax.set_title(title)
        ax.text(0.5, 0.5, f"not measured\n({why})", ha="center", va="center", transform=ax.transAxes, wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])

    tp = results.get("throughput") or {}
    ax = axes[0][0]
    if "not_measured" in tp or not tp:
        empty(ax, "Download throughput", _why(tp))
    else:
        labels = [s for s in SIZES if s in tp]
        ratio_text = ", ".join(f"{s}: {statistics.median(tp[s]['ratio_client_over_curl']):.2f}" for s in labels)
        bars(
            ax,
            labels,
            [
                ("add-on client", [tp[s]["client_MBps"] for s in labels], "tab:blue"),
                ("curl", [tp[s]["curl_MBps"] for s in labels], "tab:gray"),
            ],
            "MB/s (higher is better)",
        )
        ax.set_title(f"Download throughput (client/curl {ratio_text})", fontsize=10)

    rss = results.get("rss") or {}
    ax = axes[0][1]
    if "not_measured" in rss or not rss:
        empty(ax, "Peak RSS growth during a download", _why(rss))
    else:
        labels = [s for s in SIZES if s in rss]
        bars(ax, labels, [("peak RSS growth", [rss[s]["growth_MB"] for s in labels], "tab:green")], "MB")
        ax.axhline(TARGETS["rss_mb"], color="tab:red", ls="--", lw=1, label=f"target < {TARGETS['rss_mb']:.0f} MB")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_ylim(0, TARGETS["rss_mb"] * 1.25)
        ax.set_title("Peak RSS growth during a download, by asset size", fontsize=10)
        ax.set_xlabel("asset size")

    e2e = results.get("e2e") or {}
    ax = axes[1][0]
    if "not_measured" in e2e or not e2e:
        empty(ax, "End to end", _why(e2e))
    else:
        labels = [s for s in E2E_SIZES if s in e2e]
        bars(
            ax,
            labels,
            [
                ("import_task", [[x * 1000 for x in e2e[s]["addon_s"]] for s in labels], "tab:blue"),
                ("curl + glTF import", [[x * 1000 for x in e2e[s]["native_s"]] for s in labels], "tab:gray"),
            ],
            "ms (lower is better)",
        )
        ratio_text = ", ".join(f"{s}: {statistics.median(e2e[s]['ratio']):.2f}" for s in labels)
        ax.set_title(f"End to end in bpy {results['machine']['bpy']} (ratio {ratio_text})", fontsize=10)

    batch = results.get("batch") or {}
    ax = axes[1][1]
    if "not_measured" in batch or not batch:
        empty(ax, f"Batch of {BATCH_TASKS}", _why(batch))
    else:
        labels = [f"--jobs {j}" for j in BATCH_JOBS]
        bars(
            ax,
            labels,
            [
                ("report seconds", [batch["jobs"][str(j)]["report_s"] for j in BATCH_JOBS], "tab:orange"),
                ("wall (with Blender start)", [batch["jobs"][str(j)]["wall_s"] for j in BATCH_JOBS], "tab:gray"),
            ],
            "s (lower is better)",
        )
        speed = ", ".join(f"x{statistics.median(batch[f'speedup_{j}_over_1']):.2f}" for j in BATCH_JOBS[1:])
        ax.set_title(
            f"Batch of {BATCH_TASKS} tasks, {BATCH_DELAY * 1000:.0f} ms to first byte (speed-up 4, 8: {speed})",
            fontsize=10,
        )
    stall = results.get("stall") or {}
    if stall.get("max_gap_ms"):
        note = f"UI stall during a sidebar download: max gap {statistics.median(stall['max_gap_ms']):.0f} ms"
    else:
        note = f"UI stall: not measured ({_why(stall)})"
    fig.text(0.5, 0.01, note, ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------------------

PHASES = ("throughput", "rss", "e2e", "batch", "stall")


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
    parser.add_argument("--ui-driver", type=Path, default=UI_DRIVER, help=argparse.SUPPRESS)  # to test this path
    args = parser.parse_args()
    phases = args.only or list(PHASES)
    pick = 1 if args.quick else 0
    out_dir = (args.out or (QUICK_OUT if args.quick or args.only else FULL_OUT)).resolve()  # docs/: full runs only
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    tmp = Path(tempfile.mkdtemp(prefix="triverse-bench-"))
    try:
        assets = ensure_assets(tmp / "assets.log")
        with contextlib.ExitStack() as stack:
            servers: dict[str, dict[str, Any]] = {}
            for label, asset in assets.items():
                task = str(uuid.uuid5(uuid.NAMESPACE_URL, f"triverse-bench-{label}"))
                servers[label] = stack.enter_context(
                    standin_cli(Path(asset["path"]), task, tmp / f"server-{label.replace(' ', '')}.log")
                )
            if "throughput" in phases:
                runs = RUNS["throughput"][pick]
                run_phase(results, "throughput", lambda: bench_throughput(servers, assets, runs, tmp))
            if "rss" in phases:
                run_phase(results, "rss", lambda: bench_rss(servers, RUNS["rss"][pick], tmp))
            if "e2e" in phases:
                run_phase(results, "e2e", lambda: bench_e2e(servers, RUNS["e2e"][pick], tmp))
        if "batch" in phases:
            asset_1mb = Path(assets["1 MB"]["path"])
            run_phase(results, "batch", lambda: bench_batch(asset_1mb, RUNS["batch"][pick], tmp))
        if "stall" in phases:
            why = ui_unavailable(args.ui_driver)
            if why:
                results["stall"] = {"not_measured": why}
                print(f"[stall] not measured: {why}", flush=True)
            else:
                run_phase(results, "stall", lambda: bench_stall(args.ui_driver, RUNS["stall"][pick], tmp))
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
    failed = [p for p in phases if isinstance(results.get(p), dict) and results[p].get("not_measured")]
    return 1 if [p for p in failed if p != "stall" or not ui_unavailable(args.ui_driver)] else 0


WORKERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "_assets": worker_assets,
    "_rss": worker_rss,
    "_e2e": worker_e2e,
    "_serve": worker_serve,
}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in WORKERS:
        WORKERS[sys.argv[1]](json.loads(sys.argv[2]))  # a child started by this script, in .venv/bench
        sys.stdout.flush()
        os._exit(0)  # bpy may crash at interpreter exit after an import; the work is done
    _bootstrap.reexec_in(VENV)
    sys.exit(main())
