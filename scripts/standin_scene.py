"""The stand-in's scene tools: model uploads, texturing and remeshing tasks, and the account-wide live watch.

`SceneGeneration` extends `standin_generation.Generation` (it is what `StandinServer` uses as `srv.gen`):

- `POST /upload/model`: multipart, field `file`, a GLB (bytes start with `glTF`) or an OBJ (text with `v ` lines),
  at most `max_model_upload` bytes (200 MB; over it: 400/1004), optional query `modelVariant=geometry|textured`.
  The bytes are kept in `uploaded_models[file_key]` = {"bytes", "variant" (None when not sent), "filename",
  "kind"}. Image and model uploads count against one window, `upload_limit` = (count, seconds).
- `POST /tasks/texture-model`, `/tasks/text-to-texture`, `/tasks/model-remesh`: validated here, then created by
  the base class like every other flow (order ids, credits, timelines, `script_next_generation`, failures
  `on="create"`). Their asset is `scene_result(flow, uploaded_bytes)` (bytes; None means the stand-in's sample
  asset), called at creation with the bytes of the uploaded `model_file` (None for a URL). Default: the uploaded
  GLB unchanged; an OBJ or a URL gives the sample asset. Their `input` echoes the parameters sent.
- `POST /tasks/pricing/quote` prices them (`scene_cost`); a creation charges the same.
- `GET /tasks/watch/all?token=KEY[&since=ISO-8601]` (WebSocket): the latest state of every task whose
  `updated_at` is after `since` (all of them without it), oldest change first, then every change of any task as
  it happens (`task_changed` is called wherever a task's state changes; nothing polls). Never closed by the
  server. One frame per state: `event: update` or `event: finalized` (a terminal status), `data:` the status
  payload, in the envelope when the server uses one.

Decided here where the documentation is silent: `since` is exclusive (updated_at > since); one without a zone is
UTC; one that does not parse refuses the handshake with 400/1004 (an empty `since=` counts as absent). A repeated
frame for an unchanged state is not sent again. `texture_size` may be any integer in 1024..4096; `model_version`
only "v2"; `model-remesh` takes no `texture_size` (1004) and only `output_format` "glb" (2004, checked before the
order id). The uploader id in a file_key is "standin", as for images.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from standin_generation import (
    MAX_UPLOAD,
    POLYGONS,
    TERMINAL,
    Answer,
    Generation,
    _bad,
    _err,
    _ok,
    accept_websocket,
)

API = "/api/v1"
SCENE_FLOWS = ("texture-model", "text-to-texture", "model-remesh")
SCENE_COSTS = {"texture-model": 40, "text-to-texture": 30, "model-remesh": 20}
_PRICED = {"texture-model": ("polygon_limit", "texture_size"), "text-to-texture": ("polygon_limit", "texture_size"),
           "model-remesh": ("polygon_limit",)}  # fmt: skip
MAX_MODEL_UPLOAD = 200_000_000  # bytes (the documented 200 MB, decimal)
FRAMING = 1 << 20  # multipart framing allowed on top of a file's size when reading a request body
VARIANTS = ("geometry", "textured")
TEXTURE_RANGE = (1024, 4096)
_INPUT = ("prompt", "image_file", "model_file", "model_version", "polygon_limit", "texture_size", "output_format")
_URL = re.compile(r"https?://\S+")


def scene_cost(flow: str, params: dict[str, Any]) -> int:
    """Price of a scene flow: texture-model 40, text-to-texture 30, model-remesh 20; +10 per texture step (2048,
    4096) for the texturing flows."""
    size = params.get("texture_size", 1024)
    step = {2048: 1, 4096: 2}.get(size, 0) if isinstance(size, int) and flow != "model-remesh" else 0
    return SCENE_COSTS[flow] + 10 * step


def same_model(flow: str, model: bytes | None) -> bytes | None:
    """The default `scene_result`: the uploaded GLB unchanged; None (the sample asset) for an OBJ or a URL."""
    return model if model is not None and model.startswith(b"glTF") else None


def model_kind(data: bytes) -> str | None:
    """The kind of an uploaded model: "glb" (binary glTF), "obj" (a Wavefront OBJ text with vertex lines), or None."""
    if data.startswith(b"glTF"):
        return "glb"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "obj" if re.search(r"(?m)^v[ \t]", text) else None


def parse_since(value: str) -> float | None:
    """`since` as a POSIX time (a time without a zone is taken as UTC), or None when it does not parse."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


