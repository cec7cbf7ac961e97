"""The add-on's Blender side: one room per feature over shared helpers (`common`).

Rooms: `preferences`, `importing`, `generate`, `generations` (My Generations), `library`, `account`. A room
never imports another room: what two share lives in `common`, which imports no room. Everything reaches the
service through the pure layer (`..service`), which never imports anything of Blender. The lint tier enforces
both rules. Registration runs in the order of `PARTS` (unregistration in reverse).
"""

from __future__ import annotations

import bpy

from . import account, generate, generations, importing, library, preferences
from .common import job_progress, lookups, startup, stores

PARTS = (preferences, lookups, job_progress, importing, generate, generations, library, account)


def register() -> None:
    """Register every part, then start the background start-up work (never on Blender's main thread)."""
    for part in PARTS:
        part.register()
    startup.begin(bpy.context)


def unregister() -> None:
    """Unregister in reverse: running downloads are cancelled and their partial files removed."""
    stores.unregister()
    for part in reversed(PARTS):
        part.unregister()
