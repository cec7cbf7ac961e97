"""Generate from a prompt, an image or the viewport: the Generate panels, `bpy.ops.triverse.generate`, the price
before spending, and the batch generation for scripts."""

from __future__ import annotations

import bpy
from bpy.props import PointerProperty

from ..common import addon, lookups
from . import operators, panel, price, state

_register_classes, _unregister_classes = addon.classes_registration(
    (state.TRIVERSE_PG_generate, price.TRIVERSE_OT_refresh_price, *operators.classes, *panel.classes)
)


def register() -> None:
    """The panel's state, the operators, the panels, the price look-up."""
    _register_classes()
    bpy.types.WindowManager.triverse_generate = PointerProperty(type=state.TRIVERSE_PG_generate)
    lookups.watch(price.QUOTE, price.ask_price, "credits")


def unregister() -> None:
    """Remove what register() added; temporary images are removed."""
    operators.forget()
    lookups.unwatch(price.QUOTE)
    state.forget()
    del bpy.types.WindowManager.triverse_generate
    _unregister_classes()
