"""What the sidebar relies on, in real Blender without a window: its worker job, recent imports,
selection, the library's cap and clear, and disabling the add-on in the middle of a download."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import addon_utils
import bpy
import pytest
from conftest import MODULE, addon_prefs


def _mod(name: str):
    return sys.modules[f"{MODULE}.{name}"]


def _task(server, source) -> str:
    task = str(uuid.uuid4())
    server.add(task, source)
    return task


def test_invoke_without_a_window_does_the_whole_job(standin, sample_glb):
    # In `blender -b` and the bpy module Blender runs execute() for INVOKE_DEFAULT: no timer is needed.
    task = _task(standin, sample_glb)
    assert bpy.ops.triverse.import_task("INVOKE_DEFAULT", task_uuid=task) == {"FINISHED"}
    assert len([ob for ob in bpy.data.objects if ob.get("triverse_task_uuid") == task]) == 2


def test_worker_job_reports_progress_then_the_main_thread_imports(standin, sample_glb):
    core, scene_import, preferences = _mod("core"), _mod("scene_import"), _mod("preferences")
    task = _task(standin, sample_glb)
    standin.fail("slow", task, bytes_per_second=400_000)
    job = core.Job.start(preferences.get_settings(), task)
    seen = []
    deadline = time.monotonic() + 20
    while not job.poll() and time.monotonic() < deadline:
        seen.append(job.received)
        time.sleep(0.05)
    assert job.error is None and job.result is not None
    assert len(set(seen)) > 3 and job.total == sample_glb.stat().st_size  # progress was visible
    assert len(bpy.data.objects) == 0  # the worker never touched the scene
    imported = scene_import.import_asset(bpy.context, job.result)
    job.result.cleanup()
    job.finish()
    assert len(imported.objects) == 2 and core.Job.active() == []


def test_the_same_task_twice_is_refused_while_the_first_runs(standin, sample_glb):
    core, preferences = _mod("core"), _mod("preferences")
    task = _task(standin, sample_glb)
    standin.fail("stall", task, after_bytes=1000, seconds=30)
    job = core.Job.start(preferences.get_settings(), task)
    try:
        with pytest.raises(RuntimeError, match="already being imported"):
            bpy.ops.triverse.import_task(task_uuid=task)
        other = _task(standin, sample_glb)  # a different task goes through meanwhile
        assert bpy.ops.triverse.import_task(task_uuid=other) == {"FINISHED"}
    finally:
        job.cancel()
        deadline = time.monotonic() + 5
        while not job.poll() and time.monotonic() < deadline:
            time.sleep(0.02)
        job.finish()
    assert job.phase == "cancelled"
    assert not list((Path(addon_prefs().library_dir) / ".incoming").glob("*.part"))


def test_recent_imports_and_select_task_objects(standin, sample_glb):
    scene_import = _mod("scene_import")
    first, second = _task(standin, sample_glb), _task(standin, sample_glb)
    bpy.ops.triverse.import_task(task_uuid=first)
    bpy.ops.triverse.import_task(task_uuid=second)
    assert [r.task_uuid for r in scene_import.RECENT[:2]] == [second, first]
    assert scene_import.RECENT[0].format == "glb" and not scene_import.RECENT[0].from_library

    assert bpy.ops.triverse.select_task_objects(task_uuid=first) == {"FINISHED"}

    selected = {ob.get("triverse_task_uuid") for ob in bpy.context.selected_objects}
    assert selected == {first}
    assert bpy.context.view_layer.objects.active.name.startswith("Suzanne")


def test_library_cap_removes_the_oldest_and_clear_empties_it(standin, sample_glb):
    size = sample_glb.stat().st_size
    addon_prefs().library_cap_mb = max(1, (2 * size + size // 2) // (1024 * 1024))
    tasks = [_task(standin, sample_glb) for _ in range(3 * max(1, (1024 * 1024) // size))]
    for task in tasks:
        bpy.ops.triverse.import_task(task_uuid=task)
    library = Path(addon_prefs().library_dir)
    kept = sorted(p.name for p in library.iterdir() if (p / "meta.json").exists())
    total = sum((library / k / "asset.glb").stat().st_size for k in kept)
    try:
        assert total <= addon_prefs().library_cap_mb * 1024 * 1024
        assert tasks[-1] in kept and tasks[0] not in kept  # the newest stays, the oldest went
        assert bpy.ops.triverse.library_clear() == {"FINISHED"}
        assert not [p for p in library.iterdir() if (p / "meta.json").exists()]
    finally:
        addon_prefs().library_cap_mb = 0


def test_library_off_keeps_nothing(standin, sample_glb):
    addon_prefs().use_library = False
    task = _task(standin, sample_glb)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert not (Path(addon_prefs().library_dir) / task).exists()
    bpy.ops.triverse.import_task(task_uuid=task)
    assert len(standin.requests_for(f"/tasks/download/{task}")) == 2  # nothing kept, so downloaded again


def test_disabling_the_addon_mid_download_cancels_it_quickly_and_leaves_no_partial(standin, sample_glb):
    core, preferences = _mod("core"), _mod("preferences")
    task = _task(standin, sample_glb)
    standin.fail("stall", task, after_bytes=20_000, seconds=30)
    job = core.Job.start(preferences.get_settings(), task)
    incoming = Path(addon_prefs().library_dir) / ".incoming"
    deadline = time.monotonic() + 10
    while not list(incoming.glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the partial file exists
    assert list(incoming.glob("*.part"))
    started = time.monotonic()
    try:
        addon_utils.disable(MODULE, default_set=True)
        took = time.monotonic() - started
    finally:
        addon_utils.enable(MODULE, default_set=True)
        bpy.context.preferences.system.use_online_access = True
    assert took < 2.5, f"disabling took {took:.1f} s"
    assert not job.alive
    assert not list(incoming.glob("*.part")), "partial file left after disabling"
