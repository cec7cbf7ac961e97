# mypy: disable-error-code="valid-type"
"""The account's feed in Blender: `bpy.ops.triverse.sync_generations()` (catch up once, synchronously: it works in
`blender -b` and the bpy module) and, while the preference Show Tasks Made Elsewhere is on, one live connection
(`service.account_feed.AccountFeed`) adding the tasks made elsewhere to My Generations as they are made.

The feed's thread writes the store itself (a window that is not redrawn still gets the record) and never touches
`bpy`: it only appends what changed to a deque. In a window, a timer on the main thread reads that deque to redraw
the sidebars and, with Import Finished Tasks Automatically on, to import a task made elsewhere that just succeeded.
The network modules are imported on the main thread only (where the feed starts), never by the feed's thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bpy

from .common import addon, feed_state, redraw, stores
from .common.reporting import report_failure

if TYPE_CHECKING:
    from ..service.account_feed import AccountFeed

log = logging.getLogger(__name__)

FIRST_TICK = 1.5  # seconds after register before a feed left on starts (after the start-up's network imports)
TICK = 0.25  # seconds between looks at what the feed heard (redraws, automatic imports), while it is on

_feed: dict[str, AccountFeed] = {}
_heard: collections.deque[tuple[list[str], list[str]]] = collections.deque()  # appended by the feed's thread
_shown: dict[str, Any] = {"state": ("off", ""), "blocked": ""}  # the state last drawn; why the feed could not start


class TRIVERSE_OT_sync_generations(bpy.types.Operator):
    """Catch up with your Triverse account: tasks made elsewhere (the web app, a script, another computer) are added
    to My Generations and the others updated"""

    bl_idname = "triverse.sync_generations"
    bl_label = "Sync My Generations"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Read the account's changes since the last sync (all of them the first time), synchronously."""
        sync = _sync_call(context)
        try:
            counts = sync()
        except Exception as exc:  # noqa: BLE001 - reported once, in report_failure
            return report_failure(self, exc, "sync")
        return self._done(context, counts)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """From the sidebar's button: the same on a worker thread, Blender staying responsive meanwhile."""
        sync = _sync_call(context)
        box: dict[str, Any] = {}

        def work() -> None:  # a worker thread: the network and the store only, never bpy, never an import
            try:
                box["counts"] = sync()
            except Exception as exc:  # noqa: BLE001 - handed to the main thread, which reports it
                box["error"] = exc

        self._box = box
        self._thread = threading.Thread(target=work, name="triverse-sync", daemon=True)
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Report once the worker has ended."""
        if event.type != "TIMER" or self._thread.is_alive():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        if "error" in self._box:
            return report_failure(self, self._box["error"], "sync")
        return self._done(context, self._box["counts"])

    def _done(self, context: bpy.types.Context, counts: tuple[int, int]) -> set[str]:
        new, updated = counts
        self.report({"INFO"}, f"{new} new task{'s' if new != 1 else ''} made elsewhere, {updated} updated.")
        if context.window_manager is not None:
            redraw.tag_sidebars(context)
        return {"FINISHED"}


def _sync_call(context: bpy.types.Context) -> Callable[[], tuple[int, int]]:
    """The catch-up, ready to run on any thread: its modules imported and its settings read here (main thread)."""
    from ..service import account_feed
    from ..service.api import TriverseClient

    store = stores.generations()
    settings = addon.get_settings(context)
    online = addon.online_access()

    def sync() -> tuple[int, int]:
        since = account_feed.resume_since(store.synced_at)
        with TriverseClient(settings, online_access=online) as client:
            caught = account_feed.catch_up(client, since or None)
        applied = account_feed.apply(store, caught.payloads)
        store.set_synced_at(caught.synced_at)
        return len(applied.new), len(applied.updated)

    return sync


def start(context: bpy.types.Context | None = None) -> None:
    """(Re)start the feed when the preference asks for it (main thread: the network modules are imported here)."""
    stop()
    prefs = addon.addon_preferences(context)
    if prefs is None or not prefs.watch_account:
        return
    _open(context)
    if not bpy.app.background:  # no timer runs without a window
        bpy.app.timers.register(_tick, first_interval=TICK, persistent=True)


def _open(context: bpy.types.Context | None = None) -> None:
    from ..service import account_feed

    _shown["blocked"] = addon.why_no_request(context)[1]  # "no API key", "online access is off", or ""
    store = stores.generations()
    feed = account_feed.AccountFeed(
        addon.get_settings(context),
        store,
        since=account_feed.resume_since(store.synced_at) or None,
        online_access=addon.online_access(),
        on_change=_on_change,
    )
    _feed["feed"] = feed
    feed.start()


def stop() -> None:
    """Close the feed's connection (its thread ends within a fraction of a second)."""
    feed = _feed.pop("feed", None)
    if feed is not None:
        feed.stop()
    _heard.clear()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


