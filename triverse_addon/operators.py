# mypy: disable-error-code="valid-type"
"""Operators: import a task (synchronous from scripts, non-blocking from the sidebar), cancel, library."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import config, core, errors, preferences, scene_import, ui
from .client import TriverseClient

log = logging.getLogger(__name__)

TIMER_STEP = 0.1  # seconds between looks at the worker; cancel and progress are never later than this
REDRAW_STEP = 0.25  # seconds between redraws of the progress shown


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


def _sidebars(context: bpy.types.Context) -> list[bpy.types.Region]:
    """The sidebar regions of every 3D viewport."""
    return [
        region
        for window in context.window_manager.windows
        if window.screen is not None
        for area in window.screen.areas
        if area.type == "VIEW_3D"
        for region in area.regions
        if region.type == "UI"
    ]


def _redraw_statusbar(context: bpy.types.Context) -> None:
    """The status bar is one of a window's global areas, out of reach of screen.areas: setting the
    workspace's status text redraws it (with our progress item), and says how to cancel, as Blender's
    own modal tools do."""
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set("Esc: cancel the Triverse download" if core.Job.active() else None)


def redraw_ui(context: bpy.types.Context) -> None:
    """Redraw the 3D viewports' sidebars and the status bar, not whole viewports (costly): when a
    download starts or ends."""
    for region in _sidebars(context):
        region.tag_redraw()
    _redraw_statusbar(context)


class _ProgressRedraw:
    """Redraws of the progress, shared by every running import: ONE region per event-loop pass (the
    sidebars or the status bar, in turn), at most every REDRAW_STEP. Each region redraw costs tens of
    ms with software OpenGL: both in one tick (or one per running download) doubled the longest stall."""

    def __init__(self) -> None:
        self.at = 0.0
        self.next = "sidebar"
        self.stale: set[str] = set()

    def tick(self, context: bpy.types.Context, changed: bool) -> None:
        """On a timer tick: note a change, and redraw one stale place if it is time."""
        if changed:
            self.stale.update(("sidebar", "statusbar"))
        now = time.monotonic()
        if not self.stale or now - self.at < REDRAW_STEP:
            return
        place = self.next if self.next in self.stale else next(iter(self.stale))
        if place == "statusbar":
            _redraw_statusbar(context)
        else:
            for region in _sidebars(context):
                region.tag_redraw()
        self.stale.discard(place)
        self.at, self.next = now, "sidebar" if place == "statusbar" else "statusbar"

    def started(self, context: bpy.types.Context) -> None:
        """A download starts: the sidebars now (the click on Import redraws them anyway), the status bar
        on the next turn."""
        for region in _sidebars(context):
            region.tag_redraw()
        self.stale.add("statusbar")
        self.at, self.next = time.monotonic(), "statusbar"


progress_redraw = _ProgressRedraw()


class TRIVERSE_OT_import_task(bpy.types.Operator):
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

    _job: core.Job | None = None
    _timer: bpy.types.Timer | None = None
    _shown: tuple[object, ...] = ()

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
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_STEP, window=context.window)
        wm.modal_handler_add(self)
        progress_redraw.started(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Look at the worker on each timer tick; import on the main thread when it is done."""
        job = self._job
        if job is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS" and job is newest_job():
            job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":  # any timer's tick: polling a job costs microseconds
            return {"PASS_THROUGH"}
        finished = job.poll()
        if not finished:
            if job.preview is not None:
                ui.load_preview(job)  # here, once, when the worker hands it over; never in draw()
            self._redraw_if_changed(context, job)
            return {"PASS_THROUGH"}
        self._stop(context)
        if job.library_warning:
            self.report({"WARNING"}, job.library_warning)
        if job.error is not None:
            return report_failure(self, job.error)
        assert job.result is not None
        return self._import(context, job.result)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): stop the download too."""
        if self._job is not None:
            self._job.cancel()
            self._job.join(1.0)  # nothing polls this job again: let the worker remove its partial file
        self._stop(context)

    def _redraw_if_changed(self, context: bpy.types.Context, job: core.Job) -> None:
        """Redraw the progress when what it shows changed: drawing is the main thread's real cost during
        a download (tens of ms per region redraw with software OpenGL), so one region at a time."""
        shown = (job.phase, job.received, job.status, job.preview)
        changed, self._shown = shown != self._shown, shown
        progress_redraw.tick(context, changed)

    def _stop(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._job is not None:
            ui.forget_preview(self._job)
            self._job.finish()
        redraw_ui(context)

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


def newest_job() -> core.Job | None:
    """The most recently started job: the one Esc cancels."""
    jobs = core.Job.active()
    return jobs[-1] if jobs else None


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
