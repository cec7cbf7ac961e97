"""The sidebar's way of running a `core.Job`: a modal operator ticking on a timer; main thread only.

An operator mixes in `ModalJob`, starts its job in `invoke()` and returns `self.run_modal(context, job)`;
it implements `job_done(context, job)` (import, report) and may override `job_stopped(job)` (the sentence
for Esc / the X button). The worker never touches bpy; this only polls it.
"""

from __future__ import annotations

import time

import bpy

from . import core

TIMER_STEP = 0.1  # seconds between looks at the worker; cancel and progress are never later than this
REDRAW_STEP = 0.25  # seconds between redraws of the progress shown


def redraw_ui(context: bpy.types.Context) -> None:
    """Redraw only the 3D viewports' sidebars and the status bar, not whole viewports (costly)."""
    wm = context.window_manager
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()
    # The status bar is one of a window's global areas, out of reach of screen.areas: setting the
    # workspace's status text redraws it (with our progress item), and says how to cancel, as
    # Blender's own modal tools do.
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set("Esc: stop the newest Triverse job" if core.Job.active() else None)


def newest_job() -> core.Job | None:
    """The most recently started job: the one Esc stops."""
    jobs = core.Job.active()
    return jobs[-1] if jobs else None


class ModalJob:
    """Mixin for an operator whose `invoke()` runs a `core.Job` while Blender stays responsive."""

    _job: core.Job | None = None
    _timer: bpy.types.Timer | None = None
    _shown: tuple[object, ...] = ()
    _drawn_at = 0.0

    def run_modal(self, context: bpy.types.Context, job: core.Job) -> set[str]:
        """Watch `job` from a modal handler on a timer; call from `invoke()` right after starting it."""
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_STEP, window=context.window)
        wm.modal_handler_add(self)
        redraw_ui(context)
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
            self._redraw_if_changed(context, job)
            return {"PASS_THROUGH"}
        self._stop_timer(context)
        try:
            return self.job_done(context, job)
        finally:
            job.finish()
            redraw_ui(context)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): stop the worker too."""
        if self._job is not None:
            self._job.cancel()
            self._job.join(1.0)  # nothing polls this job again: let the worker remove its partial file
            self._job.finish()
        self._stop_timer(context)
        redraw_ui(context)

    def job_done(self, context: bpy.types.Context, job: core.Job) -> set[str]:
        """The job ended (`job.result` or `job.error`): import or report; the operator's result."""
        raise NotImplementedError

    def _redraw_if_changed(self, context: bpy.types.Context, job: core.Job) -> None:
        """Redraw the sidebar when what it shows changed, at most every REDRAW_STEP: drawing is the main
        thread's real cost during a download (tens of ms per redraw with software OpenGL)."""
        shown = (job.phase, job.received, job.status, job.preview, getattr(job, "created", None))
        now = time.monotonic()
        if shown != self._shown and now - self._drawn_at >= REDRAW_STEP:
            self._shown, self._drawn_at = shown, now
            redraw_ui(context)

    def _stop_timer(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
