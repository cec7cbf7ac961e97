"""The account's live feed (`/tasks/watch/all`): every task of the account, made here or elsewhere. No `bpy`.

`catch_up()` reads the feed's snapshot once (Sync); `apply()` puts payloads in My Generations (an unknown task as
made "elsewhere"); `AccountFeed` keeps one connection open on its own thread and applies every change. The socket
is opened as the single-task watch's (`watch.socket_options`: the same proxy and CA bundle as every request). The
key is in the URL's query: the URL is never logged nor put in an exception (errors by type name only, `from None`).

Decided here where the documentation is silent: the snapshot's end is not marked (it is over once no frame came
for `quiet` s). The payload has no `updated_at` (a progress change carries no time), so the time in sync is the
local clock's: just before the handshake, then each frame's arrival; the next `since` is that minus SINCE_MARGIN (a
clock a little off the service's; a task seen twice is harmless). Nothing may change for hours: a ping goes out
after PING_EVERY s of silence, and with no frame at all for PING_EVERY + PING_WAIT s the connection is dead.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from . import errors
from .api import TaskStatus, TriverseClient
from .generate import update_record
from .generations_store import TERMINAL, GenerationRecord, GenerationStore
from .settings import Settings, check_ready
from .watch import close_quietly, direct_socket, parse_message, socket_options

try:  # imported with this module, never by the feed's thread: two threads importing at once can deadlock
    import websocket
except ImportError:  # Blender 3.x loads the add-on without its wheel: no feed there (Sync says why)
    websocket = None  # type: ignore[assignment]

__all__ = ["AccountFeed", "Applied", "CatchUp", "FeedError", "FeedState", "apply", "catch_up", "watch_all_url"]

log = logging.getLogger(__name__)

QUIET = 0.5  # seconds without a frame after which the snapshot is taken as over (undocumented: see above)
LIMIT = 10.0  # seconds a catch-up reads at most
SINCE_MARGIN = 5.0  # seconds taken off the time in sync when asking `since`: a clock a little off the service's
TICK = 0.1  # seconds between looks at the stop flag while reading (stop() is honoured within about this)
BACKOFF_FIRST = 1.0  # seconds before the first reconnection, doubled each time up to BACKOFF_MAX
BACKOFF_MAX = 30.0
STABLE = 30.0  # a connection that lasted this long starts the back-off again from BACKOFF_FIRST
PING_EVERY = 30.0  # seconds of silence before a ping
PING_WAIT = 15.0  # seconds a ping may go unanswered (nor any other frame come) before the connection is dropped
_UTC = timezone.utc  # noqa: UP017 - not datetime.UTC: Blender 3.x runs Python 3.10
NO_CLIENT = "The account's feed needs websocket-client, which Blender 3.x does not load: use Blender 4.2 or later."

ChangeCallback = Callable[[list[str], list[str]], None]  # (task UUIDs changed, those made elsewhere that succeeded)


class FeedError(errors.ConnectionFailed):
    """The feed could not be opened or read; `reason` is its short form for a narrow panel."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class FeedUnavailable(FeedError):
    """No feed in this Blender at all (no WebSocket client, or its trace would log the key)."""


@dataclass(frozen=True)
class FeedState:
    """What the feed is doing: "off", "connecting", "connected", "retrying" or "unavailable", and why."""

    kind: str = "off"
    reason: str = ""

    def describe(self) -> str:
        """One line for a panel: "Connected", "Retrying: connection refused", "Unavailable: no WebSocket client"."""
        return f"{self.kind.capitalize()}: {self.reason}" if self.reason else self.kind.capitalize()


@dataclass
class CatchUp:
    """What a catch-up saw: the latest payload of each task (oldest change first) and the time in sync."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    synced_at: str = ""  # UTC ISO-8601: the clock just before the handshake (see the module's docstring)


@dataclass
class Applied:
    """What `apply` changed: tasks added (made elsewhere), tasks updated, and those made elsewhere that succeeded."""

    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)

    def changed(self) -> list[str]:  # every task UUID added or updated
        return [*self.new, *self.updated]


def iso(epoch: float) -> str:
    """A POSIX time as UTC ISO-8601 with milliseconds, e.g. "2026-01-02T03:04:05.678Z"."""
    return datetime.fromtimestamp(epoch, _UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object) -> float | None:
    """An ISO-8601 time as a POSIX time (no zone: UTC), None when absent or unreadable (Python 3.10 too)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=_UTC)).timestamp()


