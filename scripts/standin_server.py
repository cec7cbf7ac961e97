"""A local stand-in for the Triverse web service, on loopback, for tests, the demo and the benchmark.

It answers the documented endpoints (`/api/v1/tasks/{uuid}`, `/tasks/url/{uuid}`, `/tasks/download/{uuid}`)
with the service's shapes, serves signed asset URLs from a second host (127.0.0.2 by default, like a CDN
that must not see the API key), records every request, and can be told to misbehave in the ways a real
service, proxy or network does (`StandinServer.fail`). Standard library only.

    python scripts/standin_server.py --asset model.glb [--task UUID] [--key KEY] [--port N] [--status SUCCESS]

prints one line of JSON (`base_url`, `task_uuid`, `api_key`) and serves until SIGTERM or SIGINT.

Failures (`StandinServer.fail`) apply to `/tasks/download/{uuid}` unless `on=` names another endpoint: "url",
"status", "files" (the signed asset URL) or "any". The modes that replace the answer (the error bodies, html,
json, garbage) apply whatever the task's state; those that alter a successful answer (truncated, drop, gzip,
chunked, stall, slow, redirect, redirect_same_host) wait for one and are not consumed meanwhile. Optional
parameters besides those of each mode: `message` and `retry_after` (any JSON error), `status` (not_finished),
`fraction` (truncated, drop), `chunk_size` (chunked, drop), `detail` (json), `seed` (garbage). The gzip mode
compresses in memory; every other answer streams a path-backed asset from disk with sendfile(2).

Generation (`standin_generation.py`, as `srv.gen`): `POST /tasks/{text,image}-to-{model,mesh}`, `/upload/image`,
`/tasks/pricing/quote`, `GET /users/me`, `/users/balance`, task timelines (PENDING/QUEUED -> RUNNING n% -> SUCCESS
or FAILED, one step every `timeline_step` s; `script_next_generation`, `release`), credits (`balance`), and a
WebSocket watch `GET /tasks/watch/{uuid}?token=KEY` on the API's own host and port (uses the `websockets`
library). Failures for these name their endpoint with `on=`: "create", "upload", "quote", "account" (answers
replaced after the request was processed: a creation answered 500 did create its task; "reset" closes the
connection without any answer) or "watch" ("refused": 404, "drop" / "close_early": closed abruptly / cleanly
after the first message, "silent", "no_finalized", or any JSON error mode); "any" does not cover them.

Scene tools (`standin_scene.py`; `srv.gen` is its `SceneGeneration`): `POST /upload/model` (GLB/OBJ, 200 MB,
`modelVariant`; kept in `srv.gen.uploaded_models`; one `upload_limit` window with `/upload/image`),
`POST /tasks/{texture-model,text-to-texture,model-remesh}` (result: `srv.gen.scene_result(flow, model_bytes)`,
default the uploaded GLB), their quotes, and the account-wide watch `GET /tasks/watch/all?token=KEY[&since=ISO]`
(a snapshot of the tasks whose `updated_at` is after `since`, then every change, pushed as it happens; always
recorded in `requests`). Its failures: `on="watch_all"` with "refused", "drop", "close_early", "silent",
"no_finalized" or a JSON error mode.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import standin_generation
import standin_scene

API_PREFIX = "/api/v1"
STATUSES = ("PENDING", "QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED")
CHUNK = 1 << 20  # bytes per write when streaming
POLL_INTERVAL = 0.02  # seconds; how long stop() may wait for a serving loop to notice
ENDPOINTS = ("download", "url", "status", "files", "any", "create", "upload", "quote", "account", "watch", "watch_all")
_ANY = ("download", "url", "status", "files")  # what on="any" covers
MAX_BODY = standin_generation.MAX_UPLOAD + (1 << 20)  # the largest request body read (an upload and its framing)

# mode -> (HTTP status, service code, message, suggestion) for the JSON error modes.
_JSON_ERRORS: dict[str, tuple[int, int, str, str]] = {
    "unauthorized": (401, 1001, "Invalid API key", "Check the API key in your account settings."),
    "forbidden": (403, 2010, "Insufficient credits", "Top up your credits and try again."),
    "not_found": (404, 1006, "Task not found", "Check the task UUID."),
    "no_assets": (404, 4042, "Task succeeded but has no assets", "Create the task again."),
    "not_finished": (409, 2005, "Task is {status}", "Wait until the task reaches SUCCESS."),
    "rate_limited": (429, 2000, "Rate limit exceeded", "Slow down and retry later."),
    "server_error": (500, 5005, "Persistence error", "Retry later."),
    "unavailable": (503, 5003, "Backend unavailable", "Retry later."),
}
# Modes that replace the answer whatever it would have been; the others alter a successful answer.
_REPLACING = {*_JSON_ERRORS, "expired", "bad_gateway", "gateway_timeout", "html", "json", "garbage"}
_TRANSPORT = {"truncated", "drop", "gzip", "chunked", "stall", "slow"}
_REDIRECTS = {"redirect", "redirect_same_host"}
_GENERATION_MODES = {"reset", "refused", "silent", "no_finalized", "close_early"}
FAILURE_MODES = frozenset(_REPLACING | _TRANSPORT | _REDIRECTS | _GENERATION_MODES | {"first_byte_delay"})

_PROXY_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_SIGN_IN_PAGE = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign in - Triverse</title></head>\n'
    '<body><h1>Sign in</h1><form method="post" action="/login"><input name="email">'
    '<input name="password" type="password"><button>Sign in</button></form></body></html>\n'
)


@dataclass
class Task:
    """One task the stand-in knows, with its asset as bytes or as a path to a file on disk."""

    uuid: str
    source: bytes | str | os.PathLike[str]
    filename: str | None = None
    ext: str = "glb"
    status: str = "SUCCESS"
    progress: int = 100
    error: dict[str, Any] | None = None
    preview: bytes | None = None
    created_at: float = field(default_factory=time.time, repr=False)
    flow_name: str = "image-to-model"
    queue: dict[str, Any] | None = None
    input: dict[str, Any] = field(default_factory=dict)  # the creation's parameters, as the status shows them
    updated_at: float | None = None  # time.time() of the last change of state (None: when added)

    def __post_init__(self) -> None:
        if self.filename is None:
            self.filename = f"{self.uuid}.{self.ext}"

    def body(self) -> bytes | Path:
        """The asset: bytes, or the path it is streamed from."""
        if isinstance(self.source, bytes | bytearray | memoryview):
            return bytes(self.source)
        return Path(self.source)


@dataclass
class RecordedRequest:
    """A request as it arrived, on either host."""

    method: str
    path: str
    host: str
    headers: dict[str, str]
    time: float
    body: bytes = field(default=b"", repr=False)  # a POST's body as received (generation endpoints)

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any (looked up case-insensitively)."""
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), None)


