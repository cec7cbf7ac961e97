"""The account feed's state, for whoever shows it: the feed room provides it, My Generations' panel reads it (a
room never imports another). Cheap enough for `draw()`: the provider only reads a field under a lock."""

from __future__ import annotations

from collections.abc import Callable

# (kind, text): kind "off", "connecting", "connected", "retrying" or "unavailable"; text one line for a panel.
State = tuple[str, str]
_provider: list[Callable[[], State]] = []


def provide(source: Callable[[], State] | None) -> None:
    """Name the function that tells the feed's state (None: no feed, e.g. while the add-on is disabled)."""
    _provider.clear()
    if source is not None:
        _provider.append(source)


def current() -> State:
    """The feed's state now, ("off", "") when nothing provides one."""
    return _provider[0]() if _provider else ("off", "")