def resume_since(synced_at: str, margin: float | None = None) -> str:
    """The `since` to ask after being in sync at `synced_at` (minus SINCE_MARGIN); "" when never in sync."""
    moment = parse_time(synced_at)
    return "" if moment is None else iso(moment - (SINCE_MARGIN if margin is None else margin))


def watch_all_url(base_url: str, api_key: str, since: str | None) -> str:
    """The WebSocket URL of the account's feed (it holds the key: never log or show it)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/tasks/watch/all?token={quote(api_key, safe='')}"
    return f"{url}&since={quote(since, safe='')}" if since else url


def connect(client: TriverseClient, since: str | None, on_socket: Callable[[Any], None] | None = None) -> Any:
    """An open WebSocket on the account's feed, else FeedError (never holding the URL). `on_socket` hears a direct
    connection's TCP socket before the handshake (a stop shuts it without waiting for the handshake's timeout)."""
    check_ready(client.settings, client.online_access)
    if websocket is None:
        raise FeedUnavailable(NO_CLIENT, "no WebSocket client")
    if websocket.isEnabledForTrace():  # it would log the request line, key and all
        raise FeedUnavailable("websocket-client's trace is on: the feed stays closed.", "trace is on")
    settings = client.settings
    try:
        options = socket_options(client)
    except Exception as exc:  # noqa: BLE001 - a proxy other than http://, an unreadable CA bundle
        log.debug("The account's feed cannot use these network settings (%s)", type(exc).__name__)
        raise FeedError("The account's feed cannot use the proxy or CA bundle set.", "unusable proxy or CA") from None
    url = watch_all_url(settings.base_url, settings.api_key, since)
    sock = None
    try:
        if options.pop("direct", False):  # as watch._open_socket: websocket-client must not read HTTPS_PROXY
            sock = direct_socket(url, settings.connect_timeout, options.get("sslopt"))
            if on_socket is not None:
                on_socket(sock)
            options["socket"] = sock
        return websocket.create_connection(url, timeout=settings.connect_timeout, **options)
    except Exception as exc:  # noqa: BLE001 - reported by type name only: its text may hold the URL
        if sock is not None:
            sock.close()
        log.debug("The account's feed could not be opened (%s)", type(exc).__name__)
        failure = _connect_error(exc, settings)
    raise failure  # outside `except`: not even the hidden __context__ keeps the error that holds the URL


def _connect_error(exc: BaseException, settings: Settings) -> FeedError:
    host = urlsplit(settings.base_url).hostname or settings.base_url
    assert websocket is not None
    if isinstance(exc, websocket.WebSocketBadStatusException):
        code = getattr(exc, "status_code", 0)
        if code == 401:
            return FeedError("Triverse rejected the API key: check it in the add-on preferences.", "key rejected")
        return FeedError(f"Triverse refused the account's feed (HTTP {code}): try again later.", "refused")
    for kind, message, reason in (
        (ssl.SSLError, f"The secure connection to {host} failed: check the CA bundle.", "secure connection failed"),
        ((TimeoutError, websocket.WebSocketTimeoutException), f"{host} did not answer in time.", "timed out"),
        (websocket.WebSocketProxyException, "The proxy refused the account's feed: check the proxy.", "proxy"),
        (ConnectionRefusedError, f"{host} refused the connection: try again later.", "connection refused"),
    ):
        if isinstance(exc, kind):
            return FeedError(message, reason)
    return FeedError(f"Cannot reach Triverse at {host}: check your internet connection or proxy.", "cannot connect")


def _frame(ws: Any) -> tuple[str, dict[str, Any] | None] | None:
    """(event, data) of the next frame, ("", None) for a control one, None for none in time; FeedError at the end."""
    assert websocket is not None
    try:
        opcode, payload = ws.recv_data(control_frame=True)
    except websocket.WebSocketTimeoutException:
        return None
    except Exception as exc:  # noqa: BLE001 - a broken socket: by type name only
        log.debug("The account's feed broke (%s)", type(exc).__name__)
        raise FeedError("The account's feed was cut.", "the connection dropped") from None
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        raise FeedError("The service closed the account's feed.", "the service closed the connection")
    if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
        return "", None  # a ping (answered by websocket-client) or a pong: alive
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return parse_message(text)


def catch_up(client: TriverseClient, since: str | None, quiet: float = QUIET, limit: float = LIMIT) -> CatchUp:
    """Open the feed with `since` (none: the whole snapshot), read the snapshot until no frame came for `quiet` s
    (the service does not say when it ends) or `limit` s, close. Raises FeedError, MissingApiKey, ..."""
    synced_at = iso(time.time())  # before the handshake: the snapshot holds every change up to then
    ws = connect(client, since)
    seen: dict[str, dict[str, Any]] = {}
    try:
        start = heard = time.monotonic()
        while True:
            now = time.monotonic()
            if now - heard >= quiet or now - start >= limit:
                break
            ws.settimeout(max(0.01, min(TICK, quiet - (now - heard), limit - (now - start))))
            frame = _frame(ws)
            if frame is None:
                continue
            heard = time.monotonic()
            data = frame[1]
            if data is not None and isinstance(data.get("task_uuid"), str) and data["task_uuid"]:
                seen.pop(data["task_uuid"], None)  # the latest wins, in the order of its change
                seen[data["task_uuid"]] = data
    finally:
        close_quietly(ws)
    return CatchUp(list(seen.values()), synced_at)


def record_from(data: dict[str, Any]) -> GenerationRecord:
    """A record of a task made elsewhere from its status payload: flow, prompt (when it has one), status."""
    status = TaskStatus.from_data(data)
    given = data.get("input") if isinstance(data.get("input"), dict) else {}
    prompt = given.get("prompt")  # type: ignore[union-attr]
    record = GenerationRecord(
        task_uuid=str(data["task_uuid"]),
        flow_name=str(data.get("flow_name") or ""),
        prompt=prompt if isinstance(prompt, str) else "",
        status=status.status,
        progress=status.progress or 0,
        cost_credits=None,  # the status does not say what it cost
        created_at=parse_time(data.get("created_at")) or time.time(),
        origin="elsewhere",
    )
    if status.status in TERMINAL:
        record.error = status.error if status.status != "SUCCESS" else ""
        record.finished_at = parse_time(data.get("completed_at")) or time.time()
    return record


def apply(store: GenerationStore, payloads: Iterable[dict[str, Any]]) -> Applied:
    """Add the tasks the store does not know (made elsewhere: only its `cap` newest), update those it knows;
    idempotent. A list that cannot be saved is logged, not raised: the feed goes on."""
    applied = Applied()
    latest: dict[str, dict[str, Any]] = {}
    for data in payloads:
        if isinstance(data.get("task_uuid"), str) and data["task_uuid"]:
            latest.pop(data["task_uuid"], None)
            latest[data["task_uuid"]] = data
    unknown = [d for d in latest.values() if store.get(d["task_uuid"]) is None]
    if len(unknown) > store.cap:
        keep = sorted(unknown, key=lambda d: parse_time(d.get("created_at")) or 0.0)[-store.cap :]
        kept = {d["task_uuid"] for d in keep}
        latest = {u: d for u, d in latest.items() if u in kept or store.get(u) is not None}
    for task_uuid, data in latest.items():
        try:
            before = store.get(task_uuid)
            if before is None:
                record = record_from(data)
                store.upsert(record)
                applied.new.append(task_uuid)
                if record.status == "SUCCESS":
                    applied.succeeded.append(task_uuid)
                continue
            update_record(store, task_uuid, TaskStatus.from_data(data))
            after = store.get(task_uuid)
            if after is not None and after != before:
                applied.updated.append(task_uuid)
                if after.origin == "elsewhere" and after.status == "SUCCESS" and before.status != "SUCCESS":
                    applied.succeeded.append(task_uuid)
        except errors.StorageError as exc:
            log.warning("%s", exc)
    return applied


class AccountFeed:
    """One connection to the account's feed on its own thread, applying every change to `store`; `start()` once,
    `stop()` ends it within about TICK. It reconnects with back-off, asking `since` = the last time in sync minus
    SINCE_MARGIN; a failure is logged once until it connects again. `on_change` is called on the feed's thread."""

    def __init__(
        self,
        settings: Settings,
        store: GenerationStore,
        *,
        since: str | None = None,
        online_access: bool = True,
        on_change: ChangeCallback | None = None,
    ) -> None:
        self.settings, self.store, self.online_access, self.on_change = settings, store, online_access, on_change
        self.connections = 0  # handshakes that succeeded (for tests and the panel)
        self._since, self._state = since or "", FeedState()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: Any = None  # the TCP socket being handed to a handshake, or the open WebSocket
        self._started_at = self._synced = 0.0  # _synced: the wall clock in sync up to (0: not yet)

    @property
    def state(self) -> FeedState:  # what the feed is doing now (any thread)
        with self._lock:
            return self._state

    def start(self) -> FeedState:
        """Start the thread (once); without a key, online access or a WebSocket client the state says why."""
        if self._thread is not None:
            return self.state
        try:
            check_ready(self.settings, self.online_access)
            if websocket is None:
                raise FeedUnavailable(NO_CLIENT, "no WebSocket client")
            client = TriverseClient(self.settings, online_access=self.online_access)  # a CA bundle that is gone
        except errors.TriverseError as exc:
            self._set_state("unavailable", _reason(exc))
            return self.state
        self._started_at = time.time()
        self._set_state("connecting")
        self._thread = threading.Thread(target=self._run, args=(client,), name="triverse-account-feed", daemon=True)
        self._thread.start()
        return self.state

    def stop(self, wait: float = 1.0) -> None:
        """Close the connection and end the thread (waits up to `wait` seconds for it)."""
        self._stop.set()
        with self._lock:
            _shut(self._sock)  # None: nothing to shut
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)
        self._set_state("off")

    def _set_state(self, kind: str, reason: str = "") -> None:
        with self._lock:
            self._state = FeedState(kind, reason)

    def _keep_socket(self, sock: Any) -> None:
        with self._lock:
            self._sock = sock
        if self._stop.is_set():
            _shut(sock)

    def _run(self, client: TriverseClient) -> None:
        delay, said = BACKOFF_FIRST, False
        with client:
            while not self._stop.is_set():
                opened = time.monotonic()
                try:
                    reason = self._serve(client)
                except FeedUnavailable as exc:
                    self._set_state("unavailable", exc.reason)
                    log.warning("%s", exc)
                    return
                except errors.TriverseError as exc:
                    reason = _reason(exc)
                else:
                    said = False  # it connected: a later failure is news again
                finally:
                    with self._lock:
                        self._sock = None
                if self._stop.is_set():
                    break
                if time.monotonic() - opened >= STABLE:
                    delay = BACKOFF_FIRST
                if not said:
                    log.warning("Triverse's account feed: %s; retrying", reason)
                    said = True
                self._set_state("retrying", reason)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, BACKOFF_MAX)
        self._note_synced()

    def _serve(self, client: TriverseClient) -> str:
        """One connection: open it, apply every frame until it ends (its reason returned) or stop (raises nothing)."""
        before = time.time()
        since = resume_since(iso(self._synced)) if self._synced else self._since
        ws = connect(client, since or None, self._keep_socket)
        self._keep_socket(ws)
        self.connections += 1
        self._synced = before
        self._set_state("connected")
        noted = 0.0
        heard = pinged = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if not noted and now - heard >= QUIET:  # the snapshot is over: in sync up to the handshake
                    noted = self._note_synced()  # (and again when the thread ends)
                if now - heard >= PING_EVERY + PING_WAIT:
                    return "no answer from the service"
                if now - heard >= PING_EVERY and now - pinged >= PING_EVERY:
                    ws.ping()
                    pinged = now
                ws.settimeout(TICK)
                try:
                    frame = _frame(ws)
                except FeedError as exc:
                    return "" if self._stop.is_set() else exc.reason
                if frame is None:
                    continue
                heard = time.monotonic()
                self._synced = time.time()
                applied = apply(self.store, [frame[1]] if frame[1] is not None else [])
                if applied.changed():
                    self._tell(applied, live=bool(noted) or self.connections > 1)
        except Exception as exc:  # noqa: BLE001 - a ping on a broken socket: by type name only
            log.debug("The account's feed broke (%s)", type(exc).__name__)
            return "the connection dropped"
        finally:
            close_quietly(ws)
        return ""

    def _tell(self, applied: Applied, live: bool) -> None:
        records = [self.store.get(task_uuid) for task_uuid in applied.succeeded]  # the first snapshot is no news,
        since = self._started_at - SINCE_MARGIN if live else float("inf")  # nor what ended before the feed started
        succeeded = [r.task_uuid for r in records if r is not None and (r.finished_at or 0.0) >= since]
        try:
            if self.on_change is not None:
                self.on_change(applied.changed(), succeeded)
        except Exception:  # a listener's bug must not end the feed
            log.exception("A listener of Triverse's account feed failed")

    def _note_synced(self) -> float:
        if self._synced:
            try:
                self.store.set_synced_at(iso(self._synced))
            except errors.StorageError as exc:
                log.warning("%s", exc)
        return time.monotonic()


def _reason(exc: errors.TriverseError) -> str:
    return exc.reason if isinstance(exc, FeedError) else str(exc).split(":")[0].rstrip(".")


def _shut(sock: Any) -> None:
    """Shut a TCP socket, or a WebSocket's, from another thread: its reader wakes at once."""
    try:
        getattr(sock, "sock", sock).shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):  # already closed
        pass
