"""The generations still running when Blender closed, watched again at the next start (watch only, never an
import): their records follow the service. No `bpy` module use."""

from __future__ import annotations

import logging
import threading
import time

from . import errors, watch
from .api import TriverseClient
from .generate import WATCH_TIMEOUT, update_record
from .generations_store import GenerationStore
from .settings import Settings

__all__ = ["Rewatcher"]

log = logging.getLogger(__name__)


class Rewatcher:
    """Watch, each on its own thread, the stored tasks still running; update their records, import nothing."""

    def __init__(self, settings: Settings, store: GenerationStore, *, online_access: bool = True) -> None:
        """Prepare; `start()` begins."""
        self.settings = settings
        self.store = store
        self.online_access = online_access
        self._threads: dict[str, tuple[threading.Thread, TriverseClient]] = {}
        self._lock = threading.Lock()

    def start(self, timeout: float = WATCH_TIMEOUT) -> list[str]:
        """Watch every running task not watched yet; the task UUIDs now watched."""
        for record in self.store.running():
            with self._lock:
                if record.task_uuid in self._threads:
                    continue
                try:
                    client = TriverseClient(self.settings, online_access=self.online_access)
                except errors.TriverseError as exc:  # a CA bundle that vanished: nothing to watch with
                    log.warning("Cannot watch Triverse tasks again: %s", exc)
                    return []
                thread = threading.Thread(
                    target=self._watch,
                    args=(client, record.task_uuid, timeout),
                    name=f"triverse-rewatch-{record.task_uuid[:8]}",
                    daemon=True,
                )
                self._threads[record.task_uuid] = (thread, client)
            thread.start()
        return self.watching()

    def watching(self) -> list[str]:
        """Task UUIDs being watched now."""
        with self._lock:
            return [u for u, (t, _) in self._threads.items() if t.is_alive()]

    def stop(self, task_uuid: str | None = None, join_seconds: float = 1.0) -> None:
        """Stop watching one task, or all (the tasks go on on the service)."""
        with self._lock:
            chosen = [(u, v) for u, v in self._threads.items() if task_uuid in (None, u)]
        for _, (_, client) in chosen:
            client.abort()
        deadline = time.monotonic() + join_seconds
        for _, (thread, _) in chosen:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _watch(self, client: TriverseClient, task_uuid: str, timeout: float) -> None:
        try:
            watch.wait_for_success(client, task_uuid, timeout, lambda s: update_record(self.store, task_uuid, s))
        except errors.Cancelled:
            pass  # stopped (Blender closing, the add-on disabled): the record keeps its last status
        except errors.TriverseError as exc:
            log.info("Watching task %s again ended: %s", task_uuid[:8], exc)
        except Exception:  # a watcher thread must never die with a traceback in the console only
            log.exception("Watching task %s again failed unexpectedly", task_uuid[:8])
        finally:
            client.close()
            with self._lock:
                self._threads.pop(task_uuid, None)
