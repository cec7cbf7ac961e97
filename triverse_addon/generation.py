"""Generate from Blender: the request, its checks, its price, the image upload and the creation. No `bpy` module use.

- `GenerationRequest.validate()` checks everything before any request (the UI shows each reason under
  its field); `sniff_image()` knows an image by its bytes.
- `quote()` prices a request (`POST /tasks/pricing/quote`), `account()` reads `GET /users/me`.
- `upload_image()` sends an input image (`POST /upload/image`) and answers its `file_key`.
- `create()` creates the task, charged once: every press has its own `client_order_id` (`new_order_id()`),
  and a retry after a timeout, a cut connection, a 429 or a 5xx resends the very same request with the
  same id, so the service can recognise it instead of creating (and charging) a second task.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .client import ErrorMapper, TriverseClient

__all__ = [
    "IMAGE_KINDS",
    "MAX_ATTEMPTS",
    "MAX_IMAGE_BYTES",
    "POLYGON_RANGE",
    "TEXTURE_SIZES",
    "Account",
    "Created",
    "GenerationRequest",
    "Quote",
    "account",
    "create",
    "new_order_id",
    "quote",
    "sniff_image",
    "upload_image",
]

MAX_IMAGE_BYTES = 50_000_000  # "at most 50 MB": read as decimal megabytes, the stricter reading
POLYGON_RANGE = (1_000, 1_500_000)
TEXTURE_SIZES = (1024, 2048, 4096)
MIN_PROMPT = 3
IMAGE_KINDS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_ATTEMPTS = 4  # a creation or an upload is sent at most this many times
RETRY_FIRST = 1.0  # seconds before the first retry, doubling
MAX_RETRY_WAIT = 20.0  # a Retry-After longer than this is cut short (uploads allow 10 a minute)
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RETRYABLE = (errors.TimedOut, errors.ConnectionFailed, errors.ServiceBusy, errors.ServerError)


@dataclass(frozen=True)
class GenerationRequest:
    """What the user asked for; `image_path` set means image-to-model (or -mesh), else text-to-model."""

    prompt: str = ""
    negative_prompt: str = ""
    image_path: str = ""
    mesh_only: bool = False
    polygon_limit: int = 1_000_000
    texture_size: int = 1024
    turbo: bool = False

    @property
    def mode(self) -> str:
        """ "image" when an input image is set, else "text"."""
        return "image" if self.image_path else "text"

    @property
    def flow_name(self) -> str:
        """The service's flow: text-to-model, text-to-mesh, image-to-model or image-to-mesh."""
        return f"{self.mode}-to-{'mesh' if self.mesh_only else 'model'}"

    def validate(self) -> dict[str, str]:
        """Field name -> the reason it is not acceptable (one sentence); empty when all is well."""
        problems: dict[str, str] = {}
        if self.mode == "text" and len(self.prompt.strip()) < MIN_PROMPT:
            problems["prompt"] = f"Describe the model in at least {MIN_PROMPT} characters."
        low, high = POLYGON_RANGE
        if not low <= self.polygon_limit <= high:
            problems["polygon_limit"] = f"The polygon limit must be between {low:,} and {high:,}."
        if self.texture_size not in TEXTURE_SIZES:
            problems["texture_size"] = "The texture size must be 1024, 2048 or 4096."
        if self.mode == "image":
            try:
                sniff_image(self.image_path)
            except errors.TriverseError as exc:
                problems["image_path"] = str(exc)
        return problems

    def price_params(self) -> dict[str, Any]:
        """The options that change the price (no prompt, no image): what a quote is asked for."""
        params: dict[str, Any] = {"polygon_limit": self.polygon_limit, "turbo": self.turbo}
        if not self.mesh_only:
            params["texture_size"] = self.texture_size
        return params

    def body(self, image_file: str | None, order_id: str, allow_duplicate: bool) -> dict[str, Any]:
        """The creation's JSON body; `image_file` is the upload's file_key (or an http(s) URL) for image flows."""
        if not _ORDER_ID.fullmatch(order_id or ""):
            raise ValueError("a creation is never sent without a valid client_order_id")
        body: dict[str, Any] = {}
        if self.mode == "text":
            body["prompt"] = self.prompt.strip()
            if self.negative_prompt.strip():
                body["negative_prompt"] = self.negative_prompt.strip()
        else:
            if not image_file:
                raise ValueError("an image flow needs the uploaded image's file_key (or a URL)")
            body["image_file"] = image_file
        body["polygon_limit"] = self.polygon_limit
        # The -to-mesh flows' option table was unreadable in the documentation: they make geometry only,
        # so they get text-to-model's options minus the texture ones. Sending an option a flow does not
        # know risks a 1004 refusal; leaving one out only means its default.
        if not self.mesh_only:
            body["texture_size"] = self.texture_size
        body["turbo"] = self.turbo
        body["client_order_id"] = order_id
        if allow_duplicate:
            body["allow_duplicate"] = True
        return body


