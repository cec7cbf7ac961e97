"""Import many tasks: downloads run in parallel, imports happen on the main thread in the order given.

The same core as the operator (`service.import_batch.obtain_many` -> `scene_import.import_asset`), for scripts::

    import importlib, bpy
    pkg = next(m for m in bpy.context.preferences.addons.keys() if m.rsplit(".", 1)[-1] == "triverse")
    batch = importlib.import_module(pkg + ".blender.importing.batch")
    results = batch.import_tasks(["92483a80-236c-4889-9a95-4c90bb64dfd8", ...], jobs=4)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import bpy

from ...service import errors
from ...service import library as library_module
from ...service.import_batch import obtain_many
from ...service.obtain import open_library
from ...service.task_ids import parse_task_uuid
from ..common import addon, asset_store, lookups, scene_import

__all__ = ["TaskResult", "import_tasks"]

log = logging.getLogger(__name__)


@dataclass
class TaskResult:
    """The outcome of one task of a batch (what `--report` writes)."""

    task_uuid: str
    status: str  # "imported" or "failed"
    format: str = ""
    bytes: int = 0
    seconds: float = 0.0
    objects: int = 0
    source: str = ""  # "network" or "library"
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        """For JSON."""
        return asdict(self)


def import_tasks(
    task_uuids: Iterable[str],
    *,
    jobs: int = 4,
    wait: float = 0.0,
    context: bpy.types.Context | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    """Import every task into the current scene; one failure never stops the others.

    A task that needs the network while there is no key or online access is off fails with that
    message (tasks kept in the library still import). A KeyboardInterrupt cancels the downloads
    still running and propagates; what was imported stays in the scene.
    """
    context = context or bpy.context
    results: list[TaskResult] = []

    def done(result: TaskResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    settings = addon.get_settings(context)
    library, warning = open_library(settings)
    if warning:
        log.warning(warning)
    valid: list[str] = []
    for text in task_uuids:
        try:
            valid.append(parse_task_uuid(text))
        except errors.InvalidTaskId as exc:
            done(TaskResult(str(text).strip(), "failed", error=str(exc)))
    downloads = obtain_many(settings, valid, jobs=jobs, wait=wait, library=library, online_access=addon.online_access())
    try:
        for task_uuid, outcome, seconds in downloads:
            if isinstance(outcome, errors.TriverseError):
                done(TaskResult(task_uuid, "failed", seconds=round(seconds, 3), error=str(outcome)))
                continue
            try:
                imported = scene_import.import_asset(context, outcome)
            except Exception as exc:
                if not isinstance(exc, errors.TriverseError):
                    log.error("Import of %s failed unexpectedly", task_uuid, exc_info=exc)
                done(
                    TaskResult(
                        task_uuid, "failed", outcome.format, outcome.size, round(seconds, 3), error=errors.describe(exc)
                    )
                )
                continue
            finally:
                outcome.cleanup()
            done(
                TaskResult(
                    task_uuid,
                    "imported",
                    outcome.format,
                    outcome.size,
                    round(seconds + imported.seconds, 3),
                    len(imported.objects),
                    "library" if outcome.from_library else "network",
                )
            )
    finally:
        downloads.close()  # on an interrupt: cancels what still runs and removes its files
        lookups.changed("library")
        library_module.wait_for_pending()  # the records of what was imported, before a script exits
        asset_store.wait()  # and their assets
    return results
