"""Wait for a task to succeed: watched live over the service's WebSocket, else polled. No `bpy` module use.

`wait_for_success()` opens `/tasks/watch/{uuid}?token=KEY` first, then asks the status once (so no event
can fall between the two), then reads the socket's `event:`/`data:` messages until a terminal status.
When the socket cannot be used (websocket-client absent, as in Blender 3.4's legacy add-on loading; a
refused or failed handshake; a proxy refusing CONNECT; a TLS failure; an early close; silence), it falls
back to polling `GET /tasks/{uuid}` with back-off, quietly: the user only sees the import happen.

The key travels in the watch URL's query, so that URL is never logged, shown or put in an exception:
every error of websocket-client is caught and dropped (`from None`), our log lines carry only the error's
type name, and the socket is not opened at all while websocket-client's trace (which logs the request
line) is on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import certifi

from . import errors
from .api import TaskStatus, TriverseClient
from .settings import check_ready
from .transport import USER_AGENT, proxies_for, unwrap

__all__ = [
    "POLL_FIRST",
    "POLL_MAX",
    "SILENCE_SECONDS",
    "TERMINAL",
    "close_quietly",
    "direct_socket",
    "parse_message",
    "socket_options",
    "wait_for_success",
    "watch_url",
]

try:  # imported with this module, never by a worker thread: two threads importing at once can deadlock
    import websocket
except ImportError:  # Blender 3.x loads the add-on without its wheel: the watch polls there
    websocket = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SILENCE_SECONDS = 60.0  # no message for this long: the socket is taken as dead and polling takes over
POLL_FIRST = 2.0  # seconds before the first poll, growing by half each time up to POLL_MAX
POLL_MAX = 15.0
TICK = 0.1  # seconds between checks of the cancel event while blocked (cancel is seen within ~0.1 s)
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
_NO_PROXY_MATCH = ["no-proxy.invalid"]  # a NO_PROXY list matching no host: see socket_options

StatusCallback = Callable[[TaskStatus], None]
PathCallback = Callable[[str], None]


def watch_url(base_url: str, task_uuid: str, api_key: str) -> str:
    """The WebSocket URL of one task's watch (it holds the key: never log or show it)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/tasks/watch/{task_uuid}?token={quote(api_key, safe='')}"


def parse_message(text: str) -> tuple[str, dict[str, Any] | None]:
    """(event, data) of a watch message: lines `event: <name>` and `data: <json>` (envelope accepted)."""
    event, data_lines = "", []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        value = value[1:] if value.startswith(" ") else value
        if name.strip() == "event":
            event = value.strip()
        elif name.strip() == "data":
            data_lines.append(value)
    if not data_lines:
        return event, None
    try:
        data = json.loads("\n".join(data_lines))
    except ValueError:
        return event, None
    data = unwrap(data)
    return event, data if isinstance(data, dict) else None


def wait_for_success(
    client: TriverseClient,
    task_uuid: str,
    timeout: float,
    on_status: StatusCallback | None = None,
    *,
    silence: float = SILENCE_SECONDS,
    use_socket: bool = True,
    on_path: PathCallback | None = None,
) -> TaskStatus:
    """Wait until the task succeeds and return its status; raise when it fails, ends, or time runs out.

    `timeout` <= 0 asks the status once. FAILED/CANCELLED raise `client.not_ready_error` (the service's
    reason in one sentence), running out of time `errors.TaskNotReady`, a cancel (`client.abort()`)
    `errors.Cancelled` within about 0.1 s. `on_status` hears every status seen, from the socket or a poll.
    `on_path` hears how the watch ended: "socket" (the socket served it to the end) or "poll" (polling
    did, because the socket was not used or failed; the reason is logged at DEBUG).
    """
    check_ready(client.settings, client.online_access)  # before the socket too: no request of any kind
    _check_cancel(client)
    if timeout <= 0:
        status = _ask(client, task_uuid, on_status)
        if status.status == "SUCCESS":
            _tell(on_path, "poll")
            return status
        raise client.not_ready_error(task_uuid, status)
    deadline = time.monotonic() + timeout
    ws = _open_socket(client, task_uuid) if use_socket else None
    if not use_socket:
        log.debug("Task %s: watching by polling (the socket is not used)", task_uuid[:8])
    first_poll = POLL_FIRST
    try:
        status = _ask(client, task_uuid, on_status)
        if status.status in TERMINAL:
            _tell(on_path, "socket" if ws is not None else "poll")
            return _finish(client, task_uuid, status)
        if ws is not None:
            final = _read_socket(ws, client, task_uuid, deadline, timeout, silence, on_status, status)
            if final is not None:
                _tell(on_path, "socket")
                return _finish(client, task_uuid, final)
            first_poll = 0.0  # the socket failed part-way: the task may have just ended, ask at once
    finally:
        if ws is not None:
            close_quietly(ws)
    final = _poll(client, task_uuid, deadline, timeout, on_status, status, first_poll)
    _tell(on_path, "poll")
    return _finish(client, task_uuid, final)


