"""The My Generations panel of the Triverse sidebar tab: every task created from this Blender, newest first,
with its thumbnail, status, cost and time, and buttons to import it, generate it again or copy its UUID.

Thumbnails: a timer notices a record's preview file, a thread reads and decodes it (`service.thumbnail`), and
the timer copies the pixels into a previews collection (no file read, no decoding on the main thread, none in
`draw()`). Drawing reads the store only once it is in memory (`common.startup` reads it off the main thread).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import bpy

from ..common import feed_state, redraw, stores
from ..common.job_progress import running_jobs
from ..common.previews import PreviewCollection

if TYPE_CHECKING:
    from ...service.thumbnail import Pixels

SHOWN = 12  # rows drawn; the rest are counted (the list keeps up to the store's cap)
THUMB_STEP = 1.0  # seconds between looks for new preview files
FEED_ICONS = {"connected": "CHECKMARK", "connecting": "SORTTIME", "retrying": "ERROR", "unavailable": "CANCEL"}

THUMBNAILS = PreviewCollection()
_loaded: dict[str, str] = {}  # task UUID -> preview file shown for it (or found unreadable)
_pending: set[str] = set()  # task UUIDs whose preview a thread is decoding
_decoded: collections.deque[tuple[str, str, Pixels | None]] = collections.deque()  # appended by a worker


def title(record: object) -> str:
    """What the row is called: the prompt, else the input image's name."""
    prompt = str(getattr(record, "prompt", "") or "").strip()
    if prompt:
        return prompt
    name = str(getattr(record, "image_name", "") or "")
    if not name and getattr(record, "origin", "") == "elsewhere":  # made elsewhere: its flow and UUID say which
        name = f"{getattr(record, 'flow_name', '') or 'Task'} {str(getattr(record, 'task_uuid', ''))[:8]}"
    return name or "Generation"


def when(epoch: float, now: float | None = None) -> str:
    """A short time: "just now", "12 min ago", "14:05", or "3 Dec 14:05" for another day."""
    now = time.time() if now is None else now
    age = now - epoch
    if age < 60:
        return "just now"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    stamp = time.localtime(epoch)
    if time.localtime(now)[:3] == stamp[:3]:
        return time.strftime("%H:%M", stamp)
    return time.strftime("%d %b %H:%M", stamp).lstrip("0")


def status_text(record: object, watched: bool = True) -> str:
    """The status as a user reads it: "Running 40%", "Done", "Failed: reason"; a task no longer
    watched says its status is the one last seen."""
    status = str(getattr(record, "status", "") or "")
    seen = "" if watched else ", last seen"
    if status == "RUNNING":
        return f"Running {getattr(record, 'progress', 0) or 0}%{seen}"
    if status in ("PENDING", "QUEUED"):
        return f"{status.capitalize()}{seen}"
    if status == "SUCCESS":
        return "Imported" if getattr(record, "imported", False) else "Done"
    if status in ("FAILED", "CANCELLED"):
        error = str(getattr(record, "error", "") or "")
        return f"{status.capitalize()}: {error}" if error else status.capitalize()
    return status.capitalize() if status else "Pending"


def thumbnail_icon(task_uuid: str) -> int:
    """The icon id of a row's thumbnail, or 0 (only what the timer has loaded already)."""
    return THUMBNAILS.icon(task_uuid) if task_uuid in _loaded else 0


def _decode(jobs: list[tuple[str, str]], decode_png: Callable[[bytes], Pixels]) -> None:
    """Worker: read and decode preview files (never on the main thread: pure-Python PNG decoding)."""
    for task_uuid, path in jobs:
        try:
            pixels = decode_png(Path(path).read_bytes())
        except (OSError, ValueError):
            pixels = None  # only a picture: the row shows its icon instead
        _decoded.append((task_uuid, path, pixels))


def load_thumbnails() -> float | None:
    """Timer: hand new preview files to a decoding thread; copy decoded pixels into the previews."""
    changed = False
    while _decoded:
        task_uuid, path, pixels = _decoded.popleft()
        _pending.discard(task_uuid)
        _loaded[task_uuid] = path
        if pixels is not None:
            THUMBNAILS.put(task_uuid, pixels)
            changed = True
    store = stores.generations()
    if not store.loaded:  # still being read off the main thread: drawn once it is there
        return THUMB_STEP
    if not _shown_loaded["yes"]:
        _shown_loaded["yes"] = changed = True
    try:
        records = store.all()[:SHOWN]
    except Exception:  # noqa: BLE001 - no list (damaged or unreadable): nothing to show, try later
        return THUMB_STEP
    wanted = [
        (r.task_uuid, r.preview_file)
        for r in records
        if r.preview_file and _loaded.get(r.task_uuid) != r.preview_file and r.task_uuid not in _pending
    ]
    if wanted:
        from ...service.thumbnail import decode_png  # imported here, on the main thread: a worker never imports

        _pending.update(task_uuid for task_uuid, _ in wanted)
        threading.Thread(target=_decode, args=(wanted, decode_png), name="triverse-thumbnails", daemon=True).start()
    if changed:
        redraw.tag_sidebars()
    return THUMB_STEP


