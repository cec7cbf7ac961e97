# mypy: disable-error-code="valid-type"
"""The Generate panel of the Triverse sidebar tab: prompt or image, options, the price before spending,
generations being watched; and the account shown in the preferences (`draw_account`).

The price and the account are looked up on worker threads (`background.Latest`), asked for by property
update callbacks (debounced), a Refresh button or a first draw; a main-thread timer takes the answers
in and redraws. `draw()` only reads what is kept here: no request, no file read.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Hashable
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from . import background, config, core, errors, generation, image_input, preferences
from .client import TriverseClient
from .operators import report_failure

TICK_BUSY = 0.1  # seconds between looks at a running look-up
TICK_IDLE = 1.0  # seconds between looks when nothing is running (temporary images, finished generations)
# Formats Blender reads that the service does not take: accepted here, converted to PNG on Generate.
CONVERTIBLE = {".bmp", ".tga", ".tif", ".tiff", ".exr", ".hdr", ".jp2", ".j2c", ".dpx", ".cin", ".sgi", ".rgb", ".rgba"}

QUOTE: background.Latest[generation.Quote] = background.Latest(debounce=0.4)
ACCOUNT: background.Latest[generation.Account] = background.Latest(debounce=0.0)
_checked: dict[str, Hashable] = {"key": None}  # the state the last validation was for
_found: dict[str, str] = {}  # its reasons (update callbacks compute them: draw() reads no file)
_temp_images: list[image_input.PreparedImage] = []  # written for a generation still uploading
_seen_jobs: set[str] = set()


# -- the panel's state ----------------------------------------------------------------------------


def _on_change(self: TRIVERSE_PG_generate, context: bpy.types.Context) -> None:
    """Any option changed: check it again now, and ask for the price (after the debounce)."""
    validate(self)
    want_quote(context)


class TRIVERSE_PG_generate(bpy.types.PropertyGroup):
    """The Generate panel's state (on the window manager: kept for the session, never saved in a .blend)."""

    mode: EnumProperty(
        name="Input",
        items=(
            ("TEXT", "Text", "Describe the model in words", "FONTPREVIEW", 0),
            ("IMAGE", "Image", "Make the model from a picture", "IMAGE_DATA", 1),
        ),
        default="TEXT",
        update=_on_change,
    )
    prompt: StringProperty(
        name="Prompt", description="What to generate (at least 3 characters)", default="", update=_on_change
    )
    negative_prompt: StringProperty(
        name="Avoid", description="What the model should not have (optional)", default="", update=_on_change
    )
    image_source: EnumProperty(
        name="Image From",
        items=(
            ("FILE", "File", "An image file on disk (PNG, JPEG, WebP; other formats are converted to PNG)", "FILE", 0),
            ("BLEND", "Image in .blend", "An image of this .blend file (packed and generated images too)", "IMAGE", 1),
            ("VIEWPORT", "Viewport", "What the active 3D viewport shows, captured at Generate", "VIEW3D", 2),
            ("CAMERA", "Camera", "The scene camera's view, captured when you press Generate", "CAMERA_DATA", 3),
        ),
        default="FILE",
        update=_on_change,
    )
    image_path: StringProperty(
        name="Image File", description="The picture to make a model from", subtype="FILE_PATH", update=_on_change
    )
    image_name: StringProperty(name="Image", description="An image of this .blend file", update=_on_change)
    output: EnumProperty(
        name="Output",
        items=(
            ("MODEL", "Textured", "A textured model", "MATERIAL", 0),
            ("MESH", "Mesh Only", "Geometry only, no textures (cheaper)", "MESH_DATA", 1),
        ),
        default="MODEL",
        update=_on_change,
    )
    # Soft limits: a value typed outside the service's range shows why under the field instead of
    # being silently changed.
    polygon_limit: IntProperty(
        name="Polygons",
        description="Most polygons the model may have (1,000 to 1,500,000)",
        default=1_000_000,
        min=1,
        max=10_000_000,
        soft_min=generation.POLYGON_RANGE[0],
        soft_max=generation.POLYGON_RANGE[1],
        step=1000,
        update=_on_change,
    )
    texture_size: EnumProperty(
        name="Texture",
        items=tuple((str(s), str(s), f"{s} x {s} pixel textures") for s in generation.TEXTURE_SIZES),
        default="1024",
        update=_on_change,
    )
    turbo: BoolProperty(
        name="Turbo", description="Faster geometry, maybe lower quality", default=False, update=_on_change
    )


