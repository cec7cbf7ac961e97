"""UI tier driver for Generate: runs INSIDE Debian's Blender 3.4 with a real window (Xvfb, software GL).

    xvfb-run -a -s "-screen 0 1280x1280x24" blender --factory-startup --enable-event-simulate \
        --python tests/ui/drive_generate.py -- --out DIR

Run by tests/ui/test_generate_ui.py (which isolates Blender's user folders). The add-on is loaded the
legacy way (no wheel: the watch falls back to polling), the stand-in service (with its generation
endpoints) runs in this process, and every step after set-up runs from a `bpy.app.timers` callback,
so Blender's own event loop draws the window, ticks the add-on's modal operator and handles the
simulated mouse and key events.

Buttons are found the way a user's pointer finds them: the pointer is moved down the sidebar and, at
each spot, Ctrl+C (an operator button copies its Python command) or Ctrl+Shift+C (a property copies
its data path) says what is under it; then it is clicked there. Nothing in the add-on is patched.

Writes DIR/result.json and DIR/generate-*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import bmesh
import bpy

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the Import tier's driver helpers, beside this file

from ui_common import (  # the same helpers as the Import tier's driver
    enable_addon,
    redraw_all,
    run_driver,
    view3d,
    wait_for,
)

from standin_server import StandinServer

ADDON = "triverse"
API_KEY = "ui-generate-key"
DEADLINE_SECONDS = 150.0
TIMELINE_STEP = 0.9  # seconds per step of a stand-in task: queued, running 10/40/70/95%, done
PROMPT = "a red chair"
SCAN_STEP = 9  # pixels between the spots the pointer visits when looking for a button

Step = Generator[float, None, Any]
RESULT: dict[str, Any] = {"ok": False, "errors": [], "timeline": [], "blender_version": bpy.app.version_string}
STATE: dict[str, Any] = {"probe_draws": 0, "finished": False}
T0 = time.perf_counter()


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="drive_generate.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--addon-source", type=Path, help="stage the add-on package from this folder")
    return parser.parse_args(argv)


def log(what: str) -> None:
    stamp = round(time.perf_counter() - T0, 3)
    RESULT["timeline"].append([stamp, what])
    print(f"[drive_generate {stamp:7.3f}] {what}", flush=True)


def write_result() -> None:
    path = ARGS.out / "result.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(RESULT, indent=1, default=str))
    os.replace(tmp, path)


# The add-on's modules this driver reaches into (dotted, below the package).
JOBS = "service.jobs"
JOB_PROGRESS = "blender.common.job_progress"
PRICE = "blender.generate.price"
GENERATE_STATE = "blender.generate.state"
GENERATE_PANEL = "blender.generate.panel"
STORES = "blender.common.stores"
IMAGE_INPUT = "blender.common.image_input"
ACCOUNT = "blender.account"
STARTUP = "blender.common.startup"


def mod(name: str) -> Any:
    """A module of the enabled add-on, exactly as Blender loaded it (a clear error when it is not there)."""
    try:
        return sys.modules[f"{ADDON}.{name}"]
    except KeyError:
        loaded = sorted(m for m in sys.modules if m.startswith(f"{ADDON}."))
        raise KeyError(f"the add-on has no module {ADDON}.{name} (loaded: {loaded})") from None


def panel_state() -> Any:
    return bpy.context.window_manager.triverse_generate


def screenshot(name: str) -> str:
    """Save the whole window (the timer's context has the window: no override, see drive_ui.py)."""
    path = ARGS.out / name
    bpy.ops.screen.screenshot(filepath=str(path))
    log(f"screenshot {name}")
    return name


def park_pointer() -> None:
    """The pointer over the viewport, away from every sidebar button."""
    win, _, main, _ = view3d()
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=main.x + main.width // 3, y=main.y + main.height // 2)


# -- the model the stand-in serves ----------------------------------------------------------------


def make_model(path: Path) -> None:
    """A monkey on a cube, exported by Blender 3.4's own glTF exporter; the scene is left empty."""
    col = bpy.data.collections.new("model source")
    bpy.context.scene.collection.children.link(col)
    made = []
    for name, build_mesh, z in (("Chair", bmesh.ops.create_monkey, 0.0), ("Seat", bmesh.ops.create_cube, -1.2)):
        mesh = bpy.data.meshes.new(name)
        bm = bmesh.new()
        build_mesh(bm) if name == "Chair" else build_mesh(bm, size=0.8)
        bm.to_mesh(mesh)
        bm.free()
        ob = bpy.data.objects.new(name, mesh)
        ob.location.z = z
        col.objects.link(ob)
        made.append(ob)
    made[1].parent = made[0]
    for ob in bpy.context.view_layer.objects:
        ob.select_set(ob in made)
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True)
    for ob in [*made, bpy.data.objects.get("Cube")]:
        if ob is not None:
            mesh = ob.data
            bpy.data.objects.remove(ob)
            if mesh is not None and mesh.users == 0:
                bpy.data.meshes.remove(mesh)
    bpy.data.collections.remove(col)


