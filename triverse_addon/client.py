"""HTTP client for the Triverse API: streamed downloads, retries, and errors a user can act on.

No `bpy` module use: this module runs on worker threads and in plain Python.

- Every request has connect and read timeouts; bodies are streamed to disk in 1 MiB chunks.
- 429/502/503/504 are retried by urllib3's `Retry` (honouring `Retry-After`, capped, bounded in all),
  with a sleep that a cancel interrupts.
- The API key is attached only to requests for the API's own origin; requests drops it on redirects
  to any other host, so signed asset URLs and previews never see it.
- Transport exceptions never escape: they become `errors.TriverseError` subclasses.
"""

from __future__ import annotations

import hashlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import errors, formats
from .config import Settings, check_ready

__all__ = ["CHUNK_SIZE", "AssetInfo", "Download", "TaskStatus", "TriverseClient", "origin", "proxies_for"]

CHUNK_SIZE = 1 << 20  # large reads keep per-chunk Python work negligible against the network
SMALL_CHUNK_SIZE = 64 << 10  # where reads wait for the whole size (urllib3 1.x): keeps progress live
USER_AGENT = "triverse-blender/0.1.0"
RETRY_STATUSES = (429, 502, 503, 504)
MAX_RETRY_AFTER = 8.0  # seconds; with 3 status retries the whole wait stays near 30 s at worst
MAX_ERROR_BODY = 64 * 1024

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Download:
    """A body written to disk, with what was learnt about it on the way."""

    path: Path
    size: int
    sha256: str
    filename: str | None  # the server's name, reduced to a safe base name
    content_type: str


@dataclass(frozen=True)
class TaskStatus:
    """A task's state as `GET /tasks/{uuid}` tells it."""

    status: str
    progress: int | None = None
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """E.g. "RUNNING, 40%"."""
        return f"{self.status}, {self.progress}%" if self.progress is not None else self.status

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TaskStatus:
        """The status endpoint's `data` object (also what a watch message carries) as a TaskStatus."""
        progress = data.get("progress")
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or json.dumps(error)[:200]
        return cls(
            status=str(data.get("status") or "UNKNOWN").upper(),
            progress=int(progress) if isinstance(progress, (int, float)) and not isinstance(progress, bool) else None,
            error=str(error or ""),
            raw=data,
        )


@dataclass(frozen=True)
class AssetInfo:
    """`GET /tasks/url/{uuid}`: a signed, temporary URL for the asset and its preview."""

    download_url: str
    preview_url: str | None = None
    asset_id: str | None = None
    kind: str | None = None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port made explicit: what "the same host" means here."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class _BearerForOrigin(requests.auth.AuthBase):
    """Adds the Bearer key to requests for the API's origin, and to nothing else."""

    def __init__(self, key: str, api_url: str) -> None:
        self._key = key
        self._origin = origin(api_url)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._key and origin(request.url or "") == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "<Bearer for %s://%s:%s>" % self._origin


class _Retry(Retry):
    """urllib3's Retry with Retry-After capped and a sleep that the client's cancel interrupts."""

    interrupt: threading.Event | None = None

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.interrupt = self.interrupt
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(float(value), MAX_RETRY_AFTER)

    def sleep(self, response: Any = None) -> None:
        delay = self.get_retry_after(response) if response is not None else None
        if delay is None:
            delay = self.get_backoff_time()
        if delay <= 0:
            return
        if self.interrupt is None:
            time.sleep(delay)
        elif self.interrupt.wait(delay):
            raise errors.Cancelled("Import cancelled.")