class _Watcher:
    """One open watch of the account: the status payloads pushed to it and a socket pair that wakes its loop."""

    def __init__(self) -> None:
        self.pending: deque[dict[str, Any]] = deque()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def push(self, data: dict[str, Any]) -> None:
        self.pending.append(data)
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass  # the buffer is full (it is awake anyway) or the watch has just closed

    def take(self) -> list[dict[str, Any]]:
        """Everything pushed so far, oldest first; empties the wake-up socket."""
        try:
            while self.wake_r.recv(4096):
                pass
        except OSError:
            pass  # nothing more to read
        out = []
        while self.pending:
            out.append(self.pending.popleft())
        return out

    def close(self) -> None:
        self.wake_r.close()
        self.wake_w.close()


@dataclass(eq=False)
class SceneGeneration(Generation):
    """The generation endpoints plus the scene tools and the account-wide watch (`srv.gen`)."""

    max_model_upload: int = MAX_MODEL_UPLOAD
    scene_result: Callable[[str, bytes | None], bytes | None] = same_model
    uploaded_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    _watchers: list[_Watcher] = field(default_factory=list)
    _feed_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- routing and request bodies ---------------------------------------------------------------------

    def route(self, method: str, path: str, query: str = "") -> tuple[str, Callable[[bytes, Any], Answer]] | None:
        """The scene paths, then the base class's."""
        tail = path.removeprefix(API)
        if method == "POST" and tail == "/upload/model":
            variant = parse_qs(query, keep_blank_values=True).get("modelVariant")
            return "upload", lambda body, headers: self.upload_model(body, headers, variant)
        if method == "POST" and tail.startswith("/tasks/") and tail[7:] in SCENE_FLOWS:
            return "create", lambda body, headers: self.create(tail[7:], body)
        return super().route(method, path, query)

    def body_limit(self, path: str, default: int) -> int:
        """The largest POST body read for `path` (a larger one is answered `too_large` unread)."""
        return self.max_model_upload + FRAMING if path == API + "/upload/model" else default

    def too_large(self, path: str) -> Answer:
        """The answer to a POST body over `body_limit`."""
        if path == API + "/upload/model":
            return _bad(f"File too large (at most {self.max_model_upload} bytes).")
        return _err(400, 2004, f"File too large (at most {MAX_UPLOAD // 1_000_000} MB)", "Use a smaller image.")

    # -- uploads ---------------------------------------------------------------------------------------

    def upload_model(self, raw: bytes, headers: Any, variant: list[str] | None) -> Answer:
        """`POST /upload/model`: multipart, field `file`, GLB or OBJ by its bytes; counted like image uploads."""
        refused = self._upload_slot()
        if refused is not None:
            return refused
        if variant is not None and (len(variant) != 1 or variant[0] not in VARIANTS):
            return _bad("modelVariant must be 'geometry' or 'textured'.")
        part = _multipart_part(raw, headers.get("Content-Type", ""))
        if part is None:
            return _bad("Send the model as multipart/form-data in the field 'file'.")
        filename, data = part
        if len(data) > self.max_model_upload:
            return _bad(f"File too large (at most {self.max_model_upload} bytes).")
        kind = model_kind(data)
        if kind is None:
            return _err(400, 2004, "Unsupported file type", "Upload a .glb or .obj model.")
        key = f"tasks/uid_standin/{datetime.now(UTC):%Y%m%d}/{uuidlib.uuid4()}.{kind}"
        entry = {"bytes": data, "variant": variant[0] if variant else None, "filename": filename, "kind": kind}
        with self._lock:
            self.uploaded_models[key] = entry
        return _ok({"file_key": key})

    # -- creation and price ----------------------------------------------------------------------------

    def create(self, flow: str, raw: bytes) -> Answer:
        """The base creation; a remesh to another format than GLB is refused first (2004)."""
        if flow == "model-remesh":
            try:
                wanted = json.loads(raw or b"{}").get("output_format", "glb")
            except (ValueError, AttributeError):
                wanted = "glb"  # the base class answers a body that is not a JSON object
            if isinstance(wanted, str) and wanted.lower() != "glb":
                return _err(400, 2004, f"Unsupported output_format {wanted!r}", "Use 'glb'.")
        return super().create(flow, raw)

    def _check(self, flow: str, body: dict[str, Any]) -> str:
        if flow not in SCENE_FLOWS:
            return super()._check(flow, body)
        if flow == "text-to-texture":
            if "prompt" not in body and "text_prompt" in body:
                body["prompt"] = body.pop("text_prompt")  # the alias; moderated and recorded as `prompt`
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or len(prompt.strip()) < 3:
                return "prompt must be at least 3 characters."
        if flow == "texture-model" and not _known(body.get("image_file"), self.files):
            return "image_file must be a file_key from /upload/image or an http(s) URL."
        if not _known(body.get("model_file"), self.uploaded_models):
            return "model_file must be a file_key from /upload/model or an http(s) URL."
        if not _int_in(body.get("polygon_limit", 1_000_000), POLYGONS):
            return "polygon_limit must be an integer between 1000 and 1500000."
        if flow == "model-remesh":
            if "texture_size" in body:
                return "texture_size is not an option of model-remesh."
            if not isinstance(body.get("output_format", "glb"), str):
                return "output_format must be a string."
        elif not _int_in(body.get("texture_size", 1024), TEXTURE_RANGE):
            return "texture_size must be an integer between 1024 and 4096."
        if body.get("model_version", "v2") != "v2":
            return "model_version must be 'v2'."
        if not isinstance(body.get("allow_duplicate", False), bool):
            return "allow_duplicate must be a boolean."
        return ""

    def price(self, flow: str, params: dict[str, Any]) -> int:
        return scene_cost(flow, params) if flow in SCENE_FLOWS else super().price(flow, params)

    def _asset_for(self, flow: str, body: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
        if flow not in SCENE_FLOWS:
            return super()._asset_for(flow, body)
        given = {k: body[k] for k in _INPUT if k in body}
        model = self.uploaded_models.get(body["model_file"])
        result = self.scene_result(flow, model["bytes"] if model is not None else None)
        if result is None:
            source, ext, _ = super()._asset_for(flow, body)
            return source, ext, given
        return bytes(result), model_kind(bytes(result)) or "glb", given

    def quote(self, raw: bytes) -> Answer:
        """`POST /tasks/pricing/quote` for a scene flow (`flow_name` or `flowName`); the base class for others."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        flow = body.get("flow_name", body.get("flowName")) if isinstance(body, dict) else None
        if flow not in SCENE_FLOWS:
            return super().quote(raw)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            return _bad("params must be an object.")
        kept = {k: v for k, v in params.items() if k in _PRICED[flow]}
        return _ok({"flow_name": flow, "params": kept, "cost_credits": scene_cost(flow, kept),
                    "available_credits": self.available})  # fmt: skip

    # -- the account's change feed ---------------------------------------------------------------------

    def task_changed(self, task: Any) -> None:
        """Push a task's new state to every open watch of the account (the server calls it on each change)."""
        with self._feed_lock:
            if self._watchers:
                data = self.owner._status_data(task)
                for watcher in self._watchers:
                    watcher.push(data)

    def _open_watch(self, since: float | None) -> tuple[_Watcher, list[dict[str, Any]]]:
        """A new watcher and the snapshot it starts with, taken together so that no change falls in between."""
        watcher = _Watcher()
        with self._feed_lock:
            with self.owner._lock:
                tasks = [t for t in self.owner._tasks.values() if since is None or (t.updated_at or 0) > since]
            tasks.sort(key=lambda t: t.updated_at or 0)
            snapshot = [self.owner._status_data(t) for t in tasks]
            self._watchers.append(watcher)
        return watcher, snapshot

    def _close_watch(self, watcher: _Watcher) -> None:
        with self._feed_lock:
            self._watchers.remove(watcher)
        watcher.close()

    @property
    def watching(self) -> int:
        """How many watch/all connections are open now."""
        with self._feed_lock:
            return len(self._watchers)


def _known(value: Any, uploads: dict[str, Any]) -> bool:
    return isinstance(value, str) and (value in uploads or _URL.fullmatch(value) is not None)


def _multipart_part(raw: bytes, content_type: str) -> tuple[str | None, bytes] | None:
    """(filename, content) of the part named "file" of a multipart/form-data body, or None."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or match is None:
        return None
    for part in raw.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if sep and re.search(rb'name="file"', head, re.IGNORECASE):
            name = re.search(rb'filename="([^"]*)"', head)
            return (name.group(1).decode("utf-8", "replace") if name else None), content.removesuffix(b"\r\n")
    return None


# -- the WebSocket watch of the whole account ----------------------------------------------------------------


def serve_watch_all(handler: Any, owner: Any, since: float | None, mode: str | None) -> None:
    """Accept the handshake on the handler's socket; send the snapshot after `since`, then every change.

    Modes (`fail(..., on="watch_all")`, the refusals are the server's): "drop" closes abruptly after the first
    message, "close_early" cleanly after it, "silent" sends nothing, "no_finalized" sends terminal states as
    `update`. Otherwise it stays open until the client closes or the server stops.
    """
    from websockets.protocol import State

    proto = accept_websocket(handler)
    if proto is None:
        return
    sock: socket.socket = handler.connection
    watcher, pending = owner.gen._open_watch(since)
    sent: dict[str, str] = {}  # task uuid -> the state last sent
    closing_until = float("inf")  # after our close frame, the client gets a moment to answer it
    try:
        while not owner._stopping.is_set() and time.monotonic() < closing_until:
            pending += watcher.take()
            for data in pending if mode != "silent" and closing_until == float("inf") else ():
                state = json.dumps([data["status"], data["progress"], data.get("queue"), data.get("error")])
                if sent.get(data["task_uuid"]) == state:
                    continue
                sent[data["task_uuid"]] = state
                event = "finalized" if data["status"] in TERMINAL and mode != "no_finalized" else "update"
                payload = {"code": 0, "message": "success", "data": data} if owner.envelope else data
                proto.send_text(f"event: {event}\ndata: {json.dumps(payload)}".encode())
                if mode == "drop":
                    _send(proto, sock)
                    handler._reset()
                    return
                if mode == "close_early":
                    proto.send_close(1000)
                    closing_until = time.monotonic() + 2.0
                    break
            pending = []
            if not _send(proto, sock):
                return
            readable, _, _ = select.select([sock, watcher.wake_r], [], [], 0.1)
            if sock in readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    return
                if not chunk:
                    proto.receive_eof()
                    return
                proto.receive_data(chunk)
                proto.events_received()  # pings are answered and a close is echoed by the protocol itself
                if not _send(proto, sock) or proto.state is State.CLOSED:
                    return  # the closing handshake is over: the handler closes the connection
    finally:
        owner.gen._close_watch(watcher)


def _send(proto: Any, sock: socket.socket) -> bool:
    """Send what the protocol has to send; False when it asks for the end of the TCP connection (an empty chunk)."""
    for data in proto.data_to_send():
        if not data:
            return False
        sock.sendall(data)
    return True