# -- set-up ----------------------------------------------------------------------------------------


def setup() -> None:
    prefs = bpy.context.preferences
    prefs.view.show_splash = False  # the first-run splash would cover the window and eat keys
    prefs.use_preferences_save = False
    prefs.view.use_save_prompt = False
    prefs.filepaths.temporary_directory = str(WORK)
    prefs.system.viewport_aa = "OFF"  # software GL: one redraw per change is enough

    import numpy

    if "bool" not in vars(numpy):
        numpy.bool = bool  # Debian's numpy 1.24 lacks it; Blender 3.4's glTF importer uses it

    model = WORK / "model.glb"
    make_model(model)

    _staged, module = enable_addon(prefs, WORK, ARGS.addon_source)
    mod(STARTUP).ensure()  # what the window's timer does after the start, all at once
    startup_done = True

    server = StandinServer(api_key=API_KEY)
    server.gen.generated_asset = model
    server.gen.timeline_step = TIMELINE_STEP
    server.start()
    STATE["server"] = server
    addon_prefs = prefs.addons[ADDON].preferences
    addon_prefs.api_key = API_KEY
    addon_prefs.base_url = server.base_url
    addon_prefs.library_dir = str(WORK / "library")
    RESULT["setup"] = {
        "addon_file": module.__file__,
        "legacy_addon": hasattr(module, "bl_info"),
        "websocket_client_importable": _importable("websocket"),
        "progress_widget": hasattr(bpy.types.UILayout, "progress"),
        "tmp": tempfile.gettempdir(),
        "startup_done": startup_done,
        "generations_loaded": mod(STORES).generations().loaded,
    }
    bpy.utils.register_class(UITEST_PT_triverse_probe)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class UITEST_PT_triverse_probe(bpy.types.Panel):
    """The driver's own empty panel in the Triverse tab: drawn only while that tab is active."""

    bl_label = "UI test probe"
    bl_idname = "UITEST_PT_triverse_probe"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"
    bl_options = {"HIDE_HEADER"}
    bl_order = 1000

    def draw(self, context: Any) -> None:
        STATE["probe_draws"] += 1


# -- pointer and keyboard ----------------------------------------------------------------------------


def ctrl_tab() -> None:
    """Ctrl+Tab over an empty spot of the sidebar's tab strip: the next tab."""
    win, _, _, sidebar = view3d()
    x, y = sidebar.x + sidebar.width - 8, sidebar.y + 40
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    win.event_simulate(type="LEFT_CTRL", value="PRESS", x=x, y=y, ctrl=True)
    win.event_simulate(type="TAB", value="PRESS", x=x, y=y, ctrl=True)
    win.event_simulate(type="TAB", value="RELEASE", x=x, y=y, ctrl=True)
    win.event_simulate(type="LEFT_CTRL", value="RELEASE", x=x, y=y)


