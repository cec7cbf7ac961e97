"""The HTTP transport to the Triverse API: one session, one send path, errors a user can act on.

No `bpy` module use: this module runs on worker threads and in plain Python.

- Every request has connect and read timeouts, the proxy chosen per request and the CA bundle in effect;
  nothing is sent without a key and Blender's online access (`settings.check_ready`).
- 429/502/503/504 are retried by urllib3's `Retry` for GET only (honouring `Retry-After`, capped, bounded
  in all), with a sleep that a cancel interrupts; a POST is sent once (its caller retries explicitly).
- The API key is attached only to requests for the API's own origin; requests drops it on redirects
  to any other host, so signed asset URLs and previews never see it.
- Transport exceptions never escape: they become `errors.TriverseError` subclasses; a non-success answer
  is named by `http_errors.error_for`, its JSON read by `unwrap` (the service's envelope).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import errors, formats, version
from .http_errors import Asked, error_for, expired_message
from .network_errors import bundle_error, transport_error
from .settings import Settings, check_ready
from .streaming import Download, ProgressCallback, write_body

__all__ = ["MAX_ERROR_BODY", "USER_AGENT", "Asked", "Transport", "origin", "proxies_for", "unwrap"]

USER_AGENT = version.USER_AGENT  # triverse-blender/<version>: the manifest holds the version
RETRY_STATUSES = (429, 502, 503, 504)
MAX_RETRY_AFTER = 8.0  # seconds; with 3 status retries the whole wait stays near 30 s at worst
MAX_ERROR_BODY = 64 * 1024


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


class Transport:
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
        self._session = session or _Session(settings)
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

    def __enter__(self) -> Self:
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

    # -- the one send path ------------------------------------------------------------------------

    def send(self, method: str, url: str, **kw: Any) -> requests.Response:
        """Send one request (streamed) with the settings' timeouts, CA bundle and proxy; transport errors mapped.

        Every request passes here, so a kept asset still imports offline while nothing else goes out.
        """
        self._check_cancel()
        check_ready(self.settings, self.online_access)
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self._session.request(
                method, url, stream=True, timeout=timeout, verify=self._verify,
                proxies=proxies_for(self.settings, url), **kw,
            )  # fmt: skip
        except requests.RequestException as exc:
            if self.cancel_event.is_set():
                raise errors.Cancelled("Cancelled.") from None
            raise self.transport_error(exc, url) from None
        except OSError as exc:  # requests checks a CA bundle path (REQUESTS_CA_BUNDLE) itself, before connecting
            if "CA certificate bundle" in str(exc):
                raise bundle_error(self._verify, missing=True) from None
            raise self.transport_error(exc, url) from None

    def fetch(
        self,
        url: str,
        dest: Path,
        task_uuid: str,
        progress: ProgressCallback | None = None,
        max_bytes: int | None = None,
        hash_body: bool = True,
    ) -> Download:
        """Stream any URL into `dest`; the key goes along only when the URL is on the API's origin."""
        response = self.send("GET", url)
        with response:
            if response.status_code != 200:
                raise self.http_error(response, Asked(task_uuid=task_uuid))
            with self._lock:
                self._active.add(response)
            try:
                self._check_cancel()  # abort() may have run before the response was known to it
                return write_body(
                    response,
                    dest,
                    cancel=self.cancel_event,
                    transport_error=self.transport_error,
                    progress=progress,
                    max_bytes=max_bytes,
                    hash_body=hash_body,
                )
            except BaseException:
                formats.remove_quietly(dest)
                raise
            finally:
                with self._lock:
                    self._active.discard(response)

    def request_json(self, method: str, path_or_url: str, asked: Asked | None = None, **kw: Any) -> dict[str, Any]:
        """Send a request and answer its JSON object (the envelope's `data`); a non-2xx answer raises the error
        `http_errors.error_for` names for what was `asked`."""
        asked = asked or Asked()
        url = self.url_for(path_or_url)
        host = urlsplit(url).netloc
        with self.send(method, url, **kw) as response:
            if not 200 <= response.status_code < 300:
                raise self.http_error(response, asked)
            try:
                body = response.raw.read(4 * MAX_ERROR_BODY, decode_content=True) or b""
            except Exception:  # noqa: BLE001 - any failure while reading the answer is a cut connection
                raise errors.ConnectionFailed(
                    f"The connection to {host} was cut before its answer arrived: check your network, then try again."
                ) from None
        about = f" for task {asked.task_uuid[:8]}" if asked.task_uuid else ""
        try:
            doc = json.loads(body)
        except ValueError:
            raise errors.UnexpectedResponse(
                f"{host} sent something other than JSON{about}: check the service URL in the add-on preferences."
            ) from None
        data = unwrap(doc)
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse(f"Triverse sent an unexpected answer{about}.")
        return data

    def get_json(self, path_or_url: str, asked: Asked | None = None) -> dict[str, Any]:
        """`GET` a JSON answer (see `request_json`)."""
        return self.request_json("GET", path_or_url, asked)

    def post_json(self, path_or_url: str, body: dict[str, Any], asked: Asked | None = None) -> dict[str, Any]:
        """`POST` a JSON body once and answer its `data`.

        Sent exactly once: urllib3's Retry replays only GET (and reconnects only when the request never
        left), so a caller that retries a creation does it explicitly, with the same idempotency key.
        """
        return self.request_json("POST", path_or_url, asked, json=body)

    def post_file(
        self,
        path_or_url: str,
        file_path: Path,
        asked: Asked | None = None,
        *,
        field: str = "file",
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`POST` one file as multipart/form-data (in `field`) once and answer its `data`."""
        check_ready(self.settings, self.online_access)
        try:
            handle = open(file_path, "rb")  # noqa: SIM115 - closed below, after the request
        except OSError as exc:
            raise errors.StorageError(f"Cannot read {file_path.name} ({exc.strerror or exc}).") from None
        with handle:
            files = {field: (filename or file_path.name, handle, content_type)}
            return self.request_json("POST", path_or_url, asked, files=files, params=params)

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle file chosen in the preferences, or None (then the environment's, else certifi's)."""
        return self._verify if isinstance(self._verify, str) else None

    def url_for(self, path_or_url: str) -> str:
        """An absolute URL: `path_or_url` itself when it has a scheme, else the base URL joined with the path."""
        if "://" in path_or_url:
            return path_or_url
        return f"{self.settings.base_url}/{path_or_url.lstrip('/')}"

    def transport_error(
        self, exc: OSError, url: str, received: int = 0, total: int | None = None
    ) -> errors.TriverseError:
        """The error for a request that failed on the way (see `network_errors.transport_error`)."""
        return transport_error(self.settings, self._verify, exc, url, received, total)

    # -- errors ----------------------------------------------------------------------------------------

    def http_error(self, response: requests.Response, asked: Asked) -> errors.TriverseError:
        """The error for a non-success answer (its body read, bounded)."""
        body = _read_some(response, MAX_ERROR_BODY)
        host = urlsplit(response.url).netloc
        if origin(response.url) != origin(self.settings.base_url) and response.status_code in (401, 403, 404, 410):
            # The signed asset URL itself failed (it is temporary): the storage host says so in its own words.
            return errors.AssetExpired(expired_message(asked.task_uuid))
        return error_for(response.status_code, response.headers, body, host, asked)

    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise errors.Cancelled("Import cancelled.")


def proxies_for(settings: Settings, url: str) -> dict[str, str]:
    """The proxy a request to `url` goes through: the preference, else HTTPS_PROXY/HTTP_PROXY minus NO_PROXY.

    Given per request, because requests merges the environment's proxies over a Session's own: a
    proxy set in the preferences would otherwise lose to HTTPS_PROXY. {} means a direct connection.
    """
    if settings.proxy:
        return {"http": settings.proxy, "https": settings.proxy}
    return dict(requests.utils.get_environ_proxies(url))


class _Session(requests.Session):
    """A Session whose redirects choose their proxy as `proxies_for` does for the first request.

    requests keeps the first hop's proxy for every redirect, even to a host that NO_PROXY lists.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._proxy_settings = settings

    def rebuild_proxies(self, prepared_request: requests.PreparedRequest, proxies: Any) -> dict[str, str]:
        """The proxy for the redirect's own URL (requests still handles Proxy-Authorization)."""
        proxies = proxies_for(self._proxy_settings, prepared_request.url or "")
        return dict(super().rebuild_proxies(prepared_request, proxies))  # type: ignore[no-untyped-call]  # untyped stub


def _read_some(response: requests.Response, limit: int) -> bytes:
    """Up to `limit` bytes of a (streamed) body; an error body can be anything, of any size."""
    try:
        return response.raw.read(limit, decode_content=True) or b""
    except Exception:  # noqa: BLE001 - an unreadable error body still leaves the status to report
        return b""


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed response (urllib3 1.26 and 2.x keep it in different places)."""
    raw = response.raw
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def unwrap(doc: Any) -> Any:
    """The `data` of the service's `{code, message, data}` envelope, or the document itself when it is bare."""
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and "code" in doc:
        return doc["data"]
    return doc
