"""Generate many models: tasks created and watched in parallel, imports on the main thread in the order given.

The same core as the Generate operator (`service.generate_batch.generate_many` -> `scene_import.import_generated`),
for scripts::

    import importlib, bpy
    pkg = next(m for m in bpy.context.preferences.addons.keys() if m.rsplit(".", 1)[-1] == "triverse")
    batch = importlib.import_module(pkg + ".blender.generate.batch")
    gen = importlib.import_module(pkg + ".service.generation_request")
    results = batch.generate_tasks([gen.GenerationRequest(prompt="a red chair")], jobs=4)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import bpy

from ...service import errors
from ...service import library as library_module
from ...service.generate import WATCH_TIMEOUT
from ...service.generate_batch import BatchOutcome, generate_many, quote_all
from ...service.generation_request import GenerationRequest
from ...service.obtain import open_library
from ..common import addon, asset_store, lookups, scene_import, stores

__all__ = ["GenerationResult", "generate_tasks", "quote_total"]

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """The outcome of one request of a batch (what `--report` writes)."""

    prompt: str
    image: str = ""
    task_uuid: str = ""  # empty when no task was created
    status: str = "failed"  # "imported" or "failed"
    task_status: str = ""  # the service's last word: SUCCESS, FAILED...
    cost: int | None = None
    seconds: float = 0.0
    objects: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        """For JSON."""
        return asdict(self)


def quote_total(requests: list[GenerationRequest], *, jobs: int = 4) -> tuple[int, float]:
    """(total cost in credits, balance now) of the requests, asked of the service; nothing is created."""
    quotes = quote_all(addon.get_settings(), requests, jobs=jobs, online_access=addon.online_access())
    balance = quotes[0].available_credits if quotes else 0.0
    return sum(q.cost_credits for q in quotes), balance


def generate_tasks(
    requests: Iterable[GenerationRequest],
    *,
    jobs: int = 4,
    timeout: float = WATCH_TIMEOUT,
    context: bpy.types.Context | None = None,
    on_result: Callable[[GenerationResult], None] | None = None,
) -> list[GenerationResult]:
    """Generate every request and import each model into the current scene; one failure never stops the others.

    Every task created is kept in My Generations. A KeyboardInterrupt stops the watches still running
    (their tasks go on on the service) and propagates; what was imported stays in the scene.
    """
    context = context or bpy.context
    results: list[GenerationResult] = []
    settings = addon.get_settings(context)
    library, warning = open_library(settings)
    if warning:
        log.warning(warning)
    outcomes = generate_many(
        settings, list(requests), jobs=jobs, timeout=timeout, library=library, store=stores.generations(),
        online_access=addon.online_access(),
    )  # fmt: skip
    try:
        for outcome in outcomes:
            result = _import(context, outcome)
            results.append(result)
            if on_result:
                on_result(result)
    finally:
        outcomes.close()  # on an interrupt: stops what still runs and removes its files
        lookups.changed("library", "credits")
        library_module.wait_for_pending()  # the records of what was imported, before a script exits
        asset_store.wait()  # and their assets
    return results


def _import(context: bpy.types.Context, outcome: BatchOutcome) -> GenerationResult:
    """Import one outcome (main thread); the result line of the report."""
    request, created = outcome.request, outcome.created
    result = GenerationResult(
        prompt=request.prompt,
        image=request.image_path,
        task_uuid=created.task_uuid if created else "",
        cost=created.cost_credits if created else None,
        seconds=round(outcome.seconds, 3),
    )
    if isinstance(outcome.result, errors.TriverseError):
        result.error = str(outcome.result)
        result.task_status = _last_status(result.task_uuid)
        return result
    asset = outcome.result
    try:
        imported = scene_import.import_generated(context, asset, request.prompt, request.image_path, request.flow_name)
    except Exception as exc:
        if not isinstance(exc, errors.TriverseError):
            log.error("Import of %s failed unexpectedly", asset.task_uuid, exc_info=exc)
        result.error, result.task_status = errors.describe(exc), "SUCCESS"
        return result
    finally:
        asset.cleanup()
    stores.mark_imported(asset.task_uuid)
    result.status, result.task_status = "imported", "SUCCESS"
    result.objects = len(imported.objects)
    result.seconds = round(outcome.seconds + imported.seconds, 3)
    return result


def _last_status(task_uuid: str) -> str:
    record = stores.generations().get(task_uuid) if task_uuid else None
    return record.status if record is not None else ""