def open_triverse_tab() -> Step:
    """Open the sidebar and cycle its tabs with Ctrl+Tab until the Triverse tab is drawn."""
    _, area, _, _ = view3d()
    area.spaces.active.show_region_ui = True
    yield from wait_for(lambda: view3d()[3].width > 50, 5.0, "the sidebar to open")
    yield 0.3
    presses = 0
    for _ in range(9):
        STATE["probe_draws"] = 0
        redraw_all()
        end = time.monotonic() + 0.6
        while STATE["probe_draws"] == 0 and time.monotonic() < end:
            yield 0.02
        if STATE["probe_draws"]:
            break
        ctrl_tab()
        presses += 1
        yield 0.1
    else:
        raise RuntimeError("the Triverse tab was not drawn after 9 Ctrl+Tab presses")
    bpy.utils.unregister_class(UITEST_PT_triverse_probe)
    park_pointer()
    RESULT["sidebar"] = {"ctrl_tab_presses": presses, "width": view3d()[3].width}
    log(f"Triverse tab active after {presses} Ctrl+Tab")


def key(win: Any, kind: str, x: int, y: int, **mods: Any) -> None:
    win.event_simulate(type=kind, value="PRESS", x=x, y=y, **mods)
    win.event_simulate(type=kind, value="RELEASE", x=x, y=y, **mods)


def passes(n: int = 3) -> Step:
    """Let Blender's main loop go round `n` times (each handles the queued events, then redraws):
    events simulated before are then handled, however slow the machine is."""
    for _ in range(n):
        yield 0.0


def what_is_under(x: int, y: int, operator: bool, settle: int = 3) -> Step:
    """What the pointer at (x, y) finds: Ctrl+C copies an operator button's Python command, Ctrl+Shift+C
    a property's data path; "" when nothing of the kind is there."""
    win = view3d()[0]
    wm = bpy.context.window_manager
    wm.clipboard = ""
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    yield from passes(settle)  # the button under the pointer becomes the active one
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x + 1, y=y)
    key(win, "C", x + 1, y, ctrl=True, shift=not operator)
    yield from passes(settle)
    return wm.clipboard


def find(match: Callable[[str], bool], what: str, operator: bool = True, x_from_right: int = 0) -> Step:
    """Move the pointer over the sidebar (its middle, or `x_from_right` pixels from its right edge, where
    the tab strip is) until what is under it matches; (x, y) of that spot. Spots nearest to where the
    same button was found last are visited first (the layout moves little between scenarios). A match
    is checked again, slowly: Blender may handle the simulated keys of one spot after the driver has
    moved on (a redraw under software GL takes 50-150 ms)."""
    _, _, _, sidebar = view3d()
    x = sidebar.x + (sidebar.width - x_from_right if x_from_right else int(sidebar.width * 0.45))
    spots = list(range(sidebar.y + sidebar.height - 30, sidebar.y + 10, -SCAN_STEP))
    last = STATE.setdefault("found_at", {}).get(what)
    if last is not None:
        spots.sort(key=lambda y: abs(y - last))
    seen: list[str] = []
    for y in spots:
        found = yield from what_is_under(x, y, operator)
        if found and match(found):
            for near in (y, y + SCAN_STEP, y - SCAN_STEP):  # the keys may have landed on a previous spot
                again = yield from what_is_under(x, near, operator, settle=6)
                if match(again):
                    park_pointer()
                    STATE["found_at"][what] = near
                    log(f"found {what} at y={near}: {again}")
                    return x, near
        if found and found not in seen:
            seen.append(found)
        STATE.setdefault("scan_log", []).append([what, y, found[:40]])
    park_pointer()
    RESULT["scan_log"] = STATE.get("scan_log")
    screenshot("generate-debug.png")
    raise RuntimeError(f"{what} not found in the sidebar; the pointer found: {seen}")


def click(x: int, y: int) -> None:
    win = view3d()[0]
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    key(win, "LEFTMOUSE", x, y)


