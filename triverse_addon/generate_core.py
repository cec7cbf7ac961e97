"""The one path from a generation request to a local model, for every door. No `bpy` module use.

upload the image (if any) -> create the task with the caller's order id (one per press) -> record it in
My Generations -> watch it (pushed, polling as a fallback) -> `core.obtain_asset` (the same library and
format checks as Import) -> `core.Asset`.

- `generate()` does it synchronously (console, scripts); `create_task()` / `finish_task()` are its halves
  (`wait=False` stops after the first).
- `GenerateJob` is the same path as the work of a `core.Job` (the sidebar): the task once created
  (queue position, estimated wait, cost), then its status and progress, reported through the job.
- `generate_many()` runs many requests on a bounded pool, results in the order given (the batch).
- `Rewatcher` watches again the tasks still running when Blender closed (watch only, never imports).

Stopping (cancel) stops the watch only: the task keeps running on the service and its record stays in
the store with the status last seen. A FAILED or CANCELLED task raises `TaskFailed` with the service's
reason; nothing is downloaded then.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import core, errors, generation, watch
from .client import TaskStatus, TriverseClient
from .config import Settings
from .generations import TERMINAL, GenerationRecord, GenerationStore
from .library import Library

__all__ = [
    "WATCH_TIMEOUT",
    "GenerateJob",
    "Generated",
    "Rewatcher",
    "check",
    "collection_name",
    "create_task",
    "finish_task",
    "generate",
    "generate_many",
    "quote_all",
    "refuse_if_running",
    "request_key",
    "stopped_message",
]

log = logging.getLogger(__name__)

READ_AFTER_WRITE_SECONDS = 5.0  # how long a just-created task may answer 404 before it is visible
WATCH_TIMEOUT = 3600.0  # seconds a generation is watched before giving up (it keeps running on the service)
PROMPT_IN_NAME = 24  # characters of the prompt in a collection's name
MAX_NAME_BYTES = 63  # Blender's limit for a data-block name

CreatedCallback = Callable[["generation.Created"], None]
StatusCallback = Callable[[TaskStatus], None]


@dataclass
class Generated:
    """A finished generation: the task as created and the model ready to import."""

    created: generation.Created
    asset: core.Asset


def request_key(request: generation.GenerationRequest, allow_duplicate: bool = False, image_file: str = "") -> str:
    """The same settings give the same key: two presses of one request are one job (a double click)."""
    fields = {**dataclasses.asdict(request), "allow_duplicate": allow_duplicate, "image_file": image_file}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return f"generate:{digest[:16]}"


def collection_name(prompt: str, task_uuid: str, image_path: str = "") -> str:
    """A short, safe name: the prompt's first words (the image's name for image input) and the task's first 8."""
    source = Path(image_path).name if image_path else prompt
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in source)
    words = " ".join(cleaned.split())
    if len(words) > PROMPT_IN_NAME:
        words = words[:PROMPT_IN_NAME].rstrip() + "…"
    tail = f" {task_uuid[:8]}"
    # Blender cuts names at 63 bytes, possibly inside a character: cut by characters instead.
    while words and len((words + tail).encode()) > MAX_NAME_BYTES:
        words = words[:-2].rstrip() + "…"
    return (words or "Triverse") + tail


def check(request: generation.GenerationRequest, image_file: str = "") -> None:
    """`InvalidParameters` with the first reason `validate()` gives (the panel shows each under its field).

    With `image_file` (an earlier upload's file_key) the local image no longer matters.
    """
    problems = request.validate()
    if image_file:
        problems.pop("image_path", None)
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))


def stopped_message(task_uuid: str) -> str:
    """What the user reads after stopping a watch: the task is not cancelled, it goes on."""
    return (
        f"Stopped watching task {task_uuid[:8]}: it keeps running on Triverse and stays in My Generations, "
        "where you can import it when it is done."
    )


# -- the two halves ------------------------------------------------------------------------------


