"""The scene round trip's own cost, in bpy 5.0: the add-on's export + model upload of a mesh against Blender's glTF
exporter alone + curl uploading the same kind of file, pair by pair, for a 10k- and a 1M-triangle mesh.

The add-on's side is what its scene tools run: `export_group(context, group, with_materials=False)` (the evaluated
mesh in object space, through a temporary object, written by Blender's glTF exporter) then
`scene_api.upload_model(client, path, "geometry")` on a client made and closed inside the timing. The reference is
`bpy.ops.export_scene.gltf(export_format="GLB", use_selection=True, export_apply=True)` on the same object, then
`curl -s -o /dev/null -F file=@model.glb -H 'Authorization: Bearer KEY' URL/upload/model?modelVariant=geometry`
(a subprocess, its wall time: the process start counts, as in the end-to-end measure). The stand-in runs in its own
process (`_roundtrip_serve`, JSON lines on its stdin) with its upload limit lifted.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    BENCHMARK,
    KEY,
    ROOT,
    SCRIPTS,
    TIMEOUT,
    _die_with_parent,
    children_cpu,
    ensure_curl,
    ratios,
    run_checked,
    unlink,
)
from .e2e import TMPFS
from .watch import _Standin

# label: (grid quads along x, along y, Subdivision levels): triangles = 2 * x * y * 4**levels
MESHES = {"10k": (50, 25, 1), "1M": (250, 125, 2)}
VARIANT = "geometry"  # texturing sends geometry (SceneRequest.model_variant)


def bench_roundtrip(runs: dict[str, int], tmp: Path) -> dict[str, Any]:
    """Run the bpy worker over both meshes; summarise pair by pair."""
    needed = 4 * 60_000_000 + (64 << 20)  # a few copies of the 1M-triangle GLB (~40 MB)
    work_root = TMPFS if TMPFS.is_dir() and shutil.disk_usage(TMPFS).free > needed else tmp
    work = Path(tempfile.mkdtemp(prefix="triverse-roundtrip-", dir=work_root))
    try:
        spec = {"runs": runs, "curl": ensure_curl(), "tmp": str(work), "out": str(tmp / "roundtrip.json")}
        env = {**os.environ, "BLENDER_USER_RESOURCES": str(work / "user"), "TMPDIR": str(work)}  # both sides' files
        for var in ("TRIVERSE_API_KEY", "TRIVERSE_API_URL"):
            env.pop(var, None)
        load_start = os.getloadavg()
        cmd = [sys.executable, str(BENCHMARK), "_roundtrip", json.dumps(spec)]
        run_checked(cmd, TIMEOUT["roundtrip"], tmp / "roundtrip.log", env=env)
        result: dict[str, Any] = json.loads(Path(spec["out"]).read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = [load_start, os.getloadavg()]
    for label, data in result.items():
        data["ratio"] = ratios(data["addon_s"], data["native_s"])
        data["ratio_curl_total"] = ratios(data["addon_s"], [e + c for e, c in zip(data["native_export_s"],
                                                                                  data["native_curl_total_s"],
                                                                                  strict=True)])  # fmt: skip
        data["files_on"] = "tmpfs" if work_root == TMPFS else "disk"
        data["loadavg"] = load
        med = statistics.median
        print(
            f"[roundtrip] {label} ({data['triangles']} triangles, {data['addon_bytes'][0] / 1e6:.1f} MB GLB): "
            f"add-on {med(data['addon_s']):.3f} s (export {med(data['addon_export_s']):.3f}), glTF + curl "
            f"{med(data['native_s']):.3f} s (export {med(data['native_export_s']):.3f}); ratio of pairs "
            f"{med(data['ratio']):.3f}",
            flush=True,
        )
    return result


# -- the stand-in, in its own process ---------------------------------------------------------------


class _Server(_Standin):
    """The `_roundtrip_serve` child (the watch measure's JSON-lines channel)."""

    def __init__(self) -> None:
        cmd = [sys.executable, str(BENCHMARK), "_roundtrip_serve", "{}"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)  # fmt: skip
        self.base_url = self._answer()["base_url"]


def worker_roundtrip_serve(spec: dict[str, Any]) -> None:
    """(stand-in child) Serve model uploads, no upload limit; "take" answers what was uploaded and forgets it."""
    sys.path.insert(0, str(SCRIPTS))
    from standin_server import StandinServer

    with StandinServer(api_key=KEY) as srv:
        srv.gen.upload_limit = (1_000_000_000, 60.0)  # the service allows 10 a minute: a wait is not a cost
        print(json.dumps({"base_url": srv.base_url}), flush=True)
        for line in sys.stdin:
            if json.loads(line)["op"] != "take":
                raise SystemExit(f"unknown command {line!r}")
            with srv.gen._lock:
                models = list(srv.gen.uploaded_models.values())
                srv.gen.uploaded_models.clear()  # the server would otherwise keep every 40 MB upload
            answer = [{"bytes": len(m["bytes"]), "variant": m["variant"], "kind": m["kind"]} for m in models]
            print(json.dumps({"uploads": answer}), flush=True)


# -- the measured process ---------------------------------------------------------------------------


def worker_roundtrip(spec: dict[str, Any]) -> None:
    """(bpy) The extension loaded as the tests load it; both ways on each mesh, alternating."""
    import bpy  # noqa: I001 - addon_utils exists only once bpy is imported

    import addon_utils

    sys.path.insert(0, str(SCRIPTS))
    import build

    repo_dir = Path(os.environ["BLENDER_USER_RESOURCES"]) / "dev-repo"
    build.stage(repo_dir, link=True)
    prefs = bpy.context.preferences
    prefs.extensions.repos.new(name="Dev", module="dev", custom_directory=str(repo_dir), source="USER")
    module = "bl_ext.dev.triverse"
    addon_utils.enable(module, default_set=True)
    if module not in prefs.addons:
        raise SystemExit(f"{module} did not enable")
    prefs.system.use_online_access = True
    export = importlib.import_module(f"{module}.blender.scene_tools.export")
    scene_api = importlib.import_module(f"{module}.service.scene_api")
    api = importlib.import_module(f"{module}.service.api")
    settings_mod = importlib.import_module(f"{module}.service.settings")

    srv = _Server()
    try:
        settings = settings_mod.Settings(api_key=KEY, base_url=srv.base_url)
        url = f"{srv.base_url}/upload/model?modelVariant={VARIANT}"
        tmp = Path(spec["tmp"])
        results: dict[str, Any] = {}
        for label, shape in MESHES.items():
            bpy.ops.wm.read_homefile(use_empty=True)
            ob, triangles = _make_mesh(bpy, label, *shape)
            dest = tmp / f"native-{label}.glb"

            def addon_once(ob: Any = ob) -> tuple[float, float, int]:
                group = export.selected_groups(bpy.context)[0]  # untimed: what the operator checks first
                if group.first != ob:
                    raise SystemExit(f"the group is {group.first.name}, not {ob.name}")
                cpu = time.process_time()
                started = time.perf_counter()
                exported = export.export_group(bpy.context, group, False)
                written = time.perf_counter()
                with api.TriverseClient(settings) as client:
                    key = scene_api.upload_model(client, exported.path, VARIANT)
                elapsed = time.perf_counter() - started
                addon_once.cpu = time.process_time() - cpu  # type: ignore[attr-defined]
                size = exported.path.stat().st_size
                exported.cleanup()
                if not key:
                    raise SystemExit("upload_model answered no file_key")
                return elapsed, written - started, size

            def native_once(ob: Any = ob, dest: Path = dest) -> tuple[float, float, float, int]:
                unlink(dest)
                for other in bpy.context.view_layer.objects:
                    other.select_set(other == ob)
                bpy.context.view_layer.objects.active = ob
                cpu = time.process_time()
                curl_cpu = children_cpu()
                started = time.perf_counter()
                result = bpy.ops.export_scene.gltf(filepath=str(dest), export_format="GLB", use_selection=True,
                                                   export_apply=True)  # fmt: skip
                written = time.perf_counter()
                total = curl_upload(spec["curl"], url, dest)
                elapsed = time.perf_counter() - started
                native_once.cpu = time.process_time() - cpu + children_cpu() - curl_cpu  # type: ignore[attr-defined]
                if result != {"FINISHED"}:
                    raise SystemExit(f"export_scene.gltf returned {result}")
                return elapsed, written - started, total, dest.stat().st_size

            def check(side: str, size: int) -> None:
                uploads = srv.call("take")["uploads"]
                if uploads != [{"bytes": size, "variant": VARIANT, "kind": "glb"}]:
                    raise SystemExit(f"the {side} run uploaded {uploads}, not one {size}-byte GLB")

            check("add-on warm-up", addon_once()[2])  # untimed: the exporter's modules, the first connection
            check("reference warm-up", native_once()[3])
            data: dict[str, Any] = {k: [] for k in ("addon_s", "native_s", "addon_export_s", "native_export_s",
                                                     "native_curl_total_s", "addon_cpu_s", "native_cpu_s",
                                                     "addon_bytes", "native_bytes", "first")}  # fmt: skip
            for i in range(spec["runs"][label]):
                order = ("addon", "native") if i % 2 == 0 else ("native", "addon")
                for side in order:
                    if side == "addon":
                        addon_s, addon_export, addon_bytes = addon_once()
                        check("add-on", addon_bytes)
                    else:
                        native_s, native_export, curl_total, native_bytes = native_once()
                        check("reference", native_bytes)
                data["addon_s"].append(addon_s)
                data["native_s"].append(native_s)
                data["addon_export_s"].append(addon_export)
                data["native_export_s"].append(native_export)
                data["native_curl_total_s"].append(curl_total)
                data["addon_cpu_s"].append(addon_once.cpu)  # type: ignore[attr-defined]
                data["native_cpu_s"].append(native_once.cpu)  # type: ignore[attr-defined]
                data["addon_bytes"].append(addon_bytes)
                data["native_bytes"].append(native_bytes)
                data["first"].append(order[0])
            unlink(dest)
            results[label] = {**data, "triangles": triangles, "bpy": bpy.app.version_string}
    finally:
        srv.close()
    Path(spec["out"]).write_text(json.dumps(results))


def curl_upload(curl: str, url: str, path: Path) -> float:
    """Upload a model with curl as a user would; curl's own total time in s (the caller times the wall)."""
    cmd = [curl, "-s", "-o", "/dev/null", "-F", f"file=@{path}", "-H", f"Authorization: Bearer {KEY}",
           "-w", "%{http_code} %{time_total}", url]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT["curl"])
    code, _, total = proc.stdout.strip().partition(" ")
    if proc.returncode != 0 or code != "200":
        raise SystemExit(f"curl failed: exit {proc.returncode}, HTTP {code}: {proc.stderr.strip()}")
    return float(total)