def type_text(text: str) -> None:
    """Type into the text field being edited, one simulated key press per character, then Enter."""
    win, _, _, _ = view3d()
    x, y = STATE.get("typing_at", (0, 0))
    for ch in text:
        kind = "SPACE" if ch == " " else ch.upper()
        win.event_simulate(type=kind, value="PRESS", x=x, y=y, unicode=ch)
        win.event_simulate(type=kind, value="RELEASE", x=x, y=y)
    key(win, "RET", x, y)


# -- scenarios -------------------------------------------------------------------------------------


def quote_requests() -> list[dict[str, Any]]:
    server: StandinServer = STATE["server"]
    return [json.loads(r.body or b"{}") for r in server.requests_for("/tasks/pricing/quote")]


def shown_quote() -> Any:
    price = mod(PRICE)
    key, _request, _why_not = price.quote_key(bpy.context)
    return price.QUOTE.value if price.QUOTE.current(key) and price.QUOTE.error is None else None


def scenario_price_and_typing() -> Step:
    """The empty prompt's reason; a prompt typed key by key; the price and balance; a price refresh."""
    out: dict[str, Any] = {}
    RESULT["typing"] = out
    yield from wait_for(shown_quote, 10.0, "the first price")
    yield 0.3
    out["reason_shown_for_empty_prompt"] = mod(GENERATE_STATE).problems(panel_state(), bpy.context)
    screenshot("generate-empty.png")
    x, y = yield from find(lambda s: s.endswith("triverse_generate.prompt"), "the prompt field", operator=False)
    STATE["typing_at"] = (x, y)
    quotes_before = len(quote_requests())
    click(x, y)
    yield 0.2
    type_text(PROMPT)
    yield from wait_for(lambda: panel_state().prompt == PROMPT, 5.0, "the typed prompt")
    yield 0.3
    out["prompt"] = panel_state().prompt
    out["reasons_after_typing"] = mod(GENERATE_STATE).problems(panel_state(), bpy.context)
    out["quotes_for_typing"] = len(quote_requests()) - quotes_before  # the prompt does not change the price
    first = shown_quote()
    out["price"] = {"cost": first.cost_credits, "balance": first.available_credits}
    out["quote_params"] = quote_requests()[-1]
    screenshot("generate-idle.png")

    # An option that changes the price: a new quote, once, off the main thread.
    quotes_before = len(quote_requests())
    panel_state().texture_size = "2048"
    yield from wait_for(lambda: shown_quote() and shown_quote().cost_credits != first.cost_credits, 10.0, "new price")
    for _ in range(10):  # many redraws: never a request from drawing
        redraw_all()
        yield 0.05
    out["quotes_for_texture_change"] = len(quote_requests()) - quotes_before
    out["quote_after_texture_change"] = quote_requests()[-1]
    out["price_2048"] = shown_quote().cost_credits
    log(f"typing and price: {out}")


def job_text(job: Any) -> str:
    return mod(JOB_PROGRESS).progress_text(job)[1]


def generate_jobs() -> list[Any]:
    return list(mod(GENERATE_PANEL).generation_jobs())


def new_job(before: list[Any]) -> Step:
    """The generate job a click started (not one that was running already)."""
    jobs = yield from wait_for(lambda: [j for j in generate_jobs() if j not in before], 10.0, "a new generate job")
    return jobs[0]


