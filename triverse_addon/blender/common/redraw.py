"""Redrawing only what changed: the 3D viewports' sidebars, the preferences, the status bar."""

from __future__ import annotations

import bpy


def sidebars(context: bpy.types.Context) -> list[bpy.types.Region]:
    """The sidebar regions of every 3D viewport."""
    wm = context.window_manager
    if wm is None:
        return []
    return [
        region
        for window in wm.windows
        if window.screen is not None
        for area in window.screen.areas
        if area.type == "VIEW_3D"
        for region in area.regions
        if region.type == "UI"
    ]


def tag_sidebars(context: bpy.types.Context | None = None) -> None:
    """Redraw the 3D viewports' sidebars (not whole viewports: each costs tens of ms with software OpenGL)."""
    for region in sidebars(context or bpy.context):
        region.tag_redraw()


def tag_panels() -> None:
    """Redraw the sidebars and the preferences window (where the account and the library are shown)."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    tag_sidebars()
    for window in wm.windows:
        for area in window.screen.areas if window.screen else ():
            if area.type == "PREFERENCES":
                for region in area.regions:
                    if region.type == "WINDOW":
                        region.tag_redraw()


def set_status_hint(context: bpy.types.Context, hint: str | None) -> None:
    """The status bar is a window's global area, out of reach of screen.areas: setting the workspace's status
    text redraws it (with the add-on's progress item) and says what Esc does, as Blender's own modal tools do."""
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(hint)
