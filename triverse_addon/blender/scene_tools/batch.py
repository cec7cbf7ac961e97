"""Texture or remesh objects synchronously: the console's operators and `scripts/texture.py` (`blender -b`) run this.

Each group's model is exported (main thread), the tasks run side by side on a bounded pool
(`service.scene_tools.scene_many`: upload, create charged once, watch, obtain), and each result is put in its
original's place in the order given (main thread). One object's failure never stops the others; a
KeyboardInterrupt stops what still runs (the tasks go on on the service, in My Generations) and propagates::

    import importlib, bpy
    pkg = next(m for m in bpy.context.preferences.addons.keys() if m.rsplit(".", 1)[-1] == "triverse")
    batch = importlib.import_module(pkg + ".blender.scene_tools.batch")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import bpy

from ...service import errors
from ...service.generation_request import new_order_id
from ..common import addon, lookups, scene_placement, stores
from .export import Exported, Group, export_group, leave_edit_mode

if TYPE_CHECKING:
    from ...service.scene_request import SceneRequest

log = logging.getLogger(__name__)

RequestFor = Callable[[str], "SceneRequest"]  # the object's name -> its request


@dataclass
class SceneResult:
    """One object's outcome (a line of `--report`)."""

    object: str
    flow: str
    status: str = "failed"  # "placed", "created" (not waited for) or "failed"
    task_uuid: str = ""
    cost: int | None = None
    seconds: float = 0.0
    report: str = ""  # the topology before and after, as reported
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        """For JSON."""
        return asdict(self)


def export_all(context: bpy.types.Context, groups: list[Group], requests: list[SceneRequest]) -> list[Exported]:
    """Check the options (one check: the same for every object), then write each group's model."""
    problems = requests[0].validate()
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))
    with_materials = requests[0].flow == "model-remesh"  # texturing replaces them: geometry goes up
    exported: list[Exported] = []
    try:
        for group in groups:
            exported.append(export_group(context, group, with_materials))
    except BaseException:
        for each in exported:
            each.cleanup()
        raise
    return exported


def run(
    context: bpy.types.Context,
    groups: list[Group],
    request_for: RequestFor,
    *,
    wait: bool = True,
    jobs: int = 4,
    on_result: Callable[[SceneResult], None] | None = None,
) -> list[SceneResult]:
    """The tasks for `groups` (created, and with `wait` their results placed); one result per object."""
    from ...service.api import TriverseClient  # loaded here, on the main thread, before any worker runs
    from ...service.obtain import open_library
    from ...service.scene_tools import create_scene_task, scene_many

    leave_edit_mode(context)
    requests = [request_for(group.first.name) for group in groups]
    exported = export_all(context, groups, requests)
    settings = addon.get_settings(context)
    store = stores.generations()
    results: list[SceneResult] = []

    def done(result: SceneResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    try:
        if not wait:
            with TriverseClient(settings, online_access=addon.online_access()) as client:
                for req, exp in zip(requests, exported, strict=True):
                    started = time.monotonic()
                    created = create_scene_task(
                        client, req, exp.path, new_order_id(), store=store, has_textures=exp.has_textures
                    )
                    for name in exp.names:
                        done(SceneResult(name, req.flow, "created", created.task_uuid, created.cost_credits,
                                         round(time.monotonic() - started, 3)))  # fmt: skip
            return results
        library, warning = open_library(settings)
        if warning:
            log.warning("%s", warning)
        items = [(req, exp.path, exp.has_textures) for req, exp in zip(requests, exported, strict=True)]
        outcomes = scene_many(settings, items, jobs=jobs, library=library, store=store,
                              online_access=addon.online_access())  # fmt: skip
        try:
            for outcome, exp in zip(outcomes, exported, strict=False):
                _place(context, outcome, exp, done)
        finally:
            outcomes.close()  # on an interrupt: stops what still runs (the tasks go on on the service)
    finally:
        for each in exported:
            each.cleanup()
        lookups.changed("credits", "library")
    return results


def _place(context: bpy.types.Context, outcome: object, exp: Exported, done: Callable[[SceneResult], None]) -> None:
    """Put one outcome's model in its objects' places (main thread), one result per object."""
    request, created, asset, seconds = (getattr(outcome, n) for n in ("request", "created", "result", "seconds"))
    task_uuid = created.task_uuid if created is not None else ""
    cost = created.cost_credits if created is not None else None
    if isinstance(asset, errors.TriverseError):
        for name in exp.names:
            done(SceneResult(name, request.flow, "failed", task_uuid, cost, round(seconds, 3), error=str(asset)))
        return
    try:
        for name in exp.names:
            started = time.monotonic()
            try:
                (line,) = scene_placement.place_asset(context, asset, [name], request.flow, request.prompt)
            except Exception as exc:
                if not isinstance(exc, errors.TriverseError):
                    log.error("Placing the result of %s failed unexpectedly", task_uuid[:8], exc_info=exc)
                done(SceneResult(name, request.flow, "failed", task_uuid, cost, round(seconds, 3),
                                 error=errors.describe(exc)))  # fmt: skip
                continue
            status = "failed" if " is gone:" in line else "placed"
            done(SceneResult(name, request.flow, status, task_uuid, cost,
                             round(seconds + time.monotonic() - started, 3), report=line,
                             error=line if status == "failed" else ""))  # fmt: skip
    finally:
        asset.cleanup()
    stores.mark_imported(task_uuid)
