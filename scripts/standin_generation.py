"""The stand-in's generation side: creation, upload, pricing, account, task timelines and the live watch.

Used by `standin_server.StandinServer` (as `srv.gen`); not a server of its own. Credits are frozen when a
task is created, deducted on SUCCESS and released on FAILED. A `client_order_id` seen before answers the
original task (`repeat_answer` = "original", HTTP 200 with the same data) or a 409 ("conflict": naming the
task, "conflict_bare": not naming it). `allow_duplicate` is accepted and changes nothing here: the stand-in
has no duplicate window, and an order id always names its first task (it is the idempotency key).

Content moderation is simulated: a prompt containing "refuse-me" or an image containing b"REFUSE-ME" is
refused (2008). The WebSocket watch uses the `websockets` library's sans-I/O protocol over the handler's
own socket, so it shares the API's host and port.
"""

from __future__ import annotations

import json
import re
import secrets
import select
import socket
import struct
import threading
import time
import uuid as uuidlib
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FLOWS = ("text-to-model", "text-to-mesh", "image-to-model", "image-to-mesh")
MAX_UPLOAD = 50_000_000
POLYGONS = (1_000, 1_500_000)
TEXTURES = (1024, 2048, 4096)
ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
REFUSED_PROMPT, REFUSED_IMAGE = "refuse-me", b"REFUSE-ME"
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")

Answer = tuple[int, dict[str, str], bytes]


def cost_for(flow: str, params: dict[str, Any]) -> int:
    """Deterministic price: text 40, image 50; mesh only -20; +10 per texture step above 1024; turbo -10."""
    cost = 40 if flow.startswith("text") else 50
    if flow.endswith("mesh"):
        cost -= 20
    else:
        cost += 10 * {1024: 0, 2048: 1, 4096: 2}.get(int(params.get("texture_size", 1024)), 0)
    if params.get("turbo"):
        cost -= 10
    return cost


