# mypy: disable-error-code="valid-type"
"""The jobs running now as the user sees them: their progress in words and as a bar, their preview, the status
bar's item with its cancel button (`triverse.cancel_import`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import bpy
from bpy.props import StringProperty

from ...service.errors import human_size
from . import addon
from .previews import PreviewCollection

if TYPE_CHECKING:
    from ...service.jobs import Job

JOB_PREVIEWS = PreviewCollection()  # a job's preview picture, by job key, while it is shown
_JOBS_MODULE = __package__.removesuffix(".blender.common") + ".service.jobs" if __package__ else ""


def running_jobs() -> list[Job]:
    """Jobs not yet handed over, oldest first. The job runner is loaded with the first job: before that, none."""
    module = sys.modules.get(_JOBS_MODULE)
    return module.Job.active() if module is not None else []  # type: ignore[no-any-return]


def newest_job() -> Job | None:
    """The most recently started job: the one Esc acts on."""
    jobs = running_jobs()
    return jobs[-1] if jobs else None


def is_generation(job: Job) -> bool:
    """A task being made (a generation, a texturing or remeshing: its stop only stops the watch), not an import."""
    return getattr(job, "kind", "") in ("generate", "scene")


def progress_text(job: Job) -> tuple[float | None, str]:
    """(fraction or None, text): "12.3 MB of 40.0 MB (31%), 5.2 MB/s", "Queued: position 2", "Running 40%"."""
    if is_generation(job):
        return _generation_text(job)
    if job.phase == "waiting" and job.status is not None:
        return (job.status.progress or 0) / 100, f"Task {job.status.describe()}"
    if job.phase in ("starting", "waiting"):  # a finished task whose download has not begun yet
        return None, "Starting download..."
    speed = f", {human_size(job.speed)}/s" if job.speed else ""
    if job.total:
        fraction = min(job.received / job.total, 1.0)
        return fraction, f"{human_size(job.received)} of {human_size(job.total)} ({fraction:.0%}){speed}"
    return None, f"{human_size(job.received)}{speed}"


def _generation_text(job: Job) -> tuple[float | None, str]:
    created = getattr(job, "created", None)
    status = job.status
    if created is None:
        waiting = getattr(job, "waiting_seconds", None)
        if waiting:  # the service allows 10 uploads a minute: the job waits its turn, never fails for it
            return None, f"Waiting for the upload limit\nabout {_duration(waiting)}"
        return None, "Uploading the model..." if getattr(job, "kind", "") == "scene" else "Creating the task..."
    state_name = getattr(status, "status", None) or created.status
    if state_name in ("PENDING", "QUEUED"):
        queue = (getattr(status, "raw", None) or {}).get("queue")  # the latest position, when told
        queue = queue if isinstance(queue, dict) else {}
        position = queue.get("position", created.queue_position)
        wait = queue.get("estimated_wait_seconds", created.estimated_wait_seconds)
        text = "Queued" if position is None else f"Queued: position {position}"
        if wait and wait >= 1:  # "about 0 s" says nothing
            text += f"\nAbout {_duration(wait)} to wait"  # its own line: the sidebar is narrow
        return None, text
    if state_name == "RUNNING":
        progress = getattr(status, "progress", None) or 0
        return progress / 100, f"Running {progress}%"
    if state_name == "SUCCESS":
        if job.total:
            return min(job.received / job.total, 1.0), "Downloading the model"
        return None, "Importing the model..."
    return None, str(state_name).capitalize()


def _duration(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def job_label(job: Job) -> str:
    """ "Task 92483a80", or "New task" for a generation whose task does not exist yet."""
    return f"Task {job.task_uuid[:8]}" if job.task_uuid else "New task"


def draw_progress(layout: bpy.types.UILayout, job: Job) -> None:
    """A bar (Blender 4.0+) or a label, then the speed on its own line: the sidebar is narrow."""
    fraction, text = progress_text(job)
    text, _, speed = text.partition("), ")
    text += ")" if speed else ""
    first, *more = text.split("\n")
    col = layout.column(align=True)
    if fraction is not None and hasattr(col, "progress"):  # UILayout.progress is Blender 4.0+
        col.progress(factor=fraction, type="BAR", text=first)
    else:
        col.label(text=first, icon="SORTTIME")
    for line in [*more, speed]:
        if line:
            col.label(text=line, icon="BLANK1")


def draw_statusbar(self: bpy.types.Header, context: bpy.types.Context) -> None:
    """Every job running, in the status bar, with a button that cancels it (a generation: stops watching)."""
    for job in running_jobs():
        row = self.layout.row(align=True)
        fraction, text = progress_text(job)
        label = f"Triverse {job_label(job).removeprefix('Task ')}: {text.splitlines()[0]}"
        if fraction is not None and hasattr(row, "progress"):
            row.progress(factor=fraction, type="BAR", text=label)
        else:
            row.label(text=label, icon="IMPORT")
        cancel = row.operator("triverse.cancel_import", text="", icon="CANCEL", emboss=False)
        cancel.key = job.key  # a generation still being created has no task UUID yet, only its key


class TRIVERSE_OT_cancel_import(bpy.types.Operator):
    """Cancel this download (nothing is added, its partial file is removed); a generation: stop watching it"""

    bl_idname = "triverse.cancel_import"
    bl_label = "Cancel Triverse Import"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})
    key: StringProperty(options={"SKIP_SAVE", "HIDDEN"})  # a job's key, for one that has no task UUID yet

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Ask the job's worker to stop at once (its modal operator reports how it ended)."""
        wanted = self.key or self.task_uuid
        job = next((j for j in running_jobs() if wanted and wanted in (j.key, j.task_uuid)), None)
        if job is None:
            self.report({"WARNING"}, "That import has already finished.")
            return {"CANCELLED"}
        job.cancel()
        return {"FINISHED"}


_register_classes, _unregister_classes = addon.classes_registration((TRIVERSE_OT_cancel_import,))


def register() -> None:
    """The cancel operator, the status bar item, the previews."""
    _register_classes()
    bpy.types.STATUSBAR_HT_header.append(draw_statusbar)
    JOB_PREVIEWS.register()


def unregister() -> None:
    """Stop every job (downloads remove their partial files; generations go on on the service), then remove."""
    module = sys.modules.get(_JOBS_MODULE)
    if module is not None:
        module.Job.cancel_all()
    JOB_PREVIEWS.unregister()
    bpy.types.STATUSBAR_HT_header.remove(draw_statusbar)
    _unregister_classes()
