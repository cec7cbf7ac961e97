"""The GLBs the measures download, made once with Blender's own exporter and kept in build/bench-assets/.

- "padded": the sample scene plus an unused buffer (big file, cheap import): isolates the download.
- "mesh": a displaced grid of the size asked, all of it real geometry (the importer reads every byte),
  like a generated model: what a user waits for end to end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from .common import ASSET_DIR, BENCHMARK, SCRIPTS, SIZES, TIMEOUT, run_checked

KINDS = ("padded", "mesh")


def asset_key(kind: str, label: str) -> str:
    """The manifest's key: "1 MB" for the padded assets (as before), "mesh 1 MB" for the others."""
    return label if kind == "padded" else f"{kind} {label}"


def ensure_assets(log: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, dict[str, Any]]:
    """{key: {path, target, bytes, sha256}} for every size of each kind, made when missing or changed."""
    manifest_path = ASSET_DIR / "assets.json"
    manifest: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads(manifest_path.read_text())
    wanted = {asset_key(kind, label): (kind, target) for kind in kinds for label, target in SIZES.items()}
    missing = {
        key: {"kind": kind, "target": target}
        for key, (kind, target) in wanted.items()
        if key not in manifest
        or manifest[key].get("target") != target
        or not Path(manifest[key]["path"]).is_file()
        or Path(manifest[key]["path"]).stat().st_size != manifest[key]["bytes"]
    }
    if missing:
        print(f"[assets] making {', '.join(missing)} with Blender's glTF exporter (first run only)", flush=True)
        spec = {"dir": str(ASSET_DIR), "targets": missing}
        run_checked([sys.executable, str(BENCHMARK), "_assets", json.dumps(spec)], TIMEOUT["assets"], log)
        manifest.update(json.loads((ASSET_DIR / "made.json").read_text()))
        manifest_path.write_text(json.dumps(manifest, indent=1))
    return {key: manifest[key] for key in wanted}


def worker_assets(spec: dict[str, Any]) -> None:
    """(bpy) Make each asset asked for: padded sample scenes, or grids sized to the target."""
    sys.path.insert(0, str(SCRIPTS))
    import sample_asset

    folder = Path(spec["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    base = sample_asset.make_glb(folder / "base.glb").stat().st_size
    made = {}
    for key, want in spec["targets"].items():
        path = folder / f"asset-{key.replace(' ', '').lower()}.glb"
        if want["kind"] == "padded":
            sample_asset.make_glb(path, padding_bytes=max(0, want["target"] - base))
        else:
            _make_mesh_glb(path, want["target"])
        made[key] = {"path": str(path), "target": want["target"], "bytes": path.stat().st_size, "sha256": _sha256(path)}
    (folder / "made.json").write_text(json.dumps(made, indent=1))


def _make_mesh_glb(path: Path, target: int) -> None:
    """A smooth, displaced grid whose GLB is just under `target` bytes, then padded to it (< 3 % padding)."""
    import sample_asset

    cuts = 200
    size = _export_grid(path, cuts)
    for _ in range(6):  # bytes grow with the vertex count (and index width): aim again from each result
        if 0.97 * target <= size <= target:
            break
        cuts = max(2, int((cuts + 1) * (0.985 * target / size) ** 0.5) - 1)
        size = _export_grid(path, cuts)
    if size > target:
        raise RuntimeError(f"could not make a mesh GLB of at most {target} bytes (got {size})")
    if size < target:
        sample_asset.pad_glb(path, target - size)


def _export_grid(path: Path, cuts: int) -> int:
    """Export a (cuts+1)² vertex grid with positions, normals and UVs; its GLB size in bytes."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=cuts, y_subdivisions=cuts, size=4)
    grid = bpy.context.active_object
    grid.name = "Terrain"
    wave = bpy.data.textures.new("waves", "CLOUDS")
    displace = grid.modifiers.new("Displace", "DISPLACE")
    displace.texture = wave
    displace.strength = 0.3
    bpy.ops.object.shade_smooth()
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_apply=True, export_materials="NONE")
    bpy.ops.wm.read_homefile(use_empty=True)
    return path.stat().st_size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