def create_task(
    client: TriverseClient,
    request: generation.GenerationRequest,
    order_id: str,
    *,
    store: GenerationStore | None = None,
    allow_duplicate: bool = False,
    image_file: str = "",
) -> generation.Created:
    """Check, upload the image if any, create the task once (the order id makes retries safe), record it.

    `image_file`: the file_key of an earlier upload of the same image, sent instead of uploading again.
    """
    check(request, image_file)  # an unsupported image is refused here, before any byte is sent
    if request.image_path and not image_file:
        image_file = generation.upload_image(client, request.image_path)
    created = generation.create(
        client, request, order_id, image_file=image_file or None, allow_duplicate=allow_duplicate
    )
    if store is not None:
        _keep(store, _record(request, created, order_id, image_file))
    return created


def finish_task(
    client: TriverseClient,
    task_uuid: str,
    library: Library | None = None,
    *,
    store: GenerationStore | None = None,
    timeout: float = WATCH_TIMEOUT,
    on_status: StatusCallback | None = None,
    use_socket: bool = True,
    progress: core.ProgressCallback | None = None,
) -> core.Asset:
    """Watch the task until it succeeds, then obtain its model (the store follows every status seen)."""

    def seen(status: TaskStatus) -> None:
        if store is not None:
            _update(store, task_uuid, status)
        if on_status is not None:
            on_status(status)

    # The silence limit is read now, not when watch was imported, so a test can shorten it.
    # Right after a creation the service may not show the task yet (its answer can name a
    # "read_after_write" deadline, undocumented beyond that): a 404 then means "not yet", for a while.
    visible_by = time.monotonic() + READ_AFTER_WRITE_SECONDS
    while True:
        try:
            watch.wait_for_success(
                client, task_uuid, timeout, seen, use_socket=use_socket, silence=watch.SILENCE_SECONDS
            )
            break
        except errors.TaskNotFound:
            if time.monotonic() >= visible_by:
                raise
            if client.cancel_event.wait(0.5):
                raise errors.Cancelled("Stopped watching.") from None
    asset = core.obtain_asset(client, task_uuid, library, progress=progress)
    if store is not None:
        keep_preview_later(client, task_uuid, store)
    return asset


def keep_preview_later(client: TriverseClient, task_uuid: str, store: GenerationStore) -> threading.Thread:
    """The task's preview, for My Generations' thumbnail: fetched after the model (never delaying it), on a
    thread with a client of its own, into the store's folder; the record then names it. Only a picture:
    any failure leaves the row without one."""

    def fetch() -> None:
        with TriverseClient(client.settings, online_access=client.online_access) as own:
            path = core.fetch_preview(own, task_uuid, store.path.parent / "previews")
        if path is None:
            return
        try:
            if store.update(task_uuid, preview_file=str(path)) is None:
                path.unlink(missing_ok=True)  # the row was removed meanwhile
        except errors.StorageError:
            path.unlink(missing_ok=True)

    thread = threading.Thread(target=fetch, name=f"triverse-preview-{task_uuid[:8]}", daemon=True)
    thread.start()
    return thread


def generate(
    client: TriverseClient,
    request: generation.GenerationRequest,
    order_id: str,
    *,
    library: Library | None = None,
    store: GenerationStore | None = None,
    allow_duplicate: bool = False,
    timeout: float = WATCH_TIMEOUT,
    on_created: CreatedCallback | None = None,
    on_status: StatusCallback | None = None,
    use_socket: bool = True,
) -> Generated:
    """Create, watch and obtain, synchronously: the model of a new task, ready to import."""
    created = create_task(client, request, order_id, store=store, allow_duplicate=allow_duplicate)
    if on_created is not None:
        on_created(created)
    asset = finish_task(
        client, created.task_uuid, library, store=store, timeout=timeout, on_status=on_status, use_socket=use_socket
    )
    return Generated(created, asset)


def _record(
    request: generation.GenerationRequest, created: generation.Created, order_id: str, image_file: str
) -> GenerationRecord:
    return GenerationRecord(
        task_uuid=created.task_uuid,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image_name=Path(request.image_path).name if request.image_path else "",
        image_path=request.image_path,
        image_file=image_file,
        mesh_only=request.mesh_only,
        polygon_limit=request.polygon_limit,
        texture_size=request.texture_size,
        turbo=request.turbo,
        flow_name=request.flow_name,
        order_id=order_id,
        status=created.status,
        cost_credits=created.cost_credits,
        created_at=time.time(),
    )


