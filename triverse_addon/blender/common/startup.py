"""The add-on's start-up work, kept out of Blender's start: the network stack imported (requests, urllib3 and the
add-on's network modules: about 50 ms), My Generations read from disk, and its tasks still running when Blender
closed watched again.

All of it runs on the main thread, never on a thread of its own: two threads importing overlapping modules can
deadlock in CPython (the `email` package's circular imports do, seen with Blender 3.4), and Blender or another
add-on may import on the main thread at any time. In a window, a timer does it one step per tick, starting
shortly after Blender has started, so no tick holds the main thread long. Without a window (`blender -b`, the bpy
module: timers never run) nothing happens at start; the first operator that needs the network imports it, and
`ensure()` does all of it at once (a script that wants My Generations watched again calls it).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import bpy

from . import addon, stores

log = logging.getLogger(__name__)

FIRST_TICK = 0.5  # seconds after register: Blender is still drawing its first window then
STEP = 0.05  # seconds between steps: the window stays responsive between them

_ADDON = addon.ADDON_ID
# Leaves first, so that each step imports a slice, not the whole tree at once (requests alone is ~40 ms).
_MODULES = (
    "email.parser",
    "http.client",
    "urllib3",
    "idna",
    "certifi",
    "requests",
    f"{_ADDON}.service.api",
    f"{_ADDON}.service.obtain",
    f"{_ADDON}.service.jobs",
    "websocket",  # the extension's wheel; Blender 3.x has none (the watch polls there)
    f"{_ADDON}.service.watch",
    f"{_ADDON}.service.generate",
    f"{_ADDON}.service.rewatch",
)
_done: list[str] = []  # the names of the steps done, in order
# Work features add on register, done after the network stack (the asset library's folder and entry...).
LATER: list[tuple[str, Callable[[], object]]] = []


def _steps() -> list[tuple[str, Callable[[], object]]]:
    imports = [(name, lambda name=name: _import(name)) for name in _MODULES]
    return [*imports, ("generations", _read_generations), ("rewatch", _rewatch), *LATER]


def _read_generations() -> None:
    store = stores.generations()
    if not store.loaded:  # read once: an operator may have read it already, and records may be in memory only
        store.load()


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        if name != "websocket":
            raise


def _rewatch() -> None:
    stores.rewatch(addon.get_settings(), addon.online_access())


def step() -> bool:
    """Do the next step of the start-up work; False once all is done."""
    steps = _steps()
    if len(_done) >= len(steps):
        return False
    name, work = steps[len(_done)]
    _done.append(name)
    try:
        work()
    except Exception:  # a damaged store or a missing module must never break Blender: the rest goes on
        log.exception("Triverse's start-up step %s failed", name)
    return len(_done) < len(steps)


def ensure() -> None:
    """Do what is left of the start-up work now (main thread)."""
    while step():
        pass


def _tick() -> float | None:
    return STEP if step() else None


def begin() -> None:
    """In a window, schedule the start-up work on a timer; without one, leave it to the first use."""
    _done.clear()
    if not bpy.app.background:
        bpy.app.timers.register(_tick, first_interval=FIRST_TICK, persistent=True)


def end() -> None:
    """Stop the timer (the add-on is being disabled)."""
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
