"""My Generations: every task created from this Blender, with its thumbnail and status, importable again."""

from __future__ import annotations

from ..common import addon
from . import operators, panel

_register_classes, _unregister_classes = addon.classes_registration((*operators.classes, *panel.classes))


def register() -> None:
    """The row buttons, the panel, the thumbnails' timer."""
    _register_classes()
    panel.register()


def unregister() -> None:
    """In reverse."""
    panel.unregister()
    _unregister_classes()
