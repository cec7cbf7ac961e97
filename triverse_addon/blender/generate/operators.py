# mypy: disable-error-code="valid-type"
"""Generate a model: `bpy.ops.triverse.generate(prompt="...", negative_prompt="", image_path="", mesh_only=False,
polygon_limit=1000000, texture_size=1024, turbo=False, wait=True)` is synchronous (create, watch, import;
`wait=False` returns once the task exists and reports its UUID); from the sidebar (`invoke`) it runs on a worker
thread and Esc or the X stop the watch (the task goes on on the service). The panel's Generate button
(`triverse.generate_from_panel`) prepares the image and calls it with the panel's request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ...service import errors
from ...service.generation_request import POLYGON_RANGE, new_order_id
from ..common import addon, image_input, lookups, stores, temp_images
from ..common.generated import import_generated, report_stopped
from ..common.generation_input import operator_arguments, request_from
from ..common.job_progress import is_generation, running_jobs
from ..common.modal_job import ModalJob
from ..common.reporting import report_failure
from .state import state, validate

if TYPE_CHECKING:
    from ...service.generation_api import Created
    from ...service.jobs import Job

TICK = 1.0  # seconds between looks at running generations (their end changes the balance)
_seen_jobs: set[int] = set()


class TRIVERSE_OT_generate(ModalJob, bpy.types.Operator):
    """Generate a 3D model with Triverse from a text prompt or an image, and import it when it is done"""

    bl_idname = "triverse.generate"
    bl_label = "Generate with Triverse"
    # No REGISTER: "Adjust Last Operation" and Repeat Last would create (and charge) another task.
    bl_options = {"UNDO"}

    prompt: StringProperty(name="Prompt", description="What to generate (at least 3 characters)",
                           options={"SKIP_SAVE"})  # fmt: skip
    negative_prompt: StringProperty(name="Negative Prompt", description="What to avoid", options={"SKIP_SAVE"})
    image_path: StringProperty(
        name="Image",
        description="An input image (PNG, JPEG or WebP): set, it generates from the image instead of the prompt",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
    )
    mesh_only: BoolProperty(name="Mesh Only", description="Geometry without textures", options={"SKIP_SAVE"})
    polygon_limit: IntProperty(
        name="Polygon Limit",
        description="Most polygons in the model",
        default=1_000_000,
        # Soft limits only: a value out of the service's range is refused with the reason (validate),
        # never silently changed into another request.
        soft_min=POLYGON_RANGE[0],
        soft_max=POLYGON_RANGE[1],
        options={"SKIP_SAVE"},
    )
    # An integer, as a script writes it (texture_size=2048); a size the service does not offer is refused with
    # its reason before any request (GenerationRequest.validate), as the panel shows it under the field.
    texture_size: IntProperty(
        name="Texture Size", description="1024, 2048 or 4096 pixels", default=1024, options={"SKIP_SAVE"}
    )
    turbo: BoolProperty(name="Turbo", description="Faster geometry, maybe lower quality", options={"SKIP_SAVE"})
    wait: BoolProperty(
        name="Wait",
        description="Wait for the task and import its model; off, return once the task is created",
        default=True,
        options={"SKIP_SAVE"},
    )
    allow_duplicate: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})  # "Generate Again": a new task on purpose
    image_file: StringProperty(options={"HIDDEN", "SKIP_SAVE"})  # "Generate Again": the earlier upload's file_key

    def execute(self, context: bpy.types.Context) -> set[str]:
        """The whole generation, synchronously: the console, scripts and `blender -b` use this."""
        # Belt and braces (there is no REGISTER): a redo or Repeat Last would be a second, charged task, and
        # would block Blender on the network. Operator.is_repeat() only says the last operator was this one.
        if self.options.is_repeat or self.options.is_repeat_last:
            self.report({"WARNING"}, "Generate is never repeated: press Generate again for a new task.")
            return {"CANCELLED"}
        from ...service.api import TriverseClient
        from ...service.generate import check, create_task, finish_task, refuse_if_running, request_key
        from ...service.obtain import open_library

        try:
            request = request_from(self)
            check(request, self.image_file)  # the reasons, before any request
            refuse_if_running(request_key(request, self.allow_duplicate, self.image_file))
            settings = addon.get_settings(context)
            library, warning = open_library(settings)
            if warning:
                self.report({"WARNING"}, warning)
            store = stores.generations()
            with TriverseClient(settings, online_access=addon.online_access()) as client:
                created = create_task(
                    client,
                    request,
                    new_order_id(),
                    store=store,
                    allow_duplicate=self.allow_duplicate,
                    image_file=self.image_file,
                )
                if not self.wait:
                    self.report({"INFO"}, _created_message(created))
                    return {"FINISHED"}
                asset = finish_task(client, created.task_uuid, library, store=store)
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, "generation")
        finally:
            lookups.changed("credits")
        return import_generated(self, context, asset, request.prompt, request.image_path, request.flow_name)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the sidebar: create and watch on a worker thread while Blender stays responsive."""
        if not self.wait:
            return self.execute(context)
        from ...service.generate import GenerateJob, check

        try:
            request = request_from(self)
            check(request, self.image_file)
            job = GenerateJob.begin(
                addon.get_settings(context),
                request,
                new_order_id(),  # one per press; the job's retries reuse it
                store=stores.generations(),
                allow_duplicate=self.allow_duplicate,
                online_access=addon.online_access(),
                image_file=self.image_file,
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, "generation")
        watch_for_credits()
        return self.run_modal(context, job)

    def job_done(self, context: bpy.types.Context, job: Job) -> set[str]:
        """The worker ended: import its model, or say why not."""
        if job.library_warning:
            self.report({"WARNING"}, job.library_warning)
        if isinstance(job.error, errors.Cancelled):
            return report_stopped(self, job)
        if job.error is not None:
            return report_failure(self, job.error, "generation")
        assert job.result is not None
        request = request_from(self)
        return import_generated(self, context, job.result, request.prompt, request.image_path, request.flow_name)


