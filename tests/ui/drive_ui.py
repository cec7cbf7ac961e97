"""UI tier driver: runs INSIDE Debian's Blender 3.4 with a real window (Xvfb, software OpenGL).

    xvfb-run -a -s "-screen 0 1600x900x24" blender --factory-startup --enable-event-simulate \
        --python tests/ui/drive_ui.py -- --out DIR [--scenario all|stall]

Set BLENDER_USER_CONFIG (and BLENDER_USER_SCRIPTS) to temporary folders before launching, as
tests/ui/test_ui.py does; without BLENDER_USER_SCRIPTS the driver stages the add-on in a temporary
scripts folder of its own and points the preferences' script directory at it.

The add-on is loaded the legacy way (`bl_info`, a `scripts/addons/triverse` package, `addon_utils`),
the stand-in service runs in this process, and everything after set-up runs from `bpy.app.timers`
callbacks (one generator stepped by a timer), so Blender's real event loop draws the window, ticks the
add-on's modal operator and handles the simulated key presses. Nothing in the add-on is wrapped or
patched: its main-thread cost is measured from outside with a profile hook (`sys.setprofile`) that
times only frames whose code lives in the add-on's files, plus a probe timer that records the gaps
between consecutive 10 ms ticks.

Writes DIR/result.json (before quitting), DIR/panel_*.png, DIR/exit.json (at interpreter exit).
Blender is always asked to quit, also after an error or when the driver's own deadline passes.
"""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import json
import os
import struct
import sys
import tempfile
import time
import traceback
import uuid as uuidlib
import zlib
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import addon_utils
import bmesh
import bpy

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import build  # scripts/build.py: the same staging the zip build and the other tiers use
from standin_server import StandinServer

ADDON = "triverse"
API_KEY = "ui-test-key"
DEADLINE_SECONDS = 110.0  # the driver gives up (records why, quits) after this long
PROBE_INTERVAL = 0.01  # seconds between ticks of the stall probe
MEASURE_SECONDS = 2.2  # length of each measured window (baseline and during the download)
SLOW_SECONDS = 4.5  # how long the "slow" download takes
MODEL_PADDING = 3_000_000  # bytes of unused buffer added to the GLB (a ~3.3 MB file that imports fast)
STALL_AFTER = 200_000  # bytes a stalled download sends before it stops

Step = Generator[float, None, Any]

RESULT: dict[str, Any] = {
    "ok": False,
    "errors": [],
    "timeline": [],
    "blender_version": bpy.app.version_string,
    "python": sys.version.split()[0],
    "python_prefix": sys.prefix,
}
STATE: dict[str, Any] = {"probe_draws": 0, "probe_drawn_at": None, "finished": False}
T0 = time.perf_counter()


# -- small helpers -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="drive_ui.py")
    parser.add_argument("--out", type=Path, required=True, help="folder for result.json and screenshots")
    parser.add_argument("--scenario", choices=("all", "stall"), default="all")
    parser.add_argument(
        "--addon-source",
        type=Path,
        help="stage the add-on package from this folder instead of triverse_addon/ (to try a change to the "
        "add-on before it lands; the manifest still comes from the repository)",
    )
    return parser.parse_args(argv)


def log(what: str) -> None:
    """A line in the timeline (and on stdout, for the log the test keeps)."""
    stamp = round(time.perf_counter() - T0, 3)
    RESULT["timeline"].append([stamp, what])
    print(f"[drive_ui {stamp:7.3f}] {what}", flush=True)


def write_result() -> None:
    path = ARGS.out / "result.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(RESULT, indent=1, default=str))
    os.replace(tmp, path)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def addon_module(name: str) -> Any:
    """A module of the enabled add-on (`triverse.core`, ...), exactly as Blender loaded it."""
    return sys.modules[f"{ADDON}.{name}"]


def part_files() -> list[str]:
    incoming = Path(LIBRARY_DIR) / ".incoming"
    return sorted(p.name for p in incoming.glob("*.part")) if incoming.is_dir() else []


def part_bytes() -> int:
    """Bytes written so far to the partial files (what the worker received, as the disk sees it)."""
    incoming = Path(LIBRARY_DIR) / ".incoming"
    total = 0
    for part in incoming.glob("*.part") if incoming.is_dir() else ():
        try:
            total += part.stat().st_size
        except OSError:
            pass  # removed meanwhile
    return total


def tagged(task_uuid: str) -> list[bpy.types.Object]:
    return [ob for ob in bpy.data.objects if ob.get("triverse_task_uuid") == task_uuid]


def view3d() -> tuple[bpy.types.Window, bpy.types.Area, bpy.types.Region, bpy.types.Region]:
    """(window, 3D view area, its main region, its sidebar region)."""
    win = bpy.context.window_manager.windows[0]
    area = next(a for a in win.screen.areas if a.type == "VIEW_3D")
    main = next(r for r in area.regions if r.type == "WINDOW")
    sidebar = next(r for r in area.regions if r.type == "UI")
    return win, area, main, sidebar


def redraw_all() -> None:
    for win in bpy.context.window_manager.windows:
        for area in win.screen.areas:
            area.tag_redraw()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Step:
    """Yield to the event loop until `predicate()` is true; its value is the result."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        yield step


# Operators are called from the driver's timers with Blender's own context (a timer has the window
# and screen), never under `Context.temp_override`: Blender 3.4 looks members of an override up in a
# Python dict, and from inside `bpy.ops` (which releases the GIL) it does so without the GIL whenever
# another Python thread holds it at that moment (it asks `PyThreadState_GetDict()`, which in Python
# 3.11 answers for whichever thread holds the GIL). The add-on's download worker and the stand-in's
# threads are such threads: a screenshot under an override during a download crashed Blender 3.4
# with SIGSEGV in `_PyErr_Fetch` about once in 15 runs.


def invoke_import(text: str) -> set[str]:
    """Paste `text` into the sidebar's field and press Import, as the panel's button does."""
    state = bpy.context.window_manager.triverse
    if state.task_uuid != text:  # a change redraws the whole window (3D viewport too: 150-400 ms here)
        state.task_uuid = text
    return set(bpy.ops.triverse.import_task("INVOKE_DEFAULT", task_uuid=text))


# The panel's controls, found where Blender 3.4 lays them out: centres in UI units (20 px at scale 1)
# below the sidebar's top edge, measured on a screenshot of the idle panel (key set, online access on).
# A click that misses shows: the field, the box or the job do not change, and the scenario fails.
PANEL_ROWS = {"field": 2.3, "import": 3.55, "wait": 5.05}


def panel_point(name: str) -> tuple[int, int]:
    """Window coordinates of one of the panel's controls."""
    _, _, _, sidebar = view3d()
    unit = 20 * bpy.context.preferences.system.ui_scale
    return sidebar.x + int(3 * unit), sidebar.y + sidebar.height - int(PANEL_ROWS[name] * unit)


