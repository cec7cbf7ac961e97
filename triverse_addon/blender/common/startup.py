"""What the add-on does once enabled, on a background thread, so that neither Blender's start nor the first
click pays for it: the network stack imported (requests, urllib3, ssl and the add-on's network modules: about
60 ms), My Generations read from disk, and its tasks still running when Blender closed watched again."""

from __future__ import annotations

import importlib
import logging
import threading

import bpy

from . import addon, stores

log = logging.getLogger(__name__)

_SERVICE = (__package__ or "triverse.blender.common").removesuffix(".blender.common") + ".service"
# The modules of the network path, in the order they load one another (all pure: no bpy on this thread).
NETWORK_MODULES = ("api", "obtain", "jobs", "watch", "generate", "generation_api", "rewatch")
_thread: dict[str, threading.Thread] = {}


def begin(context: bpy.types.Context) -> None:
    """Read what the thread needs from Blender (main thread), then start it."""
    settings = addon.get_settings(context)
    online = addon.online_access()
    stores.register(addon.user_folder())
    thread = threading.Thread(target=_warm_up, args=(settings, online), name="triverse-startup", daemon=True)
    _thread["thread"] = thread
    thread.start()


def wait(timeout: float = 10.0) -> bool:
    """Block until the start-up work is done (scripts and tests); True when it is."""
    thread = _thread.get("thread")
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def _warm_up(settings: object, online: bool) -> None:
    try:
        for name in NETWORK_MODULES:
            importlib.import_module(f"{_SERVICE}.{name}")
        stores.generations().load()
        stores.rewatch(settings, online)  # type: ignore[arg-type]
    except Exception:  # a damaged store or a missing module must never break Blender's start
        log.exception("Triverse could not finish starting up in the background")
