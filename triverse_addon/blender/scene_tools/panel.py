# mypy: disable-error-code="valid-type"
"""The Scene Tools panel, under Generate: texture the selected objects from words or an image, or remesh them,
priced before spending (one task per object), with Restore Original for the active result. `draw()` only reads:
the selection (in memory), the price fetched off the main thread, the jobs running."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ...service.generation_request import POLYGON_RANGE, TEXTURE_SIZES
from ...service.lookups import Latest
from ..common import addon, image_input, lookups, scene_placement, temp_images
from ..common.job_progress import draw_progress, job_label, running_jobs
from ..common.layout import alert, lines
from ..common.reporting import quiet_reason, report_failure

if TYPE_CHECKING:
    from ...service.generation_api import Quote
    from ...service.scene_request import SceneRequest

QUOTE: Latest[Quote] = Latest(debounce=0.4)


def _on_change(self: TRIVERSE_PG_scene_tools, context: bpy.types.Context) -> None:
    ask_price(context)


class TRIVERSE_PG_scene_tools(bpy.types.PropertyGroup):
    """The Scene Tools panel's state (on the window manager: never saved in a .blend)."""

    mode: EnumProperty(
        name="Tool",
        items=(
            ("TEXT", "Texture: Words", "Texture the selected objects from a prompt", "FONTPREVIEW", 0),
            ("IMAGE", "Texture: Image", "Texture the selected objects from a reference image", "IMAGE_DATA", 1),
            ("REMESH", "Remesh", "New topology at a polygon count", "MOD_REMESH", 2),
        ),
        default="TEXT",
        update=_on_change,
    )
    prompt: StringProperty(name="Prompt", description="The texture, in words (at least 3 characters)")
    image_source: EnumProperty(
        name="Image From",
        items=(
            ("FILE", "File", "An image file on disk", "FILE", 0),
            ("BLEND", "Image in .blend", "An image of this .blend file", "IMAGE", 1),
            (
                "VIEWPORT",
                "Viewport",
                "What the active 3D viewport shows, captured when you press the button",
                "VIEW3D",
                2,
            ),
        ),
        default="FILE",
    )
    image_path: StringProperty(name="Image File", subtype="FILE_PATH")
    image_name: StringProperty(name="Image", description="An image of this .blend file")
    texture_size: EnumProperty(
        name="Texture",
        items=tuple((str(s), str(s), f"{s} x {s} pixel textures") for s in TEXTURE_SIZES),
        default="1024",
        update=_on_change,
    )
    polygon_limit: IntProperty(
        name="Polygons",
        description="Most polygons of the new mesh (1,000 to 1,500,000)",
        default=10_000,
        min=1,
        soft_min=POLYGON_RANGE[0],
        soft_max=POLYGON_RANGE[1],
        step=1000,
        update=_on_change,
    )


def state(context: bpy.types.Context) -> TRIVERSE_PG_scene_tools:
    """The panel's state of this session."""
    return context.window_manager.triverse_scene_tools  # type: ignore[no-any-return]


def request_for(st: TRIVERSE_PG_scene_tools, source_object: str = "", image_path: str = "") -> SceneRequest:
    """The request the panel describes for one object (the image: the file prepared for upload)."""
    from ...service.scene_request import SceneRequest

    if st.mode == "REMESH":
        return SceneRequest(flow="model-remesh", polygon_limit=st.polygon_limit, source_object=source_object)
    image = st.mode == "IMAGE"
    return SceneRequest(
        flow="texture-model" if image else "text-to-texture",
        prompt="" if image else st.prompt,
        image_path=image_path if image else "",
        texture_size=int(st.texture_size),
        source_object=source_object,
    )


def meshes_selected(context: bpy.types.Context) -> tuple[int, str]:
    """(how many mesh objects are selected, why the buttons are off: "" when they are on)."""
    selected = list(context.selected_objects)
    meshes = [ob for ob in selected if ob.type == "MESH"]
    if not selected:
        return 0, "Select the mesh objects to work on"
    if not meshes:
        return 0, "No mesh among the selected objects"
    if any(ob.library is not None for ob in meshes):
        return len(meshes), "A selected object is linked from another file"
    return len(meshes), ""


def ask_price(context: bpy.types.Context, force: bool = False) -> None:
    """Ask for the price of one object's task (debounced), unless known, on its way, or not allowed."""
    if not hasattr(context.window_manager, "triverse_scene_tools") or not _priced_selection(context):
        return
    key, why_not = _price_key(context)
    if why_not or not (force or QUOTE.wants(key)):
        return
    from ...service.api import TriverseClient  # here, on the main thread: the worker below never imports
    from ...service.generation_api import quote

    req = request_for(state(context), image_path="image-to-price")
    full = addon.get_settings(context)

    def call() -> Quote:  # a worker thread: never bpy
        with TriverseClient(full, online_access=True) as client:
            return quote(client, req)

    QUOTE.want(key, call, force=True)
    lookups.ensure_timer()


def _priced_selection(context: bpy.types.Context) -> bool:
    """Whether mesh objects are selected: with none there is nothing to price (no request, no cost shown)."""
    try:
        return meshes_selected(context)[0] > 0
    except AttributeError:  # a context without a selection: priced as before
        return True


