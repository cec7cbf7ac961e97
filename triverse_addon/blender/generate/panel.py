"""The Generate panels of the Triverse sidebar tab: Text or Image, the options, then the price, the Generate
button (disabled with the reason) and the generations being watched. `draw()` only reads what `state` checked
and what `price` fetched: no request, no file read."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bpy

from ..common import lookups, redraw
from ..common.job_progress import draw_progress, running_jobs
from ..common.layout import alert, lines
from .price import draw_price
from .state import problems, state, validate

if TYPE_CHECKING:
    from ...service.jobs import Job


def generation_jobs() -> list[Job]:
    """The generations the sidebar is watching now (texturing and remeshing are in Scene Tools)."""
    return [job for job in running_jobs() if getattr(job, "kind", "") == "generate"]


def validate_now(context: bpy.types.Context) -> None:
    """Check the panel's state (from a timer: the state changed outside the panel, or a first draw)."""
    if hasattr(context.window_manager, "triverse_generate"):
        validate(state(context))
        redraw.tag_panels()


class TRIVERSE_PT_generate(bpy.types.Panel):
    """Generate a model from a prompt or an image"""

    bl_label = "Generate"
    bl_idname = "TRIVERSE_PT_generate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"

    def draw(self, context: bpy.types.Context) -> None:
        """Text or Image, then the prompt or the image source; reasons in red under the fields."""
        layout = self.layout
        st = state(context)
        found = problems(st, context)
        if found is None:  # changed outside the panel (or first draw): checked on the next tick
            lookups.after_draw(validate_now)
            found = {}
        layout.row().prop(st, "mode", expand=True)
        col = layout.column(align=False)
        if st.mode == "TEXT":
            col.label(text="Prompt")
            col.prop(st, "prompt", text="", icon="FONTPREVIEW")
            alert(col, found.get("prompt"))
            col.label(text="Avoid (optional)")
            col.prop(st, "negative_prompt", text="")
        else:
            col.prop(st, "image_source", text="")
            if st.image_source == "FILE":
                col.prop(st, "image_path", text="")
            elif st.image_source == "BLEND":
                col.prop_search(st, "image_name", bpy.data, "images", text="")
            elif st.image_source == "VIEWPORT":
                lines(col, "The viewport is captured when you press Generate", "INFO")
            else:
                lines(col, "The camera's view is captured when you press Generate", "INFO")
            alert(col, found.get("image"))


class TRIVERSE_PT_generate_options(bpy.types.Panel):
    """What kind of model to make"""

    bl_label = "Options"
    bl_idname = "TRIVERSE_PT_generate_options"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"
    bl_parent_id = "TRIVERSE_PT_generate"

    def draw(self, context: bpy.types.Context) -> None:
        """Textured or mesh only, polygon limit, texture size (textured only), turbo."""
        layout = self.layout
        st = state(context)
        found = problems(st, context) or {}
        layout.row().prop(st, "output", expand=True)
        col = layout.column()
        col.prop(st, "polygon_limit")
        alert(col, found.get("polygon_limit"))
        if st.output == "MODEL":
            row = col.row(align=True)
            row.label(text="Texture")
            row.prop(st, "texture_size", expand=True)
            alert(col, found.get("texture_size"))
        col.prop(st, "turbo")


class TRIVERSE_PT_generate_run(bpy.types.Panel):
    """The price, the Generate button, and the generations being watched"""

    bl_label = "Generate Now"
    bl_idname = "TRIVERSE_PT_generate_run"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"
    bl_parent_id = "TRIVERSE_PT_generate"
    bl_options = {"HIDE_HEADER"}

    def draw(self, context: bpy.types.Context) -> None:
        """Cost and balance, then Generate (disabled with the reason), then running generations."""
        layout = self.layout
        st = state(context)
        found = problems(st, context)
        short = draw_price(layout, context)
        row = layout.row()
        row.scale_y = 1.5
        row.enabled = not found and not short
        row.operator("triverse.generate_from_panel", text="Generate", icon="SHADERFX")
        if found:
            alert(layout, "Fix the option marked in red above")
        elif short:
            alert(layout, short)
        for job in generation_jobs():
            draw_job(layout.box(), job)


def draw_job(box: bpy.types.UILayout, job: Job) -> None:
    """One generation being watched: what, where it is, an X to stop watching, and what that means."""
    request = getattr(job, "request", None)
    title = (getattr(request, "prompt", "") or os.path.basename(getattr(request, "image_path", "") or "")) or "Model"
    row = box.row(align=True)
    row.label(text=title[:40], icon="SHADERFX")
    task_uuid = getattr(job, "task_uuid", None)
    if task_uuid:
        stop = row.operator("triverse.generation_stop", text="", icon="X", emboss=False)
        stop.task_uuid = task_uuid
    draw_progress(box, job)
    if task_uuid:
        note = box.column(align=True)
        note.scale_y = 0.8
        note.label(text="X stops watching; the task")
        note.label(text="keeps running on Triverse.")


classes = (TRIVERSE_PT_generate, TRIVERSE_PT_generate_options, TRIVERSE_PT_generate_run)