@dataclass(frozen=True)
class Quote:
    """The price of a request now, and the balance it is compared with."""

    flow_name: str
    cost_credits: int
    available_credits: float

    @property
    def affordable(self) -> bool:
        """The balance covers the cost."""
        return self.available_credits >= self.cost_credits


@dataclass(frozen=True)
class Created:
    """A task the service accepted."""

    task_uuid: str
    flow_name: str
    status: str
    cost_credits: int | None = None
    queue_position: int | None = None
    estimated_wait_seconds: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Account:
    """`GET /users/me`: who the key belongs to and what it can spend."""

    email: str
    plan_name: str
    balance: float  # available API credits (total minus those frozen by running tasks)


def new_order_id() -> str:
    """A fresh idempotency key for one Generate press: "blender-" and 24 hex digits."""
    return f"blender-{secrets.token_hex(12)}"


def sniff_image(path: str | os.PathLike[str]) -> str:
    """ "png", "jpeg" or "webp" by the file's first bytes; `errors.UnsupportedImage` for anything else."""
    p = Path(path)
    name = p.name or str(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise errors.UnsupportedImage(f"The image {name} does not exist: choose another file.") from None
    except OSError as exc:
        raise errors.UnsupportedImage(f"Cannot read the image {name} ({exc.strerror or exc}).") from None
    if size > MAX_IMAGE_BYTES:
        raise errors.UnsupportedImage(
            f"The image {name} is {errors.human_size(size)}, larger than Triverse accepts "
            f"({errors.human_size(MAX_IMAGE_BYTES)}): use a smaller image."
        )
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise errors.UnsupportedImage(f"{name} is not a PNG, JPEG or WebP image: Triverse accepts only those.")


def quote(client: TriverseClient, req: GenerationRequest) -> Quote:
    """The price of `req` and the balance now (`POST /tasks/pricing/quote`: creates and freezes nothing)."""
    data = client.post_json(
        "/tasks/pricing/quote",
        {"flow_name": req.flow_name, "params": req.price_params()},
        map_error=_mapper("price quote"),
    )
    cost = _number(data, "cost_credits", "costCredits")
    if cost is None:
        raise errors.UnexpectedResponse("Triverse sent a price quote without a cost.")
    available = _number(data, "available_credits", "availableCredits")
    if available is None:
        available = account(client).balance
    return Quote(str(data.get("flow_name") or req.flow_name), math.ceil(cost), available)


def account(client: TriverseClient) -> Account:
    """The key's account: email, plan and available credits (`GET /users/me`)."""
    data = client.get_json("/users/me", map_error=_mapper("account request"))
    balance = _number(data, "api_credits_balance", "balance")
    return Account(str(data.get("email") or ""), str(data.get("plan_name") or ""), balance or 0.0)


def upload_image(client: TriverseClient, path: str | os.PathLike[str]) -> str:
    """Upload an input image (`POST /upload/image`, field `file`) and answer its `file_key`.

    Checked before anything is sent (PNG, JPEG or WebP by its bytes, at most 50 MB). Uploads are limited
    to 10 a minute: a 429 is retried after the service's Retry-After (capped); an upload creates nothing
    that is charged, so resending it after a cut connection is harmless.
    """
    kind = sniff_image(path)
    p = Path(path)
    mapper = _mapper("image upload", subject="image")

    def send() -> dict[str, Any]:
        return client.post_file("/upload/image", p, content_type=IMAGE_KINDS[kind], map_error=mapper)

    data = _with_retries(client, send)
    key = data.get("file_key") or data.get("fileKey")
    if not isinstance(key, str) or not key:
        raise errors.UnexpectedResponse("Triverse accepted the image but sent no file_key for it.")
    return key


def create(
    client: TriverseClient,
    req: GenerationRequest,
    order_id: str,
    image_file: str | None = None,
    allow_duplicate: bool = False,
) -> Created:
    """Create the task once (`POST /tasks/{flow}`), retrying the same request with the same order id.

    The loop is explicit rather than urllib3's Retry, which must never replay a POST on its own: here
    every attempt carries `order_id`, at most MAX_ATTEMPTS are made, after a timeout, a cut connection,
    a 429 or a 5xx only, waiting the back-off or the service's Retry-After (capped), and a cancel
    interrupts the wait. A 409 (the id was used) answers the task it names, else `errors.AlreadyCreated`.
    """
    if not _ORDER_ID.fullmatch(order_id or ""):
        raise ValueError("a creation is never sent without a valid client_order_id")
    problems = req.validate()
    if image_file:
        problems.pop("image_path", None)  # already uploaded (or a URL): the local file no longer matters
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))
    body = req.body(image_file, order_id, allow_duplicate)
    subject = "image" if req.mode == "image" else "prompt"
    mapper = _mapper("generation", subject=subject, order_id=order_id)

    def send() -> dict[str, Any]:
        return client.post_json(f"/tasks/{req.flow_name}", body, map_error=mapper)

    try:
        data = _with_retries(client, send)
    except errors.AlreadyCreated as exc:
        if exc.task_uuid is None:
            raise
        data = {"task_uuid": exc.task_uuid, "flow_name": req.flow_name, "status": "PENDING"}
    except errors.InsufficientCredits as exc:
        raise _with_numbers(client, req, exc) from None
    task_uuid = data.get("task_uuid") or data.get("taskId")
    if not isinstance(task_uuid, str) or not task_uuid:
        raise errors.UnexpectedResponse("Triverse accepted the generation but sent no task UUID.")
    queue_data = data.get("queue")
    queue: dict[str, Any] = queue_data if isinstance(queue_data, dict) else {}
    cost = _number(data, "cost_credits", "costCredits")
    position = _number(queue, "position")
    wait = _number(queue, "estimated_wait_seconds")
    return Created(
        task_uuid=task_uuid,
        flow_name=str(data.get("flow_name") or req.flow_name),
        status=str(data.get("status") or "PENDING").upper(),
        cost_credits=None if cost is None else math.ceil(cost),
        queue_position=None if position is None else int(position),
        estimated_wait_seconds=wait,
        raw=data,
    )


