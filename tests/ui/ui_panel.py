"""UI tier scenarios on the panel itself: open the Triverse tab, the idle panel, a slow download started
by clicking Import (measured), redo, and Wait for the Task ticked by a click."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy
from ui_common import (
    ADDON,
    IMPORT_PANEL_DRAW,
    JOB_PROGRESS,
    JOBS,
    LIBRARY_DIR,
    MEASURE_SECONDS,
    MODAL,
    MODAL_JOB,
    RESULT,
    SCENE_IMPORT,
    SLOW_SECONDS,
    STATE,
    STATUSBAR_DRAW,
    WORK,
    AddonProfiler,
    Probe,
    Step,
    addon_module,
    click,
    hover,
    log,
    micro_benchmark,
    ms,
    part_bytes,
    part_files,
    paste_into_field,
    press,
    redraw_all,
    screenshot,
    sidebar_difference,
    tagged,
    view3d,
    wait_for,
)

from standin_server import StandinServer


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
        "active_jobs": len(addon_module(JOBS).Job.active()),
        "field": bpy.context.window_manager.triverse.task_uuid,
        "pasted": pasted,
    }


def scenario_slow() -> Step:
    """2: a slow download (stall measured, screenshot after the measured window); 3: it imports."""
    core, progress = addon_module(JOBS), addon_module(JOB_PROGRESS)
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
    # modal_job.redraw_ui as often as the modal may (REDRAW_STEP, else every TIMER_STEP). What this
    # costs is Blender's drawing of the sidebar and status bar.
    modal_job = addon_module(MODAL_JOB)
    step = float(getattr(modal_job, "REDRAW_STEP", modal_job.TIMER_STEP))
    stall["redraw_step_s"] = step
    cadence = {"on": True}

    def redraw_like_the_modal() -> float | None:
        if not cadence["on"]:
            return None
        modal_job.redraw_ui(bpy.context)
        return step

    bpy.app.timers.register(redraw_like_the_modal, first_interval=0.0)
    probe.start()
    yield MEASURE_SECONDS
    redraw_only = probe.stop()
    cadence["on"] = False
    profiler.require_calls("the redraw cadence window (the driver called modal_job.redraw_ui)")
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
    # The preview makes the Import panel taller: Blender then slides the panels below (Generate, My
    # Generations) into place over a few frames of its own. The start phase includes that; the steady
    # window below begins once it is over.
    yield 1.0
    start_phase = probe.stop()
    profiler.require_calls("the download's start (Import clicked, the modal running)", MODAL)
    stall["start_phase"] = start_phase
    stall["start_phase_max_gap_ms"] = start_phase["max_gap_ms"]
    stall["start_phase_addon_max_ms"] = start_phase["addon_max_ms"]
    stall["preview_loaded"] = progress.JOB_PREVIEWS.has(job.key)

    probe.start()
    yield MEASURE_SECONDS
    during = probe.stop()
    # The figures the tests read: the panel's and the status bar's draws, the modal's ticks (tests/ui/test_ui.py
    # fails naming the key when one is missing; here the run's errors say it too).
    profiler.require_calls("the steady download window", MODAL, IMPORT_PANEL_DRAW, STATUSBAR_DRAW)
    first, last = probe.ticks[0], probe.ticks[-1]
    asked = [place for t, place in modal_job.progress_redraw.asked if first <= t <= last]
    during["addon_redraw_requests"] = len(asked)  # what the add-on asked, apart from Blender's own draws
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
        fraction, text = progress.progress_text(job)
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
    profiler.require_calls("the import (the modal hands the model over)", MODAL)
    modal = profiler.calls.get(MODAL, [])
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
    recent = addon_module(SCENE_IMPORT).RECENT
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
    core, progress = addon_module(JOBS), addon_module(JOB_PROGRESS)
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
    out["text_while_waiting"] = progress.progress_text(job)[1]
    out["screenshot"] = screenshot("panel_waiting.png")
    server.set_status(task, "SUCCESS")
    yield from wait_for(lambda: core.Job.get(task) is None, 30.0, "the waited-for task to import")
    out["job_phase"] = job.phase
    out["job_error"] = repr(job.error) if job.error else None
    out["tagged"] = sorted(ob.name for ob in tagged(task))
    yield from click("wait")  # untick it again, for the scenarios after this one
    yield from wait_for(lambda: not state.wait, 3.0, "the Wait box to be unticked")
    log(f"wait: {out['text_while_waiting']!r}, then {out['tagged']}")
