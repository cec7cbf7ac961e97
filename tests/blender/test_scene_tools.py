"""Texture or remesh the selected objects, the result in the original's place, against the stand-in.

The scene of the issue: a child mesh with a modifier under a moved and rotated parent, in its own collection.
What is checked is what a user would notice: where the result is (world matrix, parent, collections), what is
hidden, what Restore Original does (also after saving and reopening), what went up (the uploaded file's bounds:
the evaluated mesh in the object's own space), how many tasks were made and charged, and that a failure
changes nothing and leaves no file behind.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from pathlib import Path

import bpy
import pytest
from conftest import scene_counts
from mathutils import Euler, Matrix, Vector


@pytest.fixture()
def gen(standin, sample_glb):
    """The stand-in's generation side, fast: every task ends in about 0.3 s."""
    g = standin.gen
    g.generated_asset = sample_glb
    g.timeline_step = 0.05
    g.balance = 1000.0
    g.upload_limit = (1000, 60.0)
    g._uploads.clear()
    g._plans.clear()
    g.created.clear()
    g.orders.clear()
    g.uploaded_models.clear()
    g.scene_result = lambda flow, data: data  # the uploaded model back (the topology kept)
    yield g
    g._plans.clear()


@pytest.fixture()
def scene():
    """The issue's scene: `Child` (a cube with a Subdivision modifier) under `Parent` (moved, rotated, scaled 2)
    in a collection of its own, `Props`; the child alone selected and active."""
    bpy.ops.wm.read_homefile(use_empty=True)
    props = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(props)
    parent = bpy.data.objects.new("Parent", None)
    parent.location = (3.0, -2.0, 1.0)
    parent.rotation_euler = Euler((0.3, 0.0, 0.8))
    parent.scale = (2.0, 2.0, 2.0)
    props.objects.link(parent)
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    child = bpy.context.active_object
    child.name = "Child"
    for collection in list(child.users_collection):
        collection.objects.unlink(child)
    props.objects.link(child)
    child.parent = parent
    child.location = (0.5, 0.0, 0.25)
    child.rotation_euler = Euler((0.0, 0.4, 0.0))
    child.modifiers.new("Subdivision", "SUBSURF").levels = 1
    bpy.context.view_layer.update()
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    child.select_set(True)
    bpy.context.view_layer.objects.active = child
    return child


def _result(child: bpy.types.Object) -> bpy.types.Object:
    roots = [ob for ob in bpy.data.objects if ob.get("triverse_source") == child]
    assert len(roots) == 1, [ob.name for ob in bpy.data.objects]
    return roots[0]


def _close(a: Matrix, b: Matrix) -> bool:
    return all(abs(x - y) < 1e-4 for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def _glb_bounds(data: bytes) -> tuple[list[float], list[float]]:
    """The POSITION min/max of every primitive of a GLB, in glTF's axes (Y up)."""
    length = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20 : 20 + length])
    accessors = [doc["accessors"][p["attributes"]["POSITION"]] for m in doc["meshes"] for p in m["primitives"]]
    low = [min(a["min"][i] for a in accessors) for i in range(3)]
    high = [max(a["max"][i] for a in accessors) for i in range(3)]
    return low, high


def _exports_left() -> list[str]:
    return sorted(p.name for p in Path(tempfile.gettempdir()).glob("triverse-export-*"))


def _evaluated_local_bounds(ob: bpy.types.Object) -> tuple[Vector, Vector]:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = ob.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        xs = [v.co for v in mesh.vertices]
        return Vector([min(c[i] for c in xs) for i in range(3)]), Vector([max(c[i] for c in xs) for i in range(3)])
    finally:
        evaluated.to_mesh_clear()


