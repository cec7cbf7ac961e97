"""UI tier driver for Scene Tools: runs INSIDE Debian's Blender 3.4 with a real window (Xvfb, software GL).

    xvfb-run -a -s "-screen 0 1280x1200x24" blender --factory-startup --enable-event-simulate \
        --python tests/ui/drive_scene_tools.py -- --out DIR

Run by tests/ui/test_scene_tools_ui.py (which isolates Blender's user folders). The add-on is loaded the legacy
way, the stand-in serves the scene-tool endpoints in this process, and every step after set-up runs from a
`bpy.app.timers` callback, so Blender's own event loop draws the window, ticks the jobs' modal operators and
handles the simulated mouse and key events. Controls are found as the Generate driver finds them (Ctrl+C or
Ctrl+Shift+C over each spot says what is under the pointer), then clicked. Nothing in the add-on is patched.

The scene: an empty "Rig" (moved, rotated) parenting "Bust" (Suzanne with a Subdivision modifier) in its own
collection "Props", and a second mesh "Plinth". The stand-in answers a texturing with a differently looking
model: the same bust, exported by Blender with a colour grid texture (the viewport shows textures).

Writes DIR/result.json, DIR/scene-tools-*.png and the README's crops DIR/crop-scene-tools-{before,after}.png.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import bmesh
import bpy
from mathutils import Vector

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tier's shared helpers, beside this file

from ui_common import (
    ARGS,
    RESULT,
    STATE,
    WORK,
    Step,
    addon_module,
    click_at,
    crop_png,
    drawn,
    enable_addon,
    find_in_sidebar,
    log,
    park_pointer,
    redraw_all,
    run_driver,
    screenshot,
    type_text,
    view3d,
    wait_for,
    what_is_under,
    write_result,
)
from ui_panel import UITEST_PT_triverse_probe, open_triverse_tab

from standin_server import StandinServer

ADDON = "triverse"
API_KEY = "ui-scene-key"
DEADLINE_SECONDS = 150.0
PROMPT = "colourful checker tiles"
SCENE_PANEL = "blender.scene_tools.panel"
JOBS = "service.jobs"
JOB_PROGRESS = "blender.common.job_progress"
PLACEMENT = "blender.common.scene_placement"
STARTUP = "blender.common.startup"


def mod(name: str) -> Any:
    return addon_module(name)


def scene_state() -> Any:
    return bpy.context.window_manager.triverse_scene_tools


def scene_jobs() -> list[Any]:
    return [j for j in mod(JOBS).Job.active() if getattr(j, "kind", "") == "scene"]


# -- the scene and the model the stand-in answers ----------------------------------------------------------


def bust_mesh(name: str) -> bpy.types.Mesh:
    """Suzanne with UVs (the colour grid needs them)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    bmesh.ops.create_monkey(bm, calc_uvs=True)
    bm.to_mesh(mesh)
    bm.free()
    for poly in mesh.polygons:
        poly.use_smooth = True
    return mesh


def make_result_model(path: Path) -> int:
    """The "after": the bust subdivided, with a colour grid texture, exported by Blender's glTF exporter in its
    own space (as the service answers). The scene is left as it was."""
    mesh = bust_mesh("Textured bust")
    ob = bpy.data.objects.new("Textured bust", mesh)
    bpy.context.scene.collection.objects.link(ob)
    ob.modifiers.new("Subdivision", "SUBSURF").levels = 1
    image = bpy.data.images.new("colour_grid", 256, 256)
    image.generated_type = "COLOR_GRID"
    image.pack()
    mat = bpy.data.materials.new("Checker tiles")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    mesh.materials.append(mat)
    for each in bpy.context.view_layer.objects:
        each.select_set(each == ob)
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_apply=True, use_selection=True)
    bpy.data.objects.remove(ob)
    bpy.data.meshes.remove(mesh)
    bpy.data.materials.remove(mat)
    bpy.data.images.remove(image)
    return path.stat().st_size