def _make_mesh(bpy: Any, label: str, nx: int, ny: int, levels: int) -> tuple[Any, int]:
    """A smooth, gently waved grid of nx * ny quads with a UV map and a Subdivision modifier (what counts is the
    evaluated mesh: 2 * nx * ny * 4**levels triangles), alone in the scene, selected and active."""
    import math

    verts = [(i / nx * 2 - 1, j / ny - 0.5, 0.05 * math.sin(i * 0.3) * math.cos(j * 0.2))
             for j in range(ny + 1) for i in range(nx + 1)]  # fmt: skip
    faces = [(j * (nx + 1) + i, j * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i)
             for j in range(ny) for i in range(nx)]  # fmt: skip
    mesh = bpy.data.meshes.new(f"bench-{label}")
    mesh.from_pydata(verts, [], faces)
    uv = mesh.uv_layers.new(name="UVMap")
    coords = [c for loop in mesh.loops for c in _uv(verts[loop.vertex_index])]
    uv.data.foreach_set("uv", coords)
    mesh.shade_smooth()
    mesh.update()
    ob = bpy.data.objects.new(f"bench-{label}", mesh)
    bpy.context.scene.collection.objects.link(ob)
    mod = ob.modifiers.new("Subdivision", "SUBSURF")
    mod.levels = mod.render_levels = levels
    ob.select_set(True)
    bpy.context.view_layer.objects.active = ob
    evaluated = ob.evaluated_get(bpy.context.evaluated_depsgraph_get())
    triangles = len(evaluated.data.loop_triangles)
    if triangles != 2 * nx * ny * 4**levels:
        raise SystemExit(f"the {label} mesh has {triangles} triangles, not {2 * nx * ny * 4**levels}")
    return ob, triangles


def _uv(co: tuple[float, float, float]) -> tuple[float, float]:
    return co[0] / 2 + 0.5, co[1] + 0.5
