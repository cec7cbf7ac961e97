"""The one path from a task UUID to a local model file, used by all three doors. No `bpy` module use.

- `obtain_asset()` does it synchronously (console, scripts, `blender -b`).
- `Job` runs network work (by default `import_work`: that same path) on a worker thread and hands
  progress and the result over through a queue that the main thread drains (the sidebar).
- `obtain_many()` runs it for many tasks on a bounded pool, yielding results in the order given
  (the batch script), so the main thread can import each one as soon as it is its turn.
"""

from __future__ import annotations

import logging
import queue
import re
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import errors, formats, thumbnail, watch
from .client import TaskStatus, TriverseClient
from .config import Settings
from .library import Library, PendingEntry

__all__ = [
    "Asset",
    "Job",
    "fetch_preview",
    "import_work",
    "obtain_asset",
    "obtain_from_library",
    "obtain_many",
    "open_library",
    "parse_task_uuid",
]

log = logging.getLogger(__name__)

CANCEL_GRACE = 0.5  # seconds a cancelled worker gets to report before the job is declared cancelled
PREVIEW_GRACE = 0.5  # seconds the worker waits, at its end, for a preview still being fetched
# A hyphenated UUID standing alone (not inside a longer word), as in a task page's address.
_UUID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z-])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z-])")

StatusCallback = Callable[[TaskStatus], None]
ProgressCallback = Callable[[int, "int | None"], None]


def parse_task_uuid(text: str) -> str:
    """The canonical form of a pasted task UUID, or of the one UUID in a pasted task URL.

    Spaces, newlines, capitals, braces and urn: are accepted around a bare UUID; in longer text (a task
    page's address, a line of a log) exactly one UUID must appear, so a wrong task is never picked.
    """
    cleaned = "".join(str(text).split()).strip("{}").lower()
    if cleaned.startswith("urn:uuid:"):
        cleaned = cleaned[len("urn:uuid:") :]
    try:
        return str(uuidlib.UUID(cleaned))
    except ValueError:
        pass
    shown = " ".join(str(text).split())[:60]
    found = list(dict.fromkeys(str(uuidlib.UUID(m)) for m in _UUID_IN_TEXT.findall(str(text))))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise errors.InvalidTaskId(
            f'"{shown}" holds {len(found)} different task UUIDs ({found[0][:8]}... and {found[1][:8]}...): '
            "paste only the one to import."
        )
    what = f'"{shown}" is not' if shown else "No task UUID was given; it should be"
    raise errors.InvalidTaskId(
        f"{what} a Triverse task UUID (like 92483a80-236c-4889-9a95-4c90bb64dfd8): copy it from the task page."
    )


@dataclass
class Asset:
    """A model file ready for Blender's importer."""

    task_uuid: str
    path: Path
    format: str
    size: int
    sha256: str
    filename: str = ""
    from_library: bool = False
    workdir: Path | None = field(default=None, repr=False)  # temporary folder, removed by cleanup()
    pending: PendingEntry | None = field(default=None, repr=False)  # the library records it once hashed

    def cleanup(self) -> None:
        """Remove temporary files made for this import (never the library's copy); record that copy now."""
        formats.remove_quietly(self.workdir)
        self.workdir = None
        if self.pending is not None:
            self.pending.start()  # hashed and recorded on a helper thread, the import being done

    def wait_kept(self, timeout: float | None = None) -> None:
        """After `cleanup()`: wait until the library has recorded this download (a script about to exit)."""
        if self.pending is not None:
            self.pending.wait(timeout)


def open_library(settings: Settings) -> tuple[Library | None, str]:
    """The library the settings name, or (None, why) when it is off or its folder is unusable."""
    if not settings.library_dir:
        return None, ""
    try:
        return Library(settings.library_dir, settings.library_cap_bytes), ""
    except errors.StorageError as exc:
        return None, str(exc) + " Downloads go to a temporary folder meanwhile."


