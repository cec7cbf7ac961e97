"""Background look-ups the panels show (the price, the account, the library's size), on one main-thread timer.

A feature registers each look-up (`watch`) with the topics that make its answer stale ("credits", "library");
`changed(topic)` forgets those answers after an import or a generation. `draw()` never asks itself: it calls
`after_draw(fn)`, and `fn(context)` runs on the next timer tick (a first draw, a key changed elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bpy

from ...service.lookups import Latest
from . import redraw

TICK_BUSY = 0.1  # seconds between looks at a running look-up

Ask = Callable[[bpy.types.Context, bool], None]  # (context, force): ask for a fresh answer if needed


@dataclass
class _Watched:
    latest: Latest[Any]
    ask: Ask
    topics: frozenset[str]


_watched: list[_Watched] = []
_due: set[Callable[[bpy.types.Context], None]] = set()


def watch(latest: Latest[Any], ask: Ask, *topics: str) -> None:
    """Poll `latest` on the timer; `ask` refreshes it (`refresh_all`); `topics` make its answer stale."""
    _watched.append(_Watched(latest, ask, frozenset(topics)))


def unwatch(latest: Latest[Any]) -> None:
    """Stop polling `latest` (a feature unregistering) and forget its answer."""
    _watched[:] = [w for w in _watched if w.latest is not latest]
    latest.forget()


def changed(*topics: str) -> None:
    """Answers about `topics` are stale now (credits spent, a model kept): the next draw asks again."""
    for w in _watched:
        if w.topics & set(topics):
            w.latest.forget()
    redraw.tag_panels()


def refresh_all(context: bpy.types.Context) -> None:
    """Ask every look-up again now (a Refresh button)."""
    for w in _watched:
        w.ask(context, True)
    ensure_timer()


def after_draw(fn: Callable[[bpy.types.Context], None]) -> None:
    """Run `fn(context)` on the next timer tick, once: drawing only reads."""
    _due.add(fn)
    if not bpy.app.timers.is_registered(_run_due):
        bpy.app.timers.register(_run_due, first_interval=0.0)


def ensure_timer() -> None:
    """Start polling (a look-up was asked for)."""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.0, persistent=True)


def tick() -> float | None:
    """Main thread: take in finished look-ups and start due ones; redraw when an answer changed."""
    changed_any = False
    for w in list(_watched):
        changed_any = w.latest.poll() or changed_any
    if changed_any:
        redraw.tag_panels()
    return TICK_BUSY if any(w.latest.busy for w in _watched) else None


def _run_due() -> None:
    context = bpy.context
    due = list(_due)
    _due.clear()
    for fn in due:
        fn(context)


def register() -> None:
    """Nothing to register: features add their look-ups."""


def unregister() -> None:
    """Stop the timers; forget every answer."""
    for timer in (tick, _run_due):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    _due.clear()
    for w in _watched:
        w.latest.forget()
    _watched.clear()