def test_texturing_from_a_prompt_puts_the_result_in_the_originals_place(gen, scene):
    child = scene
    world, parent, collections = child.matrix_world.copy(), child.parent, {c.name for c in child.users_collection}
    low, high = _evaluated_local_bounds(child)

    assert bpy.ops.triverse.texture_selected(prompt="weathered oak planks") == {"FINISHED"}

    result = _result(child)
    assert _close(result.matrix_world, world), "the result is not where the original was"
    assert result.parent == parent and {c.name for c in result.users_collection} == collections
    assert result.get("triverse_flow") == "text-to-texture" and result.get("triverse_prompt") == "weathered oak planks"
    assert child.hide_get() and child.hide_render and not result.hide_get()
    assert child.name in bpy.data.objects  # never deleted
    # What went up: the evaluated mesh (the subdivided cube) in the object's own space, as geometry.
    (upload,) = gen.uploaded_models.values()
    assert upload["variant"] == "geometry"
    glb_low, glb_high = _glb_bounds(upload["bytes"])
    # glTF is Y up: Blender's (x, y, z) is glTF's (x, z, -y).
    assert glb_low[0] == pytest.approx(low.x, abs=1e-4) and glb_high[0] == pytest.approx(high.x, abs=1e-4)
    assert glb_low[1] == pytest.approx(low.z, abs=1e-4) and glb_high[1] == pytest.approx(high.z, abs=1e-4)
    assert glb_high[2] == pytest.approx(-low.y, abs=1e-4) and glb_low[2] == pytest.approx(-high.y, abs=1e-4)
    assert len(gen.created) == 1
    assert _exports_left() == []


def test_texturing_from_an_image_uploads_it_and_the_model(gen, scene, tmp_path):
    image = bpy.data.images.new("reference", 8, 8)
    image.filepath_raw = str(tmp_path / "ref.png")
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    child = scene
    world = child.matrix_world.copy()

    assert bpy.ops.triverse.texture_selected(image_path=str(tmp_path / "ref.png"), texture_size=2048) == {"FINISHED"}

    result = _result(child)
    assert _close(result.matrix_world, world) and result.get("triverse_flow") == "texture-model"
    created = [r for r in gen.owner.requests if r.method == "POST" and r.path.endswith("/tasks/texture-model")]
    assert len(created) == 1
    body = json.loads(created[0].body)
    assert body["texture_size"] == 2048 and body["model_file"] in gen.uploaded_models and body["image_file"]


def test_remeshing_reports_the_changed_topology(gen, scene, sample_glb):
    gen.scene_result = lambda flow, data: sample_glb.read_bytes()  # another mesh comes back
    child = scene

    assert bpy.ops.triverse.remesh_selected(polygon_limit=5000) == {"FINISHED"}

    result = _result(child)
    assert result.get("triverse_flow") == "model-remesh" and child.hide_get()
    created = [r for r in gen.owner.requests if r.method == "POST" and r.path.endswith("/tasks/model-remesh")]
    assert json.loads(created[0].body)["polygon_limit"] == 5000


def test_restore_original_swaps_and_survives_saving_and_reopening(gen, scene, tmp_path):
    child = scene
    assert bpy.ops.triverse.texture_selected(prompt="rusty metal") == {"FINISHED"}
    result = _result(child)
    bpy.context.view_layer.objects.active = result

    assert bpy.ops.triverse.restore_original() == {"FINISHED"}
    assert not child.hide_get() and not child.hide_render and result.hide_get() and result.hide_render
    assert bpy.context.view_layer.objects.active == child

    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    child = bpy.data.objects["Child"]
    result = _result(child)
    bpy.context.view_layer.objects.active = child  # the original: swapped back to the result
    assert bpy.ops.triverse.restore_original() == {"FINISHED"}
    assert child.hide_get() and not result.hide_get()
    assert "test-key" not in path.read_bytes().decode("latin-1")  # the key is never in the .blend


def test_one_task_per_object_and_each_comes_back_to_its_own_place(gen, scene):
    child = scene
    bpy.ops.mesh.primitive_uv_sphere_add(location=(-4.0, 1.0, 0.5))
    sphere = bpy.context.active_object
    child.select_set(True)
    worlds = {ob.name: ob.matrix_world.copy() for ob in (child, sphere)}

    assert bpy.ops.triverse.remesh_selected(polygon_limit=2000) == {"FINISHED"}

    assert len(gen.created) == 2 and len(gen.uploaded_models) == 2
    for ob in (child, sphere):
        assert _close(_result(ob).matrix_world, worlds[ob.name]) and ob.hide_get()