def make_scene() -> dict[str, Any]:
    """The empty "Rig" (moved, rotated) parenting "Bust" (a modifier; in collection "Props"), and "Plinth"."""
    for name in ("Cube",):
        ob = bpy.data.objects.get(name)
        if ob is not None:
            mesh = ob.data
            bpy.data.objects.remove(ob)
            bpy.data.meshes.remove(mesh)
    scene = bpy.context.scene
    rig = bpy.data.objects.new("Rig", None)
    scene.collection.objects.link(rig)
    rig.location = (0.6, 0.4, 0.9)
    rig.rotation_euler = (math.radians(-6), 0.0, math.radians(40))  # the bust faces the viewer
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    bust = bpy.data.objects.new("Bust", bust_mesh("Bust"))
    props.objects.link(bust)
    bust.parent = rig
    bust.location = (0.0, 0.0, 0.35)
    bust.scale = (0.9, 0.9, 0.9)
    bust.modifiers.new("Subdivision", "SUBSURF").levels = 1
    plinth_mesh = bpy.data.meshes.new("Plinth")
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bm.to_mesh(plinth_mesh)
    bm.free()
    plinth = bpy.data.objects.new("Plinth", plinth_mesh)
    scene.collection.objects.link(plinth)
    plinth.location = (-1.6, -0.6, 0.5)
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    bpy.context.view_layer.objects.active = None
    return {"objects": sorted(ob.name for ob in scene.objects)}


def frame_viewport() -> None:
    """Solid shading showing image textures (the "after" then shows its colour grid), the scene framed."""
    _, area, _, _ = view3d()
    space = area.spaces.active
    space.shading.type = "SOLID"
    space.shading.color_type = "TEXTURE"
    space.overlay.show_floor = True
    rv3d = space.region_3d
    rv3d.view_distance = 6.0
    centre = (bpy.data.objects["Rig"].location + bpy.data.objects["Plinth"].location) / 2
    up = rv3d.view_rotation @ Vector((0, 1, 0))
    rv3d.view_location = centre - up * 1.0  # the scene in the upper half, left of the sidebar


# -- set-up ------------------------------------------------------------------------------------------------


def setup() -> None:
    prefs = bpy.context.preferences
    prefs.view.show_splash = False
    prefs.use_preferences_save = False
    prefs.view.use_save_prompt = False
    prefs.filepaths.temporary_directory = str(WORK)
    prefs.system.viewport_aa = "OFF"

    import numpy

    if "bool" not in vars(numpy):
        numpy.bool = bool  # Debian's numpy 1.24 lacks it; Blender 3.4's glTF importer uses it

    result_model = WORK / "textured-bust.glb"
    RESULT["result_model_bytes"] = make_result_model(result_model)
    RESULT["scene"] = make_scene()
    frame_viewport()

    _staged, module = enable_addon(prefs, WORK, ARGS.addon_source)
    mod(STARTUP).ensure()

    server = StandinServer(api_key=API_KEY)
    server.gen.timeline_step = 0.05
    answer = result_model.read_bytes()
    server.gen.scene_result = lambda flow, uploaded: answer  # a texturing answers the textured bust
    server.start()
    STATE["server"] = server
    addon_prefs = prefs.addons[ADDON].preferences
    addon_prefs.api_key = API_KEY
    addon_prefs.base_url = server.base_url
    addon_prefs.library_dir = str(WORK / "library")
    RESULT["setup"] = {"addon_file": module.__file__, "legacy_addon": hasattr(module, "bl_info")}
    bpy.utils.register_class(UITEST_PT_triverse_probe)


# -- the panel ---------------------------------------------------------------------------------------------


def panel_words() -> dict[str, Any]:
    """What the Scene Tools panel's draw() lays out now: its labels, red labels and buttons."""
    record = drawn(mod(SCENE_PANEL).TRIVERSE_PT_scene_tools)
    return {
        "labels": [r["text"] for r in record if r["kind"] == "label"],
        "alerts": [r["text"] for r in record if r["kind"] == "label" and r["alert"]],
        "buttons": {r["op"]: {"text": r["text"], "enabled": r["enabled"]} for r in record if r["kind"] == "operator"},
    }


def red_pixels(name: str) -> int:
    """Pixels of the sidebar in a screenshot drawn in Blender's alert red (the reason under a disabled button)."""
    import numpy as np

    crop = np.load(str(WORK / f"{Path(name).stem}.sidebar.npy"))
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    return int(((r > 0.65) & (g < 0.45) & (b < 0.45)).sum())


def show_scene_tools() -> Step:
    """Ctrl+click on the Scene Tools panel's header: the other panels collapse (as a user tidies the tab)."""
    x, y = yield from find_in_sidebar(lambda s: s.endswith("triverse_scene_tools.mode"), "the tool buttons", False)
    unit = 20 * bpy.context.preferences.system.ui_scale
    header = y + int(1.45 * unit)  # the header sits just above the tool buttons
    found = yield from from_header(x, header)
    STATE["header_at"] = found
    click_at(x, found, ctrl=True)
    park_pointer()
    yield 0.8  # panels slide into their places
    STATE["found_at"].clear()  # everything moved


