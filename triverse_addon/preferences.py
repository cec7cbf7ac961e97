# mypy: disable-error-code="valid-type"
"""Add-on preferences: the API key (stored only here), the service URL, network and library settings."""

from __future__ import annotations

import os
import time

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import config, errors, library

ADDON_ID = __package__ or "triverse"


def addon_preferences(context: bpy.types.Context | None = None) -> TRIVERSE_AP_preferences | None:
    """This add-on's preferences, wherever it is installed (`bl_ext.<repo>.triverse` or legacy)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None  # type: ignore[return-value]


def default_library_dir() -> str:
    """The extension's own user folder (Blender 4.2+), else a folder in Blender's user data files."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="library", create=True)
    except (AttributeError, ValueError):  # not loaded as an extension (Blender < 4.2 or legacy add-on)
        return bpy.utils.user_resource("DATAFILES", path=os.path.join("triverse", "library"), create=True)


def online_access() -> bool:
    """Blender's "Allow Online Access" (always allowed before Blender 4.2, which has no such switch)."""
    return bool(getattr(bpy.app, "online_access", True))


def get_settings(context: bpy.types.Context | None = None) -> config.Settings:
    """The settings in effect: preferences, then TRIVERSE_API_KEY / TRIVERSE_API_URL, then defaults."""
    prefs = addon_preferences(context)
    if prefs is None:  # operator used while the add-on is being disabled: environment only
        return config.resolve(library_dir="")
    library_dir = ""
    if prefs.use_library:
        library_dir = bpy.path.abspath(prefs.library_dir) if prefs.library_dir else default_library_dir()
    return config.resolve(
        prefs.api_key,
        prefs.base_url,
        connect_timeout=prefs.connect_timeout,
        read_timeout=prefs.read_timeout,
        ca_bundle=bpy.path.abspath(prefs.ca_bundle) if prefs.ca_bundle else "",
        proxy=prefs.proxy.strip(),
        library_dir=library_dir,
        library_cap_bytes=int(prefs.library_cap_mb) * 1024 * 1024,
    )


_size_cache: dict[str, tuple[float, int, int]] = {}


def library_summary(path: str, max_age: float = 5.0) -> tuple[int, int]:
    """(assets, bytes) in the library folder, recomputed at most every few seconds (drawn often)."""
    now = time.monotonic()
    cached = _size_cache.get(path)
    if cached and now - cached[0] < max_age:
        return cached[1], cached[2]
    count, size = 0, 0
    if path and os.path.isdir(path):
        lib = library.Library(path, writable=False)  # drawing only looks: it never creates or removes
        count, size = len(lib.entries()), lib.size()
    _size_cache[path] = (now, count, size)
    return count, size


def forget_library_summary() -> None:
    """Make the next draw recount the library (after an import or a clear)."""
    _size_cache.clear()


class TRIVERSE_AP_preferences(bpy.types.AddonPreferences):
    """Triverse add-on preferences."""

    bl_idname = ADDON_ID

    api_key: StringProperty(
        name="API Key",
        description="Your Triverse API key; when empty, the TRIVERSE_API_KEY environment variable is used",
        subtype="PASSWORD",
        default="",
    )
    base_url: StringProperty(
        name="Service URL",
        description=f"Triverse API base URL; when empty, TRIVERSE_API_URL or {config.DEFAULT_BASE_URL}",
        default="",
    )
    connect_timeout: FloatProperty(
        name="Connect Timeout", description="Seconds to wait for a connection", default=10.0, min=1.0, max=300.0
    )
    read_timeout: FloatProperty(
        name="Read Timeout",
        description="Seconds without receiving any byte before a download is given up",
        default=30.0,
        min=1.0,
        max=600.0,
    )
    proxy: StringProperty(
        name="Proxy",
        description="Proxy URL (http://host:port); when empty, the system's HTTPS_PROXY / HTTP_PROXY are used",
        default="",
    )
    ca_bundle: StringProperty(
        name="CA Bundle",
        description="Certificate file of an inspecting proxy, to trust it; certificates are always verified",
        subtype="FILE_PATH",
        default="",
    )
    use_library: BoolProperty(
        name="Keep Downloads in a Library",
        description="Keep every downloaded model, verified, so that it imports again offline and after the "
        "service has deleted it",
        default=True,
    )
    library_dir: StringProperty(
        name="Library Folder",
        description="Where downloaded models are kept; empty for the add-on's own user folder",
        subtype="DIR_PATH",
        default="",
    )
    library_cap_mb: IntProperty(
        name="Size Limit (MB)",
        description="Remove the oldest models beyond this size; 0 for no limit",
        default=0,
        min=0,
    )

    def draw(self, context: bpy.types.Context) -> None:
        """Key and URL with what is in effect, network, library, the account."""
        layout = self.layout
        settings = config.resolve(self.api_key, self.base_url)

        col = layout.column()
        col.prop(self, "api_key")
        if settings.key_source == "environment":
            col.label(text="In effect: the key from TRIVERSE_API_KEY", icon="INFO")
        elif not settings.api_key:
            col.label(text="No key: paste yours from your Triverse account page", icon="ERROR")
        col.prop(self, "base_url")
        col.label(text=f"In effect: {settings.base_url} ({settings.url_source})", icon="URL")
        if not online_access():
            col.label(text="Blender's online access is off (Preferences > System > Network)", icon="ERROR")

        box = layout.box()
        box.label(text="Network", icon="WORLD")
        row = box.row()
        row.prop(self, "connect_timeout")
        row.prop(self, "read_timeout")
        box.prop(self, "proxy")
        box.prop(self, "ca_bundle")

        box = layout.box()
        box.prop(self, "use_library")
        sub = box.column()
        sub.active = self.use_library
        sub.prop(self, "library_dir")
        path = bpy.path.abspath(self.library_dir) if self.library_dir else default_library_dir()
        count, size = library_summary(path)
        sub.label(text=f"{path}: {count} models, {errors.human_size(size)}", icon="FILE_FOLDER")
        sub.prop(self, "library_cap_mb")
        row = sub.row()
        row.operator("triverse.library_open", icon="FILEBROWSER")
        row.operator("triverse.library_clear", icon="TRASH")

        from .ui_generate import draw_account  # here: ui_generate imports this module

        draw_account(layout, context)


classes = (TRIVERSE_AP_preferences,)


def register() -> None:
    """Register the preferences."""
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Unregister the preferences."""
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
