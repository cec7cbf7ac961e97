"""The one path from a generation request to a local model, for every door. No `bpy` module use.

upload the image (if any) -> create the task with the caller's order id (one per press) -> record it in
My Generations -> watch it (pushed, polling as a fallback) -> `obtain.obtain_asset` (the same library and
format checks as Import) -> `obtain.Asset`.

- `generate()` does it synchronously (console, scripts); `create_task()` / `finish_task()` are its halves
  (`wait=False` stops after the first).
- `GenerateJob` is the same path as the work of a `jobs.Job` (the sidebar): the task once created
  (queue position, estimated wait, cost), then its status and progress, reported through the job.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import errors, watch
from .api import TaskStatus, TriverseClient
from .generation_api import Created, Validated, create, upload_image
from .generation_request import GenerationRequest
from .generations_store import TERMINAL, GenerationRecord, GenerationStore
from .jobs import Job
from .library import Library
from .obtain import Asset, ProgressCallback, fetch_preview, obtain_asset, open_library
from .settings import Settings

__all__ = [
    "WATCH_TIMEOUT",
    "GenerateJob",
    "Generated",
    "check",
    "create_task",
    "finish_in_job",
    "finish_task",
    "generate",
    "keep_record",
    "refuse_if_running",
    "request_key",
    "update_record",
]

log = logging.getLogger(__name__)

READ_AFTER_WRITE_SECONDS = 5.0  # how long a just-created task may answer 404 before it is visible
WATCH_TIMEOUT = 3600.0  # seconds a generation is watched before giving up (it keeps running on the service)

CreatedCallback = Callable[["Created"], None]
StatusCallback = Callable[[TaskStatus], None]


@dataclass
class Generated:
    """A finished generation: the task as created and the model ready to import."""

    created: Created
    asset: Asset


def request_key(request: GenerationRequest, allow_duplicate: bool = False, image_file: str = "") -> str:
    """The same settings give the same key: two presses of one request are one job (a double click)."""
    fields = {**dataclasses.asdict(request), "allow_duplicate": allow_duplicate, "image_file": image_file}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return f"generate:{digest[:16]}"


def check(request: Validated, image_file: str = "") -> None:
    """`InvalidParameters` with the first reason `validate()` gives (the panel shows each under its field).

    With `image_file` (an earlier upload's file_key) the local image no longer matters.
    """
    problems = request.validate()
    if image_file:
        problems.pop("image_path", None)
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))


# -- the two halves ------------------------------------------------------------------------------


def create_task(
    client: TriverseClient,
    request: GenerationRequest,
    order_id: str,
    *,
    store: GenerationStore | None = None,
    allow_duplicate: bool = False,
    image_file: str = "",
) -> Created:
    """Check, upload the image if any, create the task once (the order id makes retries safe), record it.

    `image_file`: the file_key of an earlier upload of the same image, sent instead of uploading again.
    """
    check(request, image_file)  # an unsupported image is refused here, before any byte is sent
    if request.image_path and not image_file:
        image_file = upload_image(client, request.image_path)
    created = create(client, request, order_id, image_file=image_file or None, allow_duplicate=allow_duplicate)
    if store is not None:
        keep_record(store, _record(request, created, order_id, image_file))
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
    progress: ProgressCallback | None = None,
) -> Asset:
    """Watch the task until it succeeds, then obtain its model (the store follows every status seen)."""

    def seen(status: TaskStatus) -> None:
        if store is not None:
            update_record(store, task_uuid, status)
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
    asset = obtain_asset(client, task_uuid, library, progress=progress)
    if store is not None:
        keep_preview_later(client, task_uuid, store)
    return asset


def keep_preview_later(client: TriverseClient, task_uuid: str, store: GenerationStore) -> threading.Thread:
    """The task's preview, for My Generations' thumbnail: fetched after the model (never delaying it), on a
    thread with a client of its own, into the store's folder; the record then names it. Only a picture:
    any failure leaves the row without one."""

    def fetch() -> None:
        with TriverseClient(client.settings, online_access=client.online_access) as own:
            path = fetch_preview(own, task_uuid, store.path.parent / "previews")
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
    request: GenerationRequest,
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


def _record(request: GenerationRequest, created: Created, order_id: str, image_file: str) -> GenerationRecord:
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


def update_record(store: GenerationStore, task_uuid: str, status: TaskStatus) -> None:
    """Keep the record's status as last seen (a stopped watch leaves it there, to be watched again)."""
    record = store.get(task_uuid)
    if record is None:
        return
    changed = dataclasses.replace(record, status=status.status, progress=status.progress or record.progress)
    if status.status in TERMINAL:
        changed.error = status.error if status.status != "SUCCESS" else ""
        changed.finished_at = changed.finished_at or time.time()
    if changed != record:
        keep_record(store, changed)


def keep_record(store: GenerationStore, record: GenerationRecord) -> None:
    """Write a record; a list that cannot be saved (disk full) never stops a generation already paid for."""
    try:
        store.upsert(record)
    except errors.StorageError as exc:
        log.warning("%s", exc)


# -- the sidebar's job ---------------------------------------------------------------------------


class GenerateJob(Job):
    """A generation on a worker thread: `Job` whose work creates the task, watches it and obtains it.

    Started with `GenerateJob.begin(...)`; its key is the request's (`request_key`), so a second press of
    the same request while it runs is refused. `created` is set once the task exists.
    """

    kind = "generate"

    request: GenerationRequest
    order_id: str
    created: Created | None = None

    @classmethod
    def begin(
        cls,
        settings: Settings,
        request: GenerationRequest,
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

        def work(job: Job) -> Asset:
            assert isinstance(job, GenerateJob)
            library, job.library_warning = open_library(job.settings)
            created = create_task(
                job.client, request, order_id, store=store, allow_duplicate=allow_duplicate, image_file=image_file
            )
            job.claim_task(created.task_uuid)
            job.created = created  # one assignment: the main thread reads it when it polls
            return finish_in_job(job, created, library, store=store, timeout=timeout)

        job = cls.start(settings, online_access=online_access, work=work, key=key)
        assert isinstance(job, GenerateJob)
        job.request, job.order_id = request, order_id
        return job


def finish_in_job(
    job: Job, created: Created, library: Library | None, *, store: GenerationStore | None, timeout: float
) -> Asset:
    """A job's second half once its task exists (and was claimed): `finish_task` reporting through the job
    (status, bytes received, and the preview once the model flows, as Import does)."""

    def progress(received: int, total: int | None) -> None:
        job.fetch_preview()  # only now: the picture never delays the model
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


def refuse_if_running(key: str) -> None:
    """AlreadyRunning when a generation with the same request is still in the sidebar's hands."""
    job = Job.get(key)
    if job is not None:
        which = f" (task {job.task_uuid[:8]})" if job.task_uuid else ""
        raise errors.AlreadyRunning(
            f"A generation with these settings is already running{which}: wait for it, "
            "or use Generate Again in My Generations for another one."
        )