def state(context: bpy.types.Context) -> TRIVERSE_PG_generate:
    """The panel's state of this session."""
    return context.window_manager.triverse_generate  # type: ignore[no-any-return]


def request_for(st: TRIVERSE_PG_generate, image_path: str = "") -> generation.GenerationRequest:
    """The request the panel describes; image mode needs the path of the file that will be uploaded."""
    image = st.mode == "IMAGE"
    return generation.GenerationRequest(
        prompt="" if image else st.prompt,
        negative_prompt="" if image else st.negative_prompt,
        image_path=image_path if image else "",
        mesh_only=st.output == "MESH",
        polygon_limit=st.polygon_limit,
        texture_size=int(st.texture_size),
        turbo=st.turbo,
    )


def _state_key(st: TRIVERSE_PG_generate) -> Hashable:
    return (
        st.mode,
        st.prompt,
        st.image_source,
        st.image_path,
        st.image_name,
        st.output,
        st.polygon_limit,
        st.texture_size,
        st.turbo,
    )


def validate(st: TRIVERSE_PG_generate) -> dict[str, str]:
    """Field -> reason, before any request (reads the chosen file's first bytes: never from draw())."""
    options = generation.GenerationRequest(
        prompt=st.prompt if st.mode == "TEXT" else "any",
        mesh_only=st.output == "MESH",
        polygon_limit=st.polygon_limit,
        texture_size=int(st.texture_size),
        turbo=st.turbo,
    )
    found = options.validate()
    if st.mode == "IMAGE":
        reason = _image_problem(st)
        if reason:
            found["image"] = reason
    _checked["key"] = _state_key(st)
    _found.clear()
    _found.update(found)
    return found


def _image_problem(st: TRIVERSE_PG_generate) -> str:
    """Why the chosen image cannot be used, or ""."""
    if st.image_source == "FILE":
        if not st.image_path.strip():
            return "Choose an image file."
        path = Path(bpy.path.abspath(st.image_path))
        try:
            generation.sniff_image(path)
        except errors.TriverseError as exc:
            if path.is_file() and path.suffix.lower() in CONVERTIBLE:
                return ""  # Blender reads it: converted to PNG when Generate is pressed
            return str(exc)
        return ""
    return live_image_problem(st, bpy.context)


def live_image_problem(st: TRIVERSE_PG_generate, context: bpy.types.Context) -> str:
    """Checks of the .blend's own data (an image, the camera): cheap, so drawing does them each time."""
    if st.mode != "IMAGE":
        return ""
    if st.image_source == "BLEND":
        if not st.image_name:
            return "Choose an image of this .blend file."
        if bpy.data.images.get(st.image_name) is None:
            return f"There is no image named {st.image_name!r} in this .blend file."
    if st.image_source == "CAMERA" and context.scene is not None and context.scene.camera is None:
        return "The scene has no camera: add one, or capture the viewport."
    return ""


def problems(st: TRIVERSE_PG_generate, context: bpy.types.Context) -> dict[str, str] | None:
    """The reasons for the state as it is now (for drawing), or None when not checked since it changed."""
    if _checked["key"] != _state_key(st):
        return None
    found = dict(_found)
    if st.image_source in ("BLEND", "CAMERA"):  # the .blend may have changed since: look again
        found.pop("image", None)
    live = live_image_problem(st, context)
    if live:
        found["image"] = live
    return found


# -- the price and the account, off the main thread --------------------------------------------------