def scenario_generate() -> Step:
    """Click Generate; watch the queue, then progress, then the model in a collection named after the prompt."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["generate"] = out
    x, y = yield from find(lambda s: "generate_from_panel" in s, "the Generate button")
    STATE["generate_button"] = (x, y)
    created_before = list(server.gen.created)
    jobs_before = generate_jobs()
    click(x, y)
    job = yield from new_job(jobs_before)
    seen: list[str] = []
    shots: dict[str, str] = {}
    end = time.monotonic() + 40.0
    while job in mod(JOBS).Job.active():
        text = job_text(job)
        if not seen or seen[-1] != text:
            seen.append(text)
            log(f"panel: {text}")
        if text.startswith("Queued") and "queued" not in shots:
            yield 0.5  # Blender animates panels into their new places
            shots["queued"] = screenshot("generate-queued.png")
        if text.startswith("Running") and "running" not in shots and text != "Running 10%":
            yield 0.3  # the modal redraws the panel on its next tick
            shots["running"] = screenshot("generate-running.png")
        yield 0.05
        if time.monotonic() > end:
            raise TimeoutError("the generation did not end within 40 s")
    out["texts_seen"] = seen
    out["screenshots"] = shots
    out["job_error"] = repr(job.error) if job.error else None
    new = [t for t in server.gen.created if t not in created_before]
    out["tasks_created"] = new
    task = new[0] if new else ""
    yield 0.5
    collections = [c.name for c in bpy.data.collections if task and task[:8] in c.name]
    out["collections"] = collections
    col = bpy.data.collections.get(collections[0]) if collections else None
    objects = list(col.all_objects) if col else []
    out["objects"] = sorted(ob.name for ob in objects)
    roots = [ob for ob in objects if ob.parent is None]
    out["root_properties"] = {k: str(v) for k, v in roots[0].items()} if roots else {}
    record = mod(STORES).generations().get(task) if task else None
    out["record"] = {"status": record.status, "prompt": record.prompt, "cost": record.cost_credits} if record else None
    create = [json.loads(r.body) for r in server.requests_for("/tasks/text-to-model")]
    out["create_bodies"] = [{k: v for k, v in b.items() if k != "client_order_id"} for b in create]
    redraw_all()
    yield 1.5  # the panel's timer notices the generation ended and asks for the balance again
    yield from wait_for(shown_quote, 10.0, "the new balance")
    out["balance_after"] = shown_quote().available_credits
    screenshot("generate-done.png")
    log(f"generated: {out}")


def scenario_stop_watching() -> Step:
    """A task held RUNNING on the service: the X stops watching; it stays listed and keeps running."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["stop"] = out
    panel_state().prompt = "a blue teapot"
    server.gen.script_next(hold=True)
    created_before = list(server.gen.created)
    yield 0.3
    button = yield from find(lambda s: "generate_from_panel" in s, "the Generate button")
    jobs_before = generate_jobs()
    click(*button)
    job = yield from new_job(jobs_before)
    yield from wait_for(lambda: job_text(job).startswith("Running"), 20.0, "the task to run")
    task = job.task_uuid
    yield 0.4  # the panel follows at the modal's next redraw
    screenshot("generate-watching.png")
    STATE["found_at"]["the X (stop watching)"] = button[1] - 40  # the watched generation is under Generate
    x, y = yield from find(lambda s: "generation_stop" in s, "the X (stop watching)", x_from_right=48)
    click(x, y)
    yield from wait_for(lambda: job not in mod(JOBS).Job.active(), 5.0, "the watch to stop")
    yield 1.5  # the panel's timer notices the watch ended and asks for the balance again
    yield from wait_for(shown_quote, 10.0, "the price again")
    yield 0.5
    record = mod(STORES).generations().get(task)
    out.update(
        {
            "task": task,
            "new_tasks": [t for t in server.gen.created if t not in created_before],
            "job_error": type(job.error).__name__ if job.error else None,
            "still_listed": record is not None,
            "record_status": record.status if record else None,
            "service_status": server._task(task).status if server._task(task) else None,
            "collections": [c.name for c in bpy.data.collections if task[:8] in c.name],
        }
    )
    screenshot("generate-stopped.png")
    log(f"stopped watching: {out}")


