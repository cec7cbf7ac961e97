"""The console door: `bpy.ops.triverse.import_task(task_uuid=...)` in real Blender against the stand-in."""

from __future__ import annotations

import uuid
from pathlib import Path

import bpy
import pytest
from conftest import MODULE, addon_prefs, library_settled, scene_counts, temp_dirs


def _new_task(server, source, **kw) -> str:
    task = str(uuid.uuid4())
    server.add(task, source, **kw)
    return task


def _native_counts(path: Path) -> dict[str, int]:
    """What Blender's own glTF importer gives for the same file, in an empty scene."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    counts = scene_counts()
    bpy.ops.wm.read_homefile(use_empty=True)
    return counts


def test_console_import_puts_the_model_in_a_tagged_selected_collection(standin, sample_glb):
    task = _new_task(standin, sample_glb)
    native = _native_counts(sample_glb)
    temp_before = temp_dirs()

    result = bpy.ops.triverse.import_task(task_uuid=f"  {task.upper()}\n")

    assert result == {"FINISHED"}
    collection = bpy.data.collections[f"Triverse {task[:8]}"]
    assert collection.name in bpy.context.scene.collection.children
    objects = list(collection.objects)
    assert sorted(ob.name for ob in objects) == ["Pedestal", "Suzanne"]
    assert all(ob.get("triverse_task_uuid") == task for ob in objects)
    assert all(ob.select_get() for ob in objects)
    assert bpy.context.view_layer.objects.active.name == "Suzanne"  # the root, not whatever was active
    # Same data as Blender's own importer gives for the file, plus our one collection.
    counts = scene_counts()
    assert {k: v for k, v in counts.items() if k != "collections"} == {
        k: v for k, v in native.items() if k != "collections"
    }
    assert counts["collections"] == native["collections"] + 1
    downloads = standin.requests_for(f"/tasks/download/{task}")
    assert len(downloads) == 1
    assert downloads[0].authorization == "Bearer test-key"
    assert temp_dirs() - temp_before == set(), "temporary files were left behind"


def test_import_is_kept_in_the_library_and_reimports_without_any_request(standin, sample_glb):
    task = _new_task(standin, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=task)
    library_settled()
    library = Path(addon_prefs().library_dir)
    assert (library / task / "meta.json").is_file()
    assert not list((library / ".incoming").iterdir()), "partial files left in the library"
    standin.requests.clear()

    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}

    assert standin.requests == [], "re-import from the library went to the network"
    assert len(bpy.data.collections[f"Triverse {task[:8]}"].objects) == 2


def test_reimport_from_library_works_offline_even_after_the_asset_expired(standin, sample_glb):
    kept, not_kept = _new_task(standin, sample_glb), _new_task(standin, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=kept)
    standin.fail("expired", kept)
    standin.requests.clear()
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.system.use_online_access = False
    addon_prefs().api_key = ""
    try:
        assert bpy.ops.triverse.import_task(task_uuid=kept) == {"FINISHED"}
        with pytest.raises(RuntimeError, match="No Triverse API key"):
            bpy.ops.triverse.import_task(task_uuid=not_kept)
        addon_prefs().api_key = "test-key"
        with pytest.raises(RuntimeError, match="online access is off"):
            bpy.ops.triverse.import_task(task_uuid=not_kept)
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert standin.requests == [], "nothing may go out while online access is off"
    assert len(bpy.data.collections[f"Triverse {kept[:8]}"].objects) == 2


def test_a_damaged_library_copy_is_downloaded_again(standin, sample_glb):
    task = _new_task(standin, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=task)
    kept = Path(addon_prefs().library_dir) / task / "asset.glb"
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0xFF
    kept.write_bytes(bytes(data))
    standin.requests.clear()
    bpy.ops.wm.read_homefile(use_empty=True)

    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}

    assert len(standin.requests_for(f"/tasks/download/{task}")) == 1
    assert kept.read_bytes() == sample_glb.read_bytes()


def test_import_works_from_edit_mode_and_with_another_object_active(standin, sample_glb):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    bpy.ops.object.mode_set(mode="EDIT")
    task = _new_task(standin, sample_glb)

    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}

    assert bpy.context.mode == "OBJECT"
    assert not cube.select_get()
    assert cube.get("triverse_task_uuid") is None
    assert bpy.context.view_layer.objects.active.get("triverse_task_uuid") == task


def test_importing_the_same_task_twice_gives_two_collections(standin, sample_glb):
    task = _new_task(standin, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=task)
    bpy.ops.triverse.import_task(task_uuid=task)
    names = sorted(c.name for c in bpy.data.collections)
    assert names == [f"Triverse {task[:8]}", f"Triverse {task[:8]}.001"]
    assert len([ob for ob in bpy.data.objects if ob.get("triverse_task_uuid") == task]) == 4


def test_a_model_the_importer_rejects_leaves_the_scene_exactly_as_it_was(standin):
    bpy.ops.mesh.primitive_cube_add()
    before = scene_counts()
    # A GLB header followed by a JSON chunk that is not a valid glTF document.
    body = (
        b'{"asset":{"version":"2.0"},"meshes":[{"primitives":[{"attributes":{"POSITION":7}}]}],'
        b'"nodes":[{"mesh":0}],"scenes":[{"nodes":[0]}]}'
    )
    body += b" " * (-len(body) % 4)
    glb = b"glTF" + (2).to_bytes(4, "little") + (20 + len(body)).to_bytes(4, "little")
    glb += len(body).to_bytes(4, "little") + b"JSON" + body
    task = _new_task(standin, glb)

    with pytest.raises(RuntimeError, match=r"importer failed .* the scene was left as it was"):
        bpy.ops.triverse.import_task(task_uuid=task)

    assert scene_counts() == before
    assert not [ob for ob in bpy.data.objects if ob.get("triverse_task_uuid")]


def test_the_key_falls_back_to_the_environment(standin, sample_glb, monkeypatch):
    addon_prefs().api_key = ""
    monkeypatch.setenv("TRIVERSE_API_KEY", "test-key")
    task = _new_task(standin, sample_glb)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert standin.requests_for(f"/tasks/download/{task}")[0].authorization == "Bearer test-key"


def test_the_url_falls_back_to_the_environment(standin, sample_glb, monkeypatch):
    monkeypatch.setenv("TRIVERSE_API_URL", standin.base_url)
    addon_prefs().base_url = ""
    task = _new_task(standin, sample_glb)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}


@pytest.mark.parametrize(
    "prepare, message",
    [
        (lambda p: setattr(p, "api_key", ""), "No Triverse API key is set"),
        (lambda p: None, "is not a Triverse task UUID"),
        (lambda p: bpy.context.preferences.system.__setattr__("use_online_access", False), "online access is off"),
    ],
    ids=["no key", "bad uuid", "offline"],
)
def test_preflight_failures_send_nothing(standin, sample_glb, prepare, message):
    task = _new_task(standin, sample_glb)
    prepare(addon_prefs())
    text = "not-a-uuid" if message.startswith("is not") else task
    try:
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.triverse.import_task(task_uuid=text)
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert standin.requests == []
    assert len(bpy.data.objects) == 0


def test_operator_and_panel_are_registered_under_their_public_names():
    assert bpy.ops.triverse.import_task.idname() == "TRIVERSE_OT_import_task"
    panel = bpy.types.TRIVERSE_PT_import
    assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "Triverse")
    assert {"REGISTER", "UNDO"} <= set(bpy.types.TRIVERSE_OT_import_task.bl_options)
    prefs = addon_prefs()
    assert prefs.bl_rna.properties["api_key"].subtype == "PASSWORD"
    assert type(prefs).bl_idname == MODULE
