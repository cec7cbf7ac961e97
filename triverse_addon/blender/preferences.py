# mypy: disable-error-code="valid-type"
"""The add-on's preferences: the API key (stored only here, never in a .blend), the service URL, the network
settings and the library's; below them, the sections other features add (the library's size, the account)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from ..service.settings import DEFAULT_BASE_URL
from .common import addon


def _changed(name: str) -> Callable[[Any, bpy.types.Context], None]:
    """An update callback telling the features that follow the preferences (they register in addon)."""

    def update(self: Any, context: bpy.types.Context) -> None:
        addon.preference_changed(name, context)

    return update


class TRIVERSE_AP_preferences(bpy.types.AddonPreferences):
    """Triverse add-on preferences."""

    bl_idname = addon.ADDON_ID

    api_key: StringProperty(
        name="API Key",
        description="Your Triverse API key; when empty, the TRIVERSE_API_KEY environment variable is used",
        subtype="PASSWORD",
        default="",
    )
    base_url: StringProperty(
        name="Service URL",
        description=f"Triverse API base URL; when empty, TRIVERSE_API_URL or {DEFAULT_BASE_URL}",
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

    watch_account: BoolProperty(
        name="Show Tasks Made Elsewhere",
        description="Keep one connection to your Triverse account open, so that tasks made on the web app, by a "
        "script or a teammate appear in My Generations as they are made",
        default=False,
        update=_changed("watch_account"),
    )
    auto_import_finished: BoolProperty(
        name="Import Finished Tasks Automatically",
        description="A task made elsewhere that succeeds is imported into the open scene at once (needs Show "
        "Tasks Made Elsewhere)",
        default=False,
        update=_changed("auto_import_finished"),
    )
    use_asset_library: BoolProperty(
        name="Triverse Asset Library",
        description="Keep every model imported or generated as an asset of a Blender asset library named "
        "Triverse (registered under Preferences > File Paths > Asset Libraries)",
        default=True,
        update=_changed("use_asset_library"),
    )
    asset_library_dir: StringProperty(
        name="Asset Library Folder",
        description="Where the Triverse asset library keeps its .blend files; empty for the add-on's own user folder",
        subtype="DIR_PATH",
        default="",
        update=_changed("asset_library_dir"),
    )

    def draw(self, context: bpy.types.Context) -> None:
        """Key and URL with what is in effect, the network, the library, then the features' sections.

        Only reads: the library's size and the account are looked up off the main thread by their features.
        """
        layout = self.layout
        settings = addon.key_and_url(context)

        col = layout.column()
        col.prop(self, "api_key")
        if settings.key_source == "environment":
            col.label(text="In effect: the key from TRIVERSE_API_KEY", icon="INFO")
        elif not settings.api_key:
            col.label(text="No key: paste yours from your Triverse account page", icon="ERROR")
        col.prop(self, "base_url")
        col.label(text=f"In effect: {settings.base_url} ({settings.url_source})", icon="URL")
        if not addon.online_access():
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
        sub.prop(self, "library_cap_mb")
        for section in addon.PREFERENCE_SECTIONS["library"]:
            section(sub, context)
        for section in addon.PREFERENCE_SECTIONS["end"]:
            section(layout, context)


register, unregister = addon.classes_registration((TRIVERSE_AP_preferences,))