def _on_change(changed: list[str], succeeded: list[str]) -> None:
    """The feed's thread: note what changed for the main thread (no `bpy` here)."""
    _heard.append((changed, succeeded))


def state() -> feed_state.State:
    """(kind, one line) of the feed, for the panels."""
    feed = _feed.get("feed")
    if feed is None:
        return "off", ""
    now = feed.state
    return now.kind, now.describe()


def _follow(name: str, context: bpy.types.Context) -> None:
    if name == "watch_account":
        start(context)


def _first() -> None:
    """Main thread, shortly after Blender's start: a feed left on starts (after the start-up's network imports)."""
    if "feed" not in _feed:
        start()


def _tick() -> float | None:
    """Main thread, in a window, while the feed is on: redraw what changed, import what just succeeded."""
    prefs = addon.addon_preferences()
    if prefs is None or "feed" not in _feed:
        return None
    if prefs.watch_account and _shown["blocked"] and not addon.why_no_request()[1]:
        _feed.pop("feed").stop()  # it could not start (no key, online access off): it can now
        _open()
    succeeded: list[str] = []
    changed = bool(_heard)
    while _heard:
        succeeded += _heard.popleft()[1]
    now = state()
    if now != _shown["state"]:
        _shown["state"] = now
        redraw.tag_panels()
    elif changed:
        redraw.tag_sidebars()
    if succeeded and prefs.watch_account and prefs.auto_import_finished:
        _import(succeeded)
    return TICK


def _import(uuids: list[str]) -> None:
    """Import tasks made elsewhere that just succeeded, as My Generations' Import does (a job, then the scene)."""
    override = _view3d()
    if override is None:
        return
    store = stores.generations()
    for task_uuid in dict.fromkeys(uuids):
        record = store.get(task_uuid)
        if record is None or record.imported or record.origin != "elsewhere":
            continue
        try:
            with bpy.context.temp_override(**override):
                bpy.ops.triverse.generation_import("INVOKE_DEFAULT", task_uuid=task_uuid)
        except RuntimeError as exc:  # reported by the operator already
            log.warning("Triverse could not import task %s automatically: %s", task_uuid[:8], exc)


def _view3d() -> dict[str, Any] | None:
    """A window (and its 3D viewport, when it has one) to run the import in: timers run without one."""
    wm = bpy.context.window_manager
    windows = list(wm.windows) if wm is not None else []
    for window in windows:
        for area in window.screen.areas if window.screen else ():
            if area.type == "VIEW_3D":
                region = next((r for r in area.regions if r.type == "WINDOW"), None)
                return {"window": window, "area": area, "region": region}
    return {"window": windows[0]} if windows else None


def draw_section(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The preferences' section: the two preferences and the feed's state."""
    prefs = addon.addon_preferences(context)
    if prefs is None:
        return
    box = layout.box()
    box.prop(prefs, "watch_account")
    sub = box.row()
    sub.active = prefs.watch_account
    sub.prop(prefs, "auto_import_finished")
    kind, line = state()
    if prefs.watch_account and line:
        box.label(text=f"Live feed: {line}", icon=_ICONS.get(kind, "INFO"))
    box.operator(TRIVERSE_OT_sync_generations.bl_idname, icon="FILE_REFRESH")


_ICONS = {"connected": "CHECKMARK", "connecting": "SORTTIME", "retrying": "ERROR", "unavailable": "CANCEL"}
_register_classes, _unregister_classes = addon.classes_registration((TRIVERSE_OT_sync_generations,))


def register() -> None:
    """The operator, the preference's follower and section, the feed's state for the panels, the timer."""
    _register_classes()
    addon.PREFERENCE_CHANGED.append(_follow)
    addon.PREFERENCE_SECTIONS["end"].append(draw_section)
    feed_state.provide(state)
    _shown.update(state=("off", ""), blocked="")
    prefs = addon.addon_preferences()
    if prefs is not None and prefs.watch_account:
        if bpy.app.background:
            start()  # no timer runs without a window: at once (there is no window to keep responsive)
        else:
            bpy.app.timers.register(_first, first_interval=FIRST_TICK, persistent=True)


def unregister() -> None:
    """Close the feed and remove what register() added."""
    if bpy.app.timers.is_registered(_first):
        bpy.app.timers.unregister(_first)
    stop()
    feed_state.provide(None)
    addon.PREFERENCE_SECTIONS["end"].remove(draw_section)
    addon.PREFERENCE_CHANGED.remove(_follow)
    _unregister_classes()
