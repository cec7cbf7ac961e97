"""A response body streamed to a file: progress, a cancel that is honoured between chunks, SHA-256 on a helper
thread, a length check, and no partial file left on failure (the caller removes it). No `bpy` module use."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from . import errors, formats

__all__ = ["CHUNK_SIZE", "Download", "ProgressCallback", "incomplete", "write_body"]

CHUNK_SIZE = 1 << 20  # large reads keep per-chunk Python work negligible against the network
SMALL_CHUNK_SIZE = 64 << 10  # where reads wait for the whole size (urllib3 1.x): keeps progress live

ProgressCallback = Callable[[int, "int | None"], None]
TransportError = Callable[[OSError, str, int, "int | None"], errors.TriverseError]


@dataclass(frozen=True)
class Download:
    """A body written to disk, with what was learnt about it on the way."""

    path: Path
    size: int
    sha256: str
    filename: str | None  # the server's name, reduced to a safe base name
    content_type: str


def write_body(
    response: requests.Response,
    dest: Path,
    *,
    cancel: threading.Event,
    transport_error: TransportError,
    progress: ProgressCallback | None = None,
    max_bytes: int | None = None,
    hash_body: bool = True,
) -> Download:
    """Stream the body into `dest`; `hash_body=False` leaves `sha256` empty for the caller to take later.

    Only the receiving and the writing must keep pace with the network. On a fast link with few cores
    hashing competes with them for the CPU, so a caller that hashes the file afterwards (the library's
    `keep`, while Blender imports) skips it here. `transport_error(exc, url, received, total)` names a
    network failure part-way.
    """
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    declared = _int_or_none(response.headers.get("Content-Length"))
    total = None if encoded else declared
    digest: _Sha256Worker | _NoDigest = _Sha256Worker() if hash_body else _NoDigest()
    received = 0
    try:
        with digest, open(dest, "wb") as out:
            if progress:
                progress(0, total)
            for chunk in _body_chunks(response, decode=encoded):
                if cancel.is_set():
                    raise errors.Cancelled("Import cancelled.")
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise errors.UnexpectedResponse(f"The file is larger than {errors.human_size(max_bytes)}.")
                if progress:
                    progress(received, total)
    # RequestException is an OSError too: network failures must be told apart from disk ones first.
    except requests.RequestException as exc:
        if cancel.is_set():
            raise errors.Cancelled("Import cancelled.") from None
        raise transport_error(exc, response.url, received, declared) from None
    except OSError as exc:
        if cancel.is_set():
            raise errors.Cancelled("Import cancelled.") from None
        raise errors.StorageError(
            f"Cannot write the download to {dest.parent} ({exc.strerror or exc}): free some disk space "
            "or choose another library folder in the add-on preferences."
        ) from None
    if cancel.is_set():
        raise errors.Cancelled("Import cancelled.")
    on_wire = response.raw.tell() if response.raw is not None else received
    if declared is not None and on_wire < declared:
        raise incomplete(on_wire, declared)
    filename = formats.filename_from_disposition(response.headers.get("Content-Disposition"))
    return Download(dest, received, digest.hexdigest(), filename, response.headers.get("Content-Type", ""))


def _body_chunks(response: requests.Response, decode: bool = True) -> Iterator[bytes]:
    """The body as it arrives, up to CHUNK_SIZE at a time, decoded (gzip) and length-checked by urllib3.

    `iter_content(n)` waits until n bytes have arrived: with large n, progress and speed would freeze
    for seconds on a slow link. urllib3's `read1` returns what is there; its errors are translated the
    way `iter_content` does. urllib3 1.x (Debian's Blender 3.4) has no read1: smaller reads there.
    """
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(SMALL_CHUNK_SIZE)
        return
    try:
        while data := raw.read1(CHUNK_SIZE, decode_content=decode):  # identity: no copy through urllib3's buffer
            yield data
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class _Sha256Worker:
    """SHA-256 of a body on a helper thread, so hashing overlaps the next read and write.

    hashlib releases the GIL while it hashes a chunk; at most 8 chunks wait in the queue (bounded memory).
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="triverse-sha256", daemon=True)
        self._thread.start()

    def __enter__(self) -> _Sha256Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()

    def update(self, chunk: bytes) -> None:
        """Hash this chunk next (waits only while 8 chunks are already queued)."""
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        """The digest of every chunk given (waits for the helper to finish them)."""
        self._finish()
        return self._digest.hexdigest()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _NoDigest:
    """Stands in for `_Sha256Worker` when the body is not hashed while it arrives."""

    def __enter__(self) -> _NoDigest:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, chunk: bytes) -> None:
        """Nothing to do."""

    def hexdigest(self) -> str:
        """Empty: the digest is taken later from the file."""
        return ""


def incomplete(received: int, total: int | None) -> errors.IncompleteDownload:
    of = f" of {errors.human_size(total)}" if total else ""
    return errors.IncompleteDownload(
        f"The download was cut off after {errors.human_size(received)}{of}: nothing was imported; try again."
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
