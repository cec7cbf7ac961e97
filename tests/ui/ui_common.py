"""Shared helpers of the UI tier's driver (tests/ui/drive_ui.py), inside Debian's Blender 3.4.

The driver's state (RESULT, STATE, the parsed arguments, the work folders), the panel's controls found
by position and used with simulated events, screenshots and their pixel statistics, the model and
preview the stand-in serves, and the main-thread probe (tick gaps, region redraws, the add-on's own
time through a profile hook).
"""

from __future__ import annotations

import argparse
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

import bmesh
import bpy

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))


ADDON = "triverse"
API_KEY = "ui-test-key"
# The stall probe's interval: shorter than an idle pass of Blender's event loop (it sleeps 5 ms), so it
# ticks on every pass and the regions drawn between two ticks were drawn in one pass. (0 would spin.)
PROBE_INTERVAL = 0.001
FOLLOW_UP_SECONDS = 0.2  # a sidebar draw this soon after the previous one is Blender's own follow-up
MEASURE_SECONDS = 2.2  # length of each measured window (baseline and during the download)
SLOW_SECONDS = 5.5  # how long the "slow" download takes
MODEL_PADDING = 3_000_000  # bytes of unused buffer added to the GLB (a ~3.3 MB file that imports fast)
STALL_AFTER = 200_000  # bytes a stalled download sends before it stops

# The add-on's modules the driver reaches into (dotted, below the package), and the add-on's functions the
# profiler's figures are read for: keyed as AddonProfiler keys them, by the file's path in the package (no
# ".py") and the function's name. `check_addon_layout` (at set-up) makes the run fail when one of these no
# longer names a module or function of the loaded add-on, instead of a figure silently reading 0.
JOBS = "service.jobs"
JOB_PROGRESS = "blender.common.job_progress"
MODAL_JOB = "blender.common.modal_job"
ADDON_SETTINGS = "blender.common.addon"
SCENE_IMPORT = "blender.common.scene_import"
IMPORT_PANEL_DRAW = "blender/importing/panel.draw"  # the Import panel's draw()
STATUSBAR_DRAW = "blender/common/job_progress.draw_statusbar"  # the status bar's progress item
MODAL = "blender/common/modal_job.modal"  # every job's modal operator (ModalJob.modal)
JOB_GET = "service/jobs.get"  # Job.get, which the driver itself calls while waiting
IMPORT_OPERATORS = "blender/importing/operators"  # the Import operator's own file (its invoke, job_done)
PROFILED_FUNCTIONS = (IMPORT_PANEL_DRAW, STATUSBAR_DRAW, MODAL, JOB_GET)

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
    """A module of the enabled add-on (`triverse.service.jobs`, ...), exactly as Blender loaded it."""
    try:
        return sys.modules[f"{ADDON}.{name}"]
    except KeyError:
        loaded = sorted(m for m in sys.modules if m.startswith(f"{ADDON}."))
        raise KeyError(f"the add-on has no module {ADDON}.{name} (loaded: {loaded})") from None


def check_addon_layout(prefixes: Iterable[str]) -> list[str]:
    """What does not match between the driver and the loaded add-on (empty when all is well).

    Every add-on module's file must be one the profiler recognises (its prefixes are the add-on's folders),
    under the key its module name says; every function the tests read a figure for (PROFILED_FUNCTIONS) must
    exist in the file its key names; every module the driver reaches into must be loaded.
    """
    problems: list[str] = []
    profiler = AddonProfiler(prefixes)
    modules = {name: m for name, m in list(sys.modules.items()) if name == ADDON or name.startswith(f"{ADDON}.")}
    wrong: list[str] = []
    for name, module in sorted(modules.items()):
        filename = getattr(module, "__file__", None)
        if not filename:
            continue
        want = name.removeprefix(ADDON).removeprefix(".").replace(".", "/")
        want = f"{want}/__init__" if filename.endswith("__init__.py") else want
        want = want.removeprefix("/")
        got = profiler.key_of(filename)
        if got != want:
            wrong.append(f"{filename} as {got!r}, not {want!r}")
    if wrong:
        problems.append(
            f"the profiler keys {len(wrong)} of the add-on's {len(modules)} modules wrongly (its prefixes: "
            f"{list(profiler.prefixes)}): {'; '.join(wrong[:3])}{'; ...' if len(wrong) > 3 else ''}"
        )
    for key in PROFILED_FUNCTIONS:
        path, _, function = key.rpartition(".")
        module = modules.get(f"{ADDON}.{path.replace('/', '.')}")
        if module is None:
            problems.append(f"profiler key {key!r}: the add-on has no module {ADDON}.{path.replace('/', '.')}")
        elif function not in _function_names(module):
            problems.append(f"profiler key {key!r}: {module.__name__} defines no function {function!r}")
    for name in (JOBS, JOB_PROGRESS, MODAL_JOB, ADDON_SETTINGS, SCENE_IMPORT, IMPORT_OPERATORS.replace("/", ".")):
        if f"{ADDON}.{name}" not in modules:
            problems.append(f"the driver reaches into {ADDON}.{name}, which the add-on did not load")
    return problems