def _created_message(created: Created) -> str:
    cost = f" for {created.cost_credits:g} credits" if created.cost_credits is not None else ""
    return f"Created Triverse task {created.task_uuid}{cost}: it is in My Generations; import it there when it is done."


class TRIVERSE_OT_generate_from_panel(bpy.types.Operator):
    """Generate a model from the panel's prompt or image (the price is shown above the button)"""

    bl_idname = "triverse.generate_from_panel"
    bl_label = "Generate"
    bl_options = {"INTERNAL"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the button: generate on a worker thread, watched in the panel."""
        return self._generate(context, "INVOKE_DEFAULT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronously (scripts, the bpy module)."""
        return self._generate(context, "EXEC_DEFAULT")

    def _generate(self, context: bpy.types.Context, how: str) -> set[str]:
        st = state(context)
        found = validate(st)
        if found:
            self.report({"ERROR"}, next(iter(found.values())))
            return {"CANCELLED"}
        try:
            prepared = (
                image_input.prepare(context, st.image_source, st.image_path, st.image_name)
                if st.mode == "IMAGE"
                else None
            )
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, "generation")
        request = request_from(st, str(prepared.path) if prepared else "")
        try:
            result = bpy.ops.triverse.generate(how, **operator_arguments(request))
        except RuntimeError as exc:  # Generate reported it; a script gets it from here too
            result = {"CANCELLED"}
            self.report({"ERROR"}, str(exc).removeprefix("Error: ").strip())
        if prepared is not None:
            if "RUNNING_MODAL" in result:
                temp_images.keep_until_uploaded(prepared)
                watch_for_credits()
            else:
                prepared.cleanup()
        return {"FINISHED"} if result & {"RUNNING_MODAL", "FINISHED"} else {"CANCELLED"}


def watch_for_credits() -> None:
    """Look at running generations every second: when one ends, its credits were spent (or released)."""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK, persistent=True)


def tick() -> float | None:
    """Main thread: a generation ended, so the balance changed."""
    running = {id(job) for job in running_jobs() if is_generation(job)}
    if _seen_jobs - running:
        lookups.changed("credits")
    _seen_jobs.clear()
    _seen_jobs.update(running)
    return TICK if _seen_jobs else None


classes = (TRIVERSE_OT_generate, TRIVERSE_OT_generate_from_panel)


def forget() -> None:
    """Stop looking (the add-on is being disabled)."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    _seen_jobs.clear()
