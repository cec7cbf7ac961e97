# mypy: disable-error-code="valid-type"
"""The Triverse tab of the 3D viewport's sidebar, and download progress in the status bar."""

from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty, PointerProperty, StringProperty

from . import config, core, errors, preferences, scene_import

_previews: dict[str, object] = {}  # "collection": bpy.utils.previews collection, created on register


class TRIVERSE_PG_sidebar(bpy.types.PropertyGroup):
    """What the sidebar holds while Blender runs (on the window manager: never saved in a .blend)."""

    task_uuid: StringProperty(
        name="Task UUID",
        description="Paste the UUID of a Triverse task (spaces, line breaks and capitals are fine)",
        default="",
        options={"SKIP_SAVE"},
    )
    wait: BoolProperty(
        name="Wait for the Task",
        description="If the task is still running, wait for it to succeed, then import",
        default=False,
        options={"SKIP_SAVE"},
    )


def _progress_text(job: core.Job) -> tuple[float | None, str]:
    """(fraction or None, text) for a job, e.g. (0.31, "12.3 MB of 40.0 MB (31%), 5.2 MB/s")."""
    if job.phase == "waiting" and job.status is not None:
        return (job.status.progress or 0) / 100, f"Task {job.status.describe()}"
    if job.phase in ("starting", "waiting"):  # a finished task whose download has not begun yet
        return None, "Starting download..."
    speed = f", {errors.human_size(job.speed)}/s" if job.speed else ""
    if job.total:
        fraction = min(job.received / job.total, 1.0)
        return fraction, f"{errors.human_size(job.received)} of {errors.human_size(job.total)} ({fraction:.0%}){speed}"
    return None, f"{errors.human_size(job.received)}{speed}"


def _draw_progress(layout: bpy.types.UILayout, job: core.Job) -> None:
    """A bar (Blender 4.0+) or a label, then the speed on its own line: the sidebar is narrow."""
    fraction, text = _progress_text(job)
    text, _, speed = text.partition("), ")
    text += ")" if speed else ""
    col = layout.column(align=True)
    if fraction is not None and hasattr(col, "progress"):  # UILayout.progress is Blender 4.0+
        col.progress(factor=fraction, type="BAR", text=text)
    else:
        col.label(text=text, icon="SORTTIME")
    if speed:
        col.label(text=speed)


def _preview_icon(job: core.Job) -> int:
    """Icon id of the task's preview image once `load_preview` has loaded it (draw() never decodes)."""
    pcoll = _previews.get("collection")
    if pcoll is None or job.key not in pcoll:  # type: ignore[operator]
        return 0
    return int(pcoll[job.key].icon_id)  # type: ignore[index]


def load_preview(job: core.Job) -> None:
    """Put the job's preview pixels (decoded by its worker) into the panel's collection, once, from the
    modal tick: no file read and no decoding on the main thread, none in draw()."""
    pcoll = _previews.get("collection")
    pixels = job.preview_pixels
    if pcoll is None or pixels is None or job.key in pcoll:  # type: ignore[operator]
        return
    preview = pcoll.new(job.key)  # type: ignore[attr-defined]
    preview.image_size = preview.icon_size = (pixels.width, pixels.height)
    preview.image_pixels_float.foreach_set(pixels.rgba)
    preview.icon_pixels_float.foreach_set(pixels.rgba)


def forget_preview(job: core.Job) -> None:
    """Release the job's preview image (its job is no longer shown)."""
    pcoll = _previews.get("collection")
    if pcoll is not None and job.key in pcoll:  # type: ignore[operator]
        del pcoll[job.key]  # type: ignore[attr-defined]