def _function_names(module: Any) -> set[str]:
    """Names (co_name) of the functions and methods whose code is in `module`'s own file."""
    names: set[str] = set()
    filename = getattr(module, "__file__", None)

    def note(value: Any) -> None:
        value = getattr(value, "__func__", value)  # classmethod, staticmethod, bound method
        code = getattr(value, "__code__", None)
        if code is not None and code.co_filename == filename:
            names.add(code.co_name)

    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == module.__name__:
            for member in vars(value).values():
                note(member)
        else:
            note(value)
    return names


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
    overhead inside those calls is counted too, so the figure is an upper bound. Each entry point is keyed
    "<file's path in the package, no .py>.<function>" ("blender/importing/panel.draw"): `key_of`.
    """

    def __init__(self, prefixes: Iterable[str]) -> None:
        # The add-on's package folders (staged and source, as given and resolved), each ending in a separator:
        # "…/addons/triverse" alone would also match a neighbour "…/addons/triverse_old/…".
        self.prefixes = tuple(sorted({str(p).rstrip(os.sep) + os.sep for p in prefixes}, key=len, reverse=True))
        self._keys: dict[str, str | None] = {}  # co_filename -> its key (None: not the add-on's)
        self.depth = 0
        self.entered = 0.0
        self.entry = ""
        self.bucket = 0.0
        self.buckets: list[float] = []
        self.calls: dict[str, list[float]] = {}
        self.events: list[tuple[float, float, str]] = []  # (entered, seconds, entry point)

    def key_of(self, filename: str) -> str | None:
        """The add-on file's path in its package without ".py" ("blender/importing/panel"), or None when
        `filename` is not one of the add-on's files. Several files share a name (panel.py, operators.py):
        the stem alone would mix them up."""
        try:
            return self._keys[filename]
        except KeyError:
            pass
        key = None
        for prefix in self.prefixes:
            if filename.startswith(prefix):
                key = filename[len(prefix) :].removesuffix(".py").replace(os.sep, "/")
                break
        self._keys[filename] = key
        return key

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            key = self.key_of(frame.f_code.co_filename)
            if key is not None:
                if self.depth == 0:
                    self.entered = time.perf_counter()
                    self.entry = f"{key}.{frame.f_code.co_name}"
                self.depth += 1
        elif event == "return" and self.depth and self.key_of(frame.f_code.co_filename) is not None:
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

    def require_calls(self, what: str, *keys: str) -> bool:
        """A window in which the add-on's code must have run (its modal, its timer, its draw): an error in
        the result when the profiler recorded no call into the add-on at all (its prefixes match none of
        the add-on's files) or none of `keys`. True when all is there."""
        seen = sorted(self.calls)
        if not seen:
            RESULT["errors"].append(
                f"{what}: the profiler recorded no call into the add-on at all; its prefixes "
                f"{list(self.prefixes)} match none of the add-on's files (e.g. {addon_file_example()})"
            )
            return False
        missing = [k for k in keys if k not in self.calls]
        if missing:
            RESULT["errors"].append(f"{what}: the profiler recorded no call of {missing}; keys seen: {seen}")
            return False
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "addon_max_ms": ms(max(self.buckets, default=0.0)),
            "addon_total_ms": ms(sum(self.buckets) + self.bucket),
            "addon_calls": {
                name: {"count": len(v), "max_ms": ms(max(v)), "total_ms": ms(sum(v))}
                for name, v in sorted(self.calls.items())
            },
        }


