"""Peak RSS growth of a fresh process that only downloads."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import BENCHMARK, KEY, MB, ROOT, TIMEOUT, unlink


def bench_rss(servers: dict[str, dict[str, Any]], runs: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS growth of a fresh process that only downloads, per size."""
    out: dict[str, Any] = {}
    for label, info in servers.items():
        growth, samples = [], []
        for i in range(runs):
            spec = {"base_url": info["base_url"], "task_uuid": info["task_uuid"], "dest": str(tmp / f"rss-{i}.bin")}
            proc = subprocess.run(
                [sys.executable, str(BENCHMARK), "_rss", json.dumps(spec)],
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
    from triverse_addon.service.api import TriverseClient
    from triverse_addon.service.settings import Settings

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
