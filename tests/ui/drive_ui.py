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

import atexit
import faulthandler
import json
import sys
import time
import uuid as uuidlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import bpy

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import build  # scripts/build.py: the same staging the zip build and the other tiers use
from standin_server import StandinServer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the driver's own modules, beside it
from ui_common import (
    ADDON,
    API_KEY,
    ARGS,
    JOBS,
    LIBRARY_DIR,
    RESULT,
    STATE,
    T0,
    WORK,
    addon_module,
    check_addon_layout,
    enable_addon,
    log,
    make_model,
    part_files,
    preview_png,
    run_driver,
    write_result,
)
from ui_jobs import cancel_scenario, scenario_quit, scenario_two_tasks
from ui_panel import (
    UITEST_PT_triverse_probe,
    open_triverse_tab,
    scenario_idle,
    scenario_slow,
    scenario_wait,
    settle,
)

DEADLINE_SECONDS = 110.0  # the driver gives up (records why, quits) after this long

Step = Generator[float, None, Any]

# -- set-up (synchronous, before the event loop runs) ------------------------------------------------


def setup() -> None:
    prefs = bpy.context.preferences
    prefs.view.show_splash = False  # the first-run "Quick Setup" splash would cover the window and eat keys
    # A tooltip opens half a second after the pointer stops over a button (the Import button, clicked):
    # its redraws would be counted with the add-on's in the measured window.
    prefs.view.show_tooltips = False
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

    staged, module = enable_addon(prefs, WORK, ARGS.addon_source)
    if ARGS.addon_source:
        RESULT["addon_source"] = str(ARGS.addon_source.resolve())
    RESULT["setup"] = {
        "staged": str(staged),
        "addon_file": module.__file__,
        "bl_info_version": list(module.bl_info["version"]),
        "legacy_addon": hasattr(module, "bl_info") and ADDON in prefs.addons,
        "user_config": bpy.utils.user_resource("CONFIG"),
        "progress_widget": hasattr(bpy.types.UILayout, "progress"),
    }
    STATE["prefixes"] = sorted({str(staged), str(staged.resolve()), str(build.PACKAGE), str(build.PACKAGE.resolve())})
    # The add-on reads My Generations and imports its network modules on a thread of its own at register:
    # wait for it, so that every module the driver reaches into (and checks below) is loaded.
    addon_module("blender.common.startup").ensure()  # the rest of the start-up steps now
    RESULT["setup"]["startup_done"] = True
    layout = check_addon_layout(STATE["prefixes"])
    RESULT["setup"]["layout_problems"] = layout
    RESULT["errors"].extend(f"add-on layout: {problem}" for problem in layout)  # the run fails, loudly
    for problem in layout:
        log(f"add-on layout: {problem}")

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


def at_exit() -> None:
    """At interpreter exit (after Blender disabled the add-ons): what is left of the downloads."""
    info: dict[str, Any] = {"exit_at": time.time(), "part_files": part_files()}
    try:
        info["active_jobs"] = [j.task_uuid for j in addon_module(JOBS).Job.active()]
    except Exception as exc:
        info["active_jobs_error"] = repr(exc)
    try:
        (ARGS.out / "exit.json").write_text(json.dumps(info))
    finally:
        server = STATE.get("server")
        if server is not None:
            server.stop()


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


RESULT["scenario"] = ARGS.scenario
RESULT["out"] = str(ARGS.out)

# A crash in Blender's C code leaves an empty blender.crash.txt; this at least names the Python threads.
CRASH_LOG = open(ARGS.out / "faulthandler.txt", "w")  # noqa: SIM115 - open until the process ends
faulthandler.enable(CRASH_LOG, all_threads=True)

run_driver(setup, scenario_steps, DEADLINE_SECONDS, RESULT, STATE, finish)