def _ready(context: bpy.types.Context) -> tuple[config.Settings, str]:
    """The key and URL in effect, and why no request may be sent ("" when one may). Cheap: drawn often."""
    prefs = preferences.addon_preferences(context)
    settings = config.resolve(prefs.api_key if prefs else "", prefs.base_url if prefs else "")
    try:
        config.check_ready(settings, preferences.online_access())
    except errors.MissingApiKey:
        return settings, "no API key"
    except errors.OnlineAccessDisabled:
        return settings, "online access is off"
    return settings, ""


def _call(settings: config.Settings, what: Callable[[TriverseClient], object]) -> Callable[[], object]:
    """A look-up to run on a worker thread (it never touches bpy: the settings are read already)."""

    def call() -> object:
        with TriverseClient(settings, online_access=True) as client:  # online access was checked by _ready
            return what(client)

    return call


def quote_key(context: bpy.types.Context) -> tuple[Hashable, generation.GenerationRequest, config.Settings, str]:
    """(key, request, settings, why not) of the price the panel shows now."""
    st = state(context)
    req = request_for(st, image_path="image-to-price")  # a quote needs no image, only its flow
    settings, why_not = _ready(context)
    key = (req.flow_name, tuple(sorted(req.price_params().items())), settings.base_url, settings.api_key)
    return key, req, settings, why_not


def want_quote(context: bpy.types.Context, force: bool = False) -> None:
    """Ask for the price of the panel's options (debounced), unless known, on its way, or not allowed."""
    key, req, _settings, why_not = quote_key(context)
    if why_not or not (force or QUOTE.wants(key)):
        return
    settings = preferences.get_settings(context)  # all of them (proxy, CA, timeouts), only when asking
    QUOTE.want(key, _call(settings, lambda client: generation.quote(client, req)), force=True)  # type: ignore[arg-type]
    _ensure_timer()


def account_key(context: bpy.types.Context) -> tuple[Hashable, config.Settings, str]:
    """(key, settings, why not) of the account shown."""
    settings, why_not = _ready(context)
    return (settings.base_url, settings.api_key), settings, why_not


def want_account(context: bpy.types.Context, force: bool = False) -> None:
    """Ask for the account (balance, plan) unless known, on its way, or not allowed."""
    key, _settings, why_not = account_key(context)
    if why_not or not (force or ACCOUNT.wants(key)):
        return
    settings = preferences.get_settings(context)
    ACCOUNT.want(key, _call(settings, generation.account), force=True)  # type: ignore[arg-type]
    _ensure_timer()


def quiet_reason(exc: BaseException) -> str:
    """A short line for a failed look-up (the panel is narrow; the full sentence is the tooltip's job)."""
    if isinstance(exc, errors.ConnectionFailed | errors.TimedOut | errors.TlsError):
        return "Offline: cannot reach Triverse"
    if isinstance(exc, errors.AuthenticationFailed):
        return "The API key was rejected"
    if isinstance(exc, errors.ServiceBusy):
        return "Triverse is busy: try again soon"
    return errors.describe(exc).split(":")[0].rstrip(".")


def tick() -> float | None:
    """Main thread: take in look-ups, tidy temporary images, notice finished generations; redraw if needed."""
    changed = QUOTE.poll()
    changed = ACCOUNT.poll() or changed
    jobs = {id(job): job for job in _generate_jobs()}
    running = {str(key) for key in jobs}
    if _seen_jobs - running:  # a generation ended: credits were spent (or released): look again
        QUOTE.forget()
        ACCOUNT.forget()
        changed = True
    _seen_jobs.clear()
    _seen_jobs.update(running)
    _sweep_temp_images(list(jobs.values()))
    if changed:
        redraw()
    if QUOTE.busy or ACCOUNT.busy:
        return TICK_BUSY
    return TICK_IDLE if (_temp_images or _seen_jobs) else None


def _ensure_timer() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.0, persistent=True)


