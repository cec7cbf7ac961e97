"""UI tier driver for the Triverse asset library and the account feed: INSIDE Debian's Blender 3.4, a real window.

    xvfb-run -a -s "-screen 0 1280x1200x24" blender --factory-startup --enable-event-simulate \
        --python tests/ui/drive_assets_feed.py -- --out DIR

Run by tests/ui/test_assets_feed_ui.py, which isolates Blender's user folders and names, in
TRIVERSE_UI_PYLIB, a folder put first on sys.path before the add-on is enabled: websocket-client (Debian's
python3-websocket 1.2.3 when it can be had, for the add-on's feed) and `websockets` (for the stand-in's
WebSocket watch, which runs in this process as in the other drivers). Nothing in the add-on is patched.

(a) A task is imported through the sidebar's operator (called from the driver's timer, as the Import button
    does); the start-up steps run (`startup.ensure()`: the library's entry), the asset is finished
    (`asset_store.wait()`); the Properties area becomes an Asset Browser showing the "Triverse" library; the
    asset's tile is dragged into the 3D viewport with simulated mouse events (press, moves, release).
(b) With the preference `watch_account` on, a task is made "elsewhere" by a plain HTTP POST (a thread, urllib) to
    the stand-in; the driver waits until My Generations' draw() lays it out with its "Made elsewhere" line.

Writes DIR/result.json, DIR/assets-feed-*.png and the README's crops DIR/crop-{asset-browser,made-elsewhere}.png.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import traceback
import urllib.request
import uuid as uuidlib
from pathlib import Path
from typing import Any

PYLIB = os.environ.get("TRIVERSE_UI_PYLIB", "")
if PYLIB:
    sys.path.insert(0, PYLIB)  # before the add-on (its feed imports websocket at import) and the stand-in

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tier's shared helpers, beside this file

from ui_common import (
    ARGS,
    RESULT,
    STATE,
    WORK,
    Step,
    addon_module,
    crop_png,
    drawn,
    enable_addon,
    invoke_import,
    log,
    make_model,
    park_pointer,
    preview_png,
    redraw_all,
    run_driver,
    screenshot,
    tagged,
    view3d,
    wait_for,
    write_result,
)
from ui_panel import UITEST_PT_triverse_probe, open_triverse_tab

from standin_server import StandinServer

ADDON = "triverse"
API_KEY = "ui-assets-key"
DEADLINE_SECONDS = 170.0
PROMPT_ELSEWHERE = "a lantern made on the web"


def mod(name: str) -> Any:
    return addon_module(name)


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

    try:
        import websocket

        RESULT["websocket_client"] = {"version": websocket.__version__, "file": websocket.__file__}
    except ImportError as exc:
        RESULT["websocket_client"] = {"version": None, "error": repr(exc)}

    model = WORK / "model.glb"
    RESULT["model"] = make_model(model)
    _staged, module = enable_addon(prefs, WORK, ARGS.addon_source)

    server = StandinServer(api_key=API_KEY)
    server.gen.timeline_step = 0.3
    server.start()
    STATE["server"] = server
    task = str(uuidlib.uuid4())
    server.add(task, model.resolve(), preview=preview_png(128))
    STATE["task"] = task
    addon_prefs = prefs.addons[ADDON].preferences
    addon_prefs.api_key = API_KEY
    addon_prefs.base_url = server.base_url
    addon_prefs.library_dir = str(WORK / "library")
    RESULT["setup"] = {
        "addon_file": module.__file__,
        "legacy_addon": hasattr(module, "bl_info"),
        "task": task,
        "asset_folder": str(mod("blender.common.asset_store").folder()),
    }
    bpy.utils.register_class(UITEST_PT_triverse_probe)


# -- (a) the asset library -------------------------------------------------------------------------------------


def library_entries() -> list[dict[str, str]]:
    return [
        {"name": lib.name, "path": str(Path(bpy.path.abspath(lib.path)).resolve())}
        for lib in bpy.context.preferences.filepaths.asset_libraries
    ]


def asset_marked() -> list[str]:
    """Data-blocks of the open file that carry an asset mark."""
    marked = []
    for attr in ("collections", "objects", "meshes", "materials", "images", "worlds", "node_groups", "actions"):
        marked += [f"{attr}:{idb.name}" for idb in getattr(bpy.data, attr) if idb.asset_data is not None]
    return marked


def asset_browser_area() -> bpy.types.Area:
    win = view3d()[0]
    area = STATE.get("asset_area")
    if area is None:
        area = next(a for a in win.screen.areas if a.type == "PROPERTIES")
        STATE["asset_area"] = area
    return area


def scenario_asset_library() -> Step:
    out: dict[str, Any] = {}
    RESULT["assets"] = out
    task = STATE["task"]
    mod("blender.common.startup").ensure()  # the start-up steps: the library's folder and entry
    out["invoke"] = sorted(invoke_import(task))
    objects = yield from wait_for(lambda: tagged(task), 60.0, "the imported model")
    yield 1.0  # the asset's write waits for a one-shot timer after the import
    store = mod("blender.common.asset_store")
    out["asset_wait"] = store.wait(90.0)
    folder = store.folder()
    catalog = mod("service.asset_catalog")
    asset_file = catalog.asset_file(folder, task)
    out["asset_folder"] = str(folder.resolve())
    out["asset_file"] = str(asset_file)
    out["asset_file_exists"] = asset_file.is_file()
    out["library_entries"] = library_entries()
    out["imported_objects"] = sorted(ob.name for ob in objects)
    with bpy.data.libraries.load(str(asset_file), assets_only=True) as (data_from, _):
        out["assets_in_file"] = {"collections": list(data_from.collections), "objects": list(data_from.objects)}
    out["catalogs_file"] = (folder / "blender_assets.cats.txt").is_file()
    out["marked_before_drag"] = asset_marked()
    model_collection = next((c for c in bpy.data.collections if c.get("triverse_task_uuid") == task), None)
    out["model_collection"] = model_collection.name if model_collection else None

    # The viewport closer, its sidebar closed (for the picture: the model beside the browser).
    _, v3d, _, _ = view3d()
    v3d.spaces.active.show_region_ui = False
    rv3d = v3d.spaces.active.region_3d
    rv3d.view_distance = 9.0
    rv3d.view_location = (1.2, 0.0, 0.4)

    # The Properties area becomes an Asset Browser on the Triverse library.
    area = asset_browser_area()
    area.type = "FILE_BROWSER"
    area.ui_type = "ASSETS"
    redraw_all()
    yield 0.5
    space = area.spaces.active
    yield from wait_for(lambda: area.spaces.active.params is not None, 5.0, "the asset browser's parameters")
    space = area.spaces.active
    params = space.params
    prop = "asset_library_ref" if hasattr(params, "asset_library_ref") else "asset_library_reference"
    out["library_property"] = prop
    setattr(params, prop, "Triverse")
    out["library_shown"] = getattr(params, prop)
    space.show_region_toolbar = False  # the catalogs' column: the tiles get the narrow area's width
    if hasattr(space, "show_region_tool_props"):
        space.show_region_tool_props = False
    if hasattr(params, "display_size"):  # an enum in 3.4 (TINY ... LARGE), a number of pixels later
        params.display_size = "LARGE" if isinstance(params.display_size, str) else 128
    redraw_all()
    yield 2.0  # the library is read by a job of Blender's; its previews load after
    main = next(r for r in area.regions if r.type == "WINDOW")
    out["browser_rect"] = [area.x, area.y, area.width, area.height]
    out["browser_main"] = [main.x, main.y, main.width, main.height]
    park_pointer()
    yield 1.0
    shot = screenshot("assets-feed-asset-browser.png")
    out["browser_tile_std"] = region_std(shot["file"], (main.x, main.y + main.height - 200, main.width, 200))

    # Drag the tile into the viewport, to the right of the imported model.
    _, v3d, vmain, _ = view3d()
    before = {ob.name for ob in bpy.data.objects}
    tile = (main.x + 16 + 64, main.y + main.height - 16 - 70)
    out["tile_point"] = list(tile)
    drop = (vmain.x + int(vmain.width * 0.68), vmain.y + int(vmain.height * 0.45))
    out["drop_point"] = list(drop)
    yield from drag(tile, drop)
    new_objects = yield from wait_for(
        lambda: sorted({ob.name for ob in bpy.data.objects} - before), 6.0, "a new object from the drop"
    )
    yield 0.5
    out["drag"] = "simulated"
    out["new_objects"] = new_objects
    out["dropped"] = [dropped_facts(bpy.data.objects[n]) for n in new_objects]
    out["marked_after_drag"] = asset_marked()
    park_pointer()
    yield 0.8
    screenshot("assets-feed-dropped.png")
    crop_asset_browser()
    v3d.spaces.active.show_region_ui = True  # the sidebar again, on the Triverse tab, for the feed
    yield from wait_for(lambda: view3d()[3].width > 50, 5.0, "the sidebar to open again")
    yield 0.5
    log(f"assets: {out}")


def dropped_facts(ob: bpy.types.Object) -> dict[str, Any]:
    coll = ob.instance_collection
    facts: dict[str, Any] = {"name": ob.name, "instance_type": ob.instance_type, "location": list(ob.location)}
    if coll is not None:
        weak = getattr(coll, "library_weak_reference", None)
        facts["collection"] = {
            "name": coll.name,
            "library": bpy.path.abspath(coll.library.filepath) if coll.library else None,
            "weak_reference": bpy.path.abspath(weak.filepath) if weak is not None else None,
            "objects": sorted(o.name for o in coll.all_objects),
            "meshes": sum(o.type == "MESH" for o in coll.all_objects),
            "task": coll.get("triverse_task_uuid"),
        }
    return facts


def drag(start: tuple[int, int], end: tuple[int, int]) -> Step:
    """Press on `start`, move there in steps (each in a pass of its own), release on `end`."""
    win = view3d()[0]
    x0, y0 = start
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x0, y=y0)
    yield 0.2
    win.event_simulate(type="LEFTMOUSE", value="PRESS", x=x0, y=y0)
    yield 0.1
    steps = 14
    for i in range(1, steps + 1):
        x = x0 + (end[0] - x0) * i // steps
        y = y0 + (end[1] - y0) * i // steps
        win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        yield 0.05
    yield 0.3
    win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=end[0], y=end[1])
    yield 0.3


def region_std(name: str, rect: tuple[int, int, int, int]) -> float:
    import numpy as np

    image = bpy.data.images.load(str(ARGS.out / name), check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    x, y, cw, ch = rect
    crop = pixels.reshape(h, w, 4)[max(0, y) : y + ch, max(0, x) : x + cw, :3]
    return round(float(crop.std()), 4)


def crop_asset_browser() -> None:
    """The README's picture: the viewport's right part with the dropped model, and the Asset Browser."""
    area = asset_browser_area()
    _, _, vmain, _ = view3d()
    left = max(vmain.x, area.x - 760)
    top = area.y + area.height
    height = min(area.height, 560)
    rect = (left, top - height, area.x + area.width - left, height)
    RESULT.setdefault("crops", {})["asset-browser.png"] = crop_png(
        ARGS.out / "assets-feed-dropped.png", ARGS.out / "crop-asset-browser.png", rect
    )


# -- (b) the account feed --------------------------------------------------------------------------------------


def generations_words() -> list[str]:
    record = drawn(mod("blender.generations.panel").TRIVERSE_PT_generations)
    return [r["text"] for r in record if r["kind"] == "label"]


def post_elsewhere(base_url: str, box: dict[str, Any]) -> None:
    """A task made elsewhere: a plain HTTP POST with the key, as a script or the web app would."""
    body = json.dumps({"prompt": PROMPT_ELSEWHERE}).encode()
    request = urllib.request.Request(
        f"{base_url}/tasks/text-to-model",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            box["answer"] = json.loads(answer.read())
    except Exception as exc:  # recorded; the test fails on it
        box["error"] = repr(exc)


def scenario_feed() -> Step:
    out: dict[str, Any] = {}
    RESULT["feed"] = out
    server: StandinServer = STATE["server"]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    feed_state = mod("blender.common.feed_state")
    prefs.watch_account = True  # the preference's follower starts the feed
    try:
        yield from wait_for(lambda: feed_state.current()[0] in ("connected", "unavailable"), 15.0, "the feed to open")
    finally:
        out["state_after_start"] = list(feed_state.current())
    log(f"feed: {out['state_after_start']}")
    yield 1.0  # the snapshot is over after QUIET s
    out["watch_all_requests"] = len(server.requests_for("/tasks/watch/all"))
    out["generations_words_before"] = generations_words()
    yield from show_generations()
    box: dict[str, Any] = {}
    import time

    posted = time.monotonic()
    threading.Thread(target=post_elsewhere, args=(server.base_url, box), daemon=True).start()
    yield from wait_for(lambda: box, 10.0, "the POST's answer")
    out["post"] = box
    data = box.get("answer", {}).get("data", box.get("answer", {}))
    task = data.get("task_uuid") if isinstance(data, dict) else None
    out["task"] = task
    if not task:
        raise RuntimeError(f"the POST made no task: {box}")

    # The row's title: the prompt, or (the stand-in's status payload records no `input` for text-to-model) the
    # flow and the UUID's start, as My Generations names a task made elsewhere without a prompt.
    titles = (PROMPT_ELSEWHERE, f"text-to-model {task[:8]}")
    out["titles"] = list(titles)

    def shown() -> list[str] | None:
        words = generations_words()
        i = next((k for k, w in enumerate(words) if w in titles), None)
        if i is None or i + 2 >= len(words) or not words[i + 2].startswith("Made elsewhere"):
            return None
        return words

    try:
        words = yield from wait_for(shown, 15.0, "My Generations to draw the task made elsewhere")
    finally:
        out["words_last"] = generations_words()
        record = mod("blender.common.stores").generations().get(task)
        out["record_last"] = repr(record)
        out["state_last"] = list(feed_state.current())
        out["watching"] = server.gen.watching
    out["seconds_to_drawn"] = round(time.monotonic() - posted, 2)
    out["words"] = words
    record = mod("blender.common.stores").generations().get(task)
    out["record"] = {"origin": record.origin, "status": record.status, "prompt": record.prompt} if record else None
    out["connections"] = len(server.requests_for("/tasks/watch/all"))
    redraw_all()
    yield 0.5
    # Until the task is done, for a screenshot that shows its line settled.
    yield from wait_for(lambda: done_after(generations_words(), titles), 20.0, "the task made elsewhere to be done")
    out["words_done"] = generations_words()
    out["seconds_to_done"] = round(time.monotonic() - posted, 2)
    yield from show_generations()
    redraw_all()
    yield 1.0
    screenshot("assets-feed-made-elsewhere.png")
    crop_sidebar()
    log(f"feed: {out}")


def done_after(words: list[str], titles: tuple[str, ...]) -> bool:
    i = next((k for k, w in enumerate(words) if w in titles), None)
    return i is not None and i + 1 < len(words) and words[i + 1] == "Done"


def show_generations() -> Step:
    """Scroll the sidebar down to My Generations (the last panel of the tab), as a user does with the wheel."""
    win, _, _, sidebar = view3d()
    sx, sy = sidebar.x + sidebar.width // 2, sidebar.y + sidebar.height // 2
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=sx, y=sy)
    for _ in range(30):
        win.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=sx, y=sy)
        yield 0.0
    park_pointer()
    yield 0.5


def crop_sidebar() -> None:
    """The README's picture: the bottom of the sidebar (scrolled to My Generations), a strip of the viewport."""
    _, _, _, sidebar = view3d()
    width = 40 + sidebar.width
    height = min(sidebar.height, 340)
    rect = (sidebar.x - 40, sidebar.y, width, height)
    RESULT.setdefault("crops", {})["made-elsewhere.png"] = crop_png(
        ARGS.out / "assets-feed-made-elsewhere.png", ARGS.out / "crop-made-elsewhere.png", rect
    )


def scenario_steps() -> Step:
    yield 0.5
    yield from open_triverse_tab()
    yield 1.0
    for scenario in (scenario_asset_library, scenario_feed):
        try:
            yield from scenario()
        except Exception:
            RESULT["errors"].append(f"{scenario.__name__}: {traceback.format_exc()}")
            print(RESULT["errors"][-1], file=sys.stderr, flush=True)
            park_pointer()
            screenshot(f"assets-feed-debug-{scenario.__name__}.png")
            yield 0.5


def finish() -> None:
    STATE["finished"] = True
    write_result()

    def quit_now() -> None:
        prefs = bpy.context.preferences.addons.get(ADDON)
        if prefs is not None:
            prefs.preferences.watch_account = False  # the feed's connection closed before the server stops
        server = STATE.get("server")
        if server is not None:
            server.stop()
        bpy.ops.wm.quit_blender()

    bpy.app.timers.register(quit_now, first_interval=0.0)


RESULT["tmp"] = tempfile.gettempdir()
run_driver(setup, scenario_steps, DEADLINE_SECONDS, RESULT, STATE, finish)
