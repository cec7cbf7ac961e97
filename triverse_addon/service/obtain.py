"""The one path from a task UUID to a local model file, used by all three doors. No `bpy` module use.

`obtain_asset()` gives a verified local model: from the library when kept there, else downloaded (after
watching the task when asked to wait), checked by its bytes (a zip unpacked safely) and kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import errors, formats, watch
from .api import TaskStatus, TriverseClient
from .library import Library, PendingEntry
from .settings import Settings
from .task_ids import parse_task_uuid

__all__ = ["Asset", "fetch_preview", "obtain_asset", "obtain_from_library", "open_library"]

StatusCallback = Callable[[TaskStatus], None]
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass
class Asset:
    """A model file ready for Blender's importer."""

    task_uuid: str
    path: Path
    format: str
    size: int
    sha256: str
    filename: str = ""
    from_library: bool = False
    workdir: Path | None = field(default=None, repr=False)  # temporary folder, removed by cleanup()
    pending: PendingEntry | None = field(default=None, repr=False)  # the library records it once hashed

    def cleanup(self) -> None:
        """Remove temporary files made for this import (never the library's copy); record that copy now."""
        formats.remove_quietly(self.workdir)
        self.workdir = None
        if self.pending is not None:
            self.pending.start()  # hashed and recorded on a helper thread, the import being done

    def wait_kept(self, timeout: float | None = None) -> None:
        """After `cleanup()`: wait until the library has recorded this download (a script about to exit)."""
        if self.pending is not None:
            self.pending.wait(timeout)


def open_library(settings: Settings) -> tuple[Library | None, str]:
    """The library the settings name, or (None, why) when it is off or its folder is unusable."""
    if not settings.library_dir:
        return None, ""
    try:
        return Library(settings.library_dir, settings.library_cap_bytes), ""
    except errors.StorageError as exc:
        return None, str(exc) + " Downloads go to a temporary folder meanwhile."


def obtain_asset(
    client: TriverseClient,
    task_uuid: str,
    library: Library | None = None,
    *,
    progress: ProgressCallback | None = None,
    wait: float = 0.0,
    on_status: StatusCallback | None = None,
) -> Asset:
    """A verified local model for the task: from the library when kept there, else downloaded.

    `wait` > 0 watches the task (live over the WebSocket, else by polling) for up to that many seconds
    until it succeeds; with
    `on_status` the status is asked (and told) before downloading even without waiting.
    """
    task_uuid = parse_task_uuid(task_uuid)  # it names files and folders: never anything but a UUID
    from_library = obtain_from_library(task_uuid, library)
    if from_library is not None:
        return from_library
    if wait > 0 or on_status is not None:
        try:
            watch.wait_for_success(client, task_uuid, wait, on_status)  # pushed over the WebSocket, else polled
        except errors.UnexpectedResponse:
            pass  # a status the service cannot give is no reason to stop: the download will tell
    workdir = Path(tempfile.mkdtemp(prefix="triverse-"))
    partial = library.partial_path(task_uuid) if library else workdir / f"{task_uuid}.part"
    try:
        download = client.download(task_uuid, partial, progress, hash_body=library is None)
        fmt = formats.detect_format(partial, formats.extension_of(download.filename))
        # Checked (a zip unpacked) before it is kept: the library only ever holds importable files.
        model = _model_in(partial, fmt, workdir)
        name = download.filename or f"{task_uuid}.{fmt}"
        pending = None
        if library is not None:
            pending = library.keep(task_uuid, partial, fmt, download.size, name)
            kept = pending.path
        else:
            kept = workdir / f"{task_uuid}.{fmt}"
            partial.replace(kept)
        if fmt != "zip":
            model = kept
        return Asset(task_uuid, model, formats.extension_of(model.name), download.size, download.sha256, name, False,
                     workdir, pending)  # fmt: skip
    except BaseException:
        formats.remove_quietly(partial)
        formats.remove_quietly(workdir)
        raise


def obtain_from_library(task_uuid: str, library: Library | None) -> Asset | None:
    """The task's verified model from the library, or None when it is not kept there; never the network."""
    entry = library.lookup(task_uuid) if library is not None else None
    if entry is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="triverse-")) if entry.format == "zip" else None
    try:
        model = _model_in(entry.path, entry.format, workdir)
    except BaseException:
        formats.remove_quietly(workdir)
        raise
    return Asset(task_uuid, model, formats.extension_of(model.name), entry.size, entry.sha256,
                 entry.filename, True, workdir)  # fmt: skip


def _model_in(path: Path, fmt: str, workdir: Path | None) -> Path:
    """The file to import: the file itself, or for a zip the model it holds, unpacked safely into `workdir`."""
    if fmt != "zip":
        return path
    assert workdir is not None
    return formats.find_model(formats.extract_zip(path, workdir / "unpacked"))


def fetch_preview(client: TriverseClient, task_uuid: str, dest_dir: Path) -> Path | None:
    """The task's preview image, if the service offers one; None on any failure (it is only a picture)."""
    try:
        info = client.asset_info(task_uuid)
        if not info.preview_url:
            return None
        dest_dir.mkdir(parents=True, exist_ok=True)
        path = dest_dir / f"{task_uuid}.preview"
        client.fetch(info.preview_url, path, task_uuid, max_bytes=16 * 1024 * 1024)
        return path
    except errors.Cancelled:
        raise
    except (errors.TriverseError, OSError):
        return None
