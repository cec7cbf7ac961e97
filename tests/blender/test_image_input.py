"""Image input for Generate, in real Blender: files on disk kept or converted to PNG, images of the
.blend (file, packed, generated, float) written to a private PNG without changing the user's image."""

from __future__ import annotations

import importlib
import os
import struct
import zlib
from pathlib import Path

import bpy
import pytest
from conftest import MODULE


def _mod():
    return importlib.import_module(f"{MODULE}.blender.common.image_input")


def _errors():
    return importlib.import_module(f"{MODULE}.service.errors")


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, ...]]]:
    """(width, height, top row's RGBA scaled to 0-255) of an RGBA PNG, decoded here without Blender."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert colour == 6 and depth in (8, 16), f"expected RGBA, got depth {depth} colour type {colour}"
    size = depth // 8 * 4  # bytes per pixel
    raw = zlib.decompress(idat)
    stride = width * size
    kind, row = raw[0], bytearray(raw[1 : 1 + stride])
    for i in range(stride):  # undo the top row's filter (its "previous row" is all zeros)
        left = row[i - size] if i >= size else 0
        row[i] = (row[i] + {0: 0, 1: left, 2: 0, 3: left // 2, 4: left}[kind]) & 0xFF
    values = row if depth == 8 else [round((row[i] << 8 | row[i + 1]) / 257) for i in range(0, stride, 2)]
    return width, height, [tuple(values[i : i + 4]) for i in range(0, width * 4, 4)]


def _solid(name: str, rgba: tuple[float, float, float, float], size=(8, 4), float_buffer=False) -> bpy.types.Image:
    image = bpy.data.images.new(name, *size, alpha=True, float_buffer=float_buffer)
    image.pixels.foreach_set(list(rgba) * (size[0] * size[1]))
    return image


def _state(image: bpy.types.Image) -> dict:
    """What the user would see changed on their image data-block."""
    return {
        "filepath": image.filepath,
        "filepath_raw": image.filepath_raw,
        "file_format": image.file_format,
        "source": image.source,
        "is_dirty": image.is_dirty,
        "packed": image.packed_file is not None,
        "size": tuple(image.size),
        "colorspace": image.colorspace_settings.name,
        "images_in_blend": sorted(i.name for i in bpy.data.images),
    }


@pytest.fixture()
def disk_png(tmp_path: Path) -> Path:
    """A PNG written by Blender (red, 8x4)."""
    image = _solid("red", (1.0, 0.0, 0.0, 1.0))
    image.filepath_raw = str(tmp_path / "red.png")
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return tmp_path / "red.png"


def test_png_jpeg_webp_files_are_uploaded_as_they_are(tmp_path, disk_png):
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    webp = tmp_path / "pic.webp"
    webp.write_bytes(b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 64)
    before = len(bpy.data.images)
    for path in (disk_png, jpeg, webp):
        prepared = _mod().from_file(str(path))
        assert prepared.path == path and prepared.temp is False and prepared.name == path.name
        prepared.cleanup()
        assert path.is_file(), "cleanup removed the user's own file"
    assert len(bpy.data.images) == before


@pytest.mark.parametrize("fmt, ext", [("BMP", "bmp"), ("TARGA", "tga"), ("TIFF", "tif"), ("OPEN_EXR", "exr")])
def test_other_formats_blender_reads_are_converted_to_png(tmp_path, fmt, ext):
    image = _solid("green", (0.0, 1.0, 0.0, 1.0), float_buffer=fmt == "OPEN_EXR")
    source = tmp_path / f"green.{ext}"
    image.filepath_raw = str(source)
    image.file_format = fmt
    image.save()
    bpy.data.images.remove(image)
    with pytest.raises(_errors().UnsupportedImage):
        importlib.import_module(f"{MODULE}.service.generation_request").sniff_image(source)
    before = sorted(i.name for i in bpy.data.images)

    with _mod().from_file(source) as prepared:
        assert prepared.temp and prepared.path.suffix == ".png" and prepared.name == source.name
        width, height, row = png_pixels(prepared.path)
        assert (width, height) == (8, 4)
        assert row[0][:3] == (0, 255, 0) and row[0][3] == 255
        folder = prepared.path.parent
    assert not folder.exists(), "the private folder stayed after cleanup"
    assert sorted(i.name for i in bpy.data.images) == before, "a converted file left an image in the .blend"
    assert source.is_file()


def test_a_file_that_is_no_image_is_refused_in_one_sentence(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("these are not pixels")
    before = len(bpy.data.images)
    with pytest.raises(_errors().TriverseError) as caught:
        _mod().from_file(bogus)
    assert "notes.png" in str(caught.value) and "PNG, JPEG or WebP" in str(caught.value)
    with pytest.raises(_errors().TriverseError, match="does not exist"):
        _mod().from_file(tmp_path / "missing.png")
    with pytest.raises(_errors().TriverseError, match="is a folder"):
        _mod().from_file(tmp_path)
    assert len(bpy.data.images) == before


def test_a_generated_image_is_written_without_changing_it():
    image = bpy.data.images.new("Grid", 64, 32)
    image.generated_type = "COLOR_GRID"
    before = _state(image)
    with _mod().from_blend_image("Grid") as prepared:
        width, height, row = png_pixels(prepared.path)
        assert (width, height) == (64, 32) and prepared.name == "Grid"
        assert len(set(row)) > 4, "a colour grid's top row has many colours"
    assert _state(image) == before


def test_a_packed_image_is_written_without_unpacking_or_dirtying_it(disk_png):
    image = bpy.data.images.load(str(disk_png))
    image.pack()
    os.remove(disk_png)  # only the packed copy is left
    before = _state(image)
    assert before["packed"] and not before["is_dirty"]
    with _mod().from_blend_image(image) as prepared:
        assert prepared.path != disk_png and prepared.path.suffix == ".png"
        _, _, row = png_pixels(prepared.path)
        assert row[0] == (255, 0, 0, 255)
    assert _state(image) == before
    assert not disk_png.exists(), "the packed image was unpacked to its old path"


def test_an_edited_image_keeps_its_unsaved_state_and_file(disk_png):
    image = bpy.data.images.load(str(disk_png))
    image.pixels[0:4] = (0.0, 0.0, 1.0, 1.0)  # painted, not saved: the upload must show the edit
    image.update()
    before = _state(image)
    original = disk_png.read_bytes()
    with _mod().from_blend_image(image) as prepared:
        _, height, _ = png_pixels(prepared.path)
        assert height == 4
    assert _state(image) == before
    assert disk_png.read_bytes() == original, "the user's file on disk was overwritten"


def test_a_float_image_is_written_as_8_bit_srgb():
    # Linear 0.2140 is sRGB 0.5 (128): Blender's own saving converts it as it would for the user.
    image = _solid("HDR", (0.2140, 0.2140, 0.2140, 1.0), float_buffer=True)
    before = _state(image)
    with _mod().from_blend_image(image) as prepared:
        _, _, row = png_pixels(prepared.path)
    assert all(abs(channel - 128) <= 2 for channel in row[0][:3]), row[0]
    assert _state(image) == before


def test_an_image_without_pixels_or_name_is_refused(tmp_path):
    with pytest.raises(_errors().TriverseError, match="no image named 'Nope'"):
        _mod().from_blend_image("Nope")
    image = bpy.data.images.new("Lost", 4, 4)
    image.source = "FILE"
    image.filepath = str(tmp_path / "gone.png")
    with pytest.raises(_errors().TriverseError, match="has no pixels"):
        _mod().from_blend_image(image)


def test_capturing_the_viewport_without_a_window_says_to_pass_a_file():
    before = len(bpy.data.images)
    for camera in (False, True):
        with pytest.raises(_mod().CaptureUnavailable, match="pass an image file instead"):
            _mod().capture_view(bpy.context, camera=camera)
    assert len(bpy.data.images) == before