def hover(name: str) -> None:
    """Move the pointer over a control (its highlight redraws the sidebar once)."""
    win = view3d()[0]
    x, y = STATE["pointer"] = panel_point(name)
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)


def click(name: str) -> Step:
    """A left click on a control, as a user's: the pointer moves there (Blender highlights the control on
    its next pass; right after a text edit a move in the same pass is lost), then press and release."""
    hover(name)
    yield 0.15
    press(name)


def press(name: str) -> None:
    """Press and release the left button over a control the pointer is already on."""
    win = view3d()[0]
    x, y = STATE["pointer"] = panel_point(name)
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    win.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
    win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x, y=y)


def key(kind: str, ctrl: bool = False) -> None:
    """A key press and release with the pointer where it is."""
    win = view3d()[0]
    x, y = STATE.get("pointer", (0, 0))
    if ctrl:
        win.event_simulate(type="LEFT_CTRL", value="PRESS", x=x, y=y, ctrl=True)
    win.event_simulate(type=kind, value="PRESS", x=x, y=y, ctrl=ctrl)
    win.event_simulate(type=kind, value="RELEASE", x=x, y=y, ctrl=ctrl)
    if ctrl:
        win.event_simulate(type="LEFT_CTRL", value="RELEASE", x=x, y=y)


def paste_into_field(text: str) -> Step:
    """Copy `text`, click the sidebar's UUID field, select all, paste, press Enter: as a user pastes."""
    state = bpy.context.window_manager.triverse
    bpy.context.window_manager.clipboard = text
    yield from click("field")
    yield 0.15
    key("A", ctrl=True)
    key("V", ctrl=True)
    key("RET")
    yield from wait_for(lambda: state.task_uuid == text, 3.0, f"the sidebar's field to hold the pasted {text!r}")
    yield 0.3  # (the change redraws the whole window once)


def screenshot(name: str) -> dict[str, Any]:
    """Save the whole window; returns the file's facts (taken outside every measured window)."""
    path = ARGS.out / name
    started = time.perf_counter()
    bpy.ops.screen.screenshot(filepath=str(path))  # the timer's context has the window (no override)
    info = {"file": name, "ms": ms(time.perf_counter() - started), "bytes": path.stat().st_size}
    info.update(sidebar_pixels(path))
    log(f"screenshot {name} ({info['ms']:.0f} ms)")
    return info


def sidebar_pixels(path: Path) -> dict[str, Any]:
    """Statistics of the sidebar's pixels in a screenshot, to tell screenshots apart."""
    try:
        import numpy as np

        _, _, _, sidebar = view3d()
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            w, h = image.size
            pixels = np.empty(w * h * 4, dtype=np.float32)
            image.pixels.foreach_get(pixels)
        finally:
            bpy.data.images.remove(image)
        rgba = pixels.reshape(h, w, 4)  # rows bottom-up, like window coordinates
        crop = rgba[sidebar.y : sidebar.y + sidebar.height, sidebar.x : sidebar.x + sidebar.width, :3]
        np.save(str(WORK / f"{path.stem}.sidebar.npy"), crop)
        return {
            "size": [w, h],
            "sidebar_rect": [sidebar.x, sidebar.y, sidebar.width, sidebar.height],
            "sidebar_std": round(float(crop.std()), 4),
            "sidebar_bright_fraction": round(float((crop.mean(axis=2) > 0.6).mean()), 4),
        }
    except Exception as exc:  # recorded: the tests fail on a screenshot they cannot analyse
        return {"pixel_stats_error": repr(exc)}


def sidebar_difference(a: str, b: str) -> float | str:
    """Fraction of sidebar pixels that differ between two screenshots (or why it could not be told)."""
    try:
        import numpy as np

        x = np.load(str(WORK / f"{Path(a).stem}.sidebar.npy"))
        y = np.load(str(WORK / f"{Path(b).stem}.sidebar.npy"))
        if x.shape != y.shape:
            return f"the sidebars differ in size: {x.shape} and {y.shape}"
        return round(float((np.abs(x - y).max(axis=2) > 0.02).mean()), 4)
    except Exception as exc:
        return f"no pixel analysis: {exc!r}"


# -- the model and its preview -------------------------------------------------------------------