# -- helpers -----------------------------------------------------------------------------------------


def _mapper(action: str, *, subject: str = "", order_id: str = "") -> ErrorMapper:
    def mapper(status: int, headers: Any, body: bytes, host: str) -> errors.TriverseError:
        return errors.error_for_request(status, headers, body, host, action=action, subject=subject, order_id=order_id)

    return mapper


def _with_retries(client: TriverseClient, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`send()` until it answers, retrying transient failures (see `create`); the last failure is raised."""
    delay = RETRY_FIRST
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return send()
        except _RETRYABLE as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            told = exc.retry_after if isinstance(exc, errors.RateLimited) else None
            wait = min(MAX_RETRY_WAIT, told if told is not None else delay)
            delay *= 2
            if client.cancel_event.wait(wait):
                raise errors.Cancelled("Cancelled.") from None
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _with_numbers(
    client: TriverseClient, req: GenerationRequest, exc: errors.InsufficientCredits
) -> errors.InsufficientCredits:
    """The 2010 error with the cost and the balance, asked of the service when the answer did not say."""
    if exc.cost is not None and exc.balance is not None:
        return exc
    try:
        q = quote(client, req)
    except errors.Cancelled:
        raise
    except errors.TriverseError:
        return exc
    return errors.InsufficientCredits(errors.credits_message(q.cost_credits, q.available_credits), q.cost_credits,
                                      q.available_credits)  # fmt: skip


def _number(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None