def from_header(x: int, guess: int) -> Step:
    """The header's y: the spot above the tool buttons where the pointer finds no control."""
    for dy in (0, 4, -4, 8):
        under = yield from what_is_under(x, guess + dy, operator=False)
        if not under:
            return guess + dy
    return guess


def scene_quotes() -> int:
    """Price requests the stand-in received for a scene flow."""
    server: StandinServer = STATE["server"]
    bodies = [json.loads(r.body or b"{}") for r in server.requests_for("/tasks/pricing/quote")]
    return sum(b.get("flow_name") in ("text-to-texture", "texture-model", "model-remesh") for b in bodies)


def scenario_nothing_selected() -> Step:
    """Nothing selected: the button is drawn disabled with the reason under it; a click on it starts nothing."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["nothing_selected"] = out
    yield from show_scene_tools()
    redraw_all()
    yield 0.5
    words = panel_words()
    out["words"] = words
    out["scene_quotes"] = scene_quotes()
    x, y = yield from find_in_sidebar(lambda s: "scene_tools_from_panel" in s, "the Texture Selected button")
    STATE["button_at"] = (x, y)
    uploads_before = len(server.gen.uploaded_models)
    click_at(x, y)
    park_pointer()
    yield 1.0
    out["jobs_after_click"] = len(scene_jobs())
    out["uploads_after_click"] = len(server.gen.uploaded_models) - uploads_before
    shot = screenshot("scene-tools-nothing-selected.png")
    out["red_pixels"] = red_pixels(shot["file"])
    log(f"nothing selected: {out}")


def select_by_click(ob: bpy.types.Object) -> Step:
    """A left click on the object in the viewport, as a user selects it."""
    from bpy_extras.view3d_utils import location_3d_to_region_2d

    _, area, main, _ = view3d()
    point = location_3d_to_region_2d(main, area.spaces.active.region_3d, ob.matrix_world.translation)
    x, y = main.x + int(point.x), main.y + int(point.y)
    click_at(x, y)
    yield from wait_for(lambda: ob.select_get(), 5.0, f"{ob.name} to be selected by the click at ({x}, {y})")
    park_pointer()
    yield 0.4
    return [x, y]


def scenario_texture_the_child() -> Step:
    """Select the child by a click; type a prompt; click Texture Selected; the progress; the result in place."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["texture"] = out
    bust, rig, plinth = (bpy.data.objects[n] for n in ("Bust", "Rig", "Plinth"))
    out["clicked_at"] = yield from select_by_click(bust)
    out["selected"] = sorted(ob.name for ob in bpy.context.selected_objects)
    x, y = yield from find_in_sidebar(lambda s: s.endswith("triverse_scene_tools.prompt"), "the prompt field", False)
    click_at(x, y)
    yield 0.2
    type_text(PROMPT, x, y)
    yield from wait_for(lambda: scene_state().prompt == PROMPT, 5.0, "the typed prompt")
    park_pointer()
    yield 0.6
    out["prompt"] = scene_state().prompt
    out["words_before"] = panel_words()
    out["scene_quotes_before"] = scene_quotes()
    before = screenshot("scene-tools-before.png")
    out["red_pixels_before"] = red_pixels(before["file"])
    original = {
        "matrix_world": [list(row) for row in bust.matrix_world],
        "parent": bust.parent.name if bust.parent else None,
        "collections": sorted(c.name for c in bust.users_collection),
    }
    out["original"] = original

    server.gen.script_next(hold=True)  # held at its last running step: time for the screenshot
    uploads_before, created_before = len(server.gen.uploaded_models), list(server.gen.created)
    x, y = yield from find_in_sidebar(lambda s: "scene_tools_from_panel" in s, "the Texture Selected button")
    click_at(x, y)
    park_pointer()
    job = (yield from wait_for(scene_jobs, 10.0, "a scene job"))[0]
    seen: list[str] = []

    def running() -> bool:
        text = mod(JOB_PROGRESS).progress_text(job)[1]
        if not seen or seen[-1] != text:
            seen.append(text)
            log(f"panel: {text!r}")
        return text.startswith("Running") and job.task_uuid in server.gen.created and text != "Running 10%"

    yield from wait_for(running, 20.0, "the task to be running")
    yield from wait_for(lambda: running() and "95%" in seen[-1], 5.0, "the held step (Running 95%)")
    redraw_all()
    yield 0.5  # the modal redraws the panel on its next tick
    out["words_running"] = panel_words()
    screenshot("scene-tools-running.png")
    task = job.task_uuid
    server.gen.release(task)
    yield from wait_for(lambda: job not in mod(JOBS).Job.active(), 20.0, "the job to end")
    yield 0.5
    out["texts_seen"] = seen
    out["job_error"] = repr(job.error) if job.error else None
    out["uploads"] = len(server.gen.uploaded_models) - uploads_before
    out["tasks_created"] = [t for t in server.gen.created if t not in created_before]
    bodies = [json.loads(r.body) for r in server.requests_for("/tasks/text-to-texture")]
    out["create_body"] = {k: v for k, v in bodies[-1].items() if k != "client_order_id"} if bodies else None
    result = bust.get("triverse_result")
    out["result"] = None
    if isinstance(result, bpy.types.Object):
        out["result"] = {
            "name": result.name,
            "matrix_world": [list(row) for row in result.matrix_world],
            "parent": result.parent.name if result.parent else None,
            "collections": sorted(c.name for c in result.users_collection),
            "hidden": result.hide_get(),
            "source": result.get("triverse_source").name if result.get("triverse_source") else None,
            "materials": [s.material.name for s in result.material_slots if s.material],
        }
    out["original_hidden"] = bust.hide_get()
    out["original_hidden_in_renders"] = bust.hide_render
    out["plinth"] = {"hidden": plinth.hide_get(), "has_result": "triverse_result" in plinth}
    out["rig_children"] = sorted(ob.name for ob in rig.children)
    redraw_all()
    yield from wait_for(lambda: any(t.startswith("Cost:") for t in panel_words()["labels"]), 10.0, "the price again")
    yield 0.6
    out["words_after"] = panel_words()
    screenshot("scene-tools-after.png")
    crop_for_readme()
    log(f"textured: {out}")


