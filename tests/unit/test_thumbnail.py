"""The preview picture decoded on a worker thread (thumbnail.py): every PNG row filter, scaling, refusals."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from triverse_addon.service import thumbnail


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def encode_png(rows: list[bytes], width: int, colour: int, bpp: int, filters: list[int], palette: bytes = b"") -> bytes:
    """A PNG whose rows use the given filter types (an encoder's side of each filter)."""
    out, prev = bytearray(), bytes(len(rows[0]))
    for row, kind in zip(rows, filters, strict=True):
        filtered = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) >> 1, _paeth(a, b, c)][kind]
            filtered.append((x - pred) & 255)
        out += bytes([kind]) + filtered
        prev = row
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    extra = _chunk(b"PLTE", palette) if palette else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", zlib.compress(bytes(out)))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("colour", "channels"), [(2, 3), (6, 4), (0, 1), (4, 2)])
def test_every_row_filter_decodes_to_the_original_pixels(colour: int, channels: int) -> None:
    rng = random.Random(colour)
    width, height = 7, 10
    rows = [bytes(rng.randrange(256) for _ in range(width * channels)) for _ in range(height)]
    data = encode_png(rows, width, colour, channels, [y % 5 for y in range(height)])  # None, Sub, Up, Average, Paeth
    pixels = thumbnail.decode_png(data)
    assert (pixels.width, pixels.height) == (width, height)
    for y in range(height):
        row = rows[height - 1 - y]  # Blender's order: bottom row first
        for x in range(width):
            got = [round(v * 255) for v in pixels.rgba[(y * width + x) * 4 : (y * width + x + 1) * 4]]
            px = list(row[x * channels : (x + 1) * channels])
            grey_alpha = [px[0]] * 3 + [px[-1] if channels == 2 else 255]
            expected = [*px, 255] if channels == 3 else px if channels == 4 else grey_alpha
            assert got == expected, (x, y)


def test_a_palette_picture() -> None:
    palette = bytes([255, 0, 0, 0, 255, 0])
    data = encode_png([bytes([0, 1]), bytes([1, 0])], 2, 3, 1, [0, 2], palette)
    pixels = thumbnail.decode_png(data)
    assert [round(v) for v in pixels.rgba] == [0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1]


def test_a_large_picture_is_scaled_down_for_the_panel() -> None:
    width, height = 640, 320
    rows = [bytes(v for x in range(width) for v in (x % 256, 0, 0)) for _ in range(height)]
    pixels = thumbnail.decode_png(encode_png(rows, width, 2, 3, [1] * height))
    assert (pixels.width, pixels.height) == (thumbnail.MAX_SIDE, thumbnail.MAX_SIDE // 2)
    assert len(pixels.rgba) == pixels.width * pixels.height * 4


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a....",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)),  # 16-bit
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 1)),  # interlaced
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + _chunk(b"IDAT", b"x"),
    ],
)
def test_what_cannot_be_read_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        thumbnail.decode_png(data)