def _update(store: GenerationStore, task_uuid: str, status: TaskStatus) -> None:
    """Keep the record's status as last seen (a stopped watch leaves it there, to be watched again)."""
    record = store.get(task_uuid)
    if record is None:
        return
    changed = dataclasses.replace(record, status=status.status, progress=status.progress or record.progress)
    if status.status in TERMINAL:
        changed.error = status.error if status.status != "SUCCESS" else ""
        changed.finished_at = changed.finished_at or time.time()
    if changed != record:
        _keep(store, changed)


def _keep(store: GenerationStore, record: GenerationRecord) -> None:
    """Write a record; a list that cannot be saved (disk full) never stops a generation already paid for."""
    try:
        store.upsert(record)
    except errors.StorageError as exc:
        log.warning("%s", exc)


# -- the sidebar's job ---------------------------------------------------------------------------


class GenerateJob(core.Job):
    """A generation on a worker thread: `core.Job` whose work creates the task, watches it and obtains it.

    Started with `GenerateJob.begin(...)`; its key is the request's (`request_key`), so a second press of
    the same request while it runs is refused. `created` is set once the task exists.
    """

    kind = "generate"

    request: generation.GenerationRequest
    order_id: str
    created: generation.Created | None = None

    @classmethod
    def begin(
        cls,
        settings: Settings,
        request: generation.GenerationRequest,
        order_id: str,
        *,
        store: GenerationStore | None,
        allow_duplicate: bool = False,
        online_access: bool = True,
        timeout: float = WATCH_TIMEOUT,
        image_file: str = "",
    ) -> GenerateJob:
        """Start generating on a worker thread (a double click of the same request: AlreadyRunning)."""
        key = request_key(request, allow_duplicate, image_file)
        refuse_if_running(key)

        def work(job: core.Job) -> core.Asset:
            assert isinstance(job, GenerateJob)
            library, job.library_warning = core.open_library(job.settings)
            created = create_task(
                job.client, request, order_id, store=store, allow_duplicate=allow_duplicate, image_file=image_file
            )
            job.claim_task(created.task_uuid)
            job.created = created  # one assignment: the main thread reads it when it polls

            def progress(received: int, total: int | None) -> None:
                job.fetch_preview()  # once the model flows, as Import does: the picture never delays it
                job.report_progress(received, total)

            return finish_task(
                job.client,
                created.task_uuid,
                library,
                store=store,
                timeout=timeout,
                on_status=job.report_status,
                progress=progress,
            )

        job = cls.start(settings, online_access=online_access, work=work, key=key)
        assert isinstance(job, GenerateJob)
        job.request, job.order_id = request, order_id
        return job


def refuse_if_running(key: str) -> None:
    """AlreadyRunning when a generation with the same request is still in the sidebar's hands."""
    job = core.Job.get(key)
    if job is not None:
        which = f" (task {job.task_uuid[:8]})" if job.task_uuid else ""
        raise errors.AlreadyRunning(
            f"A generation with these settings is already running{which}: wait for it, "
            "or use Generate Again in My Generations for another one."
        )


# -- the batch -----------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    """One request of a batch: the task (when it was created), the model or the error, the time taken."""

    request: generation.GenerationRequest
    created: generation.Created | None
    result: core.Asset | errors.TriverseError
    seconds: float


def quote_all(
    settings: Settings, requests: list[generation.GenerationRequest], *, jobs: int = 4, online_access: bool = True
) -> list[generation.Quote]:
    """The price of every request (in order), asked in parallel; creates nothing. The first failure is raised."""
    with (
        TriverseClient(settings, pool_size=max(jobs, 1), online_access=online_access) as client,
        ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-quote") as pool,
    ):
        return list(pool.map(lambda r: generation.quote(client, r), requests))


