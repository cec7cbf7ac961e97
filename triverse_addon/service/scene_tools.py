"""The one path from a selected object's model to its textured or remeshed model, for every door. No `bpy` module use.

check the request -> upload the model (its variant from the request) -> upload the reference image
(texture-model) -> create the task with the caller's order id (one per press, charged once) -> record it in
My Generations -> watch it and obtain the model exactly as a generation (`generate.finish_task`).

- `create_scene_task()` / `finish_scene_task()` are the two halves (console, scripts, the batch).
- `SceneJob` is the same path as the work of a `jobs.Job` (the sidebar), one per object and press; it tells
  the panel when it waits for the upload limit (`waiting_seconds`) and the task once created (`created`).
- `scene_many()` runs many objects on a bounded pool, outcomes in the order given (`generate_batch.in_order`).

The Blender side exports the object to a temporary GLB (or OBJ) and says whether it has textures; nothing here
reads a .blend. Stopping (cancel) stops the upload's wait or the watch: a task already created keeps running on
the service and its record stays in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import errors
from .api import TriverseClient
from .generate import WATCH_TIMEOUT, StatusCallback, check, finish_in_job, finish_task, keep_record
from .generate_batch import in_order
from .generation_api import Created, WaitCallback, upload_image
from .generation_request import new_order_id as fresh_order_id
from .generations_store import GenerationRecord, GenerationStore
from .jobs import Job
from .library import Library
from .obtain import Asset, ProgressCallback, open_library
from .scene_api import create_scene, upload_model
from .scene_request import SceneRequest
from .settings import Settings

__all__ = [
    "WATCH_TIMEOUT",
    "SceneJob",
    "SceneOutcome",
    "create_scene_task",
    "finish_scene_task",
    "scene_key",
    "scene_many",
]

log = logging.getLogger(__name__)


def create_scene_task(
    client: TriverseClient,
    request: SceneRequest,
    model_path: Path,
    order_id: str,
    *,
    store: GenerationStore | None = None,
    has_textures: bool = False,
    image_file: str = "",
    on_wait: WaitCallback | None = None,
    on_uploaded: Callable[[], None] | None = None,
) -> Created:
    """Check, upload the model (and the reference image), create the task once, record it.

    `has_textures`: the object carries textures (a remesh then uploads it as "textured", see
    `SceneRequest.model_variant`). `image_file`: the file_key of an earlier upload of the same image, sent
    instead of uploading again. `on_wait(seconds)` is told before each wait for the upload limit;
    `on_uploaded()` once the model's upload is over, sent or failed (the caller may remove its export then).
    """
    try:
        check(request, image_file)  # refused here, before any byte is sent
        model_file = upload_model(client, model_path, request.model_variant(has_textures), on_wait)
    finally:
        if on_uploaded is not None:
            on_uploaded()
    if request.flow == "texture-model" and not image_file:
        image_file = upload_image(client, request.image_path, wait_out_limit=True, on_wait=on_wait)
    created = create_scene(client, request, order_id, model_file, image_file or None)
    if store is not None:
        keep_record(store, _record(request, created, order_id, image_file))
    return created


def finish_scene_task(
    client: TriverseClient,
    task_uuid: str,
    library: Library | None = None,
    *,
    store: GenerationStore | None = None,
    timeout: float = WATCH_TIMEOUT,
    on_status: StatusCallback | None = None,
    progress: ProgressCallback | None = None,
) -> Asset:
    """Watch the task until it succeeds, then obtain its model: `generate.finish_task`, the generation's path."""
    return finish_task(client, task_uuid, library, store=store, timeout=timeout, on_status=on_status, progress=progress)


def _record(request: SceneRequest, created: Created, order_id: str, image_file: str) -> GenerationRecord:
    image = request.image_path if request.flow == "texture-model" else ""
    return GenerationRecord(
        task_uuid=created.task_uuid,
        order_id=order_id,
        flow_name=request.flow_name,
        prompt="",  # the generation's own prompt: a scene tool has none
        texture_prompt=request.prompt if request.flow == "text-to-texture" else "",
        source_object=request.source_object,
        image_name=Path(image).name if image else "",
        image_path=image,
        image_file=image_file if request.flow == "texture-model" else "",
        polygon_limit=request.polygon_limit,
        texture_size=request.texture_size,
        status=created.status,
        cost_credits=created.cost_credits,
        created_at=time.time(),
    )


# -- the sidebar's job ---------------------------------------------------------------------------


