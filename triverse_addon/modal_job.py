"""The sidebar's way of running any `core.Job`: a modal operator ticking on a timer; main thread only.

An operator mixes in `ModalJob`, starts its job in `invoke()` and returns `self.run_modal(context, job)`;
it implements `job_done(context, job)` (import, report). The redraw policy (one region per tick), Esc on
the newest job and the preview hand-over are Import's own (`operators`, `ui`): one behaviour for every job.
"""

from __future__ import annotations

import bpy

from . import core, ui
from .operators import TIMER_STEP, newest_job, progress_redraw, redraw_ui


class ModalJob:
    """Mixin for an operator whose `invoke()` runs a `core.Job` while Blender stays responsive."""

    _job: core.Job | None = None
    _timer: bpy.types.Timer | None = None
    _shown: tuple[object, ...] = ()

    def run_modal(self, context: bpy.types.Context, job: core.Job) -> set[str]:
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
            if job.preview is not None:
                ui.load_preview(job)  # here, once, when the worker hands it over; never in draw()
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

    def job_done(self, context: bpy.types.Context, job: core.Job) -> set[str]:
        """The job ended (`job.result` or `job.error`): import or report; the operator's result."""
        raise NotImplementedError

    def _stop(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._job is not None:
            ui.forget_preview(self._job)
            self._job.finish()
        redraw_ui(context)