def _price_key(context: bpy.types.Context) -> tuple[Hashable, str]:
    st = state(context)
    settings, why_not = addon.why_no_request(context)
    req = request_for(st, image_path="image-to-price")
    return (req.flow, tuple(sorted(req.price_params().items())), settings.base_url, settings.api_key), why_not


def draw_price(layout: bpy.types.UILayout, context: bpy.types.Context, objects: int) -> None:
    """The price for the selected objects (one task each) and the balance, or a quiet line why not."""
    key, why_not = _price_key(context)
    col = layout.column(align=True)
    if why_not:
        lines(col, f"Price unknown: {why_not}", "INFO")
    elif not QUOTE.current(key):
        if not QUOTE.busy:
            lookups.after_draw(ask_price)
        col.label(text="Checking the price...", icon="SORTTIME")
    elif QUOTE.error is not None:
        lines(col, quiet_reason(QUOTE.error), "INFO")
    else:
        quote = QUOTE.value
        assert quote is not None
        count = max(objects, 1)
        each = f" ({quote.cost_credits:,} each)" if count > 1 else ""
        col.label(text=f"Cost: {quote.cost_credits * count:,} credits{each}")
        col.label(text=f"Balance: {quote.available_credits:,.0f} credits")


class TRIVERSE_PT_scene_tools(bpy.types.Panel):
    """Texture or remesh the selected objects"""

    bl_label = "Scene Tools"
    bl_idname = "TRIVERSE_PT_scene_tools"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"

    def draw(self, context: bpy.types.Context) -> None:
        """The tool, its options, the price, the button (disabled with the reason), running tasks, Restore."""
        layout = self.layout
        st = state(context)
        count, why_off = meshes_selected(context)
        layout.row().prop(st, "mode", expand=True)
        col = layout.column()
        if st.mode == "TEXT":
            col.prop(st, "prompt", text="", icon="FONTPREVIEW")
        elif st.mode == "IMAGE":
            col.prop(st, "image_source", text="")
            if st.image_source == "FILE":
                col.prop(st, "image_path", text="")
            elif st.image_source == "BLEND":
                col.prop_search(st, "image_name", bpy.data, "images", text="")
        if st.mode == "REMESH":
            col.prop(st, "polygon_limit")
        else:
            row = col.row(align=True)
            row.label(text="Texture")
            row.prop(st, "texture_size", expand=True)
        if count:  # nothing selected: no price asked nor shown, the reason under the button says what to do
            draw_price(layout, context, count)
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = not why_off
        label = "Remesh Selected" if st.mode == "REMESH" else "Texture Selected"
        suffix = f" ({count})" if count > 1 else ""
        row.operator("triverse.scene_tools_from_panel", text=label + suffix, icon="MOD_REMESH" if st.mode == "REMESH"
                     else "TEXTURE")  # fmt: skip
        if why_off:
            alert(layout, why_off)
        for job in [j for j in running_jobs() if getattr(j, "kind", "") == "scene"]:
            box = layout.box()
            row = box.row()
            row.label(text=f"{job.request.source_object or job_label(job)}", icon="MOD_REMESH")  # type: ignore[attr-defined]
            if job.task_uuid:
                stop = row.operator("triverse.generation_stop", text="", icon="X", emboss=False)
                stop.task_uuid = job.task_uuid
            draw_progress(box, job)
        if scene_placement.source_of(context.view_layer.objects.active) is not None:
            layout.operator("triverse.restore_original", icon="LOOP_BACK")


class TRIVERSE_OT_scene_tools_from_panel(bpy.types.Operator):
    """Texture or remesh the selected objects with the panel's options (the price is shown above)"""

    bl_idname = "triverse.scene_tools_from_panel"
    bl_label = "Texture or Remesh Selected"
    bl_options = {"INTERNAL"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the button: the tasks on worker threads."""
        return self._run(context, "INVOKE_DEFAULT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronously (scripts, the bpy module)."""
        return self._run(context, "EXEC_DEFAULT")

    def _run(self, context: bpy.types.Context, how: str) -> set[str]:
        st = state(context)
        try:
            prepared = None
            if st.mode == "IMAGE":
                prepared = image_input.prepare(context, st.image_source, st.image_path, st.image_name)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, "texturing")
        try:
            if st.mode == "REMESH":
                result = bpy.ops.triverse.remesh_selected(how, polygon_limit=st.polygon_limit)
            else:
                result = bpy.ops.triverse.texture_selected(
                    how,
                    prompt=st.prompt if st.mode == "TEXT" else "",
                    image_path=str(prepared.path) if prepared else "",
                    texture_size=int(st.texture_size),
                )
        except RuntimeError as exc:  # the operator reported it; a script gets it from here too
            result = {"CANCELLED"}
            self.report({"ERROR"}, str(exc).removeprefix("Error: ").strip())
        if prepared is not None:
            if how == "INVOKE_DEFAULT" and "FINISHED" in result:
                temp_images.keep_until_uploaded(prepared)  # the jobs upload it: removed once they have
            else:
                prepared.cleanup()
        lookups.changed("credits")
        return {"FINISHED"} if "FINISHED" in result else {"CANCELLED"}


classes = (TRIVERSE_PG_scene_tools, TRIVERSE_PT_scene_tools, TRIVERSE_OT_scene_tools_from_panel)
