""" "My Generations": the tasks created from this Blender, kept in a JSON file across sessions. No `bpy` module use.

The file lives in the extension's user folder (never in a .blend) and never holds the API key: a record
has only fields named here, and `GenerationStore` writes nothing else. Writes are atomic (a temporary
file in the same folder, then `os.replace`) and serialised by a lock, so a crash or two threads never
leave a half-written list. A file that cannot be read is kept aside as `<name>.corrupt` and the list
starts empty: a damaged list never stops Blender.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import errors

__all__ = ["MAX_RECORDS", "TERMINAL", "GenerationRecord", "GenerationStore"]

log = logging.getLogger(__name__)

MAX_RECORDS = 200  # the newest are kept; older ones drop off the list (their models stay in the library)
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
FORMAT_VERSION = 1


@dataclass
class GenerationRecord:
    """One task created from Blender, with the settings that made it (to generate again) and its outcome."""

    task_uuid: str
    order_id: str = ""
    flow_name: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    image_name: str = ""  # the input image's base name, shown in the list
    image_path: str = ""  # the input image file on this computer, to generate again with the same settings
    image_file: str = ""  # its upload's file_key: generating again works after that file is gone (a capture)
    mesh_only: bool = False
    polygon_limit: int = 1_000_000
    texture_size: int = 1024
    turbo: bool = False
    status: str = "PENDING"
    progress: int = 0
    cost_credits: int | None = None
    created_at: float = 0.0  # epoch seconds
    finished_at: float | None = None
    error: str = ""
    preview_file: str = ""
    imported: bool = False
    origin: str = ""  # "" made from this Blender; "elsewhere" seen on the account (the web app, another machine)
    source_object: str = ""  # texturing or remeshing: the name of the object it was made from
    texture_prompt: str = ""  # text-to-texture's prompt (`prompt` stays the generation's own)

    def __post_init__(self) -> None:
        self.image_name = os.path.basename(self.image_name.replace("\\", "/"))
        if not self.created_at:
            self.created_at = time.time()

    @property
    def terminal(self) -> bool:
        """The task has ended (SUCCESS, FAILED or CANCELLED)."""
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON file."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRecord:
        """A record from the file: unknown keys ignored, missing ones defaulted, wrong types dropped."""
        kwargs: dict[str, Any] = {}
        defaults = cls(task_uuid="x", created_at=1.0)
        for f in fields(cls):
            if f.name not in data:
                continue
            value, default = data[f.name], getattr(defaults, f.name)
            if f.name in ("cost_credits", "finished_at"):
                ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if ok:
                kwargs[f.name] = type(default)(value) if isinstance(default, (int, float, str)) and value else value
        if not isinstance(kwargs.get("task_uuid"), str) or not kwargs["task_uuid"]:
            raise ValueError("a generation record without a task_uuid")
        return cls(**kwargs)


class GenerationStore:
    """The list of generations in one JSON file; every method is safe to call from any thread."""

    def __init__(self, path: Path, cap: int = MAX_RECORDS) -> None:
        self.path = Path(path)
        self.cap = cap
        self._records: dict[str, GenerationRecord] = {}
        self._lock = threading.RLock()
        self._loaded = False
        self._synced_at = ""  # the last time the account's feed was caught up with (UTC ISO-8601), "" never

    def load(self) -> GenerationStore:
        """Read the file (missing: empty; unreadable: set aside as `.corrupt`, then empty)."""
        with self._lock:
            self._records = {}
            self._synced_at = ""
            self._loaded = True
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return self
            except OSError as exc:
                log.warning("Cannot read the generations list %s (%s); starting empty", self.path, exc)
                return self
            try:
                doc = json.loads(raw.decode("utf-8"))  # a bad encoding is damage like any other
                items = doc["generations"] if isinstance(doc, dict) else None
                if not isinstance(items, list):
                    raise ValueError("no list of generations")
                records = [GenerationRecord.from_json(item) for item in items if isinstance(item, dict)]
            except (ValueError, KeyError, TypeError) as exc:
                self._set_aside(exc)
                return self
            for record in sorted(records, key=lambda r: r.created_at):
                self._records[record.task_uuid] = record
            synced = doc.get("synced_at")
            self._synced_at = synced if isinstance(synced, str) else ""
            return self

    @property
    def synced_at(self) -> str:
        """The last time the account's feed was caught up with (UTC ISO-8601), "" when never."""
        with self._lock:
            self._ensure_loaded()
            return self._synced_at

    def set_synced_at(self, when: str) -> None:
        """Note the time the account's feed was caught up with, and write the file."""
        with self._lock:
            self._ensure_loaded()
            self._synced_at = when
            self._write()

    @property
    def loaded(self) -> bool:
        """The file has been read (drawing shows the list only then: it never reads the file itself)."""
        return self._loaded

    def all(self) -> list[GenerationRecord]:
        """Every record, newest first."""
        with self._lock:
            self._ensure_loaded()
            return sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)

    def get(self, task_uuid: str) -> GenerationRecord | None:
        """The record of a task, if kept."""
        with self._lock:
            self._ensure_loaded()
            return self._records.get(task_uuid)

    def running(self) -> list[GenerationRecord]:
        """Records whose task had not ended when last seen: to watch again (oldest first)."""
        return [r for r in reversed(self.all()) if not r.terminal]

    def upsert(self, record: GenerationRecord) -> None:
        """Add or replace a record and write the file at once (atomically)."""
        with self._lock:
            self._ensure_loaded()
            self._records[record.task_uuid] = record
            self._trim()
            self._write()

    def update(self, task_uuid: str, **fields: Any) -> GenerationRecord | None:
        """Change some fields of a kept record in one step (no other writer's change is lost); None if unknown."""
        with self._lock:
            self._ensure_loaded()
            record = self._records.get(task_uuid)
            if record is None:
                return None
            self._records[task_uuid] = record = dataclasses.replace(record, **fields)
            self._write()
            return record

    def remove(self, task_uuid: str) -> bool:
        """Forget a task; True if it was kept."""
        with self._lock:
            self._ensure_loaded()
            record = self._records.pop(task_uuid, None)
            if record is None:
                return False
            self._forget_preview(record)
            self._write()
            return True

    # -- internals ---------------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _trim(self) -> None:
        if len(self._records) <= self.cap:
            return
        keep = sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)[: self.cap]
        kept = {r.task_uuid for r in keep}
        for record in self._records.values():
            if record.task_uuid not in kept:
                self._forget_preview(record)
        self._records = {r.task_uuid: r for r in sorted(keep, key=lambda r: r.created_at)}

    def _forget_preview(self, record: GenerationRecord) -> None:
        """Remove a record's preview picture when it is one this store kept (in its own folder)."""
        if record.preview_file and Path(record.preview_file).parent == self.path.parent / "previews":
            Path(record.preview_file).unlink(missing_ok=True)

    def _write(self) -> None:
        doc: dict[str, Any] = {"version": FORMAT_VERSION, "generations": [r.to_json() for r in self._records.values()]}
        if self._synced_at:
            doc["synced_at"] = self._synced_at  # 0.2.0 reads the file and ignores this key
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise errors.StorageError(
                f"Cannot save the generations list in {self.path.parent} ({exc.strerror or exc})."
            ) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # already gone
            raise errors.StorageError(
                f"Cannot save the generations list in {self.path.parent} ({exc.strerror or exc})."
            ) from None

    def _set_aside(self, why: BaseException) -> None:
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
        except OSError:
            pass  # it stays where it is; the next save replaces it
        log.warning("The generations list %s was unreadable (%s); kept as %s, starting empty", self.path,
                    type(why).__name__, aside.name)  # fmt: skip