def addon_file_example() -> str:
    module = sys.modules.get(f"{ADDON}.{MODAL_JOB}") or sys.modules.get(ADDON)
    return str(getattr(module, "__file__", None))


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
            drawn += [(t, "STATUSBAR") for t, _, name in self.profiler.events if name == STATUSBAR_DRAW]
        per_gap: list[list[str]] = []
        follow_ups, last_ui = 0, -1.0
        for a, b in zip(self.ticks, self.ticks[1:], strict=False):
            regions = sorted(region for t, region in drawn if a < t <= b)
            if "UI" in regions:
                # Blender draws a sidebar once more, on its own, right after a draw that changed a panel's
                # size (a job box or the preview appeared), and again for each frame while the panels below
                # (Generate, My Generations) slide into place: those follow-ups are Blender's, not the
                # add-on's. (The add-on's own rate is still checked on every draw: `region_redraws`.)
                if a - last_ui < FOLLOW_UP_SECONDS:
                    regions.remove("UI")
                    follow_ups += 1
                last_ui = b
            per_gap.append(regions)
        worst = max(per_gap, key=len, default=[])
        worst_at = next((a for a, g in zip(self.ticks, per_gap, strict=False) if g is worst), None)
        start = self.ticks[0] if self.ticks else 0.0
        events = [(t, region) for t, region in drawn]
        if self.profiler:
            events += [
                (t, name)
                for t, _, name in self.profiler.events
                if name.startswith((f"{IMPORT_OPERATORS}.", f"{MODAL.rpartition('.')[0]}."))
            ]
        return {
            # what was drawn and when the add-on's operator ran, in ms from the start of the window
            "timeline": [[ms(t - start), what] for t, what in sorted(events)],
            "worst_pass_after_start_ms": ms(worst_at - self.ticks[0]) if worst_at is not None else None,
            "max_regions_per_pass": len(worst),
            "regions_in_worst_pass": worst,
            "passes_with_two_or_more_regions": sum(len(g) >= 2 for g in per_gap),
            "region_redraws": len(drawn),
            "sidebar_follow_ups": follow_ups,
        }


def micro_benchmark() -> dict[str, Any]:
    """`Job.poll` (with a tick's worth of progress events) and `modal_job.redraw_ui`, called here."""
    jobs, modal_job, addon = addon_module(JOBS), addon_module(MODAL_JOB), addon_module(ADDON_SETTINGS)
    job = jobs.Job(addon.get_settings(bpy.context), str(uuidlib.uuid4()))  # never started
    polls, redraws = [], []
    try:
        for i in range(300):
            for k in range(3):  # the worker sends at most ~20 progress events a second: ~2 per 0.1 s tick
                job._events.put(("progress", (i * 3 + k, 1000)))
            started = time.perf_counter()
            job.poll()
            polls.append(time.perf_counter() - started)
            started = time.perf_counter()
            modal_job.redraw_ui(bpy.context)
            redraws.append(time.perf_counter() - started)
    finally:
        job.client.close()
    return {
        "poll_max_ms": ms(max(polls)),
        "poll_median_ms": round(percentile(polls, 0.5) * 1000, 4),
        "redraw_ui_max_ms": ms(max(redraws)),
        "redraw_ui_median_ms": round(percentile(redraws, 0.5) * 1000, 4),
    }


ARGS = parse_args()
ARGS.out = ARGS.out.resolve()
ARGS.out.mkdir(parents=True, exist_ok=True)
WORK = Path(tempfile.mkdtemp(prefix="work-", dir=ARGS.out))  # the model, the library, quit.blend
LIBRARY_DIR = str(WORK / "library")


class Runner:
    """Steps a driver's scenario generator from a timer; always ends with its `finish` (result.json, quit)."""

    def __init__(self, steps: Step, deadline_seconds: float, result: dict[str, Any], state: dict[str, Any],
                 finish: Callable[[], None]) -> None:  # fmt: skip
        self.steps, self.result, self.state, self.finish = steps, result, state, finish
        self.deadline_seconds = deadline_seconds
        self.deadline = time.monotonic() + deadline_seconds

    def __call__(self) -> float | None:
        if self.state["finished"]:
            return None
        if time.monotonic() > self.deadline:
            self.result["errors"].append(f"the driver's deadline of {self.deadline_seconds:g} s passed")
            self.finish()
            return None
        try:
            delay = next(self.steps)
        except StopIteration:
            self.result["ok"] = not self.result["errors"]
            self.finish()
            return None
        except Exception:
            self.result["errors"].append(traceback.format_exc())
            print(self.result["errors"][-1], file=sys.stderr, flush=True)
            self.finish()
            return None
        return max(0.0, float(delay or 0.0))


