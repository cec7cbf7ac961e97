# mypy: disable-error-code="valid-type"
"""The Import panel of the Triverse sidebar tab: the UUID field and Import button, downloads in progress with
their preview, and this session's recent imports."""

from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty, PointerProperty, StringProperty

from ...service.errors import human_size
from ..common import addon, scene_import
from ..common.job_progress import JOB_PREVIEWS, draw_progress, is_generation, job_label, running_jobs


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
        settings = addon.key_and_url(context)

        if not settings.api_key:
            box = layout.box()
            box.label(text="No API key is set", icon="ERROR")
            op = box.operator("preferences.addon_show", text="Set API Key in Preferences", icon="PREFERENCES")
            op.module = addon.ADDON_ID
        if not addon.online_access():
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

        for job in [j for j in running_jobs() if not is_generation(j)]:  # generations: in Generate's panel
            box = layout.box()
            row = box.row()
            row.label(text=job_label(job), icon="URL")
            cancel = row.operator("triverse.cancel_import", text="", icon="CANCEL")
            cancel.task_uuid = job.task_uuid
            icon = JOB_PREVIEWS.icon(job.key)
            if icon:
                box.template_icon(icon_value=icon, scale=6.0)
            draw_progress(box, job)

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
                col.label(text=f"{record.format.upper()}  {human_size(record.size)}  {source}")


_register_classes, _unregister_classes = addon.classes_registration((TRIVERSE_PG_sidebar, TRIVERSE_PT_import))


def register() -> None:
    """The panel and its state (on the window manager: never saved in a .blend)."""
    _register_classes()
    bpy.types.WindowManager.triverse = PointerProperty(type=TRIVERSE_PG_sidebar)


def unregister() -> None:
    """Remove what register() added."""
    del bpy.types.WindowManager.triverse
    _unregister_classes()