# -- polling ---------------------------------------------------------------------------------------


def _ask(client: TriverseClient, task_uuid: str, on_status: StatusCallback | None) -> TaskStatus:
    status = client.task_status(task_uuid)
    if on_status:
        on_status(status)
    return status


def _poll(
    client: TriverseClient,
    task_uuid: str,
    deadline: float,
    timeout: float,
    on_status: StatusCallback | None,
    status: TaskStatus,
    delay: float,
) -> TaskStatus:
    """Poll with back-off until a terminal status (returned) or the deadline (TaskNotReady)."""
    next_delay = max(delay, POLL_FIRST)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timed_out(task_uuid, status, timeout)
        if delay > 0 and client.cancel_event.wait(min(delay, remaining)):
            raise errors.Cancelled("Import cancelled.")
        _check_cancel(client)
        status = _ask(client, task_uuid, on_status)
        if status.status in TERMINAL:
            return status
        delay, next_delay = next_delay, min(next_delay * 1.5, POLL_MAX)


def _finish(client: TriverseClient, task_uuid: str, status: TaskStatus) -> TaskStatus:
    if status.status == "SUCCESS":
        return status
    raise client.not_ready_error(task_uuid, status)


def _timed_out(task_uuid: str, status: TaskStatus, timeout: float) -> errors.TaskNotReady:
    return errors.TaskNotReady(
        f"Task {task_uuid[:8]} is still {status.describe()} after waiting {timeout:g} s: "
        "try again later, or wait longer.",
        status=status.status,
        progress=status.progress,
    )


def _tell(on_path: PathCallback | None, path: str) -> None:
    if on_path is not None:
        on_path(path)


# -- the socket ------------------------------------------------------------------------------------


def _read_socket(
    ws: Any,
    client: TriverseClient,
    task_uuid: str,
    deadline: float,
    timeout: float,
    silence: float,
    on_status: StatusCallback | None,
    status: TaskStatus,
) -> TaskStatus | None:
    """Statuses from the socket until a terminal one (returned); None when the socket fails or falls silent."""
    heard = time.monotonic()
    while True:
        _check_cancel(client)
        now = time.monotonic()
        if now >= deadline:
            raise _timed_out(task_uuid, status, timeout)
        if now - heard >= silence:
            log.debug("Task %s: the watch was silent for %g s; polling instead", task_uuid[:8], silence)
            return None
        try:
            ws.settimeout(min(TICK, max(0.01, deadline - now)))
            opcode, payload = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            continue
        except Exception as exc:  # noqa: BLE001 - any failure of the socket means "poll instead"
            log.debug("Task %s: the watch closed (%s); polling instead", task_uuid[:8], type(exc).__name__)
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            log.debug("Task %s: the watch closed before a final status; polling instead", task_uuid[:8])
            return None
        heard = time.monotonic()
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        event, data = parse_message(text)
        if data is None:
            if event == "finalized":
                return None  # final, but it did not say how: one status request tells
            continue
        if str(data.get("task_uuid") or task_uuid) != task_uuid:
            continue  # another task's event (a shared watch): not ours
        status = TaskStatus.from_data(data)
        if on_status:
            on_status(status)
        if status.status in TERMINAL:
            return status
        if event == "finalized":
            return None


