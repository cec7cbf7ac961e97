# mypy: disable-error-code="valid-type"
"""The Generate panel's state (on the window manager: kept for the session, never saved in a .blend) and its
checks: every reason a request would be refused, computed when an option changes, so `draw()` reads no file."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ...service import errors
from ...service.generation_request import POLYGON_RANGE, TEXTURE_SIZES, GenerationRequest, sniff_image
from .price import ask_price

# Formats Blender reads that the service does not take: accepted here, converted to PNG on Generate.
CONVERTIBLE = {".bmp", ".tga", ".tif", ".tiff", ".exr", ".hdr", ".jp2", ".j2c", ".dpx", ".cin", ".sgi", ".rgb", ".rgba"}

_checked: dict[str, Hashable] = {"key": None}  # the state the last validation was for
_found: dict[str, str] = {}  # its reasons (update callbacks compute them: draw() reads no file)


def _on_change(self: TRIVERSE_PG_generate, context: bpy.types.Context) -> None:
    """Any option changed: check it again now, and ask for the price (after the debounce)."""
    validate(self)
    ask_price(context)


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
        soft_min=POLYGON_RANGE[0],
        soft_max=POLYGON_RANGE[1],
        step=1000,
        update=_on_change,
    )
    texture_size: EnumProperty(
        name="Texture",
        items=tuple((str(s), str(s), f"{s} x {s} pixel textures") for s in TEXTURE_SIZES),
        default="1024",
        update=_on_change,
    )
    turbo: BoolProperty(
        name="Turbo", description="Faster geometry, maybe lower quality", default=False, update=_on_change
    )


def state(context: bpy.types.Context) -> TRIVERSE_PG_generate:
    """The panel's state of this session."""
    return context.window_manager.triverse_generate  # type: ignore[no-any-return]


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
    options = GenerationRequest(
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
            sniff_image(path)
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


def forget() -> None:
    """Forget the last validation (the add-on is being disabled)."""
    _checked["key"] = None
    _found.clear()
