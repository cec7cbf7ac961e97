# mypy: disable-error-code="valid-type"
"""Texture or remesh the selected objects, the result in each original's place:

    bpy.ops.triverse.texture_selected(prompt="weathered oak planks")        # text-to-texture
    bpy.ops.triverse.texture_selected(image_path="/path/ref.png")           # texture-model (the image uploaded)
    bpy.ops.triverse.remesh_selected(polygon_limit=5000)                    # model-remesh
    bpy.ops.triverse.restore_original()    # the active result's original shown again (run again: swapped back)

From the console and scripts they are synchronous (`wait=False`: the tasks are created and their UUIDs reported);
from the sidebar each object's task runs as a job of its own (`triverse.scene_job` watches it), side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ...service import errors
from ...service.generation_request import POLYGON_RANGE, new_order_id
from ..common import addon, lookups, scene_placement, stores
from ..common.generated import report_stopped
from ..common.job_progress import running_jobs
from ..common.modal_job import ModalJob
from ..common.reporting import report_failure
from ..common.scene_placement import place_asset

if TYPE_CHECKING:
    from ...service.jobs import Job
    from ...service.scene_request import SceneRequest

WHAT = {"text-to-texture": "texturing", "texture-model": "texturing", "model-remesh": "remeshing"}


class _SceneTool:
    """What the two operators share: the selection checked and exported, then the tasks."""

    wait: BoolProperty(
        name="Wait",
        description="Wait for the tasks and put each result in its original's place; off, return once created",
        default=True,
        options={"SKIP_SAVE"},
    )

    def request(self, source_object: str) -> SceneRequest:
        """The request for one object (the operator's arguments)."""
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronously: the console, scripts and `blender -b` use this."""
        from . import batch  # the synchronous core and the exporter: loaded when first used, not at Blender's start
        from .export import selected_groups

        flow = ""
        try:
            groups = selected_groups(context)
            flow = self.request(groups[0].first.name).flow
            results = batch.run(context, groups, self.request, wait=self.wait)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, WHAT.get(flow, "texturing"))
        failed = [r for r in results if r.status == "failed"]
        if self.wait is False:
            uuids = ", ".join(dict.fromkeys(r.task_uuid for r in results))
            self.report({"INFO"}, f"Created Triverse tasks {uuids}: in My Generations, where Import places each "
                        "result beside its original.")  # fmt: skip
            return {"FINISHED"}
        for result in results:
            if result.status == "placed":
                self.report({"INFO"}, result.report)
        if failed and len(failed) == len(results):
            self.report({"ERROR"}, "; ".join(dict.fromkeys(r.error for r in failed)))
            return {"CANCELLED"}
        for result in failed:
            self.report({"WARNING"}, f"{result.object}: {result.error}")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the sidebar: each object's task on a worker thread, watched side by side."""
        if not self.wait:
            return self.execute(context)  # type: ignore[no-any-return]
        from ...service.scene_tools import SceneJob
        from . import batch
        from .export import leave_edit_mode, selected_groups

        flow = ""
        try:
            leave_edit_mode(context)
            groups = selected_groups(context)
            requests = [self.request(group.first.name) for group in groups]
            flow = requests[0].flow
            exported = batch.export_all(context, groups, requests)
            settings = addon.get_settings(context)
            jobs = []
            for req, exp in zip(requests, exported, strict=True):
                job = SceneJob.begin(
                    settings,
                    req,
                    exp.path,
                    new_order_id(),
                    store=stores.generations(),
                    has_textures=exp.has_textures,
                    online_access=addon.online_access(),
                    cleanup=exp.cleanup,
                )
                job.targets = exp.names  # type: ignore[attr-defined]
                jobs.append(job)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, WHAT.get(flow, "texturing"))
        for job in jobs:
            bpy.ops.triverse.scene_job("INVOKE_DEFAULT", key=job.key)
        return {"FINISHED"}