def crop_for_readme() -> None:
    """The README's before/after pictures: the viewport's right part with the scene, and the sidebar."""
    sidebar = view3d()[3]
    width = 540 + sidebar.width
    top = sidebar.y + sidebar.height
    height = min(sidebar.height, 600)
    rect = (sidebar.x + sidebar.width - width, top - height, width, height)
    RESULT["crop_rect"] = list(rect)
    for name in ("scene-tools-before.png", "scene-tools-after.png"):
        RESULT.setdefault("crops", {})[name] = crop_png(ARGS.out / name, ARGS.out / f"crop-{name}", rect)


def scenario_restore() -> Step:
    """Click Restore Original: the original shown, the result hidden."""
    out: dict[str, Any] = {}
    RESULT["restore"] = out
    bust = bpy.data.objects["Bust"]
    result = bust.get("triverse_result")
    x, y = yield from find_in_sidebar(lambda s: "restore_original" in s, "the Restore Original button")
    click_at(x, y)
    park_pointer()
    yield from wait_for(lambda: not bust.hide_get(), 5.0, "the original to be shown")
    yield 0.5
    out["original_hidden"] = bust.hide_get()
    out["original_hidden_in_renders"] = bust.hide_render
    out["result_hidden"] = result.hide_get() if isinstance(result, bpy.types.Object) else None
    out["result_hidden_in_renders"] = result.hide_render if isinstance(result, bpy.types.Object) else None
    out["active"] = bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None
    screenshot("scene-tools-restored.png")
    log(f"restored: {out}")


def scenario_steps() -> Step:
    yield 0.5
    yield from open_triverse_tab()
    yield 1.0
    for scenario in (scenario_nothing_selected, scenario_texture_the_child, scenario_restore):
        try:
            yield from scenario()
        except Exception:
            RESULT["errors"].append(f"{scenario.__name__}: {traceback.format_exc()}")
            print(RESULT["errors"][-1], file=sys.stderr, flush=True)
            park_pointer()
            screenshot(f"scene-tools-debug-{scenario.__name__}.png")
            yield 0.5


def finish() -> None:
    """Write result.json, stop the stand-in, then quit Blender from a fresh timer."""
    STATE["finished"] = True
    write_result()

    def quit_now() -> None:
        server = STATE.get("server")
        if server is not None:
            server.stop()
        bpy.ops.wm.quit_blender()

    bpy.app.timers.register(quit_now, first_interval=0.0)


RESULT["tmp"] = tempfile.gettempdir()
run_driver(setup, scenario_steps, DEADLINE_SECONDS, RESULT, STATE, finish)
