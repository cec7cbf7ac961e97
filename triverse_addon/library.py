"""A local library of downloaded assets, keyed by task UUID and verified by size and SHA-256.

No `bpy` module use. Layout: `<root>/<task_uuid>/asset.<fmt>` with `meta.json` beside it, and
`<root>/.incoming/` for downloads in progress (same file system, so that `os.replace` is atomic).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass
from pathlib import Path

from . import errors
from .formats import remove_quietly

__all__ = ["Entry", "Library", "sha256_of"]

_STALE_PARTIAL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Entry:
    """One kept asset."""

    task_uuid: str
    format: str
    size: int
    sha256: str
    filename: str
    saved_at: float
    path: Path


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Library:
    """The folder of kept assets; every read is verified, every write is atomic."""

    def __init__(self, root: Path | str, cap_bytes: int = 0, *, writable: bool = True) -> None:
        """Open the library at `root`; `writable=False` makes no folder (for drawing the preferences)."""
        self.root = Path(root)
        self.cap_bytes = cap_bytes
        if not writable:
            return
        try:
            self.incoming.mkdir(parents=True, exist_ok=True)
            probe = self.incoming / f".probe-{uuidlib.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise errors.StorageError(
                f"The library folder {self.root} is not writable ({exc.strerror or exc}): choose another "
                "folder in the add-on preferences."
            ) from None
        self._remove_stale_partials()

    @property
    def incoming(self) -> Path:
        """Where downloads in progress are written."""
        return self.root / ".incoming"

    def partial_path(self, task_uuid: str) -> Path:
        """A fresh partial file name for a download of this task."""
        return self.incoming / f"{_checked(task_uuid)}-{uuidlib.uuid4().hex[:8]}.part"

    def lookup(self, task_uuid: str) -> Entry | None:
        """The kept asset if it is there and verifies; a damaged one is removed (and None returned)."""
        folder = self.root / _checked(task_uuid)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            path = folder / f"asset.{meta['format']}"
            if path.stat().st_size == meta["size"] and sha256_of(path) == meta["sha256"]:
                return Entry(path=path, **{k: meta[k] for k in _META_KEYS})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or inconsistent: treated as damaged below
        remove_quietly(folder)
        return None

    def commit(self, task_uuid: str, partial: Path, fmt: str, size: int, sha256: str, filename: str = "") -> Entry:
        """Move a complete, checked download into the library (atomically) and record it."""
        folder = self.root / _checked(task_uuid)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("asset.*"):
                remove_quietly(old)
            path = folder / f"asset.{fmt}"
            os.replace(partial, path)
            entry = Entry(task_uuid, fmt, size, sha256, filename or path.name, time.time(), path)
            meta = {k: v for k, v in asdict(entry).items() if k in _META_KEYS}
            tmp = folder / f".meta-{uuidlib.uuid4().hex[:8]}.json"
            tmp.write_text(json.dumps(meta, indent=1), "utf-8")
            os.replace(tmp, folder / "meta.json")
        except OSError as exc:
            remove_quietly(partial)
            raise errors.StorageError(
                f"Cannot write to the library folder {self.root} ({exc.strerror or exc}): free some disk space "
                "or choose another folder in the add-on preferences."
            ) from None
        self.enforce_cap(keep=task_uuid)
        return entry

    def entries(self) -> list[Entry]:
        """Kept assets, newest first (from their records; not verified)."""
        found = []
        for meta_path in self.root.glob("*/meta.json"):
            try:
                meta = json.loads(meta_path.read_text("utf-8"))
                found.append(
                    Entry(path=meta_path.parent / f"asset.{meta['format']}", **{k: meta[k] for k in _META_KEYS})
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda e: e.saved_at, reverse=True)

    def size(self) -> int:
        """Bytes the library holds."""
        total = 0
        for path in self.root.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                continue
        return total

    def enforce_cap(self, keep: str = "") -> list[str]:
        """Remove the oldest assets until the library fits its cap; return the removed task UUIDs."""
        if self.cap_bytes <= 0:
            return []
        removed = []
        entries = self.entries()
        total = sum(e.size for e in entries)
        for entry in reversed(entries):  # oldest first
            if total <= self.cap_bytes:
                break
            if entry.task_uuid == keep:
                continue
            remove_quietly(self.root / entry.task_uuid)
            total -= entry.size
            removed.append(entry.task_uuid)
        return removed

    def clear(self) -> int:
        """Remove every kept asset (downloads in progress are left alone); return how many."""
        entries = self.entries()
        for entry in entries:
            remove_quietly(self.root / entry.task_uuid)
        return len(entries)

    def _remove_stale_partials(self) -> None:
        """Partial files left by a crash; recent ones may belong to a download running elsewhere."""
        now = time.time()
        for part in self.incoming.glob("*.part"):
            try:
                if now - part.stat().st_mtime > _STALE_PARTIAL_SECONDS:
                    part.unlink()
            except OSError:
                continue


def _checked(task_uuid: str) -> str:
    """The task UUID in canonical form; anything else (a path, `..`) is refused before it names a folder."""
    try:
        return str(uuidlib.UUID(task_uuid))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"not a task UUID: {task_uuid!r}") from None


_META_KEYS = ("task_uuid", "format", "size", "sha256", "filename", "saved_at")