class TRIVERSE_PT_import(bpy.types.Panel):
    """Import Triverse models by task UUID"""

    bl_label = "Triverse"
    bl_idname = "TRIVERSE_PT_import"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"

    def draw(self, context: bpy.types.Context) -> None:
        """Notices, the UUID field and Import button, downloads in progress, recent imports."""
        layout = self.layout
        state = context.window_manager.triverse
        prefs = preferences.addon_preferences(context)
        settings = config.resolve(prefs.api_key if prefs else "", prefs.base_url if prefs else "")

        if not settings.api_key:
            box = layout.box()
            box.label(text="No API key is set", icon="ERROR")
            op = box.operator("preferences.addon_show", text="Set API Key in Preferences", icon="PREFERENCES")
            op.module = preferences.ADDON_ID
        if not preferences.online_access():
            box = layout.box()
            box.label(text="Online access is off in Blender", icon="ERROR")
            op = box.operator("screen.userpref_show", text="Allow Online Access...", icon="PREFERENCES")
            op.section = "SYSTEM"  # the Network panel, where "Allow Online Access" is

        col = layout.column(align=True)
        col.prop(state, "task_uuid", text="", icon="PASTEDOWN")
        row = col.row(align=True)
        row.scale_y = 1.4
        op = row.operator("triverse.import_task", text="Import", icon="IMPORT")
        op.task_uuid = state.task_uuid
        op.wait = state.wait
        layout.prop(state, "wait")

        for job in [j for j in core.Job.active() if getattr(j, "kind", "") != "generate"]:  # in Generate's panel
            box = layout.box()
            row = box.row()
            row.label(text=f"Task {job.task_uuid[:8]}", icon="URL")
            cancel = row.operator("triverse.cancel_import", text="", icon="CANCEL")
            cancel.task_uuid = job.task_uuid
            icon = _preview_icon(job)
            if icon:
                box.template_icon(icon_value=icon, scale=6.0)
            _draw_progress(box, job)

        if scene_import.RECENT:
            box = layout.box()
            box.label(text="Recent Imports", icon="TIME")
            for record in scene_import.RECENT:
                col = box.column(align=True)  # two lines: the sidebar is narrow
                row = col.row(align=True)
                when = time.strftime("%H:%M", time.localtime(record.when))
                source = "library" if record.from_library else "network"
                row.label(text=f"{record.task_uuid[:8]}  {when}")
                again = row.operator("triverse.import_task", text="", icon="FILE_REFRESH")
                again.task_uuid = record.task_uuid
                select = row.operator("triverse.select_task_objects", text="", icon="RESTRICT_SELECT_OFF")
                select.task_uuid = record.task_uuid
                col.label(text=f"{record.format.upper()}  {errors.human_size(record.size)}  {source}")


def draw_statusbar(self: bpy.types.Header, context: bpy.types.Context) -> None:
    """Downloads in progress, in the status bar, with a cancel button."""
    for job in core.Job.active():
        row = self.layout.row(align=True)
        fraction, text = _progress_text(job)
        label = f"Triverse {job.task_uuid[:8]}: {text}"
        if fraction is not None and hasattr(row, "progress"):
            row.progress(factor=fraction, type="BAR", text=label)
        else:
            row.label(text=label, icon="IMPORT")
        cancel = row.operator("triverse.cancel_import", text="", icon="CANCEL", emboss=False)
        cancel.task_uuid = job.task_uuid


classes = (TRIVERSE_PG_sidebar, TRIVERSE_PT_import)


def register() -> None:
    """Register the panel, its state and the status bar item."""
    import bpy.utils.previews

    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.triverse = PointerProperty(type=TRIVERSE_PG_sidebar)
    bpy.types.STATUSBAR_HT_header.append(draw_statusbar)
    _previews["collection"] = bpy.utils.previews.new()


def unregister() -> None:
    """Remove everything register() added."""
    import bpy.utils.previews

    pcoll = _previews.pop("collection", None)
    if pcoll is not None:
        bpy.utils.previews.remove(pcoll)  # type: ignore[arg-type]
    bpy.types.STATUSBAR_HT_header.remove(draw_statusbar)
    del bpy.types.WindowManager.triverse
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
