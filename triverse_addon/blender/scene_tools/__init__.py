"""Scene tools: texture or remesh the selected objects, each result in its original's place (the original kept,
hidden), from the sidebar's Scene Tools panel, the console and scripts."""

from __future__ import annotations

import bpy
from bpy.props import PointerProperty

from ..common import addon, lookups
from . import operators, panel

_register_classes, _unregister_classes = addon.classes_registration((*operators.classes, *panel.classes))


def register() -> None:
    """The operators, the panel and its state, the price look-up."""
    _register_classes()
    bpy.types.WindowManager.triverse_scene_tools = PointerProperty(type=panel.TRIVERSE_PG_scene_tools)
    lookups.watch(panel.QUOTE, panel.ask_price, "credits")


def unregister() -> None:
    """Remove what register() added."""
    lookups.unwatch(panel.QUOTE)
    del bpy.types.WindowManager.triverse_scene_tools
    _unregister_classes()