class TRIVERSE_PT_generations(bpy.types.Panel):
    """The generations created from this Blender"""

    bl_label = "My Generations"
    bl_idname = "TRIVERSE_PT_generations"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Triverse"

    def draw(self, context: bpy.types.Context) -> None:
        """One small box per generation, newest first."""
        layout = self.layout
        draw_feed(layout)
        store = stores.generations()
        if not store.loaded:  # never read from draw(): the start-up thread reads it
            layout.label(text="Reading the list...", icon="SORTTIME")
            return
        try:
            records = store.all()
        except Exception:  # noqa: BLE001 - a damaged list must not break the sidebar
            layout.label(text="The list of generations cannot be read", icon="ERROR")
            return
        if not records:
            layout.label(text="Nothing generated yet", icon="INFO")
            return
        watched = set(stores.watching())
        watched.update(job.task_uuid for job in running_jobs() if job.task_uuid)
        live = feed_state.current()[0] == "connected"  # the account's feed updates every task of the list
        for record in records[:SHOWN]:
            draw_row(layout.box(), record, live or record.task_uuid in watched)
        if len(records) > SHOWN:
            layout.label(text=f"and {len(records) - SHOWN} older ones")


def draw_feed(layout: bpy.types.UILayout) -> None:
    """The account feed's state when it is on (said once, in one line), and Sync."""
    kind, line = feed_state.current()
    row = layout.row(align=True)
    if kind != "off" and line:
        row.label(text=f"Tasks made elsewhere: {line}", icon=FEED_ICONS.get(kind, "INFO"))
        row.operator("triverse.sync_generations", text="", icon="FILE_REFRESH")
    else:
        row.operator("triverse.sync_generations", text="Sync with Account", icon="FILE_REFRESH")


def draw_row(box: bpy.types.UILayout, record: object, watched: bool = True) -> None:
    """Thumbnail, title, status, cost and time; Import, Generate Again, Copy UUID."""
    task_uuid = str(getattr(record, "task_uuid", ""))
    icon = thumbnail_icon(task_uuid)
    if icon:
        split = box.split(factor=0.3)
        split.template_icon(icon_value=icon, scale=2.6)
        col = split.column(align=True)
    else:
        col = box.column(align=True)
    from_image = not str(getattr(record, "prompt", "") or "").strip()
    elsewhere = getattr(record, "origin", "") == "elsewhere"  # seen on the account: the web app, a script, ...
    kind = "WORLD" if elsewhere else ("IMAGE_DATA" if from_image else "SHADERFX")
    col.label(text=title(record), icon="NONE" if icon else kind)
    status = str(getattr(record, "status", ""))
    line = col.row()
    line.alert = status in ("FAILED", "CANCELLED")
    line.label(text=status_text(record, watched))
    cost = getattr(record, "cost_credits", None)
    details = [
        "Made elsewhere" if elsewhere else "",
        f"{cost:,} credits" if cost is not None else "",
        when(float(getattr(record, "created_at", 0.0) or 0)),
    ]
    col.label(text="  ".join(d for d in details if d))
    row = col.row(align=True)
    sub = row.row(align=True)
    sub.enabled = status == "SUCCESS"
    op = sub.operator("triverse.generation_import", text="Import", icon="IMPORT")
    op.task_uuid = task_uuid
    op = row.operator("triverse.generation_again", text="", icon="FILE_REFRESH")
    op.task_uuid = task_uuid
    op = row.operator("triverse.generation_copy_uuid", text="", icon="COPYDOWN")
    op.task_uuid = task_uuid


classes = (TRIVERSE_PT_generations,)
_shown_loaded = {"yes": False}  # the list was drawn once loaded (a redraw was asked for then)


def register() -> None:
    """Start looking for thumbnails (and for the list, once read)."""
    THUMBNAILS.register()
    _loaded.clear()
    _pending.clear()
    _shown_loaded["yes"] = False
    bpy.app.timers.register(load_thumbnails, first_interval=0.0, persistent=True)


def unregister() -> None:
    """Stop looking; release the thumbnails."""
    if bpy.app.timers.is_registered(load_thumbnails):
        bpy.app.timers.unregister(load_thumbnails)
    THUMBNAILS.unregister()
    _loaded.clear()
