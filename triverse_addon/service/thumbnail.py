"""A task's preview picture decoded to a small grid of pixels on a worker thread. No `bpy` module use.

Blender decodes images only on the main thread (and `bpy.utils.previews.load` does it while drawing,
writing a thumbnail into the user's ~/.cache/thumbnails; `bpy.data.images.load` makes every 3D view
redraw). So the worker decodes the PNG here and the main thread only copies the pixels into a preview.
Only 8-bit, non-interlaced PNG is read; anything else shows no picture (it is only a picture).
"""

from __future__ import annotations

import array
import struct
import zlib
from dataclasses import dataclass

__all__ = ["MAX_SIDE", "Pixels", "decode_png"]

MAX_SIDE = 128  # pixels on the longer side: the sidebar shows the picture about 120 pixels wide
MAX_SOURCE_PIXELS = 4096 * 4096  # larger pictures are not decoded (pure Python: about 1 s per megapixel)
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


@dataclass(frozen=True)
class Pixels:
    """An RGBA picture: floats 0..1, rows bottom-up as Blender stores images."""

    width: int
    height: int
    rgba: array.array[float]


def decode_png(data: bytes, max_side: int = MAX_SIDE) -> Pixels:
    """The picture scaled down (nearest pixel) to at most `max_side`; ValueError when it cannot be read."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, palette, header = len(_SIGNATURE), bytearray(), b"", b""
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(header) != 13:
        raise ValueError("no PNG header")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = _CHANNELS.get(colour)
    if depth != 8 or interlace or channels is None or not 0 < width * height <= MAX_SOURCE_PIXELS:
        raise ValueError("an unsupported PNG")
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise ValueError("a damaged PNG") from exc
    stride = width * channels
    if len(raw) < (stride + 1) * height:
        raise ValueError("a truncated PNG")
    rows = _unfilter(raw, stride, height, channels)
    scale = max(width, height) / max_side if max(width, height) > max_side else 1.0
    out_w, out_h = max(1, round(width / scale)), max(1, round(height / scale))
    rgba = array.array("f")
    for oy in range(out_h):
        row = rows[height - 1 - min(height - 1, int(oy * height / out_h))]  # bottom-up
        for ox in range(out_w):
            i = min(width - 1, int(ox * width / out_w)) * channels
            rgba.extend(_rgba(row, i, colour, palette))
    return Pixels(out_w, out_h, rgba)


def _rgba(row: bytearray, i: int, colour: int, palette: bytes) -> tuple[float, float, float, float]:
    if colour == 2:
        return row[i] / 255, row[i + 1] / 255, row[i + 2] / 255, 1.0
    if colour == 6:
        return row[i] / 255, row[i + 1] / 255, row[i + 2] / 255, row[i + 3] / 255
    if colour == 3:
        j = row[i] * 3
        if j + 3 > len(palette):
            raise ValueError("a PNG palette index out of range")
        return palette[j] / 255, palette[j + 1] / 255, palette[j + 2] / 255, 1.0
    grey = row[i] / 255
    return grey, grey, grey, (row[i + 1] / 255 if colour == 4 else 1.0)


def _unfilter(raw: bytes, stride: int, height: int, bpp: int) -> list[bytearray]:
    """Undo PNG's per-row filters (every row: the next one depends on it)."""
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, cur = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 255
        elif kind == 2:
            cur = bytearray((a + b) & 255 for a, b in zip(cur, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif kind != 0:
            raise ValueError("a damaged PNG (unknown row filter)")
        rows.append(cur)
        prev = cur
    return rows