class TRIVERSE_OT_texture_selected(_SceneTool, bpy.types.Operator):
    """Texture the selected mesh objects with Triverse, from a prompt or a reference image; each result takes its
    original's place (the original is hidden, never deleted)"""

    bl_idname = "triverse.texture_selected"
    bl_label = "Texture Selected"
    bl_options = {"UNDO"}  # no REGISTER: a redo would create (and charge) new tasks

    prompt: StringProperty(name="Prompt", description="The texture, in words", options={"SKIP_SAVE"})
    image_path: StringProperty(
        name="Image",
        description="A reference image (PNG, JPEG or WebP): set, it textures from the image",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
    )
    texture_size: IntProperty(
        name="Texture Size", description="1024, 2048 or 4096 pixels", default=1024, options={"SKIP_SAVE"}
    )
    polygon_limit: IntProperty(
        name="Polygon Limit",
        default=1_000_000,
        soft_min=POLYGON_RANGE[0],
        soft_max=POLYGON_RANGE[1],
        options={"SKIP_SAVE"},
    )

    def request(self, source_object: str) -> SceneRequest:
        """text-to-texture with a prompt, texture-model with an image."""
        from ...service.scene_request import SceneRequest

        image = bpy.path.abspath(self.image_path) if self.image_path else ""
        return SceneRequest(
            flow="texture-model" if image else "text-to-texture",
            prompt="" if image else self.prompt,
            image_path=image,
            polygon_limit=self.polygon_limit,
            texture_size=self.texture_size,
            source_object=source_object,
        )


class TRIVERSE_OT_remesh_selected(_SceneTool, bpy.types.Operator):
    """Remesh the selected mesh objects with Triverse at a polygon count; each result takes its original's place
    (the original is hidden, never deleted)"""

    bl_idname = "triverse.remesh_selected"
    bl_label = "Remesh Selected"
    bl_options = {"UNDO"}

    polygon_limit: IntProperty(
        name="Polygon Limit",
        description="Most polygons of the new mesh",
        default=10_000,
        soft_min=POLYGON_RANGE[0],
        soft_max=POLYGON_RANGE[1],
        options={"SKIP_SAVE"},
    )

    def request(self, source_object: str) -> SceneRequest:
        """model-remesh."""
        from ...service.scene_request import SceneRequest

        return SceneRequest(flow="model-remesh", polygon_limit=self.polygon_limit, source_object=source_object)


class TRIVERSE_OT_scene_job(ModalJob, bpy.types.Operator):
    """Watch one object's texturing or remeshing task and put its result in the object's place"""

    bl_idname = "triverse.scene_job"
    bl_label = "Triverse Scene Task"
    bl_options = {"INTERNAL", "UNDO"}

    key: StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Watch the job started by Texture or Remesh Selected."""
        job = next((j for j in running_jobs() if j.key == self.key), None)
        if job is None:
            return {"CANCELLED"}
        return self.run_modal(context, job)

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Nothing to do without a window: the selected objects' operators are synchronous there."""
        return {"CANCELLED"}

    def job_done(self, context: bpy.types.Context, job: Job) -> set[str]:
        """Put the result in place, or say why not."""
        request = job.request  # type: ignore[attr-defined]
        lookups.changed("credits", "library")
        if isinstance(job.error, errors.Cancelled):
            return report_stopped(self, job)
        if job.error is not None:
            return report_failure(self, job.error, WHAT[request.flow])
        asset = job.result
        assert asset is not None
        try:
            lines = place_asset(
                context, asset, list(getattr(job, "targets", [request.source_object])), request.flow, request.prompt
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, WHAT[request.flow])
        finally:
            asset.cleanup()
        stores.mark_imported(asset.task_uuid)
        for line in lines:
            self.report({"INFO"}, line)
        return {"FINISHED"}


class TRIVERSE_OT_restore_original(bpy.types.Operator):
    """Show the original of the active Triverse result again and hide the result; run again to swap back"""

    bl_idname = "triverse.restore_original"
    bl_label = "Restore Original"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Swap the result and its original."""
        try:
            shown = scene_placement.swap(context, context.view_layer.objects.active)
        except LookupError as exc:
            self.report({"WARNING"}, str(exc))
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            "The original is shown, the result hidden."
            if shown == "original"
            else "The result is shown, the original hidden.",
        )
        return {"FINISHED"}


classes = (
    TRIVERSE_OT_texture_selected,
    TRIVERSE_OT_remesh_selected,
    TRIVERSE_OT_scene_job,
    TRIVERSE_OT_restore_original,
)
