"""The Triverse asset library in real Blender against the stand-in: registered, one marked collection per model
(catalog, tags, task UUID, preview), nothing marked in the open file, cleared with the library."""

from __future__ import annotations

import importlib
import os
import struct
import time
import uuid
import zlib
from pathlib import Path

import bpy
import pytest
from conftest import MODULE, addon_prefs, library_settled

asset_store = importlib.import_module(MODULE + ".blender.common.asset_store")
asset_catalog = importlib.import_module(MODULE + ".service.asset_catalog")


def _png(width: int, height: int, rgb=(200, 40, 40)) -> bytes:
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture()
def assets_dir(standin, tmp_path):
    """The asset library pointed at a folder of this test (registered by the preference's update)."""
    prefs = addon_prefs()
    prefs.use_asset_library = True
    prefs.asset_library_dir = str(tmp_path / "assets")
    yield tmp_path / "assets"
    asset_store.wait(60)
    prefs = addon_prefs()  # again: the add-on may have been disabled and enabled meanwhile
    prefs.asset_library_dir = ""
    prefs.use_asset_library = True


def _entry():
    return next((lib for lib in bpy.context.preferences.filepaths.asset_libraries if lib.name == "Triverse"), None)


def _read_asset(path: Path) -> dict:
    """What the Asset Browser would see in the file: read into a temporary Main, never the open file."""
    with bpy.data.temp_data() as data:
        with data.libraries.load(str(path), link=True, assets_only=True) as (src, dst):
            names = {kind: list(getattr(src, kind)) for kind in ("collections", "objects", "meshes")}
            dst.collections = list(src.collections)
        coll = dst.collections[0]
        meta = coll.asset_data
        return {
            "names": names,
            "catalog_id": meta.catalog_id,
            "tags": [t.name for t in meta.tags],
            "description": meta.description,
            "task": coll.get("triverse_task_uuid"),
            "preview": tuple(coll.preview.image_size) if coll.preview else (0, 0),
            "objects": sorted(ob.name for ob in coll.all_objects),
            "offset": tuple(coll.instance_offset),
        }


def _no_marks_in_open_file() -> None:
    marked = [
        id.name
        for kind in ("collections", "objects", "meshes", "materials", "images")
        for id in getattr(bpy.data, kind)
        if id.asset_data is not None
    ]
    assert marked == [], f"asset marks left in the open file: {marked}"
    assert list(bpy.data.libraries) == [], "the open file links an asset file"


def test_import_becomes_a_marked_asset_with_catalog_tags_uuid_and_preview(assets_dir, standin, sample_glb):
    task = str(uuid.uuid4())
    standin.add(task, sample_glb, preview=_png(512, 384))

    started = time.perf_counter()
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    returned = time.perf_counter() - started
    assert asset_store.wait(90)

    entry = _entry()
    assert entry is not None and Path(entry.path) == assets_dir
    path = assets_dir / f"{task}.blend"
    assert path.is_file()
    assert not any((assets_dir / ".incoming").iterdir()), "half-written files left behind"
    _, catalogs = asset_catalog.read_catalogs(assets_dir)
    assert {"Triverse/Imported", "Triverse/Generated/Text", "Triverse/Generated/Image"} <= set(catalogs)
    seen = _read_asset(path)
    assert seen["names"]["collections"] == [f"Triverse {task[:8]}"]  # one asset: the collection
    assert seen["names"]["objects"] == [] and seen["names"]["meshes"] == []
    assert seen["catalog_id"] == catalogs["Triverse/Imported"].uuid
    assert seen["task"] == task
    assert "Triverse" in seen["tags"] and "glb" in seen["tags"]
    assert seen["preview"] == (256, 192), "the service's preview, scaled to 256"
    assert seen["objects"] == ["Pedestal", "Suzanne"]
    assert seen["offset"][2] <= 0.0  # the base: the lowest point of the model
    _no_marks_in_open_file()
    assert not bpy.data.collections[f"Triverse {task[:8]}"].use_fake_user
    assert returned < 30


def test_without_a_service_preview_the_asset_gets_a_render(assets_dir, standin, sample_glb):
    task = str(uuid.uuid4())
    standin.add(task, sample_glb)  # no preview on the service
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert asset_store.wait(90)
    seen = _read_asset(assets_dir / f"{task}.blend")
    width, height = seen["preview"]
    assert width > 0 and height > 0, f"no rendered preview in Blender {bpy.app.version_string}"
    _no_marks_in_open_file()