class TriverseClient:
    """A session on the Triverse API configured from `Settings`; safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool_size: int = 4,
        cancel: threading.Event | None = None,
        session: requests.Session | None = None,
        online_access: bool = True,
    ) -> None:
        """`online_access` is Blender's permission; without it (or without a key) no request is sent."""
        self.settings = settings
        self.online_access = online_access
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self._active: set[requests.Response] = set()
        self._lock = threading.Lock()
        self._session = session or requests.Session()
        retry = _Retry(
            total=8,
            connect=1,
            read=False,  # a read timeout is reported, not retried (it already waited read_timeout)
            status=3,
            other=0,
            backoff_factor=1.0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.interrupt = self.cancel_event
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=max(pool_size, 1))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.auth = _BearerForOrigin(settings.api_key, settings.base_url)
        # Passed with each request: requests lets REQUESTS_CA_BUNDLE override a Session's `verify`, which
        # would silently ignore the bundle chosen in the preferences. True still honours that variable.
        self._verify: str | bool = True
        if settings.ca_bundle:
            if not Path(settings.ca_bundle).is_file():
                raise errors.TlsError(
                    f"The CA bundle set in the preferences does not exist ({settings.ca_bundle}): "
                    "choose the certificate file of your proxy, or clear the field."
                )
            self._verify = settings.ca_bundle  # a path; verification is never turned off

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> TriverseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connections."""
        self._session.close()

    def abort(self) -> None:
        """Cancel from another thread: stop retry waits and wake reads blocked on a socket at once."""
        self.cancel_event.set()
        with self._lock:
            responses = list(self._active)
        for response in responses:
            sock = _socket_of(response)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed: nothing left to wake

    # -- endpoints ---------------------------------------------------------------------------------

    def download(self, task_uuid: str, dest: Path, progress: ProgressCallback | None = None) -> Download:
        """Stream `GET /tasks/download/{uuid}` into `dest` (removed again on any failure)."""
        url = f"{self.settings.base_url}/tasks/download/{task_uuid}"
        try:
            return self.fetch(url, dest, task_uuid, progress)
        except errors.TaskNotFound:
            # A 404 for a task that did succeed means its asset is gone (assets are kept a while).
            status = self._status_or_none(task_uuid)
            if status is not None and status.status == "SUCCESS":
                raise errors.AssetExpired(errors.expired_message(task_uuid)) from None
            raise
        except errors.TaskNotReady:
            status = self._status_or_none(task_uuid)
            raise self.not_ready_error(task_uuid, status) from None

    def task_status(self, task_uuid: str) -> TaskStatus:
        """`GET /tasks/{uuid}`."""
        return TaskStatus.from_data(self._get_json(f"{self.settings.base_url}/tasks/{task_uuid}", task_uuid))

    def asset_info(self, task_uuid: str) -> AssetInfo:
        """`GET /tasks/url/{uuid}`, accepting a bare object or one wrapped in `data`."""
        data = self._get_json(f"{self.settings.base_url}/tasks/url/{task_uuid}", task_uuid)
        url = data.get("download_url")
        if not isinstance(url, str) or not url:
            raise errors.UnexpectedResponse(f"Triverse sent no download URL for task {task_uuid[:8]}.")
        return AssetInfo(
            download_url=url,
            preview_url=data.get("preview_url") or None,
            asset_id=data.get("asset_id"),
            kind=data.get("kind"),
        )

    @staticmethod
    def not_ready_error(task_uuid: str, status: TaskStatus | None) -> errors.TriverseError:
        """The error for a task that has no asset yet, saying its status when known."""
        short = task_uuid[:8]
        if status is not None and status.status in ("FAILED", "CANCELLED"):
            why = f": {status.error}" if status.error else ""
            return errors.TaskFailed(f"Task {short} ended {status.status}{why}; it has no model to import.")
        state = f" (status {status.describe()})" if status is not None else ""
        return errors.TaskNotReady(
            f"Task {short} has not finished yet{state}: wait until it succeeds, or use Wait and Import.",
            status=status.status if status else None,
            progress=status.progress if status else None,
        )

    # -- transport ---------------------------------------------------------------------------------

    def fetch(
        self,
        url: str,
        dest: Path,
        task_uuid: str,
        progress: ProgressCallback | None = None,
        max_bytes: int | None = None,
    ) -> Download:
        """Stream any URL into `dest`; the key goes along only when the URL is on the API's origin."""
        self._check_cancel()
        response = self._send(url, task_uuid, stream=True)
        with response:
            if response.status_code != 200:
                raise self._http_error(response, task_uuid)
            with self._lock:
                self._active.add(response)
            try:
                self._check_cancel()  # abort() may have run before the response was known to it
                return self._write_body(response, dest, progress, max_bytes)
            except BaseException:
                formats.remove_quietly(dest)
                raise
            finally:
                with self._lock:
                    self._active.discard(response)

    def _send(self, url: str, task_uuid: str, *, stream: bool) -> requests.Response:
        # Every request passes here, so a kept asset still imports offline while nothing else goes out.
        check_ready(self.settings, self.online_access)
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self._session.get(
                url, stream=stream, timeout=timeout, verify=self._verify, proxies=proxies_for(self.settings, url)
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc, url) from None

    def _get_json(self, url: str, task_uuid: str) -> dict[str, Any]:
        self._check_cancel()
        response = self._send(url, task_uuid, stream=True)
        with response:
            if response.status_code != 200:
                raise self._http_error(response, task_uuid)
            body = _read_some(response, 4 * MAX_ERROR_BODY)
        try:
            data = json.loads(body)
        except ValueError:
            raise errors.UnexpectedResponse(
                f"{urlsplit(url).netloc} sent something other than JSON for task {task_uuid[:8]}: "
                "check the service URL in the add-on preferences."
            ) from None
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "code" in data:
            data = data["data"]  # the service's {"code", "message", "data"} envelope
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse(f"Triverse sent an unexpected answer for task {task_uuid[:8]}.")
        return data

    def _status_or_none(self, task_uuid: str) -> TaskStatus | None:
        try:
            return self.task_status(task_uuid)
        except errors.Cancelled:
            raise
        except errors.TriverseError:
            return None

    def _write_body(
        self, response: requests.Response, dest: Path, progress: ProgressCallback | None, max_bytes: int | None
    ) -> Download:
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        declared = _int_or_none(response.headers.get("Content-Length"))
        total = None if encoded else declared
        digest = _Sha256Worker()
        received = 0
        try:
            with digest, open(dest, "wb") as out:
                if progress:
                    progress(0, total)
                for chunk in _body_chunks(response, decode=encoded):
                    if self.cancel_event.is_set():
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
            if self.cancel_event.is_set():
                raise errors.Cancelled("Import cancelled.") from None
            raise self._transport_error(exc, response.url, received=received, total=declared) from None
        except OSError as exc:
            if self.cancel_event.is_set():
                raise errors.Cancelled("Import cancelled.") from None
            raise errors.StorageError(
                f"Cannot write the download to {dest.parent} ({exc.strerror or exc}): free some disk space "
                "or choose another library folder in the add-on preferences."
            ) from None
        if self.cancel_event.is_set():
            raise errors.Cancelled("Import cancelled.")
        on_wire = response.raw.tell() if response.raw is not None else received
        if declared is not None and on_wire < declared:
            raise _incomplete(on_wire, declared)
        filename = formats.filename_from_disposition(response.headers.get("Content-Disposition"))
        return Download(dest, received, digest.hexdigest(), filename, response.headers.get("Content-Type", ""))

    def _http_error(self, response: requests.Response, task_uuid: str) -> errors.TriverseError:
        body = _read_some(response, MAX_ERROR_BODY)
        host = urlsplit(response.url).netloc
        if origin(response.url) != origin(self.settings.base_url) and response.status_code in (401, 403, 404, 410):
            # The signed asset URL itself failed (it is temporary): the storage host says so in its own words.
            return errors.AssetExpired(errors.expired_message(task_uuid))
        return errors.error_for_response(response.status_code, response.headers, body, task_uuid, host)

    def _transport_error(
        self, exc: requests.RequestException, url: str, received: int = 0, total: int | None = None
    ) -> errors.TriverseError:
        host = urlsplit(url).netloc or url
        chain = _causes(exc)
        names = {type(e).__name__ for e in chain}
        if isinstance(
            exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)
        ):
            return errors.ConnectionFailed(
                f'The service URL "{self.settings.base_url}" is not valid: fix it in the add-on preferences.'
            )
        if isinstance(exc, requests.exceptions.TooManyRedirects):
            return errors.UnexpectedResponse(
                f"{host} redirected too many times: check the service URL and any proxy or portal in between."
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return errors.TlsError(
                f"The secure connection to {host} failed (its certificate could not be verified): if your "
                "network uses an inspecting proxy, set its CA bundle in the add-on preferences "
                "(verification is never turned off)."
            )
        if isinstance(exc, requests.exceptions.ProxyError):
            return errors.ConnectionFailed(
                f"The proxy refused or failed the connection to {host}: check the proxy in the add-on "
                "preferences or the HTTPS_PROXY variable."
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout) or "ConnectTimeoutError" in names:
            return errors.TimedOut(
                f"{host} did not accept a connection within {self.settings.connect_timeout:g} s: check your "
                "network, VPN or proxy, or raise the connect timeout in the add-on preferences."
            )
        if isinstance(exc, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in names or "TimeoutError" in names:
            return errors.TimedOut(
                f"{host} sent nothing for {self.settings.read_timeout:g} s: try again later, or raise the read "
                "timeout in the add-on preferences."
            )
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or (
            received and isinstance(exc, requests.exceptions.ConnectionError)
        ):
            return _incomplete(received, total)
        if "NameResolutionError" in names or "gaierror" in names:
            return errors.ConnectionFailed(
                f"Cannot find {host} (name lookup failed): check your internet connection, DNS, VPN or proxy."
            )
        return errors.ConnectionFailed(
            f"Cannot reach Triverse at {host}: check your internet connection, proxy or VPN, and the service "
            "URL in the add-on preferences."
        )

    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise errors.Cancelled("Import cancelled.")

    # -- JSON and multipart requests (generation, account, live watch) -------------------------------

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle file chosen in the preferences, or None (then the environment's, else certifi's)."""
        return self._verify if isinstance(self._verify, str) else None

    def url_for(self, path_or_url: str) -> str:
        """An absolute URL: `path_or_url` itself when it has a scheme, else the base URL joined with the path."""
        if "://" in path_or_url:
            return path_or_url
        return f"{self.settings.base_url}/{path_or_url.lstrip('/')}"

    def get_json(
        self, path_or_url: str, task_hint: str = "", *, map_error: ErrorMapper | None = None
    ) -> dict[str, Any]:
        """`GET` a JSON answer (the envelope's `data`); a non-2xx answer raises `map_error`'s error.

        Without `map_error` the task download mapping applies (`errors.error_for_response`).
        """
        return self._request_json("GET", path_or_url, task_hint, map_error)

    def post_json(
        self, path_or_url: str, body: dict[str, Any], task_hint: str = "", *, map_error: ErrorMapper | None = None
    ) -> dict[str, Any]:
        """`POST` a JSON body once and answer its `data`.

        Sent exactly once: urllib3's Retry replays only GET (and reconnects only when the request never
        left), so a caller that retries a creation does it explicitly, with the same idempotency key.
        """
        return self._request_json("POST", path_or_url, task_hint, map_error, json=body)

    def post_file(
        self,
        path_or_url: str,
        file_path: Path,
        *,
        field: str = "file",
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        task_hint: str = "",
        map_error: ErrorMapper | None = None,
    ) -> dict[str, Any]:
        """`POST` one file as multipart/form-data (in `field`) once and answer its `data`."""
        check_ready(self.settings, self.online_access)
        try:
            handle = open(file_path, "rb")  # noqa: SIM115 - closed below, after the request
        except OSError as exc:
            raise errors.StorageError(f"Cannot read {file_path.name} ({exc.strerror or exc}).") from None
        with handle:
            files = {field: (filename or file_path.name, handle, content_type)}
            return self._request_json("POST", path_or_url, task_hint, map_error, files=files)

    def _request_json(
        self, method: str, path_or_url: str, task_hint: str, map_error: ErrorMapper | None, **kw: Any
    ) -> dict[str, Any]:
        # The same checks as `_send`: ready first (no key or no online access: no request), timeouts,
        # the preferences' CA bundle, the proxy chosen per request, transport errors mapped.
        self._check_cancel()
        check_ready(self.settings, self.online_access)
        url = self.url_for(path_or_url)
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            response = self._session.request(
                method, url, stream=True, timeout=timeout, verify=self._verify,
                proxies=proxies_for(self.settings, url), **kw,
            )  # fmt: skip
        except requests.RequestException as exc:
            if self.cancel_event.is_set():
                raise errors.Cancelled("Cancelled.") from None
            raise self._transport_error(exc, url) from None
        host = urlsplit(url).netloc
        with response:
            if not 200 <= response.status_code < 300:
                if map_error is None:
                    raise self._http_error(response, task_hint)
                body = _read_some(response, MAX_ERROR_BODY)
                raise map_error(response.status_code, response.headers, body, host)
            try:
                body = response.raw.read(4 * MAX_ERROR_BODY, decode_content=True) or b""
            except Exception:  # noqa: BLE001 - any failure while reading the answer is a cut connection
                raise errors.ConnectionFailed(
                    f"The connection to {host} was cut before its answer arrived: check your network, then try again."
                ) from None
        return _json_object(body, host, task_hint)


def proxies_for(settings: Settings, url: str) -> dict[str, str]:
    """The proxy a request to `url` goes through: the preference, else HTTPS_PROXY/HTTP_PROXY minus NO_PROXY.

    Given per request, because requests merges the environment's proxies over a Session's own: a
    proxy set in the preferences would otherwise lose to HTTPS_PROXY. {} means a direct connection.
    """
    if settings.proxy:
        return {"http": settings.proxy, "https": settings.proxy}
    return dict(requests.utils.get_environ_proxies(url))


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


def _incomplete(received: int, total: int | None) -> errors.IncompleteDownload:
    of = f" of {errors.human_size(total)}" if total else ""
    return errors.IncompleteDownload(
        f"The download was cut off after {errors.human_size(received)}{of}: nothing was imported; try again."
    )


def _read_some(response: requests.Response, limit: int) -> bytes:
    """Up to `limit` bytes of a (streamed) body; an error body can be anything, of any size."""
    try:
        return response.raw.read(limit, decode_content=True) or b""
    except Exception:  # noqa: BLE001 - an unreadable error body still leaves the status to report
        return b""


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (requests and urllib3 nest the root cause in args and reason)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed response (urllib3 1.26 and 2.x keep it in different places)."""
    raw = response.raw
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


ErrorMapper = Callable[[int, Mapping[str, str], bytes, str], errors.TriverseError]
"""(HTTP status, headers, body, host) -> the domain error for a non-2xx answer (see `errors.error_for_request`)."""


def _json_object(body: bytes, host: str, task_hint: str = "") -> dict[str, Any]:
    """The JSON object of an answer, unwrapped from the service's `{code, message, data}` envelope."""
    about = f" for task {task_hint[:8]}" if task_hint else ""
    try:
        data = json.loads(body)
    except ValueError:
        raise errors.UnexpectedResponse(
            f"{host} sent something other than JSON{about}: check the service URL in the add-on preferences."
        ) from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict) and "code" in data:
        data = data["data"]
    if not isinstance(data, dict):
        raise errors.UnexpectedResponse(f"Triverse sent an unexpected answer{about}.")
    return data