def preview_png(size: int = 32) -> bytes:
    """A small real PNG (an RGB gradient), as a generated task's preview picture."""
    rows = b"".join(b"\x00" + bytes(v for x in range(size) for v in (x * 8, y * 8, 128)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def minimal_glb() -> bytes:
    """A tiny valid binary glTF (an empty scene): the default generated asset."""
    doc = json.dumps({"asset": {"version": "2.0", "generator": "triverse stand-in"}, "scene": 0, "scenes": [{}]})
    js = doc.encode() + b" " * (-len(doc) % 4)
    chunk = struct.pack("<I4s", len(js), b"JSON") + js
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


def _ok(data: dict[str, Any]) -> Answer:
    body = {"code": 0, "message": "success", "data": data}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _err(status: int, code: int, message: str, suggestion: str = "", **extra: Any) -> Answer:
    headers = {"Content-Type": "application/json"}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    body = {"code": code, "message": message, "suggestion": suggestion, **extra}
    return status, headers, json.dumps(body).encode()


def _bad(message: str) -> Answer:
    return _err(400, 1004, message, "Check the request parameters.")


@dataclass
class _Plan:
    outcome: str = "SUCCESS"
    error: str = "The generation failed."
    hold: bool = False


@dataclass
class _Timeline:
    steps: list[tuple[str, int, dict[str, Any] | None]]
    plan: _Plan
    cost: int
    next_at: float
    released: bool = False


@dataclass
class Generation:
    """State and answers of the generation endpoints; `owner` is the StandinServer."""

    owner: Any
    balance: float = 1000.0
    generated_asset: bytes | str | Path | None = None
    timeline_step: float = 0.2
    upload_limit: tuple[int, float] = (10, 60.0)
    repeat_answer: str = "original"
    frozen: dict[str, int] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # task uuids, in creation order
    _uploads: deque[float] = field(default_factory=deque)
    _plans: deque[_Plan] = field(default_factory=deque)
    _timelines: dict[str, _Timeline] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _thread: threading.Thread | None = None

    # -- control from tests --------------------------------------------------------------------------

    @property
    def available(self) -> float:
        """Balance minus what running tasks hold."""
        with self._lock:
            return self.balance - sum(self.frozen.values())

    def script_next(self, outcome: str = "SUCCESS", error: str = "The generation failed.", hold: bool = False) -> None:
        """How the next created task ends; `hold` stops it in RUNNING until `release(uuid)`."""
        if outcome not in TERMINAL:
            raise ValueError(f"outcome must be one of {TERMINAL}")
        with self._lock:
            self._plans.append(_Plan(outcome, error, hold))

    def release(self, task_uuid: str) -> float:
        """Move a held (or any running) task to its final status now; answers time.monotonic() of the change."""
        with self._lock:
            timeline = self._timelines[task_uuid]
            timeline.released = True
            timeline.steps = timeline.steps[-1:]
            self._advance(task_uuid, timeline)
            return time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the timelines on a background thread until the owner stops."""
        self._thread = threading.Thread(target=self._run, name="standin timeline", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the timeline thread (the owner has set its stopping event)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        tick = max(0.005, min(0.05, self.timeline_step / 4))
        while not self.owner._stopping.wait(tick):
            now = time.monotonic()
            with self._lock:
                for task_uuid, timeline in list(self._timelines.items()):
                    if timeline.next_at > now:
                        continue
                    if len(timeline.steps) == 1 and timeline.plan.hold and not timeline.released:
                        continue
                    self._advance(task_uuid, timeline)
                    timeline.next_at = now + self.timeline_step

    def _advance(self, task_uuid: str, timeline: _Timeline) -> None:
        status, progress, queue = timeline.steps.pop(0)
        error = {"code": 5001, "message": timeline.plan.error} if status == "FAILED" else None
        task = self.owner._task(task_uuid)
        if task is None:
            return
        with self.owner._lock:
            task.status, task.progress, task.queue, task.error = status, progress, queue, error
        self.owner._changed(task)  # stamps updated_at and pushes the state to every open watch of the account
        if status in TERMINAL:
            cost = self.frozen.pop(task_uuid, 0)
            if status == "SUCCESS":
                self.balance -= cost
            del self._timelines[task_uuid]

    # -- endpoints ------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: str = "") -> tuple[str, Callable[[bytes, Any], Answer]] | None:
        """(failure endpoint name, answer function) for a generation path (`query`: the URL's), None for another."""
        tail = path.removeprefix("/api/v1")
        if method == "POST" and tail.startswith("/tasks/") and tail[7:] in FLOWS:
            return "create", lambda body, headers: self.create(tail[7:], body)
        if method == "POST" and tail == "/tasks/pricing/quote":
            return "quote", lambda body, headers: self.quote(body)
        if method == "POST" and tail == "/upload/image":
            return "upload", self.upload
        if method == "GET" and tail in ("/users/me", "/users/balance"):
            return "account", lambda body, headers: self.account(tail)
        return None

    def create(self, flow: str, raw: bytes) -> Answer:
        """`POST /tasks/{flow}`."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _bad("The body is not JSON.")
        if not isinstance(body, dict):
            return _bad("The body must be a JSON object.")
        order_id = body.get("client_order_id")
        if order_id is not None and not (isinstance(order_id, str) and ORDER_ID.fullmatch(order_id)):
            return _bad("client_order_id must be 1-64 of A-Z a-z 0-9 _ -.")
        with self._lock:
            if order_id is not None and order_id in self.orders:
                return self._repeat(order_id)
            problem = self._check(flow, body)
            if problem:
                return _bad(problem)
            if REFUSED_PROMPT in str(body.get("prompt", "")) + str(body.get("negative_prompt", "")):
                return _err(400, 2008, "Content violates the usage policy", "Change the prompt.")
            cost = self.price(flow, body)
            if self.available < cost:
                return _err(403, 2010, "Insufficient credits", "Top up your credits and try again.")
            data = self._new_task(flow, cost, body)
            if order_id is not None:
                self.orders[order_id] = data
            return _ok(data)

    def _repeat(self, order_id: str) -> Answer:
        data = self.orders[order_id]
        if self.repeat_answer == "conflict":
            return _err(409, 2005, "Duplicate client_order_id", "", data={"task_uuid": data["task_uuid"]})
        if self.repeat_answer == "conflict_bare":
            return _err(409, 2005, "Duplicate client_order_id")
        return _ok(data)

    def _check(self, flow: str, body: dict[str, Any]) -> str:
        if flow.startswith("text"):
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or len(prompt.strip()) < 3:
                return "prompt must be at least 3 characters."
        else:
            image = body.get("image_file")
            if not isinstance(image, str) or not (image in self.files or re.match(r"https?://", image)):
                return "image_file must be a file_key from /upload/image or an http(s) URL."
        polygons = body.get("polygon_limit", 1_000_000)
        if not isinstance(polygons, int) or isinstance(polygons, bool) or not POLYGONS[0] <= polygons <= POLYGONS[1]:
            return "polygon_limit must be an integer between 1000 and 1500000."
        if "texture_size" in body:
            if flow.endswith("mesh"):
                return f"texture_size is not an option of {flow}."
            if body["texture_size"] not in TEXTURES:
                return "texture_size must be 1024, 2048 or 4096."
        if not isinstance(body.get("turbo", False), bool) or not isinstance(body.get("allow_duplicate", False), bool):
            return "turbo and allow_duplicate must be booleans."
        return ""

    def price(self, flow: str, params: dict[str, Any]) -> int:
        """What a creation of `flow` charges (standin_scene's subclass prices its flows too)."""
        return cost_for(flow, params)

    def _asset_for(self, flow: str, body: dict[str, Any]) -> tuple[bytes | str | Path, str, dict[str, Any]]:
        """(asset, extension, recorded `input`) of a new task; standin_scene's subclass derives its own."""
        source = self.generated_asset if self.generated_asset is not None else minimal_glb()
        ext = Path(str(source)).suffix.lstrip(".") if not isinstance(source, bytes) else "glb"
        return source, ext or "glb", {}

    def _new_task(self, flow: str, cost: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        task_uuid = str(uuidlib.uuid4())
        plan = self._plans.popleft() if self._plans else _Plan()
        step = self.timeline_step
        queue = {"is_queued": True, "position": 2, "estimated_wait_seconds": round(step * 6, 3)}
        source, ext, given = self._asset_for(flow, body or {})
        self.owner.add(task_uuid, source, ext=ext, status="QUEUED", progress=0, flow_name=flow, queue=queue,
                       preview=preview_png(), input=given)  # fmt: skip
        final = (plan.outcome, 100 if plan.outcome == "SUCCESS" else 95, None)
        steps = [
            ("QUEUED", 0, {"is_queued": True, "position": 1, "estimated_wait_seconds": round(step * 5, 3)}),
            ("RUNNING", 10, None), ("RUNNING", 40, None), ("RUNNING", 70, None), ("RUNNING", 95, None), final,
        ]  # fmt: skip
        self._timelines[task_uuid] = _Timeline(steps, plan, cost, time.monotonic() + step)
        self.frozen[task_uuid] = cost
        self.created.append(task_uuid)
        created_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {"task_uuid": task_uuid, "flow_name": flow, "status": "QUEUED", "created_at": created_at,
                "cost_credits": cost, "queue": queue}  # fmt: skip

    def quote(self, raw: bytes) -> Answer:
        """`POST /tasks/pricing/quote`."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _bad("The body is not JSON.")
        flow, params = body.get("flow_name"), body.get("params") or {}
        if flow not in FLOWS or not isinstance(params, dict):
            return _bad(f"flow_name must be one of {', '.join(FLOWS)}; params an object.")
        kept = {k: v for k, v in params.items() if k in ("polygon_limit", "texture_size", "turbo")}
        return _ok({"flow_name": flow, "params": kept, "cost_credits": cost_for(flow, kept),
                    "available_credits": self.available})  # fmt: skip

    def account(self, tail: str) -> Answer:
        """`GET /users/me` or `/users/balance`."""
        with self._lock:
            frozen = float(sum(self.frozen.values()))
        if tail == "/users/balance":
            return _ok({"balance": self.available, "frozen": frozen})
        return _ok({"id": "user-standin", "email": "artist@example.com", "api_credits_balance": self.available,
                    "web_credits_balance": 0.0, "plan_name": "Pro"})  # fmt: skip

    def _upload_slot(self) -> Answer | None:
        """Count an upload (image or model: they share `upload_limit`), or the 429 when the window is full."""
        limit, window = self.upload_limit
        now = time.monotonic()
        with self._lock:
            while self._uploads and self._uploads[0] <= now - window:
                self._uploads.popleft()
            if len(self._uploads) >= limit:
                wait = max(1, int(self._uploads[0] + window - now + 0.999))
                return _err(429, 2000, "Upload rate limit exceeded", "Wait and retry.", retry_after=wait)
            self._uploads.append(now)
        return None

    def upload(self, raw: bytes, headers: Any) -> Answer:
        """`POST /upload/image`: multipart, field `file`, PNG/JPEG/WebP by its bytes, at most 50 MB, 10 a minute."""
        refused = self._upload_slot()
        if refused is not None:
            return refused
        data = _multipart_file(raw, headers.get("Content-Type", ""))
        if data is None:
            return _bad("Send the image as multipart/form-data in the field 'file'.")
        if len(data) > MAX_UPLOAD:
            return _err(400, 2004, "File too large (at most 50 MB)", "Use a smaller image.")
        kind = _image_kind(data)
        if kind is None:
            return _err(400, 2004, "Unsupported file type", "Upload a PNG, JPEG or WebP image.")
        if REFUSED_IMAGE in data:
            return _err(400, 2008, "Content violates the usage policy", "Use another image.")
        key = f"tasks/uid_standin/{datetime.now(UTC):%Y%m%d}/{secrets.token_hex(8)}.{kind}"
        with self._lock:
            self.files[key] = data
        return _ok({"file_key": key})


def _image_kind(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _multipart_file(raw: bytes, content_type: str) -> bytes | None:
    """The content of the part named "file" of a multipart/form-data body, or None."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or match is None:
        return None
    delimiter = b"--" + match.group(1).encode()
    for part in raw.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if sep and re.search(rb'name="file"', head, re.IGNORECASE):
            return content.removesuffix(b"\r\n")
    return None


# -- the WebSocket watch ------------------------------------------------------------------------------


def serve_watch(handler: Any, owner: Any, task_uuid: str, mode: str | None) -> None:
    """Accept the WebSocket handshake on the handler's socket and push the task's statuses until final.

    Modes (from `fail(..., on="watch")`): "drop" closes abruptly after the first message, "close_early"
    cleanly after it, "silent" never sends anything, "no_finalized" sends the final status as a plain
    `update` and keeps the socket open.
    """
    from websockets.protocol import State

    proto = accept_websocket(handler)
    if proto is None:
        return
    sock: socket.socket = handler.connection
    last: str | None = None
    finished = False
    closing_until = float("inf")  # after our close frame, the client gets a moment to answer it
    while not owner._stopping.is_set() and time.monotonic() < closing_until:
        task = owner._task(task_uuid)
        if mode != "silent" and not finished and task is not None:
            data = owner._status_data(task)
            key = json.dumps([data["status"], data["progress"], data.get("queue")])
            if key != last:
                last = key
                payload = {"code": 0, "message": "success", "data": data} if owner.envelope else data
                terminal = data["status"] in TERMINAL
                proto.send_text(f"event: update\ndata: {json.dumps(payload)}".encode())
                if terminal and mode != "no_finalized":
                    proto.send_text(f"event: finalized\ndata: {json.dumps(payload)}".encode())
                    proto.send_close(1000)
                    finished, closing_until = True, time.monotonic() + 2.0
                if mode == "close_early" and not finished:
                    proto.send_close(1000)  # a clean close, before any final status
                    finished, closing_until = True, time.monotonic() + 2.0
                _flush(proto, sock)
                if mode == "drop":
                    handler._reset()
                    return
        readable, _, _ = select.select([sock], [], [], 0.01)
        if readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                proto.receive_eof()
                return
            proto.receive_data(chunk)
            proto.events_received()  # pings are answered and a close is echoed by the protocol itself
            _flush(proto, sock)
            if proto.state is State.CLOSED:
                return


def accept_websocket(handler: Any) -> Any:
    """Answer the handshake on the handler's socket: the protocol object once accepted, else None (refused)."""
    from websockets.server import ServerProtocol

    # The handler has read the request already; it is fed to the protocol again (the URL without its query, which
    # holds the key) so that its parser goes on to WebSocket frames: the client's close, pings.
    proto = ServerProtocol()
    head = "".join(f"{name}: {value}\r\n" for name, value in handler.headers.items())
    proto.receive_data(f"GET {urlsplit(handler.path).path} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
    (request,) = proto.events_received()
    response = proto.accept(request)
    proto.send_response(response)
    _flush(proto, handler.connection)
    return proto if response.status_code == 101 else None


def _flush(proto: Any, sock: socket.socket) -> None:
    for data in proto.data_to_send():
        if data:
            sock.sendall(data)
