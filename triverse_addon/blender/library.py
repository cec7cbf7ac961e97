"""The library of kept models: its folder and size in the preferences (counted off the main thread), and the
Open Folder and Clear Library buttons."""

from __future__ import annotations

import os
import subprocess
import sys

import bpy

from ..service.errors import human_size
from ..service.lookups import Latest
from .common import addon, asset_store, lookups

SUMMARY: Latest[tuple[int, int]] = Latest(debounce=0.0, max_age=30.0)  # (models, bytes) of the folder shown


def shown_folder(context: bpy.types.Context) -> str:
    """The library folder the preferences name (or the default one), whether or not the library is on."""
    prefs = addon.addon_preferences(context)
    return bpy.path.abspath(prefs.library_dir) if prefs and prefs.library_dir else addon.default_library_dir()


def _count(path: str) -> tuple[int, int]:
    """(models, bytes) in the folder, on a worker thread: it walks the disk."""
    from ..service.library import Library  # loaded with its first use, not Blender's start

    if not path or not os.path.isdir(path):
        return 0, 0
    library = Library(path, writable=False)  # only looks: never creates or removes
    return len(library.entries()), library.size()


def ask_summary(context: bpy.types.Context, force: bool = False) -> None:
    """Count the library (off the main thread) unless a fresh count is known or on its way."""
    path = shown_folder(context)
    if SUMMARY.want(path, lambda: _count(path), force=force):
        lookups.ensure_timer()


def draw_library(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The folder with its size, and the buttons; in the preferences' library box."""
    path = shown_folder(context)
    if SUMMARY.current(path) and SUMMARY.value is not None:
        count, size = SUMMARY.value
        layout.label(text=f"{path}: {count} models, {human_size(size)}", icon="FILE_FOLDER")
    else:
        if not SUMMARY.busy:
            lookups.after_draw(ask_summary)
        layout.label(text=f"{path}: counting...", icon="FILE_FOLDER")
    row = layout.row()
    row.operator("triverse.library_open", icon="FILEBROWSER")
    row.operator("triverse.library_clear", icon="TRASH")


class TRIVERSE_OT_library_open(bpy.types.Operator):
    """Open the library folder in the system's file browser"""

    bl_idname = "triverse.library_open"
    bl_label = "Open Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Show the folder (created if needed)."""
        from ..service.obtain import open_library

        library, warning = open_library(addon.get_settings(context))
        if library is None:
            self.report({"WARNING"}, warning or "The library is off in the preferences.")
            return {"CANCELLED"}
        path = str(library.root)
        if sys.platform == "win32":
            os.startfile(path)  # type: ignore[attr-defined]
        else:
            subprocess.Popen(["open" if sys.platform == "darwin" else "xdg-open", path])
        return {"FINISHED"}


class TRIVERSE_OT_library_clear(bpy.types.Operator):
    """Delete every model kept in the library (they will be downloaded again when imported)"""

    bl_idname = "triverse.library_clear"
    bl_label = "Clear Library"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first."""
        return context.window_manager.invoke_confirm(self, event)  # type: ignore[no-any-return]

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Remove every kept model, and the Triverse asset library's assets with them."""
        from ..service.obtain import open_library

        library, warning = open_library(addon.get_settings(context))
        if library is None:
            self.report({"WARNING"}, warning or "The library is off in the preferences.")
            return {"CANCELLED"}
        count = library.clear()
        assets = asset_store.clear()
        lookups.changed("library")
        self.report({"INFO"}, f"Removed {count} models and {assets} assets from the Triverse library.")
        return {"FINISHED"}


_register_classes, _unregister_classes = addon.classes_registration(
    (TRIVERSE_OT_library_open, TRIVERSE_OT_library_clear)
)


def register() -> None:
    """The buttons, the size look-up, the preferences' section."""
    _register_classes()
    lookups.watch(SUMMARY, ask_summary, "library")
    addon.PREFERENCE_SECTIONS["library"].append(draw_library)


def unregister() -> None:
    """Remove what register() added."""
    addon.PREFERENCE_SECTIONS["library"].remove(draw_library)
    lookups.unwatch(SUMMARY)
    _unregister_classes()