def scenario_short_balance() -> Step:
    """A balance below the price: Generate is disabled with the reason; a click creates nothing."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["short"] = out
    panel_state().prompt = "a green lamp"
    server.gen.balance = server.gen.balance - server.gen.available + 15  # 15 credits available
    bpy.ops.triverse.refresh_price()
    yield from wait_for(lambda: shown_quote() and not shown_quote().affordable, 10.0, "the short balance")
    yield 0.4
    quote = shown_quote()
    out["price"] = {"cost": quote.cost_credits, "balance": quote.available_credits}
    created_before = list(server.gen.created)
    creations_before = len(server.requests_for("/tasks/text-to-model"))
    # Ctrl+C over a disabled button still copies its command: the pointer finds it as a user sees it.
    x, y = yield from find(lambda s: "generate_from_panel" in s, "the Generate button")
    click(x, y)
    park_pointer()  # as a user would, after a click that did nothing
    yield 1.0
    out["new_tasks"] = [t for t in server.gen.created if t not in created_before]
    out["creation_requests"] = len(server.requests_for("/tasks/text-to-model")) - creations_before
    out["jobs"] = len(generate_jobs())
    screenshot("generate-short.png")
    server.gen.balance += 1000
    bpy.ops.triverse.refresh_price()
    yield from wait_for(lambda: shown_quote() and shown_quote().affordable, 10.0, "the balance back")
    log(f"short balance: {out}")


def scenario_viewport_capture() -> Step:
    """Image input captured from the 3D viewport: a real PNG is uploaded and its file_key sent."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["capture"] = out
    st = panel_state()
    st.mode = "IMAGE"
    st.image_source = "VIEWPORT"
    yield 0.8
    files_before = set(server.gen.files)
    created_before = list(server.gen.created)
    x, y = yield from find(lambda s: "generate_from_panel" in s, "the Generate button")
    screenshot("generate-image.png")
    quote = shown_quote()
    out["panel_before_click"] = {
        "problems": mod(GENERATE_STATE).problems(st, bpy.context),
        "quote": [quote.cost_credits, quote.available_credits] if quote else None,
    }
    screen = view3d()[2]
    STATE["viewport_rect"] = [screen.x, screen.y, screen.width, screen.height]
    jobs_before = generate_jobs()
    click(x, y)
    job = yield from new_job(jobs_before)
    yield from wait_for(lambda: job not in mod(JOBS).Job.active(), 40.0, "the image generation to end")
    yield 0.5
    new_files = [k for k in server.gen.files if k not in files_before]
    out["uploaded"] = [
        {"key": k, "png": server.gen.files[k][:8] == b"\x89PNG\r\n\x1a\n", "bytes": len(server.gen.files[k])}
        for k in new_files
    ]
    if new_files:
        (ARGS.out / "generate-uploaded.png").write_bytes(server.gen.files[new_files[0]])
    bodies = [json.loads(r.body) for r in server.requests_for("/tasks/image-to-model")]
    out["image_file_sent"] = bodies[-1].get("image_file") if bodies else None
    out["new_tasks"] = [t for t in server.gen.created if t not in created_before]
    out["job_error"] = repr(job.error) if job.error else None
    out["temp_image_folders"] = sorted(p.name for p in Path(tempfile.gettempdir()).glob("triverse-image-*"))
    out["viewport"] = [view3d()[2].width, view3d()[2].height]
    if new_files:
        out["capture_vs_screenshot"] = compare_with_screenshot(ARGS.out / "generate-uploaded.png")
    # The camera's view, captured directly (the panel's Camera source calls the same function).
    with mod(IMAGE_INPUT).capture_view(bpy.context, camera=True) as shot:
        out["camera_capture"] = png_size(shot.path)
        render = bpy.context.scene.render
        out["render_size"] = [render.resolution_x * render.resolution_percentage // 100,
                              render.resolution_y * render.resolution_percentage // 100]  # fmt: skip
    log(f"viewport capture: {out}")


def png_size(path: Path) -> list[int]:
    import struct

    return list(struct.unpack(">II", path.read_bytes()[16:24]))


def compare_with_screenshot(uploaded: Path) -> dict[str, Any]:
    """How far the uploaded capture is from the viewport's pixels in the window's screenshot (mean
    absolute difference of RGB, 0-1): gizmos and the toolbar differ a little, broken pixels a lot."""
    import numpy as np

    def pixels(path: Path) -> Any:
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            w, h = image.size
            data = np.empty(w * h * 4, dtype=np.float32)
            image.pixels.foreach_get(data)
            return data.reshape(h, w, 4)
        finally:
            bpy.data.images.remove(image)

    capture = pixels(uploaded)
    x, y, w, h = STATE["viewport_rect"]
    screen = pixels(ARGS.out / "generate-image.png")[y : y + h, x : x + w]
    if capture.shape != screen.shape:
        return {"shapes": [list(capture.shape), list(screen.shape)], "mean_abs_diff": 1.0}
    return {
        "mean_abs_diff": round(float(np.abs(capture[..., :3] - screen[..., :3]).mean()), 4),
        "alpha_min": round(float(capture[..., 3].min()), 4),
    }


class UITEST_PT_account(bpy.types.Panel):
    """The driver's panel showing what the add-on's preferences show of the account (draw_account)."""

    bl_label = "Account (as in the preferences)"
    bl_idname = "UITEST_PT_account"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"
    bl_order = 2000

    def draw(self, context: Any) -> None:
        mod(ACCOUNT).draw_account(self.layout, context)


def scenario_account() -> Step:
    """The account box of the preferences: fetched in the background on its first draw, then shown."""
    server: StandinServer = STATE["server"]
    out: dict[str, Any] = {}
    RESULT["account"] = out
    ui = mod(ACCOUNT)
    ui.ACCOUNT.forget()
    before = len(server.requests_for("/users/me"))
    bpy.utils.register_class(UITEST_PT_account)
    redraw_all()
    yield from wait_for(lambda: ui.ACCOUNT.value, 10.0, "the account")
    for _ in range(10):  # more redraws: the account is kept, not fetched again
        redraw_all()
        yield 0.05
    account = ui.ACCOUNT.value
    out.update(
        {
            "email": account.email,
            "plan": account.plan_name,
            "balance": account.balance,
            "service_available": server.gen.available,
            "requests": len(server.requests_for("/users/me")) - before,
        }
    )
    win, _, _, sidebar = view3d()
    x, y = sidebar.x + 3, sidebar.y + sidebar.height // 2  # the margin left of the panels: no button there
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    for _ in range(25):  # scroll the sidebar down to its last panel, as a user would with the wheel
        win.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=x, y=y)
        yield 0.02
    park_pointer()
    yield 0.8
    screenshot("generate-account.png")
    bpy.utils.unregister_class(UITEST_PT_account)
    log(f"account: {out}")