def _open_socket(client: TriverseClient, task_uuid: str) -> Any:
    """An open WebSocket on the task's watch, or None (logged at DEBUG, without the URL) when unavailable.

    The handshake runs on a helper thread so that a cancel is honoured at once even while a connect
    hangs; an abandoned handshake closes its socket itself when it ends.
    """
    short = task_uuid[:8]
    if websocket is None:
        log.debug("Task %s: no WebSocket client in this Blender; polling", short)
        return None
    if websocket.isEnabledForTrace():
        log.debug("Task %s: websocket-client's trace is on (it would log the key); polling", short)
        return None
    try:
        options = socket_options(client)
    except Exception as exc:  # noqa: BLE001 - a proxy or CA bundle the socket cannot use: poll
        log.debug("Task %s: the watch cannot use these network settings (%s); polling", short, type(exc).__name__)
        return None
    url = watch_url(client.settings.base_url, task_uuid, client.settings.api_key)
    box: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def connect() -> None:
        try:
            direct = options.pop("direct", False)
            if direct:
                # websocket-client consults HTTPS_PROXY itself whenever it is given no proxy host (its
                # "no proxy" option only applies beside one): the decision already made must hold, so
                # the connection is opened here and handed over.
                options["socket"] = direct_socket(url, client.settings.connect_timeout, options.get("sslopt"))
            ws = websocket.create_connection(url, timeout=client.settings.connect_timeout, **options)
        except Exception as exc:  # noqa: BLE001 - reported as a type name only: the text may hold the URL
            box["error"] = type(exc).__name__
            ws = None
        with lock:
            if box.get("abandoned") and ws is not None:
                close_quietly(ws)
            else:
                box["ws"] = ws
        done.set()

    threading.Thread(target=connect, name=f"triverse-watch-{short}", daemon=True).start()
    while not done.wait(TICK):
        if client.cancel_event.is_set():
            with lock:
                box["abandoned"] = True
                ws = box.pop("ws", None)
            if ws is not None:
                close_quietly(ws)
            raise errors.Cancelled("Import cancelled.")
    if box.get("ws") is None:
        log.debug("Task %s: the watch is unavailable (%s); polling", short, box.get("error", "no socket"))
    return box.get("ws")


def socket_options(client: TriverseClient) -> dict[str, Any]:
    """websocket-client's options for the same network settings as every request (proxy, CA bundle)."""
    settings = client.settings
    http_url = settings.base_url  # the watch goes where the API is: the same proxy decision applies
    scheme = urlsplit(http_url).scheme
    options: dict[str, Any] = {"header": [f"User-Agent: {USER_AGENT}"], "suppress_origin": True}
    if scheme == "https":
        options["sslopt"] = {"context": ssl.create_default_context(cafile=_ca_file(client))}  # always verified
    proxy = proxies_for(settings, http_url).get(scheme)
    if not proxy:
        options["direct"] = True  # the decision made above (no proxy) must hold: see _open_socket
        return options
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("only http:// proxies carry a WebSocket")  # requests still uses it for polling
    options.update(
        http_proxy_host=parts.hostname,
        http_proxy_port=parts.port or 80,
        proxy_type="http",
        # A list that matches no host: an empty one would make websocket-client read NO_PROXY, and a
        # proxy set in the preferences is used for every host, as requests does.
        http_no_proxy=_NO_PROXY_MATCH,
        http_proxy_timeout=settings.connect_timeout,
    )
    if parts.username:
        options["http_proxy_auth"] = (unquote(parts.username), unquote(parts.password or ""))
    return options


def direct_socket(url: str, timeout: float, sslopt: dict[str, Any] | None) -> socket.socket:
    """A socket connected to the watch URL's host, wrapped in TLS (verified, with the host's name) for wss."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    sock = socket.create_connection((host, parts.port or (443 if parts.scheme == "wss" else 80)), timeout)
    if parts.scheme != "wss" or sslopt is None:
        return sock
    try:
        return sslopt["context"].wrap_socket(sock, server_hostname=host)  # type: ignore[no-any-return]
    except BaseException:
        sock.close()
        raise


def _ca_file(client: TriverseClient) -> str:
    """The preferences' CA bundle, else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else certifi's (as requests)."""
    if client.ca_bundle:
        return client.ca_bundle
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = os.environ.get(name, "")
        if value and os.path.isfile(value):
            return value
    return str(certifi.where())


def close_quietly(ws: Any) -> None:
    """Say goodbye without waiting for the server's answer (a cancel must not wait), then let go."""
    try:
        ws.settimeout(0.2)
        ws.send_close()
    except Exception:  # noqa: BLE001 - a broken socket cannot say goodbye
        pass
    try:
        ws.shutdown()
    except Exception:  # noqa: BLE001 - closing a broken socket: nothing left to do
        pass


def _check_cancel(client: TriverseClient) -> None:
    if client.cancel_event.is_set():
        raise errors.Cancelled("Import cancelled.")