def redraw() -> None:
    """Redraw the 3D viewports' sidebars and the preferences (where the account is shown)."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas if window.screen else ():
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                for region in area.regions:
                    if region.type in {"UI", "WINDOW"} and (area.type == "PREFERENCES" or region.type == "UI"):
                        region.tag_redraw()


def _generate_jobs() -> list[core.Job]:
    """The generations the sidebar is watching now."""
    return [job for job in core.Job.active() if getattr(job, "kind", "") == "generate"]


def _sweep_temp_images(jobs: list[core.Job]) -> None:
    """Remove images written for an upload once their generation is created (uploaded) or gone."""
    for prepared in list(_temp_images):
        path = str(prepared.path)
        uploading = any(
            getattr(job, "created", None) is None and getattr(getattr(job, "request", None), "image_path", "") == path
            for job in jobs
        )
        if not uploading:
            prepared.cleanup()
            _temp_images.remove(prepared)


# -- the panel -------------------------------------------------------------------------------------


def wrapped(text: str, width_px: int) -> list[str]:
    """`text` cut into lines that fit a sidebar `width_px` wide (Blender's labels cut, they never wrap)."""
    per_line = max(12, (width_px - 60) // 7)  # about 7 pixels a character at the default UI scale
    return textwrap.wrap(text, per_line) or [""]


def _lines(layout: bpy.types.UILayout, text: str, icon: str, alert: bool = False) -> None:
    """A message on as many lines as the sidebar's width needs; the icon on the first only."""
    col = layout.column(align=True)
    col.alert = alert
    width = bpy.context.region.width if bpy.context.region is not None else 300
    for i, line in enumerate(wrapped(text, width)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def _alert(layout: bpy.types.UILayout, reason: str | None) -> None:
    """A reason under a field, in red."""
    if reason:
        _lines(layout, reason, "ERROR", alert=True)


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
            _after_draw("validate")
            found = {}
        layout.row().prop(st, "mode", expand=True)
        col = layout.column(align=False)
        if st.mode == "TEXT":
            col.label(text="Prompt")
            col.prop(st, "prompt", text="", icon="FONTPREVIEW")
            _alert(col, found.get("prompt"))
            col.label(text="Avoid (optional)")
            col.prop(st, "negative_prompt", text="")
        else:
            col.prop(st, "image_source", text="")
            if st.image_source == "FILE":
                col.prop(st, "image_path", text="")
            elif st.image_source == "BLEND":
                col.prop_search(st, "image_name", bpy.data, "images", text="")
            elif st.image_source == "VIEWPORT":
                _lines(col, "The viewport is captured when you press Generate", "INFO")
            else:
                _lines(col, "The camera's view is captured when you press Generate", "INFO")
            _alert(col, found.get("image"))


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
        _alert(col, found.get("polygon_limit"))
        if st.output == "MODEL":
            row = col.row(align=True)
            row.label(text="Texture")
            row.prop(st, "texture_size", expand=True)
            _alert(col, found.get("texture_size"))
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
        row.operator(TRIVERSE_OT_generate_from_panel.bl_idname, text="Generate", icon="SHADERFX")
        if found:
            _alert(layout, "Fix the option marked in red above")
        elif short:
            _alert(layout, short)
        for job in _generate_jobs():
            draw_job(layout.box(), job)


def draw_price(layout: bpy.types.UILayout, context: bpy.types.Context) -> str:
    """The cost and the balance (or a quiet line why not); returns why Generate is refused ("" if it is not)."""
    key, _req, _settings, why_not = quote_key(context)
    col = layout.column(align=True)
    if why_not:
        _lines(col, f"Price unknown: {why_not}", "INFO")
        return ""
    if not QUOTE.current(key):
        if not QUOTE.busy:
            _after_draw("quote")  # nothing asked yet (first draw, key or URL changed): asked from a timer
        col.label(text="Checking the price...", icon="SORTTIME")
        return ""
    if QUOTE.error is not None:
        row = col.row(align=True)
        _lines(row, quiet_reason(QUOTE.error), "INFO")
        row.operator(TRIVERSE_OT_refresh_price.bl_idname, text="", icon="FILE_REFRESH", emboss=False)
        return ""
    quote = QUOTE.value
    assert quote is not None
    row = col.row(align=True)
    row.label(text=f"Cost: {quote.cost_credits:,} credits")
    row.operator(TRIVERSE_OT_refresh_price.bl_idname, text="", icon="FILE_REFRESH", emboss=False)
    col.label(text=f"Balance: {_credits(quote.available_credits)} credits")
    if not quote.affordable:
        balance = _credits(quote.available_credits)
        return f"Not enough credits: this costs {quote.cost_credits:,}, your balance is {balance}"
    return ""


def _credits(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def job_lines(job: core.Job) -> tuple[float | None, str]:
    """(progress fraction or None, text) of a generation being watched."""
    created = getattr(job, "created", None)
    status = getattr(job, "status", None)
    if created is None:
        return None, "Creating the task..."
    state_name = getattr(status, "status", None) or created.status
    if state_name in ("PENDING", "QUEUED"):
        queue = (getattr(status, "raw", None) or {}).get("queue")  # the latest position, when told
        queue = queue if isinstance(queue, dict) else {}
        position = queue.get("position", created.queue_position)
        wait = queue.get("estimated_wait_seconds", created.estimated_wait_seconds)
        text = "Queued" if position is None else f"Queued: position {position}"
        if wait:
            text += f"\nAbout {_duration(wait)} to wait"  # its own line: the sidebar is narrow
        return None, text
    if state_name == "RUNNING":
        progress = getattr(status, "progress", None) or 0
        return progress / 100, f"Running {progress}%"
    if state_name == "SUCCESS":
        if job.total:
            return min(job.received / job.total, 1.0), "Downloading the model"
        return None, "Importing the model..."
    return None, str(state_name).capitalize()


def _duration(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def draw_job(box: bpy.types.UILayout, job: core.Job) -> None:
    """One generation being watched: what, where it is, an X to stop watching, and what that means."""
    request = getattr(job, "request", None)
    title = (getattr(request, "prompt", "") or os.path.basename(getattr(request, "image_path", "") or "")) or "Model"
    row = box.row(align=True)
    row.label(text=title[:40], icon="SHADERFX")
    task_uuid = getattr(job, "task_uuid", None)
    if task_uuid:
        stop = row.operator("triverse.generation_stop", text="", icon="X", emboss=False)
        stop.task_uuid = task_uuid
    fraction, text = job_lines(job)
    if fraction is not None and hasattr(box, "progress"):  # UILayout.progress is Blender 4.0+
        box.progress(factor=fraction, type="BAR", text=text)
    else:
        first, *more = text.split("\n")
        col = box.column(align=True)
        col.label(text=first, icon="SORTTIME")
        for line in more:
            col.label(text=line, icon="BLANK1")
    if task_uuid:
        note = box.column(align=True)
        note.scale_y = 0.8
        note.label(text="X stops watching; the task")
        note.label(text="keeps running on Triverse.")


def _after_draw(what: str) -> None:
    """Do `what` ("validate", "quote", "account") on the next timer tick, once: drawing only reads, and
    resolving the settings may create the library folder (never from draw())."""
    _due.add(what)
    if not bpy.app.timers.is_registered(_run_due):
        bpy.app.timers.register(_run_due, first_interval=0.0)


def _run_due() -> None:
    """Timer: what drawing found missing (a first draw, or a change made by a script)."""
    context = bpy.context
    wm = context.window_manager
    due = set(_due)
    _due.clear()
    if wm is None or not hasattr(wm, "triverse_generate"):
        return
    if "validate" in due:
        validate(wm.triverse_generate)
        redraw()
    if "quote" in due:
        want_quote(context)
    if "account" in due:
        want_account(context)


_due: set[str] = set()


# -- account in the preferences -------------------------------------------------------------------


def draw_account(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Triverse account of the key in effect (balance, plan), fetched off the main thread and kept."""
    box = layout.box()
    row = box.row()
    row.label(text="Account", icon="USER")
    row.operator(TRIVERSE_OT_account_refresh.bl_idname, text="Refresh", icon="FILE_REFRESH")
    key, _settings, why_not = account_key(context)
    if why_not:
        box.label(text=f"Not shown: {why_not}", icon="INFO")
        return
    if not ACCOUNT.current(key):
        if not ACCOUNT.busy:
            _after_draw("account")  # the first draw has it fetched (from a timer); it never waits for it
        box.label(text="Fetching the account...", icon="SORTTIME")
        return
    if ACCOUNT.error is not None:
        box.label(text=quiet_reason(ACCOUNT.error), icon="INFO")
        return
    account = ACCOUNT.value
    assert account is not None
    col = box.column(align=True)
    col.label(text=f"Balance: {_credits(account.balance)} credits")
    col.label(text=f"Plan: {account.plan_name or 'unknown'}")
    if account.email:
        col.label(text=account.email)


# -- operators -------------------------------------------------------------------------------------


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
            prepared = prepare_image(context, st) if st.mode == "IMAGE" else None
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc)
        req = request_for(st, str(prepared.path) if prepared else "")
        try:
            result = bpy.ops.triverse.generate(
                how,
                prompt=req.prompt,
                negative_prompt=req.negative_prompt,
                image_path=req.image_path,
                mesh_only=req.mesh_only,
                polygon_limit=req.polygon_limit,
                texture_size=req.texture_size,
                turbo=req.turbo,
            )
        except RuntimeError as exc:  # Generate reported it; a script gets it from here too
            result = {"CANCELLED"}
            self.report({"ERROR"}, str(exc).removeprefix("Error: ").strip())
        if prepared is not None:
            if "RUNNING_MODAL" in result:
                _temp_images.append(prepared)  # removed once uploaded (tick)
                _ensure_timer()
            else:
                prepared.cleanup()
        if result & {"RUNNING_MODAL", "FINISHED"}:
            _ensure_timer()  # notices when it ends, to show the new balance
            return {"FINISHED"}
        return {"CANCELLED"}


def prepare_image(context: bpy.types.Context, st: TRIVERSE_PG_generate) -> image_input.PreparedImage:
    """The file to upload for the panel's image source (written to a private folder when needed)."""
    if st.image_source == "FILE":
        return image_input.from_file(st.image_path)
    if st.image_source == "BLEND":
        return image_input.from_blend_image(st.image_name)
    return image_input.capture_view(context, camera=st.image_source == "CAMERA")


class TRIVERSE_OT_refresh_price(bpy.types.Operator):
    """Ask Triverse for the price and your balance again"""

    bl_idname = "triverse.refresh_price"
    bl_label = "Refresh Price"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Schedule a new quote (off the main thread)."""
        want_quote(context, force=True)
        redraw()
        return {"FINISHED"}


class TRIVERSE_OT_account_refresh(bpy.types.Operator):
    """Fetch your Triverse account's balance and plan again"""

    bl_idname = "triverse.account_refresh"
    bl_label = "Refresh Account"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Schedule a new fetch (off the main thread); the price's balance is refreshed too."""
        want_account(context, force=True)
        want_quote(context, force=True)
        redraw()
        return {"FINISHED"}


classes = (
    TRIVERSE_PG_generate,
    TRIVERSE_OT_generate_from_panel,
    TRIVERSE_OT_refresh_price,
    TRIVERSE_OT_account_refresh,
    TRIVERSE_PT_generate,
    TRIVERSE_PT_generate_options,
    TRIVERSE_PT_generate_run,
)


def register() -> None:
    """Register the panel, its state and its operators."""
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.triverse_generate = PointerProperty(type=TRIVERSE_PG_generate)


def unregister() -> None:
    """Remove everything register() added; temporary images are removed."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    for prepared in _temp_images:
        prepared.cleanup()
    _temp_images.clear()
    _seen_jobs.clear()
    if bpy.app.timers.is_registered(_run_due):
        bpy.app.timers.unregister(_run_due)
    _due.clear()
    QUOTE.forget()
    ACCOUNT.forget()
    _checked["key"] = None
    del bpy.types.WindowManager.triverse_generate
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