def make_model(path: Path) -> dict[str, Any]:
    """A subdivided, textured Suzanne with a child cube, exported by Blender 3.4's own glTF exporter.

    scripts/sample_asset.py is written for Blender 4.2+ and the `bpy` module: it reloads the home file
    and then reads `bpy.context.active_object`, which a --python script in a windowed 3.4 no longer has
    after that reload. So the scene is built here with bpy.data and bmesh, and only `pad_glb` is reused.
    """
    started = time.perf_counter()
    col = bpy.data.collections.new("model source")
    bpy.context.scene.collection.children.link(col)
    monkey_mesh = bpy.data.meshes.new("Suzanne")
    bm = bmesh.new()
    bmesh.ops.create_monkey(bm)
    bm.to_mesh(monkey_mesh)
    bm.free()
    for poly in monkey_mesh.polygons:
        poly.use_smooth = True
    monkey = bpy.data.objects.new("Suzanne", monkey_mesh)
    col.objects.link(monkey)
    monkey.modifiers.new("Subdivision", "SUBSURF").levels = 2
    cube_mesh = bpy.data.meshes.new("Pedestal")
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=0.6)
    bm.to_mesh(cube_mesh)
    bm.free()
    pedestal = bpy.data.objects.new("Pedestal", cube_mesh)
    col.objects.link(pedestal)
    pedestal.location = (0.0, 0.0, -1.4)
    pedestal.parent = monkey
    image = bpy.data.images.new("colour_grid", 128, 128)
    image.generated_type = "COLOR_GRID"
    image.pack()
    mat = bpy.data.materials.new("Painted")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.45
    monkey_mesh.materials.append(mat)
    cube_mesh.materials.append(mat)
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    monkey.select_set(True)
    pedestal.select_set(True)
    result = bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_apply=True, use_selection=True)
    exported = path.stat().st_size
    import sample_asset  # scripts/sample_asset.py (its pad_glb needs no bpy)

    sample_asset.pad_glb(path, MODEL_PADDING)
    # Leave the scene as the user would have it: nothing of the source model, no default cube.
    for ob in (pedestal, monkey, bpy.data.objects.get("Cube")):
        if ob is not None:
            bpy.data.objects.remove(ob)
    bpy.data.collections.remove(col)
    for block in (monkey_mesh, cube_mesh, bpy.data.meshes.get("Cube")):
        if block is not None and block.users == 0:
            bpy.data.meshes.remove(block)
    bpy.data.materials.remove(mat)
    bpy.data.images.remove(image)
    return {
        "export": sorted(result),
        "exported_bytes": exported,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def preview_png(size: int = 96) -> bytes:
    """A small PNG (a colour gradient), served as the tasks' preview image."""
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            rows += bytes((40 + x * 200 // size, 90 + y * 150 // size, 200 - x * 120 // size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


# -- measuring the main thread from outside ------------------------------------------------------


class AddonProfiler:
    """Time spent on the main thread inside the add-on's code, per gap between probe ticks.

    A `sys.setprofile` hook on the main thread notes when control enters the first frame whose code
    lives in the add-on's files (the modal, the panel's and status bar's draw, ...) and when that frame
    returns; everything called from there (bpy, queue, ...) counts as the add-on's. The hook's own
    overhead inside those calls is counted too, so the figure is an upper bound.
    """

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.prefixes = tuple(prefixes)
        self.depth = 0
        self.entered = 0.0
        self.entry = ""
        self.bucket = 0.0
        self.buckets: list[float] = []
        self.calls: dict[str, list[float]] = {}
        self.events: list[tuple[float, float, str]] = []  # (entered, seconds, entry point)

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            if frame.f_code.co_filename.startswith(self.prefixes):
                if self.depth == 0:
                    self.entered = time.perf_counter()
                    self.entry = f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"
                self.depth += 1
        elif event == "return" and self.depth and frame.f_code.co_filename.startswith(self.prefixes):
            self.depth -= 1
            if self.depth == 0:
                spent = time.perf_counter() - self.entered
                self.bucket += spent
                self.calls.setdefault(self.entry, []).append(spent)
                self.events.append((self.entered, spent, self.entry))

    def start(self) -> None:
        self.depth, self.bucket, self.buckets, self.calls, self.events = 0, 0.0, [], {}, []
        sys.setprofile(self.hook)

    def stop(self) -> None:
        sys.setprofile(None)

    def close_bucket(self) -> None:
        self.buckets.append(self.bucket)
        self.bucket = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "addon_max_ms": ms(max(self.buckets, default=0.0)),
            "addon_total_ms": ms(sum(self.buckets) + self.bucket),
            "addon_calls": {
                name: {"count": len(v), "max_ms": ms(max(v)), "total_ms": ms(sum(v))}
                for name, v in sorted(self.calls.items())
            },
        }


class Probe:
    """A 10 ms `bpy.app.timers` timer recording when it actually ticks, and which 3D view regions
    Blender redrew meanwhile (draw handlers: the viewport itself and the sidebar)."""

    REGIONS = ("WINDOW", "UI")

    def __init__(self, profiler: AddonProfiler | None = None) -> None:
        self.ticks: list[float] = []
        self.running = False
        self.generation = 0
        self.profiler = profiler
        self.draws: dict[str, int] = {}
        self.drawn_at: list[tuple[float, str]] = []  # (when, region): the viewport or the sidebar
        self._handles: list[tuple[Any, str]] = []

    def _drawn(self, region: str) -> None:
        self.draws[region] = self.draws.get(region, 0) + 1
        self.drawn_at.append((time.perf_counter(), region))

    def start(self) -> None:
        """Start (called from a timer: this moment counts as the first tick)."""
        self.ticks, self.running, self.draws = [time.perf_counter()], True, {r: 0 for r in self.REGIONS}
        self.drawn_at = []
        self._handles = [
            (bpy.types.SpaceView3D.draw_handler_add(self._drawn, (r,), r, "POST_PIXEL"), r) for r in self.REGIONS
        ]
        if self.profiler:
            self.profiler.start()
        # A fresh timer each start; the one of an earlier window ends itself (two at once would halve gaps).
        self.generation += 1
        generation = self.generation

        def tick() -> float | None:
            return self._tick() if self.running and generation == self.generation else None

        bpy.app.timers.register(tick, first_interval=0.0)

    def _tick(self) -> float:
        self.ticks.append(time.perf_counter())
        if self.profiler and len(self.ticks) > 1:
            self.profiler.close_bucket()
        return PROBE_INTERVAL

    def stop(self) -> dict[str, Any]:
        """Stop (called from a timer: the time since the last tick counts as one more gap)."""
        now = time.perf_counter()
        self.running = False
        if self.profiler:
            self.profiler.stop()
            self.profiler.close_bucket()  # the add-on's time since the last tick
        for handle, region in self._handles:
            bpy.types.SpaceView3D.draw_handler_remove(handle, region)
        self._handles = []
        if self.ticks:
            self.ticks.append(now)
        gaps = [ms(b - a) for a, b in zip(self.ticks, self.ticks[1:], strict=False)]
        out = {
            "viewport_redraws": self.draws.get("WINDOW", 0),
            "sidebar_redraws": self.draws.get("UI", 0),
            "ticks": len(self.ticks),
            "window_ms": ms(self.ticks[-1] - self.ticks[0]) if len(self.ticks) > 1 else 0.0,
            "max_gap_ms": max(gaps, default=0.0),
            "p95_gap_ms": round(percentile(gaps, 0.95), 2),
            "median_gap_ms": round(percentile(gaps, 0.5), 2),
            "gaps_ms": gaps,
        }
        if self.profiler:
            out.update(self.profiler.summary())
            out.update(self.regions_per_pass())
        return out

    def regions_per_pass(self) -> dict[str, Any]:
        """How many regions Blender redrew between two consecutive probe ticks (one event-loop pass, or
        more when a pass took longer than a tick): the viewport, the sidebar, the status bar."""
        drawn = list(self.drawn_at)
        if self.profiler:
            drawn += [(t, "STATUSBAR") for t, _, name in self.profiler.events if name == "ui.draw_statusbar"]
        per_gap: list[list[str]] = []
        for a, b in zip(self.ticks, self.ticks[1:], strict=False):
            per_gap.append(sorted(region for t, region in drawn if a < t <= b))
        worst = max(per_gap, key=len, default=[])
        return {
            "max_regions_per_pass": len(worst),
            "regions_in_worst_pass": worst,
            "passes_with_two_or_more_regions": sum(len(g) >= 2 for g in per_gap),
            "region_redraws": len(drawn),
        }


def micro_benchmark() -> dict[str, Any]:
    """`core.Job.poll` (with a tick's worth of progress events) and `operators.redraw_ui`, called here."""
    core, operators, preferences = addon_module("core"), addon_module("operators"), addon_module("preferences")
    job = core.Job(preferences.get_settings(bpy.context), str(uuidlib.uuid4()))  # never started
    polls, redraws = [], []
    try:
        for i in range(300):
            for k in range(3):  # the worker sends at most ~20 progress events a second: ~2 per 0.1 s tick
                job._events.put(("progress", (i * 3 + k, 1000)))
            started = time.perf_counter()
            job.poll()
            polls.append(time.perf_counter() - started)
            started = time.perf_counter()
            operators.redraw_ui(bpy.context)
            redraws.append(time.perf_counter() - started)
    finally:
        job.client.close()
    return {
        "poll_max_ms": ms(max(polls)),
        "poll_median_ms": round(percentile(polls, 0.5) * 1000, 4),
        "redraw_ui_max_ms": ms(max(redraws)),
        "redraw_ui_median_ms": round(percentile(redraws, 0.5) * 1000, 4),
    }


# -- set-up (synchronous, before the event loop runs) ------------------------------------------------


def setup() -> None:
    prefs = bpy.context.preferences
    prefs.view.show_splash = False  # the first-run "Quick Setup" splash would cover the window and eat keys
    prefs.use_preferences_save = False  # never write the (isolated) user preferences
    prefs.view.use_save_prompt = False  # quit_blender would otherwise ask "Save changes?" and wait for ever
    prefs.filepaths.temporary_directory = str(WORK)  # quit.blend goes here, not to /tmp
    # Software OpenGL: one 3D-viewport redraw costs 150-400 ms here, and the viewport's temporal
    # anti-aliasing redraws it 8 times after every change (a paste, an import, a selection): seconds of
    # blocked main thread that are Blender's drawing, not the add-on. One redraw per change is enough.
    RESULT["viewport_aa_was"] = prefs.system.viewport_aa
    prefs.system.viewport_aa = "OFF"

    import numpy

    if "bool" not in vars(numpy):  # (hasattr would make numpy 1.24 warn)
        numpy.bool = bool  # Debian's numpy 1.24 lacks it; Blender 3.4's glTF importer uses it
        RESULT["numpy_bool_restored"] = True

    model = WORK / "model.glb"
    RESULT["model"] = make_model(model)
    log(f"model exported: {RESULT['model']}")

    if ARGS.addon_source:
        build.PACKAGE = ARGS.addon_source.resolve()
        RESULT["addon_source"] = str(build.PACKAGE)
    scripts = Path(os.environ.get("BLENDER_USER_SCRIPTS") or (WORK / "scripts"))
    staged = build.stage(scripts / "addons", link=True)
    if not os.environ.get("BLENDER_USER_SCRIPTS"):
        prefs.filepaths.script_directory = str(scripts)
    bpy.utils.refresh_script_paths()
    module = addon_utils.enable(ADDON, default_set=True)
    if module is None or ADDON not in prefs.addons:
        raise RuntimeError(f"addon_utils.enable({ADDON!r}) failed (staged at {staged})")
    RESULT["setup"] = {
        "staged": str(staged),
        "addon_file": module.__file__,
        "bl_info_version": list(module.bl_info["version"]),
        "legacy_addon": hasattr(module, "bl_info") and ADDON in prefs.addons,
        "user_config": bpy.utils.user_resource("CONFIG"),
        "progress_widget": hasattr(bpy.types.UILayout, "progress"),
    }
    STATE["prefixes"] = sorted({str(staged), str(staged.resolve()), str(build.PACKAGE), str(build.PACKAGE.resolve())})

    server = StandinServer(api_key=API_KEY)
    server.start()
    STATE["server"] = server
    preview = preview_png()
    tasks = {name: str(uuidlib.uuid4()) for name in ("slow", "wait", "esc", "button", "two_a", "two_b", "quit")}
    for task in tasks.values():
        server.add(task, model.resolve(), preview=preview)
    STATE["tasks"] = tasks
    RESULT["tasks"] = tasks

    addon_prefs = prefs.addons[ADDON].preferences
    addon_prefs.api_key = API_KEY
    addon_prefs.base_url = server.base_url
    addon_prefs.library_dir = LIBRARY_DIR
    addon_prefs.use_library = True
    RESULT["setup"].update({"base_url": server.base_url, "library_dir": LIBRARY_DIR})

    bpy.utils.register_class(UITEST_PT_triverse_probe)
    atexit.register(at_exit)


class UITEST_PT_triverse_probe(bpy.types.Panel):
    """The driver's own, empty panel in the Triverse tab: drawn only while that tab is the active one."""

    bl_label = "UI test probe"
    bl_idname = "UITEST_PT_triverse_probe"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"
    bl_options = {"HIDE_HEADER"}
    bl_order = 1000

    def draw(self, context: bpy.types.Context) -> None:
        STATE["probe_draws"] += 1
        STATE["probe_drawn_at"] = time.perf_counter()


def at_exit() -> None:
    """At interpreter exit (after Blender disabled the add-ons): what is left of the downloads."""
    info: dict[str, Any] = {"exit_at": time.time(), "part_files": part_files()}
    try:
        info["active_jobs"] = [j.task_uuid for j in addon_module("core").Job.active()]
    except Exception as exc:
        info["active_jobs_error"] = repr(exc)
    try:
        (ARGS.out / "exit.json").write_text(json.dumps(info))
    finally:
        server = STATE.get("server")
        if server is not None:
            server.stop()


# -- scenarios (generators stepped by a timer: the event loop runs between steps) ---------------------


def ctrl_tab() -> None:
    """Ctrl+Tab with the pointer over an empty spot of the sidebar's tab strip: the next tab."""
    win, _, _, sidebar = view3d()
    # The tab strip runs down the sidebar's right edge; its lower part is empty (no tab, no button:
    # a number field under the pointer would swallow Ctrl+Tab).
    x, y = sidebar.x + sidebar.width - 8, sidebar.y + 40
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    win.event_simulate(type="LEFT_CTRL", value="PRESS", x=x, y=y, ctrl=True)
    win.event_simulate(type="TAB", value="PRESS", x=x, y=y, ctrl=True)
    win.event_simulate(type="TAB", value="RELEASE", x=x, y=y, ctrl=True)
    win.event_simulate(type="LEFT_CTRL", value="RELEASE", x=x, y=y)


def probe_drawn_within(seconds: float) -> Step:
    """Whether the probe panel (so the Triverse tab) is drawn within `seconds` of a forced redraw."""
    STATE["probe_draws"] = 0
    redraw_all()
    end = time.monotonic() + seconds
    while STATE["probe_draws"] == 0 and time.monotonic() < end:
        yield 0.02
    return STATE["probe_draws"] > 0


def cycle_to_triverse(max_presses: int = 8) -> Step:
    """Press Ctrl+Tab until the Triverse tab is drawn; the number of presses it took."""
    presses = 0
    while not (yield from probe_drawn_within(0.6)):
        if presses >= max_presses:
            raise RuntimeError(f"the Triverse tab was not drawn after {presses} Ctrl+Tab presses")
        ctrl_tab()
        presses += 1
        yield 0.1
    return presses


def open_triverse_tab() -> Step:
    """Open the sidebar and make Triverse its active tab (3.4 has no Region.active_panel_category).

    "Drawn" is told by the driver's own empty panel in the Triverse category: Blender draws a
    sidebar panel only while its tab is the active one. To show that this test can tell, one more
    Ctrl+Tab must make the probe stop being drawn, and cycling must bring it back.
    """
    win, area, main, _ = view3d()
    area.spaces.active.show_region_ui = True
    yield from wait_for(lambda: view3d()[3].width > 50, 5.0, "the sidebar to open")
    yield 0.3
    first = yield from cycle_to_triverse()
    ctrl_tab()
    yield 0.1
    away = yield from probe_drawn_within(0.6)
    back = yield from cycle_to_triverse()
    sidebar = view3d()[3]
    RESULT["sidebar"] = {
        "ctrl_tab_presses": first,
        "probe_drawn_on_next_tab": away,
        "ctrl_tab_presses_back": back,
        "rect": [sidebar.x, sidebar.y, sidebar.width, sidebar.height],
    }
    if away:
        raise RuntimeError("the probe panel was drawn with another tab active: cannot tell the Triverse tab")
    bpy.utils.unregister_class(UITEST_PT_triverse_probe)  # keep it out of the screenshots
    # Park the pointer over the viewport (not over a sidebar button) for the rest of the run.
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=main.x + main.width // 3, y=main.y + main.height // 2)
    log(f"Triverse tab active after {first} Ctrl+Tab (and {back} more to come back to it)")


def settle(max_seconds: float = 20.0) -> Step:
    """Wait until Blender's first, slow draws (shader compiles under software GL) are over."""
    probe = Probe()
    probe.start()
    started = time.monotonic()
    while time.monotonic() - started < max_seconds:
        yield 0.25
        gaps = [b - a for a, b in zip(probe.ticks[-40:], probe.ticks[-39:], strict=False)]
        if len(gaps) >= 30 and max(gaps) < 0.03:
            break
    settled = probe.stop()
    RESULT["settle"] = {
        "seconds": round(time.monotonic() - started, 2),
        "gaps_over_30ms": [g for g in settled["gaps_ms"] if g > 30],
    }
    RESULT["settled_after_s"] = RESULT["settle"]["seconds"]
    log(f"event loop steady after {RESULT['settled_after_s']} s")


def scenario_idle() -> Step:
    """1: the idle panel; a task page's address pasted into its field (the add-on takes the UUID out)."""
    tasks = STATE["tasks"]
    pasted = f"https://app.triverse.ai/tasks/{tasks['slow'].upper()}?tab=model"
    yield from paste_into_field(pasted)
    redraw_all()
    yield 1.0
    RESULT["idle"] = {
        "screenshot": screenshot("panel_idle.png"),
        "active_jobs": len(addon_module("core").Job.active()),
        "field": bpy.context.window_manager.triverse.task_uuid,
        "pasted": pasted,
    }


def scenario_slow() -> Step:
    """2: a slow download (stall measured, screenshot after the measured window); 3: it imports."""
    core, ui = addon_module("core"), addon_module("ui")
    server: StandinServer = STATE["server"]
    task = STATE["tasks"]["slow"]
    size = (WORK / "model.glb").stat().st_size
    rate = size / SLOW_SECONDS
    server.fail("slow", task, bytes_per_second=rate)
    stall: dict[str, Any] = {"file_bytes": size, "bytes_per_second": round(rate)}
    RESULT["stall"] = stall

    redraw_all()
    yield 0.8  # let the window settle before the baseline
    profiler = AddonProfiler(STATE["prefixes"])
    probe = Probe(profiler)
    probe.start()
    yield MEASURE_SECONDS
    baseline = probe.stop()
    stall["baseline"] = baseline
    stall["baseline_max_gap_ms"] = baseline["max_gap_ms"]
    stall["baseline_p95_gap_ms"] = baseline["p95_gap_ms"]
    log(f"baseline: max gap {baseline['max_gap_ms']} ms, p95 {baseline['p95_gap_ms']} ms")

    # The same, with no download but the add-on's own redraw cadence: this driver calls
    # operators.redraw_ui as often as the modal may (REDRAW_STEP, else every TIMER_STEP). What this
    # costs is Blender's drawing of the sidebar and status bar.
    operators = addon_module("operators")
    step = float(getattr(operators, "REDRAW_STEP", operators.TIMER_STEP))
    stall["redraw_step_s"] = step
    cadence = {"on": True}

    def redraw_like_the_modal() -> float | None:
        if not cadence["on"]:
            return None
        operators.redraw_ui(bpy.context)
        return step

    bpy.app.timers.register(redraw_like_the_modal, first_interval=0.0)
    probe.start()
    yield MEASURE_SECONDS
    redraw_only = probe.stop()
    cadence["on"] = False
    stall["redraw_only"] = redraw_only
    stall["redraw_only_max_gap_ms"] = redraw_only["max_gap_ms"]
    stall["redraw_only_p95_gap_ms"] = redraw_only["p95_gap_ms"]
    log(f"redraw cadence only: max gap {redraw_only['max_gap_ms']} ms, p95 {redraw_only['p95_gap_ms']} ms")
    yield 0.3

    # The start: Import pressed, connection, the preview image (loading it into the panel redraws the
    # whole window once), the first bytes. Measured too, apart from the steady download after it.
    objects_before = len(bpy.data.objects)
    downloads_before = len(server.requests_for(f"/tasks/download/{task}"))
    hover("import")  # outside the measured window: moving onto the button redraws the sidebar and status bar
    yield 0.5
    probe.start()
    started = time.perf_counter()
    press("import")  # the panel's own button, with the pasted address in the field
    job = yield from wait_for(lambda: core.Job.get(task), 3.0, "a job for the task after clicking Import")
    stall["started_by_click"] = True
    stall["click_to_job_ms"] = ms(time.perf_counter() - started)
    yield from wait_for(
        lambda: job.phase == "downloading" and part_bytes() > 0 and job.preview is not None,
        10.0,
        "the download to start (and the preview to arrive)",
    )
    stall["download_started_after_ms"] = ms(time.perf_counter() - started)
    yield 0.3
    start_phase = probe.stop()
    stall["start_phase"] = start_phase
    stall["start_phase_max_gap_ms"] = start_phase["max_gap_ms"]
    stall["start_phase_addon_max_ms"] = start_phase["addon_max_ms"]
    stall["preview_loaded"] = job.key in ui._previews.get("collection", {}) if hasattr(job, "key") else None

    probe.start()
    yield MEASURE_SECONDS
    during = probe.stop()
    still_running = core.Job.get(task) is job
    stall["during"] = during
    stall.update(
        {
            "max_gap_ms": during["max_gap_ms"],
            "p95_gap_ms": during["p95_gap_ms"],
            "median_gap_ms": during["median_gap_ms"],
            "addon_max_ms": during["addon_max_ms"],
            "addon_max_call_ms": max((c["max_ms"] for c in during["addon_calls"].values()), default=0.0),
            "measured_while_downloading": still_running and job.phase == "downloading",
            "received_at_end_of_window": job.received,
            "panel_draws_in_window": during["addon_calls"].get("ui.draw", {}).get("count", 0),
            "statusbar_draws_in_window": during["addon_calls"].get("ui.draw_statusbar", {}).get("count", 0),
            "statusbar_in_screen_areas": any(
                a.type == "STATUSBAR" for w in bpy.context.window_manager.windows for a in w.screen.areas
            ),
        }
    )
    log(
        f"during download: max gap {during['max_gap_ms']} ms, p95 {during['p95_gap_ms']} ms, "
        f"add-on max {during['addon_max_ms']} ms per tick"
    )

    # Out of the measured window: the screenshot of the progress.
    if core.Job.get(task) is job:
        fraction, text = ui._progress_text(job)
        shot = screenshot("panel_downloading.png")
        stall["screenshot"] = shot
        stall["progress_text"] = text
        stall["progress_fraction"] = fraction
        stall["screenshot_while_downloading"] = core.Job.get(task) is job
        stall["sidebar_changed_from_idle"] = sidebar_difference("panel_idle.png", "panel_downloading.png")
    else:
        stall["screenshot_while_downloading"] = False
    stall["micro_benchmark"] = micro_benchmark()

    # 3: the import itself, on the main thread, also timed from outside.
    profiler.start()
    yield from wait_for(lambda: core.Job.get(task) is None, 30.0, "the slow download to finish and import")
    profiler.stop()
    calls = profiler.calls
    modal = calls.get("operators.modal", [])
    done: dict[str, Any] = {
        "seconds_from_invoke": round(time.perf_counter() - started, 3),
        "import_modal_tick_ms": ms(max(modal, default=0.0)),
        "job_phase": job.phase,
        "job_error": repr(job.error) if job.error else None,
    }
    RESULT["import"] = done
    yield 0.2
    objects = tagged(task)
    collection_name = f"Triverse {task[:8]}"
    collection = bpy.data.collections.get(collection_name)
    active = bpy.context.view_layer.objects.active
    recent = addon_module("scene_import").RECENT
    done.update(
        {
            "objects_added": len(bpy.data.objects) - objects_before,
            "tagged_objects": sorted(ob.name for ob in objects),
            "collection": collection.name if collection else None,
            "collection_in_scene": bool(collection) and collection.name in bpy.context.scene.collection.children,
            "objects_in_collection": sorted(ob.name for ob in collection.objects) if collection else [],
            "all_tagged_in_collection": bool(objects)
            and all(list(ob.users_collection) == [collection] for ob in objects),
            "all_selected": bool(objects) and all(ob.select_get() for ob in objects),
            "active_object": active.name if active else None,
            "active_is_root": bool(active) and active in objects and active.parent is None,
            "mesh_objects": sum(ob.type == "MESH" for ob in objects),
            "library_entry": (Path(LIBRARY_DIR) / task).is_dir(),
            "part_files": part_files(),
            "recent": [[r.task_uuid, r.format, r.from_library] for r in recent],
        }
    )
    log(f"imported: {done['tagged_objects']} into {done['collection']}")
    yield from redo_never_downloads(task, downloads_before)
    redraw_all()
    yield 0.8
    done["screenshot"] = screenshot("panel_imported.png")
    done["sidebar_changed_from_idle"] = sidebar_difference("panel_idle.png", "panel_imported.png")


def redo_never_downloads(task: str, downloads_before: int) -> Step:
    """3b: Repeat Last (and Adjust Last Operation, when Blender offers it here) run the import's execute()
    again while Blender waits: from the library, never the network; with the library off, a refusal."""
    server: StandinServer = STATE["server"]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    out: dict[str, Any] = {"downloads_before_redo": len(server.requests_for(f"/tasks/download/{task}"))}
    RESULT["redo"] = out
    out["download_requests_for_import"] = out["downloads_before_redo"] - downloads_before

    def run(name: str, call: Callable[[], set[str]]) -> dict[str, Any]:
        before = len(tagged(task))
        try:
            returned: Any = sorted(call())
            raised = None
        except RuntimeError as exc:  # an ERROR report from an operator called by Python raises
            returned, raised = None, str(exc).strip()
        return {"returned": returned, "raised": raised, "objects_added": len(tagged(task)) - before}

    out["repeat_last"] = run("repeat_last", bpy.ops.screen.repeat_last)
    yield 0.3
    prefs.use_library = False
    try:
        out["repeat_last_library_off"] = run("repeat_last", bpy.ops.screen.repeat_last)
        yield 0.5
        # Blender shows the refusal in a popup under the pointer (not readable from Python in 3.4):
        # a screenshot for a human, then the pointer moves away and Esc closes it.
        out["refusal_screenshot"] = screenshot("redo_refused.png")
    finally:
        prefs.use_library = True
    win, _, main, _ = view3d()
    x, y = main.x + main.width // 3, main.y + main.height // 2
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    win.event_simulate(type="ESC", value="PRESS", x=x, y=y)
    win.event_simulate(type="ESC", value="RELEASE", x=x, y=y)
    yield 0.3
    out["downloads_during_redo"] = len(server.requests_for(f"/tasks/download/{task}")) - out["downloads_before_redo"]
    log(f"redo: {out}")


def scenario_wait() -> Step:
    """7: a running task: paste it, tick Wait for the Task by clicking it, click Import; it imports when done."""
    core, ui = addon_module("core"), addon_module("ui")
    server: StandinServer = STATE["server"]
    task = STATE["tasks"]["wait"]
    server.set_status(task, "RUNNING", progress=40)
    state = bpy.context.window_manager.triverse
    out: dict[str, Any] = {"wait_before": state.wait}
    RESULT["wait"] = out
    yield from paste_into_field(task)
    yield from click("wait")
    yield from wait_for(lambda: state.wait, 3.0, "the Wait for the Task box to be ticked by a click")
    out["wait_after_click"] = state.wait
    yield 0.3
    yield from click("import")
    job = yield from wait_for(lambda: core.Job.get(task), 3.0, "a job after clicking Import with Wait ticked")
    yield from wait_for(lambda: job.phase == "waiting", 5.0, "the job to wait for the running task")
    yield 0.8  # one redraw turn of the sidebar
    out["job_wait_seconds"] = job.wait
    out["text_while_waiting"] = ui._progress_text(job)[1]
    out["screenshot"] = screenshot("panel_waiting.png")
    server.set_status(task, "SUCCESS")
    yield from wait_for(lambda: core.Job.get(task) is None, 30.0, "the waited-for task to import")
    out["job_phase"] = job.phase
    out["job_error"] = repr(job.error) if job.error else None
    out["tagged"] = sorted(ob.name for ob in tagged(task))
    yield from click("wait")  # untick it again, for the scenarios after this one
    yield from wait_for(lambda: not state.wait, 3.0, "the Wait box to be unticked")
    log(f"wait: {out['text_while_waiting']!r}, then {out['tagged']}")


def cancel_scenario(key: str, how: str) -> Step:
    """4: a stalled download cancelled with Esc over the 3D view, or with the panel's Cancel operator."""
    core = addon_module("core")
    server: StandinServer = STATE["server"]
    task = STATE["tasks"][key]
    server.fail("stall", task, after_bytes=STALL_AFTER, seconds=30)
    out: dict[str, Any] = {"how": how}
    RESULT[f"cancel_{how}"] = out
    objects_before = len(bpy.data.objects)
    probe = Probe(AddonProfiler(STATE["prefixes"]))
    probe.start()
    ret = invoke_import(task)
    out["invoke_returned"] = sorted(ret)
    job = core.Job.get(task)
    if job is None:
        raise RuntimeError(f"no job for {task} after invoke returned {ret}")
    # The worker's last progress event before a stall may be held back (at most 20 a second reach the
    # main thread), so the partial file on disk tells when the stall is reached.
    yield from wait_for(lambda: part_bytes() >= STALL_AFTER // 2, 10.0, "the stalled download to reach its stall")
    yield 0.3  # stalled now: nothing more arrives
    out["received_shown_before_cancel"] = job.received
    out["part_bytes_before_cancel"] = part_bytes()
    out["part_files_before_cancel"] = part_files()
    win, _, main, _ = view3d()
    x, y = main.x + main.width // 3, main.y + main.height // 2
    pressed = time.perf_counter()
    if how == "esc":
        win.event_simulate(type="ESC", value="PRESS", x=x, y=y)
        win.event_simulate(type="ESC", value="RELEASE", x=x, y=y)
    else:
        out["cancel_returned"] = sorted(bpy.ops.triverse.cancel_import(task_uuid=task))
    yield from wait_for(lambda: core.Job.get(task) is None, 5.0, f"the job to go after {how}", step=0.002)
    gone = time.perf_counter()
    out["latency_ms"] = ms(gone - pressed)
    measured = probe.stop()
    out["main_thread"] = {k: v for k, v in measured.items() if k != "addon_calls"}
    # When the add-on's code ran after the press (ms after it, ms spent, entry point): Esc reaches the
    # modal on Blender's next event pass, the job goes on a later timer tick once the worker has stopped.
    out["addon_calls_after_press"] = [
        [ms(t - pressed), ms(d), name] for t, d, name in probe.profiler.events if t >= pressed and name != "core.get"
    ]
    out["part_files_when_gone"] = part_files()
    out["job_phase"] = job.phase
    out["job_error"] = type(job.error).__name__ if job.error else None
    yield from wait_for(lambda: not job.alive, 5.0, "the worker thread to end")
    out["worker_ended_after_ms"] = ms(time.perf_counter() - pressed)
    settle = time.monotonic() + 2.0
    while part_files() and time.monotonic() < settle:
        yield 0.05
    out["part_files_after"] = part_files()
    out["objects_added"] = len(bpy.data.objects) - objects_before
    out["tagged_objects"] = len(tagged(task))
    out["collection"] = bool(bpy.data.collections.get(f"Triverse {task[:8]}"))
    log(f"cancel by {how}: {out['latency_ms']} ms, phase {job.phase}, parts {out['part_files_after']}")


def scenario_two_tasks() -> Step:
    """5: two different tasks at once both import; the same task twice is refused."""
    core = addon_module("core")
    server: StandinServer = STATE["server"]
    a, b = STATE["tasks"]["two_a"], STATE["tasks"]["two_b"]
    size = (WORK / "model.glb").stat().st_size
    for task in (a, b):
        server.fail("slow", task, bytes_per_second=size / 2.0)
    out: dict[str, Any] = {}
    RESULT["two_tasks"] = out
    before = len(bpy.data.objects)
    out["first"] = sorted(invoke_import(a))
    out["second"] = sorted(invoke_import(b))
    yield 0.2
    out["active_after_both"] = sorted(j.task_uuid for j in core.Job.active())
    try:
        again = sorted(invoke_import(a.upper()))  # the same task, pasted differently
        out["duplicate"] = {"returned": again, "raised": None}
    except RuntimeError as exc:  # an ERROR report from an operator called by Python raises
        out["duplicate"] = {"returned": ["CANCELLED"], "raised": str(exc).strip()}
    out["active_after_duplicate"] = sorted(j.task_uuid for j in core.Job.active())
    yield from wait_for(lambda: not core.Job.active(), 30.0, "both imports to finish")
    yield 0.2
    out["objects_added"] = len(bpy.data.objects) - before
    out["tagged"] = {task: sorted(ob.name for ob in tagged(task)) for task in (a, b)}
    out["collections"] = {task: bool(bpy.data.collections.get(f"Triverse {task[:8]}")) for task in (a, b)}
    out["part_files"] = part_files()
    log(f"two tasks: {out['tagged']}, duplicate {out['duplicate']}")


def scenario_quit() -> Step:
    """6: quit while a download is stalled (result.json is written first; the test times the exit)."""
    core = addon_module("core")
    server: StandinServer = STATE["server"]
    task = STATE["tasks"]["quit"]
    server.fail("stall", task, after_bytes=STALL_AFTER, seconds=30)
    out: dict[str, Any] = {}
    RESULT["quit"] = out
    out["invoke_returned"] = sorted(invoke_import(task))
    job = core.Job.get(task)
    yield from wait_for(lambda: job is not None and part_bytes() >= STALL_AFTER // 2, 10.0, "the stall before quitting")
    yield 0.2
    out["part_files_before_quit"] = part_files()
    out["active_jobs_before_quit"] = [j.task_uuid for j in core.Job.active()]
    out["library_dir"] = LIBRARY_DIR
    out["requested_at"] = time.time()
    log("quitting during a stalled download")


def scenario_steps() -> Step:
    yield 0.5
    yield from open_triverse_tab()
    yield from scenario_idle()
    yield from settle()
    yield from scenario_slow()
    if ARGS.scenario == "all":
        yield from scenario_wait()
        yield from cancel_scenario("esc", "esc")
        yield from cancel_scenario("button", "button")
        yield from scenario_two_tasks()
        yield from scenario_quit()


class Runner:
    """Steps the scenario generator from a timer; always ends with result.json written and a quit."""

    def __init__(self, steps: Step) -> None:
        self.steps = steps
        self.deadline = time.monotonic() + DEADLINE_SECONDS

    def __call__(self) -> float | None:
        if STATE["finished"]:
            return None
        if time.monotonic() > self.deadline:
            RESULT["errors"].append(f"the driver's deadline of {DEADLINE_SECONDS:g} s passed")
            finish()
            return None
        try:
            delay = next(self.steps)
        except StopIteration:
            RESULT["ok"] = not RESULT["errors"]
            finish()
            return None
        except Exception:
            RESULT["errors"].append(traceback.format_exc())
            print(RESULT["errors"][-1], file=sys.stderr, flush=True)
            finish()
            return None
        return max(0.0, float(delay or 0.0))


def finish() -> None:
    """Write result.json, then quit Blender (from a fresh timer, outside the scenario's own)."""
    STATE["finished"] = True
    RESULT["driver_seconds"] = round(time.perf_counter() - T0, 2)
    if "quit" in RESULT:
        RESULT["quit"]["requested_at"] = time.time()
    write_result()

    def quit_now() -> None:
        bpy.ops.wm.quit_blender()

    bpy.app.timers.register(quit_now, first_interval=0.0)


ARGS = parse_args()
ARGS.out = ARGS.out.resolve()
ARGS.out.mkdir(parents=True, exist_ok=True)
WORK = Path(tempfile.mkdtemp(prefix="work-", dir=ARGS.out))  # the model, the library, quit.blend
LIBRARY_DIR = str(WORK / "library")
RESULT["scenario"] = ARGS.scenario
RESULT["out"] = str(ARGS.out)

# A crash in Blender's C code leaves an empty blender.crash.txt; this at least names the Python threads.
CRASH_LOG = open(ARGS.out / "faulthandler.txt", "w")  # noqa: SIM115 - open until the process ends
faulthandler.enable(CRASH_LOG, all_threads=True)

try:
    setup()
except Exception:
    RESULT["errors"].append(traceback.format_exc())
    print(RESULT["errors"][-1], file=sys.stderr, flush=True)
    finish()
else:
    bpy.app.timers.register(Runner(scenario_steps()), first_interval=0.0)
