"""My Generations' store in the add-on's user folder (never in a .blend, never the key), and the generations still
running when Blender closed, watched again. Safe from any thread once `register()` has named the folder."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...service import errors
from . import addon

if TYPE_CHECKING:
    from ...service.generations_store import GenerationStore
    from ...service.settings import Settings

log = logging.getLogger(__name__)

STORE_FILE = "generations.json"

_lock = threading.RLock()  # rewatch() opens the store while holding it
_state: dict[str, Any] = {}  # "path": the store's file; "store": GenerationStore; "rewatcher": Rewatcher


def generations() -> GenerationStore:
    """The My Generations store (created once per session; its file is read on first use, or by `startup`)."""
    from ...service.generations_store import GenerationStore  # loaded with its first use, not Blender's start

    with _lock:
        store = _state.get("store")
        if store is None:
            path = _state.get("path") or addon.user_folder() / STORE_FILE
            store = _state["store"] = GenerationStore(path)
        return store  # type: ignore[no-any-return]


def mark_imported(task_uuid: str) -> None:
    """Note in My Generations that the task's model is in a scene (the list says "Imported")."""
    store = generations()
    record = store.get(task_uuid)
    if record is not None and not record.imported:
        try:
            store.update(task_uuid, imported=True)  # in one step: a preview may be recorded meanwhile
        except errors.StorageError as exc:  # only a mark in a list: the import itself went well
            log.warning("%s", exc)


def watching() -> list[str]:
    """Task UUIDs of stored generations watched again since start (not by a sidebar job)."""
    rewatcher = _state.get("rewatcher")
    return rewatcher.watching() if rewatcher is not None else []


def stop_watching(task_uuid: str) -> bool:
    """Stop watching a task again (it goes on on the service); False when it was not watched."""
    rewatcher = _state.get("rewatcher")
    if rewatcher is None or task_uuid not in rewatcher.watching():
        return False
    rewatcher.stop(task_uuid)
    return True


def rewatch(settings: Settings, online_access: bool) -> list[str]:
    """Watch again the stored tasks still running (any thread): watch only, import nothing."""
    if not settings.api_key or not online_access:
        return []  # they are watched at the next start with a key and online access
    from ...service.rewatch import Rewatcher  # the network path: loaded off Blender's start

    with _lock:
        rewatcher = _state.get("rewatcher")
        if rewatcher is None:
            rewatcher = _state["rewatcher"] = Rewatcher(settings, generations(), online_access=online_access)
    return rewatcher.start()  # type: ignore[no-any-return]


def register(folder: Path) -> None:
    """Name the store's folder (the add-on's user folder: it may differ after a re-install)."""
    with _lock:
        _state.clear()
        _state["path"] = folder / STORE_FILE


def unregister() -> None:
    """Stop watching (the tasks go on on the service and are watched again at the next start)."""
    with _lock:
        rewatcher = _state.pop("rewatcher", None)
        _state.clear()
    if rewatcher is not None:
        rewatcher.stop()
