"""Download throughput: the add-on's client against curl on the same server process."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .common import KEY, MB, ROOT, curl_download, ensure_curl, ratios, unlink


def bench_throughput(
    servers: dict[str, dict[str, Any]], assets: dict[str, dict[str, Any]], runs: dict[str, int], tmp: Path
) -> dict[str, Any]:
    """Client (in this process) against curl (its own process) on the same server process, pair by pair."""
    sys.path.insert(0, str(ROOT))
    from triverse_addon.service.api import TriverseClient
    from triverse_addon.service.settings import Settings

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