@dataclass
class _Failure:
    mode: str
    uuid: str | None
    times: int | None
    on: str
    params: dict[str, Any]


@dataclass
class _Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Path = b""


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode())


def _error(status: int, code: int, message: str, suggestion: str = "", headers: dict[str, str] | None = None) -> _Reply:
    return _json_reply(status, {"code": code, "message": message, "suggestion": suggestion}, headers)


def _xml_error(status: int, code: str, message: str) -> _Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{uuidlib.uuid4().hex[:16].upper()}"
        "</RequestId></Error>"
    )
    return _Reply(status, {"Content-Type": "application/xml"}, body.encode())


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _size(body: bytes | Path) -> int:
    return len(body) if isinstance(body, bytes) else body.stat().st_size


def _chunks(body: bytes | Path, start: int, end: int, size: int = CHUNK) -> Iterator[bytes | memoryview]:
    """Slices of body[start:end], at most `size` bytes each."""
    if isinstance(body, bytes):
        view = memoryview(body)
        for pos in range(start, end, size):
            yield view[pos : min(pos + size, end)]
        return
    with body.open("rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(size, left))
            if not data:
                return
            left -= len(data)
            yield data


class _HTTPServer(ThreadingHTTPServer):
    """One listening socket; tracks its connections so stop() can close them and join their threads."""

    def __init__(self, address: tuple[str, int], owner: StandinServer, serves_api: bool) -> None:
        self.owner = owner
        self.serves_api = serves_api
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (slow or hanging offline)."""
        TCPServer.server_bind(self)
        self.host, self.port = str(self.server_address[0]), int(self.server_address[1])
        self.server_name, self.server_port = self.host, self.port

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on its own thread, remembered until it ends."""
        name = "standin connection %s:%s" % client_address[:2]
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address), name=name, daemon=True)
        with self._conns_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - reported by handle_error, as socketserver does
            self.handle_error(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.pop(request, None)
            self.shutdown_request(request)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut every open connection down (waking its thread) and join the threads."""
        with self._conns_lock:
            items = list(self._conns.items())
        for sock, _ in items:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its thread
        for _, thread in items:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print the traceback of a bug; a client that went away is not one (shown only when verbose)."""
        if self.owner.verbose or not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


_ROUTE = re.compile(re.escape(API_PREFIX) + r"/tasks/(?:(download|url)/)?([^/]+)")
_WATCH = re.compile(re.escape(API_PREFIX) + r"/tasks/watch/([^/]+)")


class _Handler(BaseHTTPRequestHandler):
    """Answers both hosts: the API under /api/v1 (API host only) and signed /files/, /previews/ (both)."""

    protocol_version = "HTTP/1.1"
    server_version = "TriverseStandin/1.0"
    timeout = 30  # seconds a connection may idle or block on a send
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr only when verbose."""
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Every method goes through the same routing; only GET and HEAD match an endpoint."""
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815 - BaseHTTPRequestHandler's names

    def _dispatch(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        watch = _WATCH.fullmatch(url.path) if self.server.serves_api else None
        record = RecordedRequest(self.command, self.path, self.server.host, dict(self.headers.items()), time.time())
        if watch is None or owner.record_watch or watch.group(1) == "all":
            owner._record(record)
        try:
            self._read_request_body()
            record.body = self.body
            if watch is not None:
                self._watch(watch.group(1), parse_qs(url.query))
            elif url.path.startswith(("/files/", "/previews/")):
                self._asset(url.path, parse_qs(url.query))
            elif self.server.serves_api:
                self._api(url.path)
            else:
                self._send(_xml_error(404, "NoSuchKey", "The specified key does not exist."))
        except OSError:
            self.close_connection = True  # the client went away, or stop() shut the connection

    def _read_request_body(self) -> None:
        """Keep a POST's body for the generation endpoints (up to MAX_BODY); discard any other."""
        self.body = b""
        length = self.headers.get("Content-Length", "0").strip() or "0"
        limit = (
            self.server.owner.gen.body_limit(urlsplit(self.path).path, MAX_BODY) if self.command == "POST" else CHUNK
        )
        if self.headers.get("Transfer-Encoding") or not length.isdigit() or int(length) > limit:
            self.close_connection = True
            self.body_too_large = length.isdigit() and int(length) > limit
        elif int(length):
            self.body = self.rfile.read(int(length))

    def _watch(self, task_uuid: str, query: dict[str, list[str]]) -> None:
        """The WebSocket watch of one task, or of the whole account ("all"); the key comes in `token`."""
        owner = self.server.owner
        self.close_connection = True  # after a watch (or its refusal) the connection is done
        every = task_uuid == "all"
        if not owner._authorized("Bearer " + query.get("token", [""])[0]):
            self._send(_error(401, 1001, "Missing or invalid API key", "Pass ?token=<API_KEY>."))
            return
        since = standin_scene.parse_since(query["since"][-1]) if every and "since" in query else None
        if every and "since" in query and since is None:  # undocumented: the stand-in refuses a bad `since`
            self._send(_error(400, 1004, "since must be an ISO-8601 time", "E.g. 2026-01-02T03:04:05.678Z"))
            return
        failure = owner._take_failure(task_uuid, "watch_all" if every else "watch", ok=True)
        mode = failure.mode if failure is not None else None
        if mode == "refused" or (not every and owner._task(task_uuid) is None):
            # Echoes the request line, query and all, as many servers' and proxies' error pages do: a
            # client must not pass such a body on (it holds the key).
            self._send(_error(404, 1005, f"Resource not found: {self.path}", "Check the URL."))
        elif failure is not None and mode in _JSON_ERRORS:
            self._send(_failure_reply(failure.mode, failure.params))
        elif every:
            standin_scene.serve_watch_all(self, owner, since, mode)
        else:
            standin_generation.serve_watch(self, owner, task_uuid, mode)

    def _api(self, path: str) -> None:
        owner = self.server.owner
        if not owner._authorized(self.headers.get("Authorization")):
            self._send(_error(401, 1001, "Missing or invalid API key", "Send 'Authorization: Bearer <API_KEY>'."))
            return
        generation = owner.gen.route(self.command, path, urlsplit(self.path).query)
        if generation is not None:
            endpoint, answer = generation
            if getattr(self, "body_too_large", False):
                self._send(_Reply(*owner.gen.too_large(path)))
                return
            early = owner._take_failure("", endpoint, ok=True, before=True)  # fail(..., before=True): not processed
            if early is not None:
                self._reset() if early.mode == "reset" else self._send(_failure_reply(early.mode, early.params))
                return
            status, headers, body = answer(self.body, self.headers)
            self._answer(endpoint, "", _Reply(status, headers, body))
            return
        match = _ROUTE.fullmatch(path)
        if match is None or self.command not in ("GET", "HEAD"):
            self._send(_error(404, 1005, "Resource not found", "Check the URL and method."))
            return
        endpoint, task_uuid = match.group(1) or "status", match.group(2)
        self._answer(endpoint, task_uuid, owner._api_reply(endpoint, task_uuid))

    def _asset(self, path: str, query: dict[str, list[str]]) -> None:
        owner = self.server.owner
        expires, sig = query.get("expires", [""])[0], query.get("sig", [""])[0]
        if not owner._signature_ok(path, expires, sig):
            self._send(_xml_error(403, "AccessDenied", "Request signature does not match."))
            return
        if int(expires) < time.time():
            self._send(_xml_error(403, "AccessDenied", "Request has expired"))
            return
        task_uuid, _, ext = path.split("/", 2)[2].rpartition(".")
        task = owner._task(task_uuid)
        if path.startswith("/previews/"):
            if task is None or task.preview is None:
                self._send(_xml_error(404, "NoSuchKey", "The specified key does not exist."))
            else:
                self._send(_Reply(200, {"Content-Type": "image/png"}, task.preview))
            return
        if task is None or ext != task.ext:
            self._send(_xml_error(404, "NoSuchKey", "The specified key does not exist."))
            return
        self._answer("files", task_uuid, owner._asset_reply(task))

    def _answer(self, endpoint: str, task_uuid: str, reply: _Reply) -> None:
        """Send `reply`, or what the most recent applicable failure makes of it."""
        owner = self.server.owner
        failure = owner._take_failure(task_uuid, endpoint, ok=reply.status == 200)
        if failure is None:
            self._send(reply)
        elif failure.mode == "reset":
            self._reset()
        elif failure.mode == "first_byte_delay":
            if owner._stopping.wait(float(failure.params.get("seconds", 0.3))):
                self.close_connection = True
            else:
                self._send(reply)
        elif failure.mode in _REDIRECTS:
            base = owner.asset_base if failure.mode == "redirect" else owner._origin(self.server)
            self._send(_Reply(302, {"Location": owner.signed_url(task_uuid, base=base)}))
        elif failure.mode in _TRANSPORT:
            self._send(reply, failure.mode, failure.params)
        else:
            self._send(_failure_reply(failure.mode, failure.params))

    def _send(self, reply: _Reply, mode: str | None = None, params: dict[str, Any] | None = None) -> None:
        """Status line, headers and body, the body sent the way `mode` says."""
        params = params or {}
        body, headers = reply.body, dict(reply.headers)
        if mode == "gzip":
            raw = body if isinstance(body, bytes) else body.read_bytes()
            body, headers["Content-Encoding"] = gzip.compress(raw, compresslevel=5, mtime=0), "gzip"
        size = _size(body)
        chunked = mode in ("chunked", "drop")
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))))
        self.end_headers()
        if self.command == "HEAD":
            return
        stopping = self.server.owner._stopping
        if mode == "truncated":
            self._write(body, 0, int(size * float(params.get("fraction", 0.5))))
            self.close_connection = True  # FIN before Content-Length bytes
        elif mode in ("chunked", "drop"):
            end = int(size * float(params.get("fraction", 0.5))) if mode == "drop" else size
            for piece in _chunks(body, 0, end, int(params.get("chunk_size", 64 * 1024))):
                self.wfile.write(b"%x\r\n" % len(piece))
                self.wfile.write(piece)
                self.wfile.write(b"\r\n")
            if mode == "drop":
                self._reset()
            else:
                self.wfile.write(b"0\r\n\r\n")
        elif mode == "stall":
            first = min(size, int(params.get("after_bytes", 1024)))
            self._write(body, 0, first)
            if stopping.wait(float(params.get("seconds", 60))):
                self.close_connection = True
                return
            self._write(body, first, size)
        elif mode == "slow":
            rate = float(params.get("bytes_per_second", 1_000_000))
            sent, began = 0, time.monotonic()
            for piece in _chunks(body, 0, size, max(1, int(rate / 50))):  # ~20 ms of data a write
                self.wfile.write(piece)
                sent += len(piece)
                delay = began + sent / rate - time.monotonic()
                if delay > 0 and stopping.wait(delay):
                    self.close_connection = True
                    return
        else:
            self._write(body, 0, size)

    def _write(self, body: bytes | Path, start: int, end: int) -> None:
        """body[start:end] in large writes: sendfile(2) for a path, one sendall for bytes."""
        if end <= start:
            return
        if isinstance(body, bytes):
            self.wfile.write(memoryview(body)[start:end])
        else:
            with body.open("rb") as f:
                self.connection.sendfile(f, start, end - start)

    def _reset(self) -> None:
        """Close abruptly: an RST once the handler lets go of the socket."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


def _failure_reply(mode: str, params: dict[str, Any]) -> _Reply:
    """The answer of a failure mode that replaces the normal one."""
    if mode in _JSON_ERRORS:
        status, code, message, suggestion = _JSON_ERRORS[mode]
        message = params.get("message", message.format(status=params.get("status", "RUNNING")))
        retry_after = params.get("retry_after", 1 if mode == "rate_limited" else None)
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return _error(status, code, message, suggestion, headers)
    if mode == "expired":
        return _json_reply(410, {"detail": "Asset expired"})
    if mode in ("bad_gateway", "gateway_timeout"):
        status, title = (502, "502 Bad Gateway") if mode == "bad_gateway" else (504, "504 Gateway Time-out")
        return _Reply(status, {"Content-Type": "text/html"}, _PROXY_PAGE.format(title).encode())
    if mode == "html":
        return _Reply(200, {"Content-Type": "text/html; charset=utf-8"}, _SIGN_IN_PAGE.encode())
    if mode == "json":
        return _json_reply(200, {"detail": params.get("detail", "something")})
    data = bytearray(random.Random(params.get("seed", 0)).randbytes(int(params.get("size", 4096))))
    if data:
        data[0] = 0  # no file format's magic starts with NUL
    return _Reply(200, {"Content-Type": "application/octet-stream"}, bytes(data))


class StandinServer:
    """The stand-in service: an API host and an asset host on loopback, each a ThreadingHTTPServer."""

    def __init__(
        self,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        asset_host: str | None = "127.0.0.2",
        envelope: bool = True,
        verbose: bool = False,
        url_ttl: float = 300,
        asset_port: int = 0,
        *,
        balance: float = 1000.0,
        generated_asset: bytes | str | os.PathLike[str] | None = None,
        timeline_step: float = 0.2,
        record_watch: bool = False,
    ) -> None:
        """`balance`: credits; `generated_asset`: what created tasks serve (default: a tiny GLB);
        `timeline_step`: seconds between a created task's states; `record_watch`: watches go in `requests`."""
        source = os.fspath(generated_asset) if isinstance(generated_asset, os.PathLike) else generated_asset
        self.gen = standin_scene.SceneGeneration(self, balance, source, timeline_step)
        self.record_watch = record_watch
        self.api_key, self.host, self.port = api_key, host, port
        self.asset_host, self.asset_port = asset_host, asset_port
        self.envelope, self.verbose, self.url_ttl = envelope, verbose, url_ttl
        self.requests: list[RecordedRequest] = []
        self._tasks: dict[str, Task] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._secret = os.urandom(32)
        self._api: _HTTPServer | None = None
        self._assets: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StandinServer:
        """Bind both hosts and serve them from background threads."""
        if self._api is not None:
            return self
        self._stopping.clear()
        self._api = _HTTPServer((self.host, self.port), self, serves_api=True)
        if self.asset_host is not None:
            try:
                self._assets = _HTTPServer((self.asset_host, self.asset_port), self, serves_api=False)
            except OSError:
                self._api.server_close()
                self._api = None
                raise
        for srv in (self._api, self._assets):
            if srv is not None:
                name = f"standin {srv.host}:{srv.port}"
                thread = threading.Thread(target=srv.serve_forever, args=(POLL_INTERVAL,), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        self.gen.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake stalled answers, close every connection, join every thread, free the ports."""
        servers = [srv for srv in (self._api, self._assets) if srv is not None]
        if not servers:
            return
        self._stopping.set()
        stoppers = [threading.Thread(target=srv.shutdown) for srv in servers]  # each waits up to one poll
        for thread in stoppers:
            thread.start()
        for thread in (*stoppers, *self._threads):
            thread.join()
        self.gen.join()
        for srv in servers:
            srv.close_connections()
            srv.server_close()
        self._api = self._assets = None
        self._threads = []

    @property
    def base_url(self) -> str:
        """E.g. http://127.0.0.1:PORT/api/v1."""
        if self._api is None:
            raise RuntimeError("the stand-in server is not running")
        return self._origin(self._api) + API_PREFIX

    @property
    def asset_base(self) -> str:
        """Origin of the asset host, e.g. http://127.0.0.2:PORT (the API host's when asset_host is None)."""
        srv = self._assets or self._api
        if srv is None:
            raise RuntimeError("the stand-in server is not running")
        return self._origin(srv)

    def add_task(self, task: Task) -> Task:
        """Add (or replace) a task."""
        if task.status not in STATUSES:
            raise ValueError(f"unknown status {task.status!r}")
        body = task.body()
        if isinstance(body, Path) and not body.is_file():
            raise FileNotFoundError(body)
        with self._lock:
            task.updated_at = time.time() if task.updated_at is None else task.updated_at
            self._tasks[task.uuid] = task
        self.gen.task_changed(task)
        return task

    def add(self, uuid: str, source: bytes | str | os.PathLike[str], **kw: Any) -> Task:
        """Shorthand for add_task(Task(uuid, source, **kw))."""
        return self.add_task(Task(uuid, source, **kw))

    def set_status(self, uuid: str, status: str, progress: int = 0, error: dict[str, Any] | None = None) -> None:
        """Move a known task to `status` (progress 0 with SUCCESS is taken as 100)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            task = self._tasks[uuid]
            task.status, task.error = status, error
            task.progress = 100 if status == "SUCCESS" and not progress else progress
        self._changed(task)

    def fail(self, mode: str, uuid: str | None = None, times: int | None = None, **params: Any) -> None:
        """Make the download endpoint (or the one named by `on=`) misbehave `times` times (None: until cleared)."""
        on = params.pop("on", "download")
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; known: {', '.join(sorted(FAILURE_MODES))}")
        if on not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {on!r}; known: {', '.join(ENDPOINTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None)")
        with self._lock:
            self._failures.append(_Failure(mode, uuid, times, on, params))

    def script_next_generation(self, outcome: str = "SUCCESS", error: str = "The generation failed.",
                               hold: bool = False) -> None:  # fmt: skip
        """How the next created task ends (FAILED with `error`); `hold` keeps it RUNNING until `release`."""
        self.gen.script_next(outcome, error, hold)

    def release(self, uuid: str) -> float:
        """Finish a created task now (a held one too); answers time.monotonic() of the change."""
        return self.gen.release(uuid)

    @property
    def created(self) -> list[str]:
        """UUIDs of the tasks created through the API, oldest first."""
        return list(self.gen.created)

    def clear_failures(self) -> None:
        """Remove every installed failure."""
        with self._lock:
            self._failures.clear()

    def requests_for(self, path_fragment: str) -> list[RecordedRequest]:
        """The recorded requests whose path (with query) contains `path_fragment`."""
        with self._lock:
            return [r for r in self.requests if path_fragment in r.path]

    def signed_url(self, uuid: str, preview: bool = False, ttl: float | None = None, base: str | None = None) -> str:
        """A signed asset (or preview) URL valid for `ttl` seconds (default url_ttl; negative: already expired)."""
        task = self._task(uuid)
        if task is None:
            raise KeyError(uuid)
        path = f"/previews/{uuid}.png" if preview else f"/files/{uuid}.{task.ext}"
        expires = str(int(time.time() + (self.url_ttl if ttl is None else ttl)))
        return f"{base or self.asset_base}{path}?expires={expires}&sig={self._sign(path, expires)}"

    # --- used by the handler ---

    @staticmethod
    def _origin(srv: _HTTPServer) -> str:
        return f"http://{srv.host}:{srv.port}"

    def _changed(self, task: Task) -> None:
        """After a change of a task's state: stamp its `updated_at` and push it to the account's watches."""
        with self._lock:
            task.updated_at = time.time()
        self.gen.task_changed(task)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _task(self, uuid: str) -> Task | None:
        with self._lock:
            return self._tasks.get(uuid)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def _sign(self, path: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def _signature_ok(self, path: str, expires: str, sig: str) -> bool:
        return expires.isdigit() and hmac.compare_digest(self._sign(path, expires), sig)

    def _take_failure(self, uuid: str, endpoint: str, ok: bool, before: bool | None = None) -> _Failure | None:
        """The most recent failure for this task and endpoint (consuming one of its times), if any applies."""
        with self._lock:
            for i in range(len(self._failures) - 1, -1, -1):
                failure = self._failures[i]
                applies = failure.on == endpoint or (failure.on == "any" and endpoint in _ANY)
                if failure.uuid not in (None, uuid) or not applies:
                    continue
                if before is not None and bool(failure.params.get("before")) != before:
                    continue
                if not ok and failure.mode not in _REPLACING and failure.mode != "first_byte_delay":
                    continue  # nothing to truncate, compress or redirect in a 404 or 409
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failures[i]
                return failure
        return None

    def _wrap(self, data: dict[str, Any]) -> _Reply:
        return _json_reply(200, {"code": 0, "message": "success", "data": data} if self.envelope else data)

    def _asset_reply(self, task: Task) -> _Reply:
        headers = {"Content-Type": "application/octet-stream"}
        headers["Content-Disposition"] = f'attachment; filename="{task.filename}"'
        return _Reply(200, headers, task.body())

    def _api_reply(self, endpoint: str, uuid: str) -> _Reply:
        """The normal answer of /tasks/{uuid}, /tasks/url/{uuid} or /tasks/download/{uuid}."""
        task = self._task(uuid)
        if task is None:
            return _error(404, 1006, "Task not found", "Check the task UUID.")
        if endpoint == "status":
            return self._wrap(self._status_data(task))
        if task.status != "SUCCESS":
            return _error(409, 2005, f"Task is {task.status}", "Wait until the task reaches SUCCESS.")
        if endpoint == "url":
            return self._wrap(self._url_data(task))
        return self._asset_reply(task)

    def _url_data(self, task: Task) -> dict[str, Any]:
        return {
            "download_url": self.signed_url(task.uuid),
            "preview_url": self.signed_url(task.uuid, preview=True) if task.preview is not None else None,
            "asset_id": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, task.uuid)),
            "kind": "model",
        }

    def _status_data(self, task: Task) -> dict[str, Any]:
        started = task.status in ("RUNNING", "SUCCESS", "FAILED", "CANCELLED")
        finished = task.status in ("SUCCESS", "FAILED", "CANCELLED")
        output = None
        if task.status == "SUCCESS":
            urls = self._url_data(task)
            output = {"model_url": urls["download_url"], "preview_url": urls["preview_url"], "format": task.ext}
        return {
            "task_uuid": task.uuid,
            "flow_name": task.flow_name,
            "status": task.status,
            "progress": task.progress,
            "created_at": _iso(task.created_at),
            "started_at": _iso(task.created_at + 1 if started else None),
            "completed_at": _iso(task.created_at + 2 if finished else None),
            "input": dict(task.input),
            "output": output,
            "error": task.error,
            "queue": task.queue,
        }


def main(argv: list[str] | None = None) -> int:
    """Serve one asset file as a task until SIGTERM or SIGINT; print the connection details as JSON."""
    parser = argparse.ArgumentParser(description="Serve one asset through a local stand-in of the Triverse API.")
    parser.add_argument("--asset", type=Path, required=True, help="the file served as the task's asset")
    parser.add_argument("--task", default=None, help="task UUID (default: a random one)")
    parser.add_argument("--key", default="demo-key", help="API key the server accepts (default: demo-key)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: any free one)")
    parser.add_argument("--status", default="SUCCESS", choices=STATUSES, help="the task's status")
    parser.add_argument("--host", default="127.0.0.1", help="API host address")
    parser.add_argument("--asset-host", default="127.0.0.2", help="asset host address, or 'none' for the API host")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--balance", type=float, default=1000.0, help="credits for generation (default: 1000)")
    parser.add_argument("--timeline-step", type=float, default=1.0, help="seconds between a generation's states")
    args = parser.parse_args(argv)
    if not args.asset.is_file():
        parser.error(f"no such file: {args.asset}")
    task_uuid = args.task or str(uuidlib.uuid4())
    ext = args.asset.suffix.lstrip(".").lower() or "glb"
    asset_host = None if args.asset_host.lower() == "none" else args.asset_host

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = StandinServer(
        args.key,
        args.host,
        args.port,
        asset_host=asset_host,
        verbose=args.verbose,
        balance=args.balance,
        generated_asset=args.asset.resolve(),
        timeline_step=args.timeline_step,
    )
    progress = 100 if args.status == "SUCCESS" else 0
    server.add(task_uuid, args.asset.resolve(), ext=ext, status=args.status, progress=progress)
    with server:
        print(json.dumps({"base_url": server.base_url, "task_uuid": task_uuid, "api_key": args.key}), flush=True)
        while not stop.is_set():
            stop.wait(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
