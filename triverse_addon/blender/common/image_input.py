"""Image input for Generate: a PNG, JPEG or WebP file to upload, made from a file on disk, an image in
the .blend, or a capture of the 3D viewport (or the scene camera's view). Main thread only (bpy).

Files this module writes live in a private temporary folder (`tempfile.mkdtemp`); the caller removes
it after the upload with `PreparedImage.cleanup()` (or `with prepared:`). The user's images are never
changed: pixels are copied into a temporary data-block of our own, saved, and that block is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy

from ...service import errors, generation_request

__all__ = [
    "CaptureUnavailable",
    "PreparedImage",
    "capture_view",
    "from_blend_image",
    "from_file",
    "prepare",
]

CAPTURE_MAX_SIDE = 2048  # pixels: a camera capture follows the render resolution, capped (uploads are limited)


class CaptureUnavailable(errors.TriverseError):
    """A viewport or camera capture was asked for where Blender has no window (background mode)."""


@dataclass
class PreparedImage:
    """A file ready to upload; `temp` when this module wrote it (then `cleanup()` removes its folder)."""

    path: Path
    name: str  # what the user knows it by: the file name or the image data-block's name
    temp: bool = False

    def cleanup(self) -> None:
        """Remove the private folder of a file this module wrote (never the user's own file)."""
        if self.temp:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    def __enter__(self) -> PreparedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def prepare(context: bpy.types.Context, source: str, path: str = "", name: str = "") -> PreparedImage:
    """The file to upload for an image source: "FILE" (`path`), "BLEND" (the image `name` of the .blend),
    "VIEWPORT" or "CAMERA" (a capture); written to a private folder when needed."""
    if source == "FILE":
        return from_file(path)
    if source == "BLEND":
        return from_blend_image(name)
    return capture_view(context, camera=source == "CAMERA")


def from_file(path: str | os.PathLike[str]) -> PreparedImage:
    """The file itself when it is PNG, JPEG or WebP by its bytes; another format Blender reads, as a PNG."""
    source = Path(bpy.path.abspath(os.fspath(path))).expanduser()
    if source.is_dir():
        raise errors.UnsupportedImage(f"{source} is a folder, not an image file.")
    try:
        generation_request.sniff_image(source)  # missing, unreadable, too large: its sentence stands
        return PreparedImage(source, source.name)
    except errors.UnsupportedImage:
        if not source.is_file() or source.stat().st_size > generation_request.MAX_IMAGE_BYTES:
            raise
    try:
        image = bpy.data.images.load(str(source), check_existing=False)
    except RuntimeError:
        raise errors.UnsupportedImage(
            f"{source.name} is not an image Blender can read (use PNG, JPEG or WebP)."
        ) from None
    try:
        if not _has_pixels(image):
            raise errors.UnsupportedImage(f"{source.name} is not an image Blender can read (use PNG, JPEG or WebP).")
        return _save_copy(image, source.stem, source.name)
    finally:
        bpy.data.images.remove(image)  # ours: loaded only to convert it


def from_blend_image(image: bpy.types.Image | str) -> PreparedImage:
    """An image of the .blend (file, packed, generated, float or render result) written to a private PNG.

    The user's image data-block keeps its file path, format, packed data and unsaved state.
    """
    if isinstance(image, str):
        found = bpy.data.images.get(image)
        if found is None:
            raise errors.UnsupportedImage(f"There is no image named {image!r} in this .blend file.")
        image = found
    if image.type in {"RENDER_RESULT", "COMPOSITING"}:
        raise errors.UnsupportedImage(
            f"{image.name!r} is Blender's render result: save it as an image first, or pick another image."
        )
    if not _has_pixels(image):
        raise errors.UnsupportedImage(f"Image {image.name!r} has no pixels (its file may be missing).")
    return _save_copy(image, image.name, image.name)


def capture_view(context: bpy.types.Context, *, camera: bool = False) -> PreparedImage:
    """The active 3D viewport as the user sees it, or the scene camera's view, as a private PNG."""
    if bpy.app.background:
        raise CaptureUnavailable(
            "Capturing the viewport needs Blender's window (it is running in the background): "
            "pass an image file instead."
        )
    _area, region, space = _view3d(context)
    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    if camera:
        cam = scene.camera
        if cam is None:
            raise CaptureUnavailable("The scene has no camera to capture from: add one, or capture the viewport.")
        scale = scene.render.resolution_percentage / 100.0
        width, height = scene.render.resolution_x * scale, scene.render.resolution_y * scale
        fit = min(1.0, CAPTURE_MAX_SIDE / max(width, height))
        width, height = max(16, round(width * fit)), max(16, round(height * fit))
        view_matrix = cam.matrix_world.inverted()
        projection = cam.calc_matrix_camera(depsgraph, x=width, y=height)
        name = f"{cam.name} camera view"
    else:
        width, height = region.width, region.height
        view_matrix = space.region_3d.view_matrix.copy()
        projection = space.region_3d.window_matrix.copy()
        name = "3D viewport"
    pixels = _draw_offscreen(context, space, region, width, height, view_matrix, projection)
    # The file's name is what My Generations and the new collection are called after.
    return _save_pixels(pixels, width, height, "camera-view" if camera else "viewport-capture", name)


# -- helpers -----------------------------------------------------------------------------------------


def _has_pixels(image: bpy.types.Image) -> bool:
    """Whether Blender can give this image's pixels (loading them if needed, without dirtying it)."""
    width, height = image.size
    return width > 0 and height > 0 and len(image.pixels) > 0


def _view3d(context: bpy.types.Context) -> tuple[bpy.types.Area, bpy.types.Region, bpy.types.SpaceView3D]:
    """The 3D viewport to capture: the context's own, else the largest one in the window."""
    areas = []
    if context.area is not None and context.area.type == "VIEW_3D":
        areas = [context.area]
    elif context.window is not None:
        areas = sorted(
            (a for a in context.window.screen.areas if a.type == "VIEW_3D"), key=lambda a: -(a.width * a.height)
        )
    for area in areas:
        region = next((r for r in area.regions if r.type == "WINDOW"), None)
        if region is not None and region.width > 0 and region.height > 0:
            return area, region, area.spaces.active  # type: ignore[return-value]
    raise CaptureUnavailable("There is no 3D viewport to capture: open one, or pass an image file instead.")


def _draw_offscreen(
    context: bpy.types.Context,
    space: bpy.types.SpaceView3D,
    region: bpy.types.Region,
    width: int,
    height: int,
    view_matrix: object,
    projection: object,
) -> object:
    """RGBA bytes (rows bottom-up) of the scene drawn as the viewport draws it, off screen."""
    import gpu
    import numpy as np  # type: ignore[import-not-found]  # bundled with Blender

    offscreen = gpu.types.GPUOffScreen(width, height)  # type: ignore[call-arg]  # the stubs lack its arguments
    try:
        offscreen.draw_view3d(
            context.scene,
            context.view_layer,
            space,
            region,
            view_matrix,
            projection,
            do_color_management=True,
        )
        with offscreen.bind():  # type: ignore[union-attr]  # a context manager; the stubs say None
            framebuffer = gpu.state.active_framebuffer_get()
            buffer = framebuffer.read_color(0, 0, width, height, 4, 0, "UBYTE")
        # Flat first: Blender 3.4 exposes a 3-D Buffer to numpy with wrong strides (shifted channels).
        buffer.dimensions = width * height * 4
        return np.array(buffer, dtype=np.uint8).reshape(height, width, 4)
    finally:
        offscreen.free()


def _temp_png(stem: str) -> Path:
    """A path in a new private folder for one PNG (the caller's cleanup removes the folder)."""
    folder = Path(tempfile.mkdtemp(prefix="triverse-image-"))
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "image"
    return folder / f"{safe}.png"


def _save_copy(image: bpy.types.Image, stem: str, name: str) -> PreparedImage:
    """Copy `image`'s pixels into a temporary image of our own and save that as PNG."""
    import numpy as np  # type: ignore[import-not-found]  # bundled with Blender

    width, height = image.size
    channels = image.channels
    pixels = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height * width, channels)
    if channels != 4:  # grey, grey+alpha or RGB: spread to RGBA as bpy.data.images.new holds it
        rgba = np.ones((height * width, 4), dtype=np.float32)
        if channels in (1, 2):
            rgba[:, :3] = pixels[:, :1]
            if channels == 2:
                rgba[:, 3] = pixels[:, 1]
        else:
            rgba[:, :3] = pixels[:, :3]
        pixels = rgba
    dest = _temp_png(stem)
    # A float image keeps its float buffer and colour space, so that Blender's own saving converts it
    # to the PNG's 8-bit sRGB as it would when the user saves it as PNG.
    temp = bpy.data.images.new("triverse-upload", width, height, alpha=True, float_buffer=image.is_float)
    try:
        try:
            temp.colorspace_settings.name = image.colorspace_settings.name
        except TypeError:  # a colour space name this Blender lacks: keep the default
            pass
        temp.pixels.foreach_set(pixels.ravel())
        _save_png(temp, dest)
    except BaseException:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise
    finally:
        bpy.data.images.remove(temp)
    return PreparedImage(dest, name, temp=True)


