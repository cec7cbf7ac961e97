"""Every format, decided by the bytes, imported by Blender's own importers; zips unpacked safely.

Files come from Blender's own exporters (made here), and from the real third-party assets in
../shared/assets when they are there (those checks skip with a message otherwise).
"""

from __future__ import annotations

import io
import json
import struct
import threading
import uuid
import zipfile
from pathlib import Path

import bpy
import pytest
from conftest import SHARED_ASSETS, addon_prefs, scene_counts

import sample_asset

NATIVE = {
    "glb": lambda p: bpy.ops.import_scene.gltf(filepath=str(p)),
    "gltf": lambda p: bpy.ops.import_scene.gltf(filepath=str(p)),
    "fbx": lambda p: bpy.ops.import_scene.fbx(filepath=str(p)),
    "obj": lambda p: bpy.ops.wm.obj_import(filepath=str(p)),
    "stl": lambda p: bpy.ops.wm.stl_import(filepath=str(p)),
    "ply": lambda p: bpy.ops.wm.ply_import(filepath=str(p)),
    "usdc": lambda p: bpy.ops.wm.usd_import(filepath=str(p)),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The sample scene written by each of Blender's exporters."""
    return sample_asset.export_formats(tmp_path_factory.mktemp("formats"))


def _zip_folder(folder: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return buf.getvalue()


def _native(fmt: str, path: Path) -> dict[str, int]:
    bpy.ops.wm.read_homefile(use_empty=True)
    NATIVE[fmt](path)
    counts = scene_counts()
    bpy.ops.wm.read_homefile(use_empty=True)
    return counts


def _import(server, body: bytes | Path, ext: str, filename: str | None = None) -> str:
    task = str(uuid.uuid4())
    server.add(task, body, ext=ext, filename=filename)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    return task


def _same_as_native(native: dict[str, int]) -> None:
    counts = scene_counts()
    assert counts["objects"] == native["objects"] > 0
    assert counts["vertices"] == native["vertices"]
    assert counts["images"] == native["images"]
    assert counts["collections"] == native["collections"] + 1


@pytest.mark.parametrize("fmt", ["glb", "fbx", "stl", "ply", "usdc"])
def test_single_file_formats_import_like_blenders_own_importer(standin, exported, fmt, tmp_path):
    if fmt not in exported:
        pytest.skip(f"this Blender cannot export .{fmt}")
    alone = tmp_path / f"alone.{fmt}"  # the served file travels without side files: compare like with like
    alone.write_bytes(exported[fmt].read_bytes())
    native = _native(fmt, alone)
    # The server's file name says .bin: the bytes decide the format, not the name.
    task = _import(standin, exported[fmt], ext="bin", filename="whatever.bin")
    _same_as_native(native)
    kept = Path(addon_prefs().library_dir) / task
    assert (kept / f"asset.{fmt}").is_file()


@pytest.mark.parametrize("fmt", ["gltf", "obj"])
def test_zip_with_side_files_imports_the_model_inside(standin, exported, fmt):
    native = _native(fmt, exported[fmt])
    body = _zip_folder(exported[fmt].parent, prefix="model/")
    task = _import(standin, body, ext="zip")
    _same_as_native(native)
    if fmt == "gltf":
        image = next(iter(bpy.data.images))
        assert image.has_data or image.size[0] > 0  # the texture inside the zip was found and loaded
    assert (Path(addon_prefs().library_dir) / task / "asset.zip").is_file()


def test_unsafe_zip_is_refused_and_nothing_is_written_outside(standin, exported, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.glb", exported["glb"].read_bytes())
        zf.writestr("../../escaped.txt", "outside")
    task = str(uuid.uuid4())
    standin.add(task, buf.getvalue(), ext="zip")
    with pytest.raises(RuntimeError, match="unsafe entry"):
        bpy.ops.triverse.import_task(task_uuid=task)
    assert len(bpy.data.objects) == 0
    assert not list(Path("/tmp").glob("escaped.txt"))
    assert not (Path(addon_prefs().library_dir) / task).exists()


def test_unsupported_format_is_named(standin):
    task = str(uuid.uuid4())
    standin.add(task, b"BLENDER-v300" + bytes(2000), ext="blend")
    with pytest.raises(RuntimeError, match=r"a \.blend file, which Blender cannot import"):
        bpy.ops.triverse.import_task(task_uuid=task)
    assert len(bpy.data.objects) == 0


def test_zip_without_a_model_says_what_it_holds(standin):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("scene.blend", b"BLENDER-v300")
    task = str(uuid.uuid4())
    standin.add(task, buf.getvalue(), ext="zip")
    with pytest.raises(RuntimeError, match=r"no 3D model Blender can import \(found: blend, txt\)"):
        bpy.ops.triverse.import_task(task_uuid=task)


def test_wait_imports_once_the_task_succeeds(standin, exported):
    task = str(uuid.uuid4())
    standin.add(task, exported["glb"])
    standin.set_status(task, "RUNNING", progress=30)
    timer = threading.Timer(1.0, standin.set_status, args=(task, "SUCCESS"), kwargs={"progress": 100})
    standin.record_watch = True
    timer.start()
    try:
        assert bpy.ops.triverse.import_task(task_uuid=task, wait=True, wait_timeout=30) == {"FINISHED"}
    finally:
        timer.cancel()
        standin.record_watch = False
    # Watched, not polled: one status request (asked once the socket is open), then the push of SUCCESS.
    assert len(standin.requests_for(f"/tasks/{task}")) == 1
    assert len(standin.requests_for(f"/tasks/watch/{task}")) == 1


def test_wait_gives_up_after_its_timeout(standin, exported):
    task = str(uuid.uuid4())
    standin.add(task, exported["glb"])
    standin.set_status(task, "QUEUED", progress=0)
    with pytest.raises(RuntimeError, match=r"still QUEUED, 0% after waiting 1 s"):
        bpy.ops.triverse.import_task(task_uuid=task, wait=True, wait_timeout=1)


# -- real third-party assets from ../shared ---------------------------------------------------------

HELMET = SHARED_ASSETS / "DamagedHelmet" / "DamagedHelmet.gltf"
needs_helmet = pytest.mark.skipif(
    not HELMET.exists(), reason=f"real-asset check skipped: {HELMET} is absent (../shared is not beside this clone)"
)


def pack_glb(gltf: Path, out: Path) -> Path:
    """Pack a .gltf with its .bin and images into one .glb, as a service would serve it."""
    doc = json.loads(gltf.read_text())
    blob = bytearray((gltf.parent / doc["buffers"][0]["uri"]).read_bytes())
    for image in doc.get("images", []):
        data = (gltf.parent / image.pop("uri")).read_bytes()
        blob += bytes(-len(blob) % 4)
        doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        image["bufferView"] = len(doc["bufferViews"]) - 1
        image["mimeType"] = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        blob += data
    blob += bytes(-len(blob) % 4)
    doc["buffers"] = [{"byteLength": len(blob)}]
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    out.write_bytes(
        struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(blob))
        + struct.pack("<I4s", len(text), b"JSON") + text
        + struct.pack("<I4s", len(blob), b"BIN\x00") + bytes(blob)
    )  # fmt: skip
    return out


@pytest.mark.shared
@needs_helmet
def test_real_textured_helmet_as_glb_matches_blenders_importer(standin, tmp_path):
    native = _native("gltf", HELMET)
    glb = pack_glb(HELMET, tmp_path / "helmet.glb")
    task = _import(standin, glb, ext="glb")
    _same_as_native(native)
    assert native["images"] == 5
    assert all(ob.get("triverse_task_uuid") == task for ob in bpy.data.objects)


@pytest.mark.shared
@needs_helmet
def test_real_textured_helmet_as_zip_of_gltf_bin_and_jpegs(standin):
    native = _native("gltf", HELMET)
    _import(standin, _zip_folder(HELMET.parent), ext="zip")
    _same_as_native(native)
    assert all(image.size[0] > 0 for image in bpy.data.images)  # the JPEG textures were found and read


@pytest.mark.shared
@pytest.mark.parametrize(
    "scene", ["02_node_hierarchy", "03_animated_cube", "03_skinned_cylinder", "04_lenna"]
)  # fmt: skip
def test_gltf_blender_io_scenes_import_like_blenders_importer(standin, scene):
    path = SHARED_ASSETS / "gltf-blender-io" / scene / f"{scene}.gltf"
    if not path.exists():
        pytest.skip(f"real-asset check skipped: {path} is absent (../shared is not beside this clone)")
    native = _native("gltf", path)
    _import(standin, _zip_folder(path.parent), ext="zip")
    _same_as_native(native)
