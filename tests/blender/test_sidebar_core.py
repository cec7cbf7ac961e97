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
from conftest import MODULE, addon_prefs, library_settled


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
    core, scene_import, preferences = (
        _mod("service.jobs"),
        _mod("blender.common.scene_import"),
        _mod("blender.common.addon"),
    )
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
    core, preferences = _mod("service.jobs"), _mod("blender.common.addon")
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
    scene_import = _mod("blender.common.scene_import")
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
        library_settled()  # each recorded before the next, so "the oldest" is well defined
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
    core, preferences = _mod("service.jobs"), _mod("blender.common.addon")
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


def _poll_until(job, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert not job.poll() or predicate(), f"the job ended first: {job.phase} {job.error!r}"
        assert time.monotonic() < deadline, f"still {job.phase}"
        time.sleep(0.02)


def test_a_finished_task_whose_download_has_not_begun_says_starting(standin, sample_glb):
    core, ui, preferences = _mod("service.jobs"), _mod("blender.common.job_progress"), _mod("blender.common.addon")
    task = _task(standin, sample_glb)
    standin.fail("first_byte_delay", task, seconds=1.0)
    job = core.Job.start(preferences.get_settings(), task, wait=30)
    try:
        _poll_until(job, lambda: job.status is not None)
        assert job.status.status == "SUCCESS"
        assert ui.progress_text(job) == (None, "Starting download...")  # not "Task SUCCESS, 100%"
    finally:
        job.cancel()
        job.join(5)
        job.poll()
        job.finish()


def _blender_png(tmp_path: Path) -> tuple[bytes, list[float]]:
    """A PNG written by Blender itself (its encoder picks the row filters), and Blender's own pixels of it."""
    image = bpy.data.images.new("grid", 24, 16)
    image.generated_type = "COLOR_GRID"
    image.filepath_raw = str(tmp_path / "grid.png")
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    image = bpy.data.images.load(str(tmp_path / "grid.png"))
    pixels = list(image.pixels)
    bpy.data.images.remove(image)
    return (tmp_path / "grid.png").read_bytes(), pixels


def test_the_preview_is_decoded_by_the_worker_and_released(standin, sample_glb, tmp_path):
    core, ui, preferences = _mod("service.jobs"), _mod("blender.common.job_progress"), _mod("blender.common.addon")
    task = str(uuid.uuid4())
    png, blenders_pixels = _blender_png(tmp_path)
    standin.add(task, sample_glb, preview=png)
    standin.fail("stall", task, after_bytes=1000, seconds=30)
    images_before = len(bpy.data.images)
    job = core.Job.start(preferences.get_settings(), task)
    try:
        _poll_until(job, lambda: job.preview is not None)
        assert ui.JOB_PREVIEWS.icon(job.key) == 0 and not ui.JOB_PREVIEWS.has(job.key)  # draw() only looks
        ui.JOB_PREVIEWS.put(job.key, job.preview_pixels)  # what the modal does on its tick
        pcoll = ui.JOB_PREVIEWS._collection
        assert tuple(pcoll[job.key].image_size) == (24, 16)
        assert len(bpy.data.images) == images_before  # Blender decoded nothing: no image datablock
        pixels = list(pcoll[job.key].image_pixels_float)
        assert len(pixels) == len(blenders_pixels) == 24 * 16 * 4
        assert max(abs(a - b) for a, b in zip(pixels, blenders_pixels, strict=True)) < 1 / 255 + 1e-6
    finally:
        job.cancel()
        job.join(5)
        job.poll()
        ui.JOB_PREVIEWS.forget(job.key)
        job.finish()
    assert job.key not in ui.JOB_PREVIEWS._collection
    assert not job.preview.exists()  # the worker removed its private preview folder


def test_a_task_whose_cancelled_worker_still_runs_cannot_be_imported_again(standin, sample_glb):
    core, preferences = _mod("service.jobs"), _mod("blender.common.addon")
    task = _task(standin, sample_glb)
    standin.fail("first_byte_delay", task, times=1, seconds=2.0)  # abort() cannot wake a wait for headers
    job = core.Job.start(preferences.get_settings(), task)
    deadline = time.monotonic() + 5
    while not standin.requests_for(f"/tasks/download/{task}"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.cancel()
    while not job.poll():
        time.sleep(0.02)
    job.finish()  # what the sidebar does once it has said "cancelled"
    assert job.alive
    with pytest.raises(RuntimeError, match="still stopping"):
        bpy.ops.triverse.import_task(task_uuid=task)
    assert core.Job.active() == []  # the panel no longer shows it
    job.join(10)
    assert core.Job.get(task) is None
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert len(standin.requests_for(f"/tasks/download/{task}")) == 2