def scene_key(request: SceneRequest, order_id: str) -> str:
    """One job per object and press: the flow, the object's name and the press's order id."""
    return f"scene:{request.flow}:{request.source_object}:{order_id}"


class SceneJob(Job):
    """A scene tool on a worker thread: `Job` whose work uploads, creates the task, watches it and obtains it.

    Started with `SceneJob.begin(...)`. While an upload waits for the service's limit, `waiting_seconds` is the
    length of that wait (and `waiting_until` its end, on `time.monotonic()`'s clock), else None: the panel
    says "waiting for the upload limit". `created` is set once the task exists; then status and progress
    come as for a generation.
    """

    kind = "scene"

    request: SceneRequest
    order_id: str
    created: Created | None = None
    waiting_seconds: float | None = None
    waiting_until: float | None = None

    @classmethod
    def begin(
        cls,
        settings: Settings,
        request: SceneRequest,
        model_path: Path,
        order_id: str,
        *,
        store: GenerationStore | None,
        has_textures: bool = False,
        online_access: bool = True,
        image_file: str = "",
        cleanup: Callable[[], None] | None = None,
        timeout: float = WATCH_TIMEOUT,
    ) -> SceneJob:
        """Start on a worker thread. `cleanup` is called exactly once: by the worker once the model's upload
        is over (sent or failed), or here when the job cannot start (then the error is raised)."""
        once = _Once(cleanup)

        def work(job: Job) -> Asset:
            assert isinstance(job, SceneJob)

            def waiting(seconds: float) -> None:
                job.waiting_until = time.monotonic() + seconds
                job.waiting_seconds = seconds

            try:
                library, job.library_warning = open_library(job.settings)
                created = create_scene_task(
                    job.client,
                    request,
                    model_path,
                    order_id,
                    store=store,
                    has_textures=has_textures,
                    image_file=image_file,
                    on_wait=waiting,
                    on_uploaded=once,
                )
            finally:
                once()
                job.waiting_seconds = job.waiting_until = None
            job.claim_task(created.task_uuid)
            job.created = created  # one assignment: the main thread reads it when it polls
            return finish_in_job(job, created, library, store=store, timeout=timeout)

        try:
            job = cls.start(settings, online_access=online_access, work=work, key=scene_key(request, order_id))
        except BaseException:
            once()
            raise
        assert isinstance(job, SceneJob)
        job.request, job.order_id = request, order_id
        return job


class _Once:
    """A callable that calls `fn` on its first call only (from any thread); a failure of `fn` is not raised."""

    def __init__(self, fn: Callable[[], None] | None) -> None:
        self._fn = fn
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            fn, self._fn = self._fn, None
        if fn is not None:
            try:
                fn()
            except Exception:  # removing a temporary export must not fail the task
                log.exception("Removing the temporary export of a scene tool failed")


# -- many objects (scripts) ----------------------------------------------------------------------


@dataclass
class SceneOutcome:
    """One object of a batch: the task (when it was created), the model or the error, the time taken."""

    request: SceneRequest
    created: Created | None
    result: Asset | errors.TriverseError
    seconds: float


def scene_many(
    settings: Settings,
    items: list[tuple[SceneRequest, Path, bool]],
    *,
    jobs: int = 4,
    timeout: float = WATCH_TIMEOUT,
    library: Library | None = None,
    store: GenerationStore | None = None,
    online_access: bool = True,
    new_order_id: Callable[[], str] = fresh_order_id,
) -> Iterator[SceneOutcome]:
    """Texture or remesh every (request, model file, has textures) on a bounded pool, outcomes in the order given.

    Uploads wait the service's limit out, so many objects never fail for it. Closing the iterator early stops
    the waits and watches still running (created tasks go on on the service and stay in the store) and removes
    the files of models nobody took.
    """

    def run(
        client: TriverseClient, item: tuple[SceneRequest, Path, bool], on_created: Callable[[Created], None]
    ) -> Asset:
        request, model_path, has_textures = item
        created = create_scene_task(client, request, model_path, new_order_id(), store=store, has_textures=has_textures)
        on_created(created)
        return finish_scene_task(client, created.task_uuid, library, store=store, timeout=timeout)

    def outcome(
        item: tuple[SceneRequest, Path, bool],
        created: Created | None,
        result: Asset | errors.TriverseError,
        seconds: float,
    ) -> SceneOutcome:
        return SceneOutcome(item[0], created, result, seconds)

    return in_order(
        settings,
        items,
        run,
        outcome,
        jobs=jobs,
        online_access=online_access,
        label=lambda item: f"{item[0].flow} of {item[0].source_object or item[1].name!r}",
    )
