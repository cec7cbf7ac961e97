"""Network work on a worker thread, handed over to the main thread through a queue: the sidebar's jobs.
No `bpy` module use.

A `Job` runs its work (by default `import_work`: the import path of `obtain`) on a thread of its own and
reports status, progress and a preview through the job; the main thread calls `poll()` and never waits.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import errors, formats, thumbnail
from .api import TaskStatus, TriverseClient
from .obtain import Asset, fetch_preview, obtain_asset, open_library
from .settings import Settings

__all__ = ["Job", "Work", "import_work"]

CANCEL_GRACE = 0.5  # seconds a cancelled worker gets to report before the job is declared cancelled
PREVIEW_GRACE = 0.5  # seconds the worker waits, at its end, for a preview still being fetched

Work = Callable[["Job"], Asset]  # what a job's worker does; it reports through the job's report_* methods


def import_work(job: Job) -> Asset:
    """An import job's work: the task's model from the library or the service; its preview once bytes flow."""
    library, job.library_warning = open_library(job.settings)

    def progress(received: int, total: int | None) -> None:
        job.fetch_preview()  # only now: the model's download has started, the picture never delays it
        job.report_progress(received, total)

    return obtain_asset(
        job.client,
        job.task_uuid,
        library,
        progress=progress,
        wait=job.wait,
        on_status=job.report_status if job.wait > 0 else None,  # without waiting, the download tells
    )


class Job:
    """Network work on a worker thread; the main thread calls `poll()` and never waits on it.

    A job stays registered (and its task cannot be started again) until it was handed over with
    `finish()` AND its worker has really ended, so one library entry never has two writers and the
    client's session is closed by the worker itself, never under it.
    """

    _active: dict[str, Job] = {}  # by key; a job's task UUID may be learnt later (see claim_task)
    _active_lock = threading.Lock()

    def __init__(
        self,
        settings: Settings,
        task_uuid: str = "",
        *,
        wait: float = 0.0,
        online_access: bool = True,
        work: Work = import_work,
        key: str = "",
    ) -> None:
        """Prepare a job; `Job.start` is the way to create one."""
        self.settings = settings
        self.task_uuid = task_uuid
        self.key = key or task_uuid
        self.wait = wait
        self.client = TriverseClient(settings, online_access=online_access)
        self.received = 0
        self.total: int | None = None
        self.speed = 0.0  # bytes per second, smoothed
        self.status: TaskStatus | None = None
        self.preview: Path | None = None
        self.preview_pixels: thumbnail.Pixels | None = None  # decoded by the worker, for the panel
        self.phase = "starting"  # starting, waiting, downloading, done, failed, cancelled
        self.result: Asset | None = None
        self.error: BaseException | None = None
        self.library_warning = ""
        self._work = work
        self._events: queue.Queue[tuple[str, object]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"triverse-{self.key[:8]}", daemon=True)
        self._preview_thread: threading.Thread | None = None
        self._preview_dir: Path | None = None
        self._progress: tuple[int, int | None] | None = None
        self._cancelled_at: float | None = None
        self._speed_mark = (time.monotonic(), 0)
        self._handed_over = False  # finish() was called (guarded by _active_lock)
        self._ended = False  # the worker has ended (guarded by _active_lock)
        self._preview_done = False  # the preview thread has ended (guarded by _active_lock)

    # main thread -------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        settings: Settings,
        task_uuid: str = "",
        *,
        wait: float = 0.0,
        online_access: bool = True,
        work: Work = import_work,
        key: str = "",
    ) -> Job:
        """Start a job, refusing a task (or key) that is already being worked on."""
        with cls._active_lock:
            cls._refuse_if_busy(key or task_uuid)
            cls._refuse_if_busy(task_uuid)
            job = cls(settings, task_uuid, wait=wait, online_access=online_access, work=work, key=key)
            cls._active[job.key] = job
        job._thread.start()
        return job

    @classmethod
    def _refuse_if_busy(cls, key_or_task: str) -> None:
        """Raise AlreadyRunning when a registered job has this key or task (call with the lock held)."""
        if not key_or_task:
            return
        for job in cls._active.values():
            if key_or_task in (job.key, job.task_uuid):
                if job._handed_over:
                    raise errors.AlreadyRunning(
                        f"Task {key_or_task[:8]} is still stopping after being cancelled: try again in a moment."
                    )
                raise errors.AlreadyRunning(f"Task {key_or_task[:8]} is already being imported.")

    @classmethod
    def refuse_if_busy(cls, task_uuid: str) -> None:
        """Raise AlreadyRunning while a job works on this task (also one still stopping after a cancel)."""
        with cls._active_lock:
            cls._refuse_if_busy(task_uuid)

    @classmethod
    def active(cls) -> list[Job]:
        """Jobs not yet finished and handed over, oldest first (what the sidebar shows)."""
        with cls._active_lock:
            return [job for job in cls._active.values() if not job._handed_over]

    @classmethod
    def get(cls, task_uuid: str) -> Job | None:
        """The registered job for a task (or key), if any; also one still stopping after a cancel."""
        with cls._active_lock:
            return cls._active.get(task_uuid) or next(
                (job for job in cls._active.values() if task_uuid and job.task_uuid == task_uuid), None
            )

    @classmethod
    def cancel_all(cls, join_seconds: float = 2.0) -> None:
        """Cancel every job and wait briefly for the workers to remove their partial files."""
        with cls._active_lock:
            jobs = list(cls._active.values())
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + join_seconds
        for job in jobs:
            job.join(max(0.0, deadline - time.monotonic()))
            job.finish()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the worker to end (it removes its partial file first)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def cancel(self) -> None:
        """Ask the worker to stop now; it removes its partial file itself."""
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
        self.client.abort()

    def poll(self) -> bool:
        """Take what the worker reported; True once it has finished (see `result` / `error`)."""
        finished = False
        if self._progress is not None:
            self.received, self.total = self._progress
            self.phase = "downloading"
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "preview":
                self.preview, self.preview_pixels = value  # type: ignore[misc]
            elif kind == "status":
                self.status = value  # type: ignore[assignment]
                if self._progress is None:  # a task that has succeeded is not waited for: the download starts
                    self.phase = "starting" if self.status and self.status.status == "SUCCESS" else "waiting"
            elif kind == "done":
                self.result, self.phase, finished = value, "done", True  # type: ignore[assignment]
            elif kind == "error":
                self.error = value  # type: ignore[assignment]
                self.phase = "cancelled" if isinstance(value, errors.Cancelled) else "failed"
                finished = True
        if not finished and self._cancelled_at is not None and time.monotonic() - self._cancelled_at > CANCEL_GRACE:
            # The worker is blocked before any byte arrived (nothing on disk yet): it cleans up when it
            # wakes, and the job stays registered until then; the user is not kept waiting for that.
            self.error, self.phase, finished = errors.Cancelled("Import cancelled."), "cancelled", True
        return finished

    def finish(self) -> None:
        """Hand the job back (after its result was imported or its error reported).

        It leaves the registry now if its worker has ended, else when the worker ends.
        """
        with self._active_lock:
            self._handed_over = True
            if self._ended or self._thread.ident is None:
                self._unregister()
        if self._thread.ident is None:  # never started: no worker to close the session
            self.client.close()

    @property
    def alive(self) -> bool:
        """The worker thread is still running."""
        return self._thread.is_alive()

    # worker threads: the work reports through these --------------------------------------------

    def report_status(self, status: TaskStatus) -> None:
        """The task's status, as the service told it (shown while waiting)."""
        self._events.put(("status", status))

    def report_progress(self, received: int, total: int | None) -> None:
        """Bytes of the model received so far, and the total when known."""
        now = time.monotonic()
        mark_time, mark_bytes = self._speed_mark
        if now - mark_time >= 0.5:
            rate = (received - mark_bytes) / (now - mark_time)
            self.speed = rate if self.speed == 0 else 0.5 * self.speed + 0.5 * rate
            self._speed_mark = (now, received)
        # The newest numbers replace the previous ones (one tuple, assigned atomically): the main
        # thread reads them when it polls, so no update is queued up or lost before a stall.
        self._progress = (received, total)

    def claim_task(self, task_uuid: str) -> None:
        """Name the task this job works on once it is known (a job that creates its task learns it late)."""
        with self._active_lock:
            if task_uuid != self.task_uuid:
                self._refuse_if_busy(task_uuid)
            self.task_uuid = task_uuid

    def fetch_preview(self) -> None:
        """Fetch the task's preview on a short-lived thread of its own (once per job), beside the work."""
        if self._preview_thread is not None or not self.task_uuid:
            return
        self._preview_thread = threading.Thread(target=self._fetch_preview, name=f"{self._thread.name}-preview")
        self._preview_thread.start()

    def _fetch_preview(self) -> None:
        try:
            # A private folder (mkdtemp: mode 0700), removed when both the worker and this thread have ended.
            self._preview_dir = Path(tempfile.mkdtemp(prefix="triverse-preview-"))
            path = fetch_preview(self.client, self.task_uuid, self._preview_dir)
            if path is None:
                return
            try:  # here, not on the main thread: Blender would decode it while drawing
                pixels: thumbnail.Pixels | None = thumbnail.decode_png(path.read_bytes())
            except ValueError:
                pixels = None  # not a PNG this can read: the panel shows no picture
            self._events.put(("preview", (path, pixels)))
        except (errors.TriverseError, OSError):
            return  # only a picture (cancelled, or no room for it)
        finally:
            self._preview_over()

    def _preview_over(self) -> None:
        """The preview thread's last act; whichever of it and the worker ends second removes the folder."""
        with self._active_lock:
            self._preview_done = True
            last = self._ended
        if last:
            formats.remove_quietly(self._preview_dir)

    def _run(self) -> None:
        try:
            asset = self._work(self)
        except BaseException as exc:  # noqa: BLE001 - every failure is handed to the main thread
            self._events.put(("error", exc))
        else:
            if self.client.cancel_event.is_set():  # cancelled after the last byte: import nothing
                asset.cleanup()
                self._events.put(("error", errors.Cancelled("Import cancelled.")))
            else:
                self._events.put(("done", asset))
        finally:
            self._end()

    def _end(self) -> None:
        """The worker's last act: stop the preview, remove its folder, close the session, leave the registry."""
        if self._preview_thread is not None and self._preview_thread.is_alive():
            self.client.abort()  # the model is in (or failed): its picture is no longer shown
            # A request still waiting for the preview host's first byte cannot be woken: it is not waited
            # for longer than this (the job, and a new import of the task, would wait on a picture).
            self._preview_thread.join(PREVIEW_GRACE)
        with self._active_lock:  # one step: exactly one of this and _preview_over removes the folder
            self._ended = True  # from here, a preview thread still running removes its folder itself
            last = self._preview_done or self._preview_thread is None
            if self._handed_over:
                self._unregister()
        if last:
            formats.remove_quietly(self._preview_dir)
        self.client.close()

    def _unregister(self) -> None:
        if self._active.get(self.key) is self:
            del self._active[self.key]
