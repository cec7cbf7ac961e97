"""UI tier scenarios on running jobs: cancel (Esc, the Cancel button), two tasks at once, quitting."""

from __future__ import annotations

import time
from typing import Any

import bpy
from ui_common import (
    JOB_GET,
    JOBS,
    LIBRARY_DIR,
    MODAL,
    RESULT,
    STALL_AFTER,
    STATE,
    WORK,
    AddonProfiler,
    Probe,
    Step,
    addon_module,
    invoke_import,
    log,
    ms,
    part_bytes,
    part_files,
    tagged,
    view3d,
    wait_for,
)

from standin_server import StandinServer


def cancel_scenario(key: str, how: str) -> Step:
    """4: a stalled download cancelled with Esc over the 3D view, or with the panel's Cancel operator."""
    core = addon_module(JOBS)
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
    probe.profiler.require_calls(f"cancel by {how}", MODAL)  # the modal took the Esc / saw the job end
    out["main_thread"] = {k: v for k, v in measured.items() if k != "addon_calls"}
    # When the add-on's code ran after the press (ms after it, ms spent, entry point): Esc reaches the
    # modal on Blender's next event pass, the job goes on a later timer tick once the worker has stopped.
    out["addon_calls_after_press"] = [
        [ms(t - pressed), ms(d), name] for t, d, name in probe.profiler.events if t >= pressed and name != JOB_GET
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
    core = addon_module(JOBS)
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
    core = addon_module(JOBS)
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
