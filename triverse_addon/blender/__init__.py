"""The add-on's Blender side: one room per feature over shared helpers (`common`).

Rooms: `preferences`, `importing`, `generate`, `generations` (My Generations), `library`, `account`. A room
never imports another room: what two share lives in `common`, which imports no room. Everything reaches the
service through the pure layer (`..service`), which never imports anything of Blender. The lint tier enforces
both rules. Registration runs in the order of `PARTS` (unregistration in reverse).
"""

from __future__ import annotations

from . import account, assets, feed, generate, generations, importing, library, preferences, scene_tools
from .common import addon, job_progress, lookups, startup, stores, temp_images

PARTS = (
    preferences,
    lookups,
    job_progress,
    importing,
    generate,
    scene_tools,
    generations,
    library,
    assets,
    account,
    feed,
)


def register() -> None:
    """Register every part; the start-up work (the network stack, My Generations) comes after Blender's start."""
    stores.register(addon.user_folder())
    for part in PARTS:
        part.register()
    startup.begin()


def unregister() -> None:
    """Unregister in reverse: running downloads are cancelled and their partial files removed."""
    startup.end()
    temp_images.forget_all()
    stores.unregister()
    for part in reversed(PARTS):
        part.unregister()
