# mypy: disable-error-code="valid-type"
"""Import a task: synchronous from the console and scripts (`execute`), on a worker thread from the sidebar
(`invoke`, watched by `ModalJob`); select what a task imported."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from ...service import errors
from ..common import addon, lookups, scene_import
from ..common.modal_job import ModalJob
from ..common.reporting import report_failure, report_imported

if TYPE_CHECKING:
    from ...service.jobs import Job
    from ...service.obtain import Asset

# The service's modules (api, obtain, jobs, task_ids) are imported where they are first used, as Blender's own
# importers do: that keeps requests and urllib3 out of Blender's start (`common.startup` loads them meanwhile).


class TRIVERSE_OT_import_task(ModalJob, bpy.types.Operator):
    """Download the model of a Triverse task and import it into the scene"""

    bl_idname = "triverse.import_task"
    bl_label = "Import Triverse Task"
    bl_options = {"REGISTER", "UNDO"}

    task_uuid: StringProperty(
        name="Task UUID", description="The UUID of a Triverse task that has succeeded", options={"SKIP_SAVE"}
    )
    wait: BoolProperty(
        name="Wait",
        description="If the task is still running, wait for it to succeed, then import",
        default=False,
        options={"SKIP_SAVE"},
    )
    wait_timeout: FloatProperty(
        name="Wait Timeout",
        description="Longest wait for a running task, in seconds",
        default=600.0,
        min=1.0,
        options={"SKIP_SAVE"},
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        """The whole job, synchronously: the console, scripts and `blender -b` use this."""
        from ...service.api import TriverseClient
        from ...service.jobs import Job
        from ...service.obtain import obtain_asset, obtain_from_library, open_library
        from ...service.task_ids import parse_task_uuid

        try:
            task_uuid = parse_task_uuid(self.task_uuid)
            settings = addon.get_settings(context)
            Job.refuse_if_busy(task_uuid)  # also a cancelled job whose worker has not ended yet
            library, warning = open_library(settings)
            if warning:
                self.report({"WARNING"}, warning)
            # Adjust Last Operation (options.is_repeat) and Repeat Last run execute() while Blender waits:
            # never the network then. (Operator.is_repeat() only says the previous operator was this one.)
            if self.options.is_repeat or self.options.is_repeat_last:
                asset = obtain_from_library(task_uuid, library)
                if asset is None:
                    raise errors.TriverseError(
                        f"Task {task_uuid[:8]} is not in the library, and redoing an import never downloads "
                        "(it would freeze Blender): import it again from the sidebar."
                    )
                return self._import(context, asset)
            with TriverseClient(settings, online_access=addon.online_access()) as client:
                asset = obtain_asset(client, task_uuid, library, wait=self.wait_timeout if self.wait else 0.0)
            return self._import(context, asset)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the sidebar: download on a worker thread while Blender stays responsive."""
        from ...service.jobs import Job
        from ...service.task_ids import parse_task_uuid

        try:
            task_uuid = parse_task_uuid(self.task_uuid)
            job = Job.start(
                addon.get_settings(context),
                task_uuid,
                wait=self.wait_timeout if self.wait else 0.0,
                online_access=addon.online_access(),
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        self.task_uuid = task_uuid
        return self.run_modal(context, job)

    def job_done(self, context: bpy.types.Context, job: Job) -> set[str]:
        """The download ended: import on the main thread, or say why not."""
        if job.library_warning:
            self.report({"WARNING"}, job.library_warning)
        if job.error is not None:
            return report_failure(self, job.error)
        assert job.result is not None
        return self._import(context, job.result)

    def _import(self, context: bpy.types.Context, asset: Asset) -> set[str]:
        try:
            imported = scene_import.import_asset(context, asset)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        finally:
            asset.cleanup()
            lookups.changed("library")
        report_imported(self, imported)
        return {"FINISHED"}


class TRIVERSE_OT_select_task_objects(bpy.types.Operator):
    """Select the objects imported from this task and make its root active"""

    bl_idname = "triverse.select_task_objects"
    bl_label = "Select Task Objects"
    bl_options = {"REGISTER", "UNDO"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Select by the `triverse_task_uuid` tag."""
        objects = [ob for ob in scene_import.objects_of_task(self.task_uuid) if ob.name in context.view_layer.objects]
        if not objects:
            self.report({"WARNING"}, f"No objects from task {self.task_uuid[:8]} are in this scene.")
            return {"CANCELLED"}
        for ob in context.view_layer.objects:
            ob.select_set(False)
        for ob in objects:
            ob.select_set(True)
        chosen = set(objects)
        context.view_layer.objects.active = next((ob for ob in objects if ob.parent not in chosen), objects[0])
        self.report({"INFO"}, f"Selected {len(objects)} objects from task {self.task_uuid[:8]}.")
        return {"FINISHED"}


register, unregister = addon.classes_registration((TRIVERSE_OT_import_task, TRIVERSE_OT_select_task_objects))
