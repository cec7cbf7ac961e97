"""The add-on as Blender holds it: its module name, its preferences, the settings in effect, Blender's online
access, and the add-on's user folder. Reading these never creates a folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

from ...service import errors
from ...service.settings import Settings, check_ready, resolve

# This module is `<add-on>.blender.common.addon`; the add-on is `bl_ext.<repo>.triverse` as an extension, or
# `triverse` loaded the legacy way (Blender 3.x): never a fixed name.
ADDON_ID = (__package__ or "triverse.blender.common").removesuffix(".blender.common")

PreferenceSection = Callable[[bpy.types.UILayout, bpy.types.Context], None]
# Drawn in the preferences, added by features on register: "library" inside the library's box, "end" below all.
PREFERENCE_SECTIONS: dict[str, list[PreferenceSection]] = {"library": [], "end": []}
# A preference changed: (name, context) to the features that follow it (registered on register).
PreferenceChanged = Callable[[str, bpy.types.Context], None]
PREFERENCE_CHANGED: list[PreferenceChanged] = []


def preference_changed(name: str, context: bpy.types.Context) -> None:
    """Tell the features that follow the preferences that `name` changed (an update callback's body)."""
    for follow in list(PREFERENCE_CHANGED):
        follow(name, context)


def classes_registration(classes: tuple[type, ...]) -> tuple[Callable[[], None], Callable[[], None]]:
    """(register, unregister) of `classes` in order and in reverse: `bpy.utils.register_classes_factory`, whose
    result fake-bpy-module's stubs type as None."""
    return bpy.utils.register_classes_factory(classes)  # type: ignore[no-any-return, func-returns-value]


def addon_preferences(context: bpy.types.Context | None = None) -> Any:
    """This add-on's preferences (None while it is being disabled)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def online_access() -> bool:
    """Blender's "Allow Online Access" (always allowed before Blender 4.2, which has no such switch)."""
    return bool(getattr(bpy.app, "online_access", True))


def user_folder(create: bool = False) -> Path:
    """The extension's own user folder (Blender 4.2+), else `triverse` in Blender's user data files (3.x)."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="", create=create))
    except (AttributeError, ValueError):  # not loaded as an extension (Blender < 4.2 or a legacy add-on)
        return Path(bpy.utils.user_resource("DATAFILES", path="triverse", create=create))


def default_library_dir() -> str:
    """The library's folder when the preferences name none (the library creates it when it first keeps a model)."""
    return str(user_folder() / "library")


def library_dir(prefs: Any) -> str:
    """The library folder the preferences choose, "" when the library is off."""
    if prefs is None or not prefs.use_library:
        return ""
    return bpy.path.abspath(prefs.library_dir) if prefs.library_dir else default_library_dir()


def get_settings(context: bpy.types.Context | None = None) -> Settings:
    """The settings in effect: preferences, then TRIVERSE_API_KEY / TRIVERSE_API_URL, then defaults."""
    prefs = addon_preferences(context)
    if prefs is None:  # an operator used while the add-on is being disabled: environment only
        return resolve(library_dir="")
    return resolve(
        prefs.api_key,
        prefs.base_url,
        connect_timeout=prefs.connect_timeout,
        read_timeout=prefs.read_timeout,
        ca_bundle=bpy.path.abspath(prefs.ca_bundle) if prefs.ca_bundle else "",
        proxy=prefs.proxy.strip(),
        library_dir=library_dir(prefs),
        library_cap_bytes=int(prefs.library_cap_mb) * 1024 * 1024,
    )


def key_and_url(context: bpy.types.Context | None = None) -> Settings:
    """Only the key and the URL in effect: cheap enough for drawing."""
    prefs = addon_preferences(context)
    return resolve(prefs.api_key if prefs else "", prefs.base_url if prefs else "", env=os.environ)


def why_no_request(context: bpy.types.Context | None = None) -> tuple[Settings, str]:
    """The key and URL in effect, and why no request may be sent ("" when one may). Cheap: drawn often."""
    settings = key_and_url(context)
    try:
        check_ready(settings, online_access())
    except errors.MissingApiKey:
        return settings, "no API key"
    except errors.OnlineAccessDisabled:
        return settings, "online access is off"
    return settings, ""
