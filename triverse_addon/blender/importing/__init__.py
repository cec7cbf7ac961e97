"""Import by task UUID: the sidebar's Import panel, `bpy.ops.triverse.import_task`, and the batch import."""

from __future__ import annotations

from . import operators, panel


def register() -> None:
    """The operators, then the panel and its state."""
    operators.register()
    panel.register()


def unregister() -> None:
    """In reverse."""
    panel.unregister()
    operators.unregister()