def scenario_steps() -> Step:
    yield 0.5
    yield from open_triverse_tab()
    yield 1.0
    for scenario in (
        scenario_price_and_typing,
        scenario_generate,
        scenario_stop_watching,
        scenario_short_balance,
        scenario_viewport_capture,
        scenario_account,
    ):
        try:
            yield from scenario()
        except Exception:
            RESULT["errors"].append(f"{scenario.__name__}: {traceback.format_exc()}")
            print(RESULT["errors"][-1], file=sys.stderr, flush=True)
            park_pointer()
            yield 0.5


def finish() -> None:
    """Write result.json, stop the stand-in, then quit Blender from a fresh timer."""
    STATE["finished"] = True
    RESULT["driver_seconds"] = round(time.perf_counter() - T0, 2)
    write_result()

    def quit_now() -> None:
        server = STATE.get("server")
        if server is not None:
            server.stop()
        bpy.ops.wm.quit_blender()

    bpy.app.timers.register(quit_now, first_interval=0.0)


ARGS = parse_args()
ARGS.out = ARGS.out.resolve()
ARGS.out.mkdir(parents=True, exist_ok=True)
WORK = Path(tempfile.mkdtemp(prefix="work-", dir=ARGS.out))

run_driver(setup, scenario_steps, DEADLINE_SECONDS, RESULT, STATE, finish)