# -- finding controls by what the pointer finds under it (the Generate and Scene Tools drivers) ----------

SCAN_STEP = 9  # pixels between the spots the pointer visits when looking for a control


def park_pointer() -> None:
    """The pointer over the viewport, away from every sidebar button."""
    win, _, main, _ = view3d()
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=main.x + main.width // 3, y=main.y + main.height // 2)


def passes(n: int = 3) -> Step:
    """Let Blender's main loop go round `n` times (each handles the queued events, then redraws)."""
    for _ in range(n):
        yield 0.0


def key_at(kind: str, x: int, y: int, **mods: Any) -> None:
    """A key (or button) press and release at (x, y), with modifiers (ctrl=True, shift=True)."""
    win = view3d()[0]
    win.event_simulate(type=kind, value="PRESS", x=x, y=y, **mods)
    win.event_simulate(type=kind, value="RELEASE", x=x, y=y, **mods)


def click_at(x: int, y: int, **mods: Any) -> None:
    """A left click at window coordinates (x, y), the pointer moved there first."""
    view3d()[0].event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    key_at("LEFTMOUSE", x, y, **mods)


def what_is_under(x: int, y: int, operator: bool, settle: int = 3) -> Step:
    """What the pointer at (x, y) finds: Ctrl+C copies an operator button's Python command (a disabled button's
    too), Ctrl+Shift+C a property's data path; "" when nothing of the kind is there."""
    win = view3d()[0]
    wm = bpy.context.window_manager
    wm.clipboard = ""
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    yield from passes(settle)  # the button under the pointer becomes the active one
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x + 1, y=y)
    key_at("C", x + 1, y, ctrl=True, shift=not operator)
    yield from passes(settle)
    return wm.clipboard


def find_in_sidebar(match: Callable[[str], bool], what: str, operator: bool = True) -> Step:
    """Move the pointer down the sidebar's middle until what is under it matches; (x, y) of that spot, checked
    again slowly (Blender may handle one spot's keys after the pointer moved on). Spots nearest to where the
    same control was found last are visited first. Raises RuntimeError with what was found instead."""
    _, _, _, sidebar = view3d()
    x = sidebar.x + int(sidebar.width * 0.45)
    spots = list(range(sidebar.y + sidebar.height - 30, sidebar.y + 10, -SCAN_STEP))
    last = STATE.setdefault("found_at", {}).get(what)
    if last is not None:
        spots.sort(key=lambda y: abs(y - last))
    seen: list[str] = []
    for y in spots:
        found = yield from what_is_under(x, y, operator)
        if found and match(found):
            for near in (y, y + SCAN_STEP, y - SCAN_STEP):
                again = yield from what_is_under(x, near, operator, settle=6)
                if match(again):
                    park_pointer()
                    STATE["found_at"][what] = near
                    log(f"found {what} at y={near}: {again}")
                    return x, near
        if found and found not in seen:
            seen.append(found)
    park_pointer()
    raise RuntimeError(f"{what} not found in the sidebar; the pointer found: {seen}")


def type_text(text: str, x: int, y: int) -> None:
    """Type into the text field being edited, one simulated key press per character (letters and spaces),
    then Enter."""
    win = view3d()[0]
    for ch in text:
        kind = "SPACE" if ch == " " else ch.upper()
        win.event_simulate(type=kind, value="PRESS", x=x, y=y, unicode=ch)
        win.event_simulate(type=kind, value="RELEASE", x=x, y=y)
    key_at("RET", x, y)


