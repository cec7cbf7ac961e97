"""End to end in bpy 5.0: `import_task` against curl + Blender's glTF importer, pair by pair.

Two measures share this code: "e2e" (library off, padded GLBs: the add-on's own overhead) and
"e2e_defaults" (the add-on as installed: library on in its default folder; GLBs that are all mesh).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BENCHMARK, KEY, SCRIPTS, TIMEOUT, curl_download, ensure_curl, ratios, run_checked, unlink

TMPFS = Path("/dev/shm")  # both sides write there when it has room: disk writeback then disturbs neither


def bench_e2e(servers: dict[str, dict[str, Any]], runs: int, tmp: Path, *, defaults: bool = False) -> dict[str, Any]:
    """Run the bpy worker over `servers` ({label: stand-in info}); summarise pair by pair."""
    name = "e2e_defaults" if defaults else "e2e"
    needed = 3 * sum(info.get("bytes", 0) for info in servers.values()) + (64 << 20)
    work_root = TMPFS if defaults and TMPFS.is_dir() and shutil.disk_usage(TMPFS).free > needed else tmp
    work = Path(tempfile.mkdtemp(prefix=f"triverse-{name}-", dir=work_root))
    try:
        spec = {
            "tasks": servers,
            "runs": runs,
            "curl": ensure_curl(),
            "tmp": str(work),
            "out": str(tmp / f"{name}.json"),
            "library": defaults,
        }
        env = {**os.environ, "BLENDER_USER_RESOURCES": str(work / "user")}
        for var in ("TRIVERSE_API_KEY", "TRIVERSE_API_URL"):
            env.pop(var, None)
        run_checked([sys.executable, str(BENCHMARK), "_e2e", json.dumps(spec)], TIMEOUT["e2e"], tmp / f"{name}.log",
                    env=env)  # fmt: skip
        result: dict[str, Any] = json.loads(Path(spec["out"]).read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label, data in result.items():
        data["ratio"] = ratios(data["addon_s"], data["native_s"])
        data["ratio_fastest"] = min(data["addon_s"]) / min(data["native_s"])
        data["files_on"] = "tmpfs" if work_root == TMPFS else "disk"
        print(
            f"[{name}] {label}: import_task fastest {min(data['addon_s']):.3f} s, curl + glTF fastest "
            f"{min(data['native_s']):.3f} s: ratio of fastest {data['ratio_fastest']:.3f}, "
            f"median of pairs {statistics.median(data['ratio']):.3f}",
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
    addon.use_library = spec["library"]  # off: every run downloads to a temporary folder
    library_dir = Path(sys.modules[f"{module}.preferences"].default_library_dir()) if spec["library"] else None

    tmp = Path(spec["tmp"])
    results: dict[str, Any] = {}
    for label, info in spec["tasks"].items():
        addon.base_url = info["base_url"]
        task = info["task_uuid"]
        url = f"{info['base_url']}/tasks/download/{task}"
        dest = tmp / f"native-{task}.glb"

        def addon_once(task: str = task, info: dict[str, Any] = info) -> float:
            bpy.ops.wm.read_homefile(use_empty=True)
            if library_dir is not None:  # forget the kept copy (untimed): every run downloads and keeps it again
                shutil.rmtree(library_dir / task, ignore_errors=True)
            cpu = time.process_time()
            started = time.perf_counter()
            result = bpy.ops.triverse.import_task(task_uuid=task)
            elapsed = time.perf_counter() - started
            addon_once.cpu = time.process_time() - cpu  # type: ignore[attr-defined]
            if result != {"FINISHED"} or not bpy.data.objects:
                raise SystemExit(f"import_task returned {result} with {len(bpy.data.objects)} objects")
            if library_dir is not None:
                addon_once.kept = _kept_after(library_dir / task / "meta.json", info, started)  # type: ignore[attr-defined]
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
            "kept_s": [],
            "native_cpu_s": [],
            "first": [],
        }
        runs = spec["runs"][label] if isinstance(spec["runs"], dict) else spec["runs"]
        for i in range(runs):
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
            if library_dir is not None:
                data["kept_s"].append(addon_once.kept)  # type: ignore[attr-defined]
            data["native_cpu_s"].append(native_once.cpu)  # type: ignore[attr-defined]
            data["first"].append("addon" if i % 2 == 0 else "native")
        unlink(dest)
        bpy.ops.wm.read_homefile(use_empty=True)
        if library_dir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(library_dir / task)
        results[label] = data
    results_meta = {"bpy": bpy.app.version_string, "library": spec["library"]}
    Path(spec["out"]).write_text(json.dumps({k: {**v, **results_meta} for k, v in results.items()}))


def _kept_after(meta: Path, info: dict[str, Any], started: float) -> float:
    """Seconds from the operator's start until the library's record of the task exists (checked to be right).

    The add-on may record a download after the model is in the scene (its SHA-256 taken meanwhile): the
    next run must not start before, and the record must say what was served.
    """
    deadline = time.monotonic() + 60
    while not meta.is_file():
        if time.monotonic() > deadline:
            raise SystemExit(f"import_task kept nothing in the library ({meta} never appeared)")
        time.sleep(0.002)
    seen = time.perf_counter() - started
    record = json.loads(meta.read_text("utf-8"))
    if record["size"] != info["bytes"] or record["sha256"] != info["sha256"]:
        raise SystemExit(f"the library's record of {info['task_uuid']} is wrong: {record}")
    return seen
