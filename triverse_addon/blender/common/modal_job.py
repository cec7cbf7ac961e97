"""The sidebar's way of running any job (`service.jobs.Job`): a modal operator ticking on a timer; main thread.

An operator mixes in `ModalJob`, starts its job in `invoke()` and returns `self.run_modal(context, job)`; it
implements `job_done(context, job)` (import, report). Import, Generate and My Generations' Import all run this
way: one redraw policy (one region per event-loop pass), Esc on the newest job, the preview handed over once.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

import bpy

from . import redraw
from .job_progress import JOB_PREVIEWS, is_generation, newest_job

if TYPE_CHECKING:
    from ...service.jobs import Job

TIMER_STEP = 0.1  # seconds between looks at the worker; cancel and progress are never later than this
REDRAW_STEP = 0.25  # seconds between redraws of the progress shown


def _status_hint() -> str | None:
    """What Esc does to the newest job: a generation is only stopped being watched."""
    newest = newest_job()
    if newest is None:
        return None
    if is_generation(newest):
        return "Esc: stop watching the Triverse task (it keeps running)"
    return "Esc: cancel the Triverse download"


def redraw_ui(context: bpy.types.Context) -> None:
    """Redraw the sidebars and the status bar (when a job starts or ends)."""
    redraw.tag_sidebars(context)
    redraw.set_status_hint(context, _status_hint())


class _ProgressRedraw:
    """Redraws of the progress, shared by every running job: ONE region per event-loop pass (the sidebars or
    the status bar, in turn), at most every REDRAW_STEP. Each region redraw costs tens of ms with software
    OpenGL: both in one tick (or one per running download) doubled the longest stall."""

    def __init__(self) -> None:
        self.at = 0.0
        self.next = "sidebar"
        self.stale: set[str] = set()
        # (time.perf_counter(), place) of the latest redraws asked for: what the add-on itself asked,
        # told apart from Blender's own follow-up draws (the window test tier counts these).
        self.asked: collections.deque[tuple[float, str]] = collections.deque(maxlen=256)

    def tick(self, context: bpy.types.Context, changed: bool) -> None:
        """On a timer tick: note a change, and redraw one stale place if it is time."""
        if changed:
            self.stale.update(("sidebar", "statusbar"))
        now = time.monotonic()
        if not self.stale or now - self.at < REDRAW_STEP:
            return
        place = self.next if self.next in self.stale else next(iter(self.stale))
        if place == "statusbar":
            redraw.set_status_hint(context, _status_hint())
        else:
            redraw.tag_sidebars(context)
        self.stale.discard(place)
        self.asked.append((time.perf_counter(), place))
        self.at, self.next = now, "sidebar" if place == "statusbar" else "statusbar"

    def started(self, context: bpy.types.Context) -> None:
        """A job starts: the sidebars now (the click redraws them anyway), the status bar on the next turn."""
        redraw.tag_sidebars(context)
        self.stale.add("statusbar")
        self.at, self.next = time.monotonic(), "statusbar"


progress_redraw = _ProgressRedraw()


class ModalJob:
    """Mixin for an operator whose `invoke()` runs a job while Blender stays responsive."""

    # Not annotated: Blender evaluates an operator class's annotations when it registers it (its properties).
    _job = None  # the Job watched
    _timer = None  # the window manager's timer
    _shown: tuple[object, ...] = ()

    def run_modal(self, context: bpy.types.Context, job: Job) -> set[str]:
        """Watch `job` from a modal handler on a timer; call from `invoke()` right after starting it."""
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_STEP, window=context.window)
        wm.modal_handler_add(self)
        progress_redraw.started(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Look at the worker on each timer tick; hand over to `job_done` on the main thread when it ends."""
        job = self._job
        if job is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS" and job is newest_job():
            job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":  # any timer's tick: polling a job costs microseconds
            return {"PASS_THROUGH"}
        if not job.poll():
            if job.preview_pixels is not None and not JOB_PREVIEWS.has(job.key):
                JOB_PREVIEWS.put(job.key, job.preview_pixels)  # once, when the worker hands it over; never in draw()
            shown = (job.phase, job.received, job.status, job.preview, getattr(job, "created", None))
            changed, self._shown = shown != self._shown, shown
            progress_redraw.tick(context, changed)
            return {"PASS_THROUGH"}
        self._stop(context)
        return self.job_done(context, job)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): stop the worker too."""
        if self._job is not None:
            self._job.cancel()
            self._job.join(1.0)  # nothing polls this job again: let the worker remove its partial file
        self._stop(context)

    def job_done(self, context: bpy.types.Context, job: Job) -> set[str]:
        """The job ended (`job.result` or `job.error`): import or report; the operator's result."""
        raise NotImplementedError

    def _stop(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._job is not None:
            JOB_PREVIEWS.forget(self._job.key)
            self._job.finish()
        redraw_ui(context)