class DrawRecorder:
    """A stand-in for `UILayout` that records what a panel's `draw()` lays out: each label's text, each operator
    button (its text and whether it is enabled: its own and every enclosing layout's `enabled`) and each
    property. Called with the add-on's real draw function: what it would put in the sidebar, as words."""

    def __init__(self, record: list[dict[str, Any]] | None = None, enabled: bool = True, alert: bool = False) -> None:
        object.__setattr__(self, "record", [] if record is None else record)
        object.__setattr__(self, "_parent_enabled", enabled)
        object.__setattr__(self, "_parent_alert", alert)
        object.__setattr__(self, "_own", {"enabled": True, "alert": False})

    def __setattr__(self, name: str, value: Any) -> None:
        self._own[name] = value  # enabled, alert, scale_y, ...

    def __getattr__(self, name: str) -> Any:
        if name in self._own:
            return self._own[name]
        if name in ("row", "column", "box", "split", "column_flow", "grid_flow"):
            return lambda *a, **k: self._child()
        if not hasattr(bpy.types.UILayout, name):  # as this Blender's layout (3.4 has no `progress`)
            raise AttributeError(name)
        if name == "progress":
            return lambda text="", **k: self.label(text=text, icon="PROGRESS")
        return lambda *a, **k: None  # separator, template_*, ...

    @property
    def enabled(self) -> bool:
        return bool(self._parent_enabled and self._own.get("enabled", True))

    def _alert(self) -> bool:
        return bool(self._parent_alert or self._own.get("alert", False))

    def _child(self) -> DrawRecorder:
        return DrawRecorder(self.record, self.enabled, self._alert())

    def label(self, text: str = "", icon: str = "NONE", **_: Any) -> None:
        self.record.append({"kind": "label", "text": text, "icon": icon, "alert": self._alert()})

    def operator(self, idname: str, text: str = "", icon: str = "NONE", **_: Any) -> Any:
        self.record.append({"kind": "operator", "op": idname, "text": text, "enabled": self.enabled})
        return type("Props", (), {})()  # its properties are set and ignored

    def prop(self, data: Any, name: str, text: str | None = None, **_: Any) -> None:
        self.record.append({"kind": "prop", "name": name, "enabled": self.enabled})

    def prop_search(self, data: Any, name: str, *_: Any, **__: Any) -> None:
        self.record.append({"kind": "prop", "name": name, "enabled": self.enabled})


def drawn(panel: type, context: Any = None) -> list[dict[str, Any]]:
    """What `panel`'s draw() lays out now (`DrawRecorder`)."""
    recorder = DrawRecorder()
    holder = type("PanelSelf", (), {"layout": recorder})()
    panel.draw(holder, context or bpy.context)
    return recorder.record


def crop_png(source: Path, target: Path, rect: tuple[int, int, int, int]) -> list[int]:
    """Write the part (x, y, width, height; window coordinates, y up) of a screenshot as a PNG; its size."""
    import numpy as np

    image = bpy.data.images.load(str(source), check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    x, y, cw, ch = rect
    x, y = max(0, x), max(0, y)
    cw, ch = min(cw, w - x), min(ch, h - y)
    crop = np.ascontiguousarray(pixels.reshape(h, w, 4)[y : y + ch, x : x + cw])
    out = bpy.data.images.new(target.stem, cw, ch, alpha=False)
    try:
        out.pixels.foreach_set(crop.ravel())
        out.filepath_raw = str(target)
        out.file_format = "PNG"
        out.save()
    finally:
        bpy.data.images.remove(out)
    return [cw, ch]


def enable_addon(prefs: Any, work: Path, addon_source: Path | None) -> tuple[Path, Any]:
    """Stage the add-on (this checkout's, or `addon_source`) in the user scripts folder and enable it the legacy
    way, as Blender 3.x loads it; (the staged folder, the add-on's module). The start-up steps are left to the
    caller (`startup.ensure()`), which may want to see the window's timer do them."""
    import addon_utils

    import build  # scripts/build.py: the same staging the zip build and the other tiers use

    if addon_source:
        build.PACKAGE = addon_source.resolve()
    scripts = Path(os.environ.get("BLENDER_USER_SCRIPTS") or (work / "scripts"))
    staged = build.stage(scripts / "addons", link=True)
    if not os.environ.get("BLENDER_USER_SCRIPTS"):
        prefs.filepaths.script_directory = str(scripts)
    bpy.utils.refresh_script_paths()
    module = addon_utils.enable(ADDON, default_set=True)
    if module is None or ADDON not in prefs.addons:
        raise RuntimeError(f"addon_utils.enable({ADDON!r}) failed (staged at {staged})")
    return staged, module


def run_driver(
    setup: Callable[[], None],
    steps: Callable[[], Step],
    deadline_seconds: float,
    result: dict[str, Any],
    state: dict[str, Any],
    finish: Callable[[], None],
) -> None:
    """Set up, then step the scenario from a timer; a failing set-up is recorded and `finish` runs at once."""
    try:
        setup()
    except Exception:
        result["errors"].append(traceback.format_exc())
        print(result["errors"][-1], file=sys.stderr, flush=True)
        finish()
    else:
        bpy.app.timers.register(Runner(steps(), deadline_seconds, result, state, finish), first_interval=0.0)
