"""A generated model into the scene: imported into a collection named after its prompt (or image), reported,
and marked "Imported" in My Generations; and what stopping a generation means, said once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from . import lookups, scene_import, stores
from .reporting import report_failure, report_imported

if TYPE_CHECKING:
    from ...service.jobs import Job
    from ...service.obtain import Asset


def import_generated(
    operator: bpy.types.Operator,
    context: bpy.types.Context,
    asset: Asset,
    prompt: str,
    image_path: str = "",
    flow: str = "",
) -> set[str]:
    """Import a generated model (its temporary files removed after), report it, mark it in My Generations."""
    try:
        imported = scene_import.import_generated(context, asset, prompt, image_path, flow)
    except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
        return report_failure(operator, exc)
    finally:
        asset.cleanup()
        lookups.changed("library")
    stores.mark_imported(asset.task_uuid)
    report_imported(operator, imported, generated=True)
    return {"FINISHED"}


def stopped_message(task_uuid: str) -> str:
    """What the user reads after stopping a watch: the task is not cancelled, it goes on."""
    return (
        f"Stopped watching task {task_uuid[:8]}: it keeps running on Triverse and stays in My Generations, "
        "where you can import it when it is done."
    )


def report_stopped(operator: bpy.types.Operator, job: Job) -> set[str]:
    """Esc or the X button: the watch stops, the task does not (it stays in My Generations)."""
    if job.task_uuid:
        operator.report({"WARNING"}, stopped_message(job.task_uuid))
    else:
        operator.report(
            {"WARNING"},
            "Generation stopped before Triverse confirmed the task: if it was created, it appears on the "
            "Triverse web app; nothing was added to the scene.",
        )
    return {"CANCELLED"}
