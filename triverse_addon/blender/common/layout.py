"""Messages in a narrow sidebar: Blender's labels cut text, they never wrap, so long sentences are split here."""

from __future__ import annotations

import textwrap

import bpy


def wrapped(text: str, width_px: int) -> list[str]:
    """`text` cut into lines that fit a sidebar `width_px` wide."""
    per_line = max(12, (width_px - 60) // 7)  # about 7 pixels a character at the default UI scale
    return textwrap.wrap(text, per_line) or [""]


def lines(layout: bpy.types.UILayout, text: str, icon: str, alert: bool = False) -> None:
    """A message on as many lines as the sidebar's width needs; the icon on the first only."""
    col = layout.column(align=True)
    col.alert = alert
    width = bpy.context.region.width if bpy.context.region is not None else 300
    for i, line in enumerate(wrapped(text, width)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def alert(layout: bpy.types.UILayout, reason: str | None) -> None:
    """A reason under a field, in red."""
    if reason:
        lines(layout, reason, "ERROR", alert=True)
