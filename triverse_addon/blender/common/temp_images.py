"""Images written for an upload (a viewport capture, an image of the .blend, a converted file), removed once no
running job still has to upload them. Main thread (a timer looks every second)."""

from __future__ import annotations

import bpy

from .image_input import PreparedImage
from .job_progress import running_jobs

TICK = 1.0  # seconds between looks

_kept: list[PreparedImage] = []


def keep_until_uploaded(prepared: PreparedImage) -> None:
    """Remove `prepared` once no running job waits to upload it (its task created, or the job gone)."""
    _kept.append(prepared)
    if not bpy.app.timers.is_registered(sweep):
        bpy.app.timers.register(sweep, first_interval=TICK, persistent=True)


def sweep() -> float | None:
    """Timer: remove the images no job waits for any more."""
    jobs = running_jobs()
    for prepared in list(_kept):
        path = str(prepared.path)
        uploading = any(
            getattr(job, "created", None) is None and getattr(getattr(job, "request", None), "image_path", "") == path
            for job in jobs
        )
        if not uploading:
            prepared.cleanup()
            _kept.remove(prepared)
    return TICK if _kept else None


def forget_all() -> None:
    """Remove every kept image now (the add-on is being disabled)."""
    if bpy.app.timers.is_registered(sweep):
        bpy.app.timers.unregister(sweep)
    for prepared in _kept:
        prepared.cleanup()
    _kept.clear()