def test_a_retried_creation_is_one_task_charged_once(gen, scene):
    gen.owner.fail("server_error", on="create", times=1)
    balance = gen.balance
    assert bpy.ops.triverse.texture_selected(prompt="polished marble") == {"FINISHED"}
    posts = [r for r in gen.owner.requests if r.method == "POST" and r.path.endswith("/tasks/text-to-texture")]
    orders = {json.loads(r.body)["client_order_id"] for r in posts}
    assert len(posts) == 2 and len(orders) == 1  # sent again, with the same order id
    cost = gen.price("text-to-texture", json.loads(posts[0].body))
    assert len(gen.created) == 1 and gen.balance == balance - cost  # charged once


@pytest.mark.parametrize(
    ("select", "says"),
    [
        ("nothing", "Nothing is selected"),
        ("camera", "No mesh among the selected objects"),
    ],
)
def test_nothing_or_no_mesh_selected_is_refused_before_any_request(gen, scene, select, says):
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    if select == "camera":
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        bpy.context.scene.collection.objects.link(camera)
        camera.select_set(True)
    before = scene_counts()
    gen.owner.requests.clear()
    with pytest.raises(RuntimeError, match=says):
        bpy.ops.triverse.texture_selected(prompt="anything at all")
    assert gen.owner.requests == [] and scene_counts() == before


def test_a_failed_task_leaves_the_scene_as_it_was(gen, scene):
    gen.script_next(outcome="FAILED", error="The texture could not be made.")
    child = scene
    before = scene_counts()
    with pytest.raises(RuntimeError, match="The texture could not be made"):
        bpy.ops.triverse.texture_selected(prompt="a failing texture")
    assert scene_counts() == before and not child.hide_get() and not child.hide_render
    assert _exports_left() == []


def test_created_without_waiting_the_tasks_are_in_my_generations_with_their_object(gen, scene):
    import importlib

    from conftest import MODULE

    assert bpy.ops.triverse.remesh_selected(polygon_limit=3000, wait=False) == {"FINISHED"}
    (task,) = gen.created
    record = importlib.import_module(f"{MODULE}.blender.common.stores").generations().get(task)
    assert record is not None and record.source_object == "Child" and record.flow_name == "model-remesh"
    assert not scene.hide_get()  # nothing placed yet


def test_objects_sharing_one_mesh_go_up_once_and_each_gets_the_result(gen, scene):
    child = scene
    twin = child.copy()  # a linked duplicate: the same mesh, its own modifiers (none here)
    twin.modifiers.clear()
    child.modifiers.clear()
    twin.location = (-3.0, 0.0, 0.0)
    child.users_collection[0].objects.link(twin)
    bpy.context.view_layer.update()
    twin.select_set(True)
    worlds = {ob.name: ob.matrix_world.copy() for ob in (child, twin)}

    assert bpy.ops.triverse.texture_selected(prompt="brushed steel") == {"FINISHED"}

    assert len(gen.uploaded_models) == 1 and len(gen.created) == 1  # one upload, one task, one charge
    for ob in (child, twin):
        assert _close(_result(ob).matrix_world, worlds[ob.name]) and ob.hide_get()


def test_edits_made_in_edit_mode_are_what_goes_up(gen, scene):
    child = scene
    child.modifiers.clear()
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.transform.resize(value=(3.0, 1.0, 1.0), orient_type="LOCAL")  # held by Edit Mode until it is left

    assert bpy.ops.triverse.remesh_selected(polygon_limit=2000) == {"FINISHED"}

    assert bpy.context.mode == "OBJECT"
    (upload,) = gen.uploaded_models.values()
    low, high = _glb_bounds(upload["bytes"])
    assert high[0] - low[0] == pytest.approx(3.0, abs=1e-3)  # the cube of size 1, stretched 3 times in x


def test_my_generations_import_places_a_result_beside_its_original_again(gen, scene):
    child = scene
    world = child.matrix_world.copy()
    assert bpy.ops.triverse.texture_selected(prompt="old leather", wait=False) == {"FINISHED"}
    (task,) = gen.created
    deadline = time.monotonic() + 10
    while gen.owner._status_data(gen.owner._task(task))["status"] != "SUCCESS":
        assert time.monotonic() < deadline, "the stand-in's task did not finish"
        time.sleep(0.05)

    assert bpy.ops.triverse.generation_import(task_uuid=task) == {"FINISHED"}

    result = _result(child)
    assert _close(result.matrix_world, world) and child.hide_get()
