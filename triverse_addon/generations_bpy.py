"""My Generations inside Blender: the store in the extension's user folder, and running tasks watched again.

Names the panels rely on (ui_generations.py):
- `generations_bpy.store()` -> `generations.GenerationStore`: every task created from this Blender, kept in
  `<extension user folder>/generations.json` (never in the .blend, never the key).
- `generations_bpy.watching()` -> the task UUIDs watched again since start (no job in the sidebar for them).
- `generate_core.GenerateJob` (`job.kind == "generate"`) among `core.Job.active()`: the generations the
  sidebar is watching now; `job.request` (a `generation.GenerationRequest`), `job.task_uuid` and
  `job.created` (queue position, estimated wait, cost) once the task exists, `job.status` as it runs.
- Row operators: `triverse.generation_import`, `triverse.generation_again`, `triverse.generation_copy_uuid`,
  `triverse.generation_stop` (each with `task_uuid`; Stop also takes `job.key` before the task exists);
  `triverse.generate` for the Generate button.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy

from . import errors, generate_core, preferences
from .generations import GenerationStore

log = logging.getLogger(__name__)

STORE_FILE = "generations.json"

_state: dict[str, object] = {}  # "store": GenerationStore, "rewatcher": generate_core.Rewatcher


def user_folder() -> Path:
    """The extension's own user folder (Blender 4.2+), else `triverse` in Blender's user data files (3.4)."""
    try:
        return Path(bpy.utils.extension_path_user(preferences.ADDON_ID, path="", create=True))
    except (AttributeError, ValueError):  # not loaded as an extension (Blender < 4.2 or a legacy add-on)
        return Path(bpy.utils.user_resource("DATAFILES", path="triverse", create=True))


def store() -> GenerationStore:
    """The My Generations store (opened once per session)."""
    current = _state.get("store")
    if current is None:
        current = GenerationStore(user_folder() / STORE_FILE)
        _state["store"] = current
    return current  # type: ignore[return-value]


def mark_imported(task_uuid: str) -> None:
    """Note in My Generations that the task's model is in a scene (the list says "Import Again")."""
    record = store().get(task_uuid)
    if record is not None and not record.imported:
        try:
            store().update(task_uuid, imported=True)  # in one step: a preview may be recorded meanwhile
        except errors.StorageError as exc:  # only a mark in a list: the import itself went well
            log.warning("%s", exc)


def watching() -> list[str]:
    """Task UUIDs of stored generations watched again since start (not by a sidebar job)."""
    rewatcher = _state.get("rewatcher")
    return rewatcher.watching() if isinstance(rewatcher, generate_core.Rewatcher) else []


def stop_watching(task_uuid: str) -> bool:
    """Stop watching a task again (it goes on on the service); False when it was not watched."""
    rewatcher = _state.get("rewatcher")
    if not isinstance(rewatcher, generate_core.Rewatcher) or task_uuid not in rewatcher.watching():
        return False
    rewatcher.stop(task_uuid)
    return True


def rewatch() -> list[str]:
    """Watch again the stored tasks still running (a restart): watch only, import nothing."""
    settings = preferences.get_settings()
    online = preferences.online_access()
    if not settings.api_key or not online:
        return []  # they are watched at the next start with a key and online access
    rewatcher = _state.get("rewatcher")
    if not isinstance(rewatcher, generate_core.Rewatcher):
        rewatcher = generate_core.Rewatcher(settings, store(), online_access=online)
        _state["rewatcher"] = rewatcher
    return rewatcher.start()


def register() -> None:
    """Open the store and watch again what was still running when Blender closed."""
    _state.pop("store", None)  # the folder may differ after a re-install: look again
    try:
        rewatch()
    except Exception:  # a damaged store must never keep the add-on from loading
        log.exception("Could not watch the Triverse generations still running")


def unregister() -> None:
    """Stop watching (the tasks go on on the service and are watched again at the next start)."""
    rewatcher = _state.pop("rewatcher", None)
    if isinstance(rewatcher, generate_core.Rewatcher):
        rewatcher.stop()
    _state.pop("store", None)