def test_generated_model_lands_in_generated_text_with_its_prompt(assets_dir, standin, sample_glb):
    scene_import = importlib.import_module(MODULE + ".blender.common.scene_import")
    obtain = importlib.import_module(MODULE + ".service.obtain")
    task = str(uuid.uuid4())
    asset = obtain.Asset(task, sample_glb, "glb", sample_glb.stat().st_size, "")
    prompt = "A weathered bronze statue of a fox"
    scene_import.import_generated(bpy.context, asset, prompt, flow="text-to-model")
    assert asset_store.wait(90)
    seen = _read_asset(assets_dir / f"{task}.blend")
    _, catalogs = asset_catalog.read_catalogs(assets_dir)
    assert seen["catalog_id"] == catalogs["Triverse/Generated/Text"].uuid
    assert seen["description"] == prompt
    assert {"text-to-model", "bronze", "statue", "fox", "glb"} <= set(seen["tags"])
    assert "a" not in seen["tags"] and "of" not in seen["tags"]
    _no_marks_in_open_file()


def test_turning_the_preference_off_removes_the_library_and_writes_no_asset(assets_dir, standin, sample_glb):
    assert _entry() is not None
    addon_prefs().use_asset_library = False
    assert _entry() is None
    task = str(uuid.uuid4())
    standin.add(task, sample_glb)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert asset_store.wait(30)
    assert not (assets_dir / f"{task}.blend").exists()
    addon_prefs().use_asset_library = True
    assert _entry() is not None


def test_clear_library_removes_the_assets_too(assets_dir, standin, sample_glb):
    task = str(uuid.uuid4())
    standin.add(task, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=task)
    library_settled()
    assert asset_store.wait(90)
    assert (assets_dir / f"{task}.blend").is_file()

    assert bpy.ops.triverse.library_clear() == {"FINISHED"}

    assert asset_catalog.asset_files(assets_dir) == []
    assert (assets_dir / asset_catalog.CATALOG_FILE).is_file(), "the catalogs stay"
    assert not (Path(addon_prefs().library_dir) / task).exists()


def test_half_written_files_are_never_listed_and_are_cleaned_up(assets_dir, standin):
    assets_dir.mkdir(parents=True, exist_ok=True)
    incoming = asset_catalog.incoming(assets_dir)
    leftovers = [assets_dir / f"{uuid.uuid4()}.blend.tmp", incoming / f"{uuid.uuid4()}.blend"]
    for path in leftovers:
        path.write_bytes(b"BLENDER-v")  # half a header: Blender could not read it
        old = time.time() - 2 * 3600
        os.utime(path, (old, old))
    assert asset_catalog.asset_files(assets_dir) == []

    assert asset_catalog.remove_stale_partials(assets_dir) == 2
    assert not any(path.exists() for path in leftovers)


def test_disable_removes_the_entry_and_enable_brings_it_back():
    import addon_utils

    assert _entry() is not None
    addon_utils.disable(MODULE, default_set=False)  # keeps the preferences
    try:
        assert _entry() is None
    finally:
        addon_utils.enable(MODULE, default_set=False)
    assert _entry() is None  # not while Blender starts: after it, with the start-up steps
    importlib.import_module(MODULE + ".blender.common.startup").ensure()  # what a window's timer does
    assert _entry() is not None
    assert Path(_entry().path) == asset_store.folder()


def test_the_deferred_path_writes_what_waits_for_the_main_thread(assets_dir, sample_glb):
    """With a window, imports wait in a list for a one-shot timer (which never runs here): its body writes them."""
    assets = importlib.import_module(MODULE + ".blender.assets")
    scene_import = importlib.import_module(MODULE + ".blender.common.scene_import")
    obtain = importlib.import_module(MODULE + ".service.obtain")
    task = str(uuid.uuid4())
    scene_import.AFTER_IMPORT.remove(assets.on_import)  # import without the hook, as if the timer had not run
    try:
        imported = scene_import.import_asset(
            bpy.context, obtain.Asset(task, sample_glb, "glb", sample_glb.stat().st_size, "")
        )
    finally:
        scene_import.AFTER_IMPORT.append(assets.on_import)
    assert not (assets_dir / f"{task}.blend").exists()
    gone = str(uuid.uuid4())
    stale = scene_import.Imported(gone, bpy.data.collections.new("gone"), [], imported.root, "glb", 0, False, 0.0)
    bpy.data.collections.remove(stale.collection)  # removed by the user before the timer ran: skipped
    assets._PENDING.extend([stale, imported])

    assets.flush()

    assert assets._PENDING == []
    assert asset_store.wait(90)
    assert _read_asset(assets_dir / f"{task}.blend")["task"] == task
    assert not (assets_dir / f"{gone}.blend").exists()
    _no_marks_in_open_file()