def obtain_asset(
    client: TriverseClient,
    task_uuid: str,
    library: Library | None = None,
    *,
    progress: ProgressCallback | None = None,
    wait: float = 0.0,
    on_status: StatusCallback | None = None,
) -> Asset:
    """A verified local model for the task: from the library when kept there, else downloaded.

    `wait` > 0 watches the task (live over the WebSocket, else by polling) for up to that many seconds
    until it succeeds; with
    `on_status` the status is asked (and told) before downloading even without waiting.
    """
    task_uuid = parse_task_uuid(task_uuid)  # it names files and folders: never anything but a UUID
    from_library = obtain_from_library(task_uuid, library)
    if from_library is not None:
        return from_library
    if wait > 0 or on_status is not None:
        try:
            watch.wait_for_success(client, task_uuid, wait, on_status)  # pushed over the WebSocket, else polled
        except errors.UnexpectedResponse:
            pass  # a status the service cannot give is no reason to stop: the download will tell
    workdir = Path(tempfile.mkdtemp(prefix="triverse-"))
    partial = library.partial_path(task_uuid) if library else workdir / f"{task_uuid}.part"
    try:
        download = client.download(task_uuid, partial, progress, hash_body=library is None)
        fmt = formats.detect_format(partial, formats.extension_of(download.filename))
        # Checked (a zip unpacked) before it is kept: the library only ever holds importable files.
        model = _model_in(partial, fmt, workdir)
        name = download.filename or f"{task_uuid}.{fmt}"
        pending = None
        if library is not None:
            pending = library.keep(task_uuid, partial, fmt, download.size, name)
            kept = pending.path
        else:
            kept = workdir / f"{task_uuid}.{fmt}"
            partial.replace(kept)
        if fmt != "zip":
            model = kept
        return Asset(task_uuid, model, formats.extension_of(model.name), download.size, download.sha256, name, False,
                     workdir, pending)  # fmt: skip
    except BaseException:
        formats.remove_quietly(partial)
        formats.remove_quietly(workdir)
        raise


def obtain_from_library(task_uuid: str, library: Library | None) -> Asset | None:
    """The task's verified model from the library, or None when it is not kept there; never the network."""
    entry = library.lookup(task_uuid) if library is not None else None
    if entry is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="triverse-")) if entry.format == "zip" else None
    try:
        model = _model_in(entry.path, entry.format, workdir)
    except BaseException:
        formats.remove_quietly(workdir)
        raise
    return Asset(task_uuid, model, formats.extension_of(model.name), entry.size, entry.sha256,
                 entry.filename, True, workdir)  # fmt: skip


def _model_in(path: Path, fmt: str, workdir: Path | None) -> Path:
    """The file to import: the file itself, or for a zip the model it holds, unpacked safely into `workdir`."""
    if fmt != "zip":
        return path
    assert workdir is not None
    return formats.find_model(formats.extract_zip(path, workdir / "unpacked"))


def fetch_preview(client: TriverseClient, task_uuid: str, dest_dir: Path) -> Path | None:
    """The task's preview image, if the service offers one; None on any failure (it is only a picture)."""
    try:
        info = client.asset_info(task_uuid)
        if not info.preview_url:
            return None
        dest_dir.mkdir(parents=True, exist_ok=True)
        path = dest_dir / f"{task_uuid}.preview"
        client.fetch(info.preview_url, path, task_uuid, max_bytes=16 * 1024 * 1024)
        return path
    except errors.Cancelled:
        raise
    except (errors.TriverseError, OSError):
        return None


# -- the sidebar's worker ------------------------------------------------------------------------

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


# -- the batch's parallel downloads --------------------------------------------------------------


def obtain_many(
    settings: Settings,
    task_uuids: Iterable[str],
    *,
    jobs: int = 4,
    wait: float = 0.0,
    client: TriverseClient | None = None,
    library: Library | None = None,
    online_access: bool = True,
) -> Iterator[tuple[str, Asset | errors.TriverseError, float]]:
    """Obtain many tasks on `jobs` threads; yield (uuid, asset or error, seconds) in the order given.

    Closing the generator (or an exception in the caller, such as Ctrl-C) cancels what is left.
    """
    own_client = client is None
    client = client or TriverseClient(settings, pool_size=jobs, online_access=online_access)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-batch")

    def one(task_uuid: str) -> tuple[Asset | errors.TriverseError, float]:
        started = time.monotonic()
        try:
            return obtain_asset(client, task_uuid, library, wait=wait), time.monotonic() - started
        except errors.TriverseError as exc:
            return exc, time.monotonic() - started
        except Exception as exc:  # a bug in one task must not stop the others
            log.exception("Task %s failed unexpectedly", task_uuid)
            return errors.TriverseError(errors.describe(exc)), time.monotonic() - started

    futures: list[tuple[str, Future[tuple[Asset | errors.TriverseError, float]]]] = []
    completed = False
    try:
        futures = [(u, pool.submit(one, u)) for u in task_uuids]
        for task_uuid, future in futures:
            outcome, seconds = future.result()
            yield task_uuid, outcome, seconds
        completed = True
    finally:
        if not completed:
            client.abort()  # stop the downloads still running; their partial files are removed
        pool.shutdown(wait=True, cancel_futures=True)
        for _, future in futures:  # results nobody took (cancelled part-way): remove their temp files
            if future.done() and not future.cancelled():
                outcome = future.result()[0]
                if isinstance(outcome, Asset):
                    outcome.cleanup()
        if own_client:
            client.close()
