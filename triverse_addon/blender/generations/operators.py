# mypy: disable-error-code="valid-type"
"""My Generations' row buttons, each with a `task_uuid`: `triverse.generation_import` (import its model again,
through the import path), `triverse.generation_again` (a new task with the same settings, charged again),
`triverse.generation_copy_uuid`, `triverse.generation_stop` (stop watching; the task goes on)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bpy
from bpy.props import StringProperty

from ..common import addon, scene_placement, stores
from ..common.generated import import_generated, stopped_message
from ..common.generation_input import operator_arguments, request_from
from ..common.job_progress import running_jobs
from ..common.modal_job import ModalJob
from ..common.reporting import report_failure

if TYPE_CHECKING:
    from ...service.jobs import Job
    from ...service.obtain import Asset


class TRIVERSE_OT_generation_import(ModalJob, bpy.types.Operator):
    """Import this generation's model (again) into the scene"""

    bl_idname = "triverse.generation_import"
    bl_label = "Import Generation"
    bl_options = {"UNDO", "INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def _names(self) -> tuple[str, str, str]:
        record = stores.generations().get(self.task_uuid)
        return (record.prompt, record.image_path, record.flow_name) if record is not None else ("", "", "")

    def _import(self, context: bpy.types.Context, asset: Asset) -> set[str]:
        """A texturing or remeshing result goes beside its original again when that is still in the file."""
        record = stores.generations().get(asset.task_uuid)
        if (
            record is None
            or record.flow_name not in scene_placement.SUFFIX
            or not bpy.data.objects.get(record.source_object)
        ):
            return import_generated(self, context, asset, *self._names())
        try:
            lines = scene_placement.place_asset(
                context, asset, [record.source_object], record.flow_name, record.texture_prompt
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        finally:
            asset.cleanup()
        stores.mark_imported(asset.task_uuid)
        for line in lines:
            self.report({"INFO"}, line)
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronously, through the import path (the library first)."""
        from ...service.api import TriverseClient
        from ...service.jobs import Job
        from ...service.obtain import obtain_asset, open_library
        from ...service.task_ids import parse_task_uuid

        try:
            task_uuid = parse_task_uuid(self.task_uuid)
            Job.refuse_if_busy(task_uuid)
            settings = addon.get_settings(context)
            library, _ = open_library(settings)
            with TriverseClient(settings, online_access=addon.online_access()) as client:
                asset = obtain_asset(client, task_uuid, library)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        return self._import(context, asset)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the list: download on a worker thread (the same job as Import)."""
        from ...service.jobs import Job
        from ...service.task_ids import parse_task_uuid

        try:
            task_uuid = parse_task_uuid(self.task_uuid)
            job = Job.start(addon.get_settings(context), task_uuid, online_access=addon.online_access())
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        self.task_uuid = task_uuid
        return self.run_modal(context, job)

    def job_done(self, context: bpy.types.Context, job: Job) -> set[str]:
        """Import what the worker obtained."""
        if job.error is not None:
            return report_failure(self, job.error)
        assert job.result is not None
        return self._import(context, job.result)


class TRIVERSE_OT_generation_again(bpy.types.Operator):
    """Generate again with the same settings: a new task (and a new charge)"""

    bl_idname = "triverse.generation_again"
    bl_label = "Generate Again"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the list: the sidebar's Generate, on a worker thread."""
        return self._again("INVOKE_DEFAULT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        """From a script: synchronous."""
        return self._again("EXEC_DEFAULT")

    def _again(self, how: str) -> set[str]:
        record = stores.generations().get(self.task_uuid)
        if record is None:
            self.report({"ERROR"}, f"Task {self.task_uuid[:8]} is not in My Generations.")
            return {"CANCELLED"}
        try:
            return bpy.ops.triverse.generate(  # type: ignore[no-any-return]
                how,
                **operator_arguments(request_from(record, image_path=record.image_path)),
                allow_duplicate=True,
                # The file itself when it is still there (a file_key may not be kept for ever), else its upload.
                image_file="" if record.image_path and os.path.isfile(record.image_path) else record.image_file,
            )
        except RuntimeError as exc:  # Generate reported it already; scripts get it from here too
            self.report({"ERROR"}, str(exc).removeprefix("Error: ").strip())
            return {"CANCELLED"}


class TRIVERSE_OT_generation_copy_uuid(bpy.types.Operator):
    """Copy this generation's task UUID to the clipboard"""

    bl_idname = "triverse.generation_copy_uuid"
    bl_label = "Copy Task UUID"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Put the full UUID on the clipboard."""
        context.window_manager.clipboard = self.task_uuid
        self.report({"INFO"}, f"Copied task UUID {self.task_uuid}.")
        return {"FINISHED"}


class TRIVERSE_OT_generation_stop(bpy.types.Operator):
    """Stop watching this generation; the task keeps running on Triverse and stays in My Generations"""

    bl_idname = "triverse.generation_stop"
    bl_label = "Stop Watching"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Stop the sidebar's job for the task (or the job's key, before the task exists), or its watch again."""
        job = next((j for j in running_jobs() if self.task_uuid and self.task_uuid in (j.key, j.task_uuid)), None)
        if job is not None:
            job.cancel()  # the job's modal reports it, once the worker has stopped
            return {"FINISHED"}
        if stores.stop_watching(self.task_uuid):
            self.report({"INFO"}, stopped_message(self.task_uuid))
            return {"FINISHED"}
        self.report({"WARNING"}, f"Task {self.task_uuid[:8]} is not being watched.")
        return {"CANCELLED"}


classes = (
    TRIVERSE_OT_generation_import,
    TRIVERSE_OT_generation_again,
    TRIVERSE_OT_generation_copy_uuid,
    TRIVERSE_OT_generation_stop,
)
