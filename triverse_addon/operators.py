# mypy: disable-error-code="valid-type"
"""Operators: import a task (synchronous from scripts, non-blocking from the sidebar), cancel, library."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import config, core, errors, preferences, scene_import
from .client import TriverseClient
from .modal_job import ModalJob

log = logging.getLogger(__name__)


def _prepare(context: bpy.types.Context, text: str) -> tuple[str, config.Settings]:
    """The task UUID and the settings in effect (the key and online access are checked by the client,
    before its first request, so that a model kept in the library imports offline)."""
    return core.parse_task_uuid(text), preferences.get_settings(context)


def report_failure(operator: bpy.types.Operator, exc: BaseException) -> set[str]:
    """The one place an exception becomes what the user sees; never a traceback, never FINISHED."""
    if isinstance(exc, errors.Cancelled):
        operator.report({"WARNING"}, "Triverse import cancelled: nothing was added to the scene.")
    else:
        if not isinstance(exc, errors.TriverseError):
            log.error("Triverse import failed unexpectedly", exc_info=exc)
        operator.report({"ERROR"}, errors.describe(exc))
    return {"CANCELLED"}


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
        try:
            task_uuid, settings = _prepare(context, self.task_uuid)
            core.Job.refuse_if_busy(task_uuid)  # also a cancelled job whose worker has not ended yet
            library, warning = core.open_library(settings)
            if warning:
                self.report({"WARNING"}, warning)
            # Adjust Last Operation (options.is_repeat) and Repeat Last run execute() while Blender waits:
            # never the network then. (Operator.is_repeat() only says the previous operator was this one.)
            if self.options.is_repeat or self.options.is_repeat_last:
                asset = core.obtain_from_library(task_uuid, library)
                if asset is None:
                    raise errors.TriverseError(
                        f"Task {task_uuid[:8]} is not in the library, and redoing an import never downloads "
                        "(it would freeze Blender): import it again from the sidebar."
                    )
                return self._import(context, asset)
            with TriverseClient(settings, online_access=preferences.online_access()) as client:
                asset = core.obtain_asset(client, task_uuid, library, wait=self.wait_timeout if self.wait else 0.0)
            return self._import(context, asset)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the sidebar: download on a worker thread while Blender stays responsive."""
        try:
            task_uuid, settings = _prepare(context, self.task_uuid)
            self._job = core.Job.start(
                settings,
                task_uuid,
                wait=self.wait_timeout if self.wait else 0.0,
                online_access=preferences.online_access(),
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        self.task_uuid = task_uuid
        return self.run_modal(context, self._job)

    def job_done(self, context: bpy.types.Context, job: core.Job) -> set[str]:
        """The download ended: import on the main thread, or say why not."""
        if job.library_warning:
            self.report({"WARNING"}, job.library_warning)
        if job.error is not None:
            return report_failure(self, job.error)
        assert job.result is not None
        return self._import(context, job.result)

    def _import(self, context: bpy.types.Context, asset: core.Asset) -> set[str]:
        try:
            imported = scene_import.import_asset(context, asset)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        finally:
            asset.cleanup()
            preferences.forget_library_summary()
        where = " from the library" if imported.from_library else ""
        count = len(imported.objects)
        self.report(
            {"INFO"},
            f"Imported {count} object{'s' if count != 1 else ''} from Triverse task {imported.task_uuid[:8]}{where} "
            f'into collection "{imported.collection.name}".',
        )
        return {"FINISHED"}


class TRIVERSE_OT_cancel_import(bpy.types.Operator):
    """Cancel this download; nothing is added to the scene and its partial file is removed"""

    bl_idname = "triverse.cancel_import"
    bl_label = "Cancel Triverse Import"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Ask the job's worker to stop at once."""
        job = core.Job.get(self.task_uuid)
        if job is None:
            self.report({"WARNING"}, "That import has already finished.")
            return {"CANCELLED"}
        job.cancel()
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


class TRIVERSE_OT_library_open(bpy.types.Operator):
    """Open the library folder in the system's file browser"""

    bl_idname = "triverse.library_open"
    bl_label = "Open Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Show the folder (created if needed)."""
        settings = preferences.get_settings(context)
        library, warning = core.open_library(settings)
        if library is None:
            self.report({"WARNING"}, warning or "The library is off in the preferences.")
            return {"CANCELLED"}
        path = str(library.root)
        if sys.platform == "win32":
            os.startfile(path)  # type: ignore[attr-defined]
        else:
            subprocess.Popen(["open" if sys.platform == "darwin" else "xdg-open", path])
        return {"FINISHED"}


class TRIVERSE_OT_library_clear(bpy.types.Operator):
    """Delete every model kept in the library (they will be downloaded again when imported)"""

    bl_idname = "triverse.library_clear"
    bl_label = "Clear Library"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first."""
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Remove every kept model."""
        settings = preferences.get_settings(context)
        library, warning = core.open_library(settings)
        if library is None:
            self.report({"WARNING"}, warning or "The library is off in the preferences.")
            return {"CANCELLED"}
        count = library.clear()
        preferences.forget_library_summary()
        self.report({"INFO"}, f"Removed {count} models from the Triverse library.")
        return {"FINISHED"}


classes = (
    TRIVERSE_OT_import_task,
    TRIVERSE_OT_cancel_import,
    TRIVERSE_OT_select_task_objects,
    TRIVERSE_OT_library_open,
    TRIVERSE_OT_library_clear,
)


def register() -> None:
    """Register the operators."""
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Stop every download (their partial files are removed), then unregister."""
    core.Job.cancel_all()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
