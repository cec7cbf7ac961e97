"""The Triverse asset library's folder, and the one worker thread that finishes its assets off the main thread.

The main thread writes an asset's .blend under the folder's `.incoming/` (see the `assets` room); the worker then
fetches the service's preview when there is one to fetch, and runs a background Blender that gives the asset
its preview (Blender 4.3+ drops a collection's preview from `bpy.data.libraries.write`, and rendering one must
not hold the main thread), then renames the file into the folder. The worker imports nothing and never touches
`bpy`: what it needs (the command, the fetch) is prepared on the main thread.

Shared by the `assets` room (which writes) and the `library` room (whose Clear Library clears the assets too).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ...service import asset_catalog
from . import addon

log = logging.getLogger(__name__)

FOLDER_NAME = "asset-library"
SUBPROCESS_TIMEOUT = 180.0


def folder(prefs: Any = None) -> Path:
    """The asset library's folder the preferences name, or the add-on's user folder's (whether or not it is on)."""
    prefs = prefs if prefs is not None else addon.addon_preferences()
    chosen = getattr(prefs, "asset_library_dir", "") if prefs is not None else ""
    return Path(bpy.path.abspath(chosen)) if chosen else addon.user_folder() / FOLDER_NAME


def enabled(prefs: Any = None) -> bool:
    """Whether models become assets (True while the preferences are not there yet: the default)."""
    prefs = prefs if prefs is not None else addon.addon_preferences()
    return bool(getattr(prefs, "use_asset_library", True)) if prefs is not None else True


@dataclass
class Finish:
    """What the worker does for one asset written by the main thread."""

    task_uuid: str
    part: Path  # the .blend the main thread wrote (under .incoming)
    final: Path  # its name once complete
    command: list[str]  # a background Blender running the preview script; arguments follow
    picture: Path | None = None  # the service's preview already on disk (a generation's)
    fetch: Callable[[], Path | None] | None = None  # fetch the service's preview (network), or None
    owns_picture: bool = False  # the picture was fetched for this asset: removed once used
    epoch: int = 0


_lock = threading.Lock()
_state: dict[str, Any] = {"epoch": 0, "thread": None, "busy": 0}
_idle = threading.Condition(_lock)  # notified when a job ends (and when one is queued: the worker waits on it)
_queue: deque[Finish | None] = deque()  # guarded by _lock


def submit(job: Finish) -> None:
    """Finish an asset on the worker (started with the first job)."""
    with _lock:
        job.epoch = _state["epoch"]
        _state["busy"] += 1
        thread = _state["thread"]
        if thread is None or not thread.is_alive():
            thread = _state["thread"] = threading.Thread(target=_run, name="triverse-assets", daemon=True)
            thread.start()
        _queue.append(job)
        _idle.notify_all()


def wait(timeout: float = 60.0) -> bool:
    """Wait until every submitted asset is finished (scripts and tests); False on timeout."""
    with _idle:
        return _idle.wait_for(lambda: _state["busy"] == 0, timeout)


def pending() -> int:
    """Assets still being finished."""
    with _lock:
        return int(_state["busy"])


def stop() -> None:
    """End the worker after the job it is on (the add-on is being disabled); files left behind are cleaned later."""
    with _lock:
        _state["epoch"] += 1
        thread, _state["thread"] = _state["thread"], None
    if thread is not None:
        with _idle:
            _queue.append(None)
            _idle.notify_all()


def clear(path: Path | None = None) -> int:
    """Remove every asset of the folder (and those being finished: they are dropped); returns how many."""
    with _lock:  # a job finishing now cannot rename its file in after this
        _state["epoch"] += 1
        return asset_catalog.clear(path or folder())


def _run() -> None:
    while True:
        with _idle:
            _idle.wait_for(lambda: bool(_queue))
            job = _queue.popleft()
        if job is None:
            return
        try:
            _finish(job)
        except Exception:  # one asset's failure never stops the others
            log.exception("Finishing the asset of task %s", job.task_uuid[:8])
        finally:
            job.part.unlink(missing_ok=True)
            with _idle:
                _state["busy"] -= 1
                _idle.notify_all()


def _finish(job: Finish) -> None:
    picture, fetched = job.picture, None
    if picture is None and job.fetch is not None:
        picture = fetched = job.fetch()
    out = job.part.with_name(job.part.stem + ".out.blend")
    try:
        result = subprocess.run(
            [*job.command, str(job.part), str(out), str(picture or "")],
            capture_output=True,  # never on the console: it may echo paths, never the key (it has none)
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        done = out if result.returncode == 0 and out.is_file() else job.part
        if done is job.part:
            log.warning(
                "No preview for the asset of task %s (exit %s): %s",
                job.task_uuid[:8],
                result.returncode,
                result.stderr.decode("utf-8", "replace")[-500:],
            )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("No preview for the asset of task %s: %s", job.task_uuid[:8], exc)
        done = job.part
    try:
        with _lock:
            if job.epoch == _state["epoch"]:  # not cleared (nor the add-on disabled) meanwhile
                os.replace(done, job.final)
    finally:
        out.unlink(missing_ok=True)
        if fetched is not None:
            fetched.unlink(missing_ok=True)
        if job.owns_picture and job.picture is not None:
            job.picture.unlink(missing_ok=True)
