"""A local library of downloaded assets, keyed by task UUID and verified by size and SHA-256.

No `bpy` module use. Layout: `<root>/<task_uuid>/asset.<fmt>` with `meta.json` beside it, and
`<root>/.incoming/` for downloads in progress (same file system, so that `os.replace` is atomic).
An asset is kept once its `meta.json` (size and SHA-256) is written: `commit` does it at once with the
digest taken while the bytes arrived; `keep` moves the file in place first and writes the record from a
helper thread once the digest of the file (hot in the page cache) is known, so that hashing can wait
until Blender's import is done instead of competing with the download (or the import) for the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass
from pathlib import Path

from . import errors
from .formats import remove_quietly

__all__ = ["Entry", "Library", "PendingEntry", "sha256_of"]

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
        path = self._move_in(task_uuid, partial, fmt)
        entry = Entry(task_uuid, fmt, size, sha256, filename or path.name, time.time(), path)
        try:
            self._write_meta(entry)
        except OSError as exc:
            remove_quietly(path)
            raise self._storage_error(exc) from None
        self.enforce_cap(keep=task_uuid)
        return entry

    def keep(self, task_uuid: str, partial: Path, fmt: str, size: int, filename: str = "") -> PendingEntry:
        """Move a complete download into place now; record it once a helper thread has hashed it.

        The file is importable from `PendingEntry.path` at once; `lookup` finds it only after the record
        is written (size checked, SHA-256 known). Hashing starts with `PendingEntry.start()` (after the
        import, so that it takes no CPU from it) or `wait()`, which returns the entry.
        """
        path = self._move_in(task_uuid, partial, fmt)
        return PendingEntry(self, Entry(task_uuid, fmt, size, "", filename or path.name, time.time(), path))

    def _move_in(self, task_uuid: str, partial: Path, fmt: str) -> Path:
        """Put the partial file at its kept name, after forgetting any earlier record of the task."""
        folder = self.root / _checked(task_uuid)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            remove_quietly(folder / "meta.json")  # first: an old record must never describe the new file
            for old in folder.glob("asset.*"):
                remove_quietly(old)
            path = folder / f"asset.{fmt}"
            os.replace(partial, path)
        except OSError as exc:
            remove_quietly(partial)
            raise self._storage_error(exc) from None
        return path

    def _write_meta(self, entry: Entry) -> None:
        meta = {k: v for k, v in asdict(entry).items() if k in _META_KEYS}
        tmp = entry.path.parent / f".meta-{uuidlib.uuid4().hex[:8]}.json"
        try:
            tmp.write_text(json.dumps(meta, indent=1), "utf-8")
            os.replace(tmp, entry.path.parent / "meta.json")
        finally:
            remove_quietly(tmp)

    def _storage_error(self, exc: OSError) -> errors.StorageError:
        return errors.StorageError(
            f"Cannot write to the library folder {self.root} ({exc.strerror or exc}): free some disk space "
            "or choose another folder in the add-on preferences."
        )

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


class PendingEntry:
    """A file already at its place in the library, recorded (kept) once a helper thread has hashed it."""

    def __init__(self, library: Library, entry: Entry) -> None:
        """Prepare to hash `entry.path` (its size and SHA-256 get checked and recorded) once started."""
        self.library = library
        self.path = entry.path
        self._entry = entry
        self._result: Entry | errors.StorageError | None = None
        self._identity = _identity(entry.path)
        # Not a daemon: Python waits for it at exit (a fraction of a second), so a model imported just before
        # Blender quits is still recorded; were it cut short, the unrecorded file would only be downloaded again.
        self._thread = threading.Thread(target=self._run, name="triverse-keep", daemon=False)
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Hash and record on the helper thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._thread.ident is None:
                with _running_lock:
                    _running.add(self._thread)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> Entry:
        """The kept entry, once recorded; StorageError when the file could not be read back or changed."""
        self.start()
        self._thread.join(timeout)
        result = self._result
        if result is None:
            raise errors.StorageError(f"The library is still checking {self.path.name}: try again in a moment.")
        if isinstance(result, errors.StorageError):
            raise result
        return result

    @property
    def done(self) -> bool:
        """The record is written (or it failed)."""
        return self._result is not None

    def _run(self) -> None:
        try:
            self._check_and_record()
        finally:
            with _running_lock:
                _running.discard(self._thread)

    def _check_and_record(self) -> None:
        entry = self._entry
        try:
            digest = sha256_of(entry.path)
            # The file hashed must be the one moved in, whole: not replaced meanwhile by another import
            # of the same task (that one records itself), nor shorter than what was received.
            if _identity(entry.path) != self._identity or self._identity[2] != entry.size:
                raise OSError(0, "the file changed while it was being checked")
            kept = Entry(entry.task_uuid, entry.format, entry.size, digest, entry.filename, entry.saved_at, entry.path)
            self.library._write_meta(kept)
        except OSError as exc:
            if _identity(entry.path) == self._identity:
                remove_quietly(entry.path)  # unrecorded: never left to look kept
            self._result = self.library._storage_error(exc)
            return
        self._result = kept
        try:
            self.library.enforce_cap(keep=entry.task_uuid)
        except OSError:
            pass  # the cap is enforced again on the next commit


_running: set[threading.Thread] = set()
_running_lock = threading.Lock()


def wait_for_pending(timeout: float = 60.0) -> None:
    """Wait (up to `timeout` s in all) until every started record is written: for a script about to exit."""
    deadline = time.monotonic() + timeout
    with _running_lock:
        threads = list(_running)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _identity(path: Path) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime in ns), or zeros when the file is gone: which file this is."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0, 0)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _checked(task_uuid: str) -> str:
    """The task UUID in canonical form; anything else (a path, `..`) is refused before it names a folder."""
    try:
        return str(uuidlib.UUID(task_uuid))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"not a task UUID: {task_uuid!r}") from None


_META_KEYS = ("task_uuid", "format", "size", "sha256", "filename", "saved_at")