def generate_many(
    settings: Settings,
    requests: Iterable[generation.GenerationRequest],
    *,
    jobs: int = 4,
    timeout: float = WATCH_TIMEOUT,
    library: Library | None = None,
    store: GenerationStore | None = None,
    online_access: bool = True,
    new_order_id: Callable[[], str] = generation.new_order_id,
) -> Iterator[BatchOutcome]:
    """Generate every request on a bounded pool, yielding outcomes in the order given.

    Closing the iterator early (an interrupt) stops the watches still running (their tasks go on on the
    service and stay in the store) and removes the files of models nobody took.
    """
    client = TriverseClient(settings, pool_size=max(jobs, 1), online_access=online_access)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-generate")

    def one(request: generation.GenerationRequest) -> BatchOutcome:
        started = time.monotonic()
        created: generation.Created | None = None

        def keep(c: generation.Created) -> None:
            nonlocal created
            created = c

        try:
            done = generate(
                client, request, new_order_id(), library=library, store=store, timeout=timeout, on_created=keep
            )
            return BatchOutcome(request, done.created, done.asset, time.monotonic() - started)
        except errors.TriverseError as exc:
            return BatchOutcome(request, created, exc, time.monotonic() - started)
        except Exception as exc:  # a bug in one request must not stop the others
            log.exception("Generation of %r failed unexpectedly", request.prompt[:40])
            failure = errors.TriverseError(errors.describe(exc))
            return BatchOutcome(request, created, failure, time.monotonic() - started)

    futures: list[Future[BatchOutcome]] = []
    completed = False
    try:
        futures = [pool.submit(one, r) for r in requests]
        for future in futures:
            yield future.result()
        completed = True
    finally:
        if not completed:
            client.abort()  # the watches stop; the tasks go on on the service and stay in the store
        pool.shutdown(wait=True, cancel_futures=True)
        if not completed:  # models nobody took: remove their temporary files (never the library's copy)
            for future in futures:
                outcome = future.result() if future.done() and not future.cancelled() else None
                if outcome is not None and isinstance(outcome.result, core.Asset):
                    outcome.result.cleanup()
        client.close()


# -- watching again after a restart --------------------------------------------------------------


class Rewatcher:
    """Watch, each on its own thread, the stored tasks still running; update their records, import nothing."""

    def __init__(self, settings: Settings, store: GenerationStore, *, online_access: bool = True) -> None:
        """Prepare; `start()` begins."""
        self.settings = settings
        self.store = store
        self.online_access = online_access
        self._threads: dict[str, tuple[threading.Thread, TriverseClient]] = {}
        self._lock = threading.Lock()

    def start(self, timeout: float = WATCH_TIMEOUT) -> list[str]:
        """Watch every running task not watched yet; the task UUIDs now watched."""
        for record in self.store.running():
            with self._lock:
                if record.task_uuid in self._threads:
                    continue
                try:
                    client = TriverseClient(self.settings, online_access=self.online_access)
                except errors.TriverseError as exc:  # a CA bundle that vanished: nothing to watch with
                    log.warning("Cannot watch Triverse tasks again: %s", exc)
                    return []
                thread = threading.Thread(
                    target=self._watch,
                    args=(client, record.task_uuid, timeout),
                    name=f"triverse-rewatch-{record.task_uuid[:8]}",
                    daemon=True,
                )
                self._threads[record.task_uuid] = (thread, client)
            thread.start()
        return self.watching()

    def watching(self) -> list[str]:
        """Task UUIDs being watched now."""
        with self._lock:
            return [u for u, (t, _) in self._threads.items() if t.is_alive()]

    def stop(self, task_uuid: str | None = None, join_seconds: float = 1.0) -> None:
        """Stop watching one task, or all (the tasks go on on the service)."""
        with self._lock:
            chosen = [(u, v) for u, v in self._threads.items() if task_uuid in (None, u)]
        for _, (_, client) in chosen:
            client.abort()
        deadline = time.monotonic() + join_seconds
        for _, (thread, _) in chosen:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _watch(self, client: TriverseClient, task_uuid: str, timeout: float) -> None:
        try:
            watch.wait_for_success(client, task_uuid, timeout, lambda s: _update(self.store, task_uuid, s))
        except errors.Cancelled:
            pass  # stopped (Blender closing, the add-on disabled): the record keeps its last status
        except errors.TriverseError as exc:
            log.info("Watching task %s again ended: %s", task_uuid[:8], exc)
        except Exception:  # a watcher thread must never die with a traceback in the console only
            log.exception("Watching task %s again failed unexpectedly", task_uuid[:8])
        finally:
            client.close()
            with self._lock:
                self._threads.pop(task_uuid, None)