def _save_pixels(pixels: object, width: int, height: int, stem: str, name: str) -> PreparedImage:
    """RGBA bytes (bottom-up rows) saved as a PNG with Blender's image code."""
    import numpy as np  # type: ignore[import-not-found]  # bundled with Blender

    dest = _temp_png(stem)
    temp = bpy.data.images.new("triverse-capture", width, height, alpha=True)
    try:
        floats = np.asarray(pixels, dtype=np.float32).ravel() / 255.0
        temp.pixels.foreach_set(floats)
        _save_png(temp, dest)
    except BaseException:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise
    finally:
        bpy.data.images.remove(temp)
    return PreparedImage(dest, name, temp=True)


def _save_png(temp: bpy.types.Image, dest: Path) -> None:
    """Save one of our temporary images as an 8-bit RGBA PNG at `dest`."""
    temp.filepath_raw = str(dest)
    temp.file_format = "PNG"
    try:
        temp.save()
    except RuntimeError as exc:
        raise errors.StorageError(f"Cannot write the image to upload to {dest.parent}: {exc}.") from None
    if not dest.is_file():
        raise errors.StorageError(f"Blender did not write the image to upload to {dest}.")
    generation_request.sniff_image(dest)  # what is uploaded is checked like a file the user chose (50 MB at most)
