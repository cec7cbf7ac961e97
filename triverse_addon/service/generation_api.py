"""Generation endpoints: the price quote, the image upload and the task's creation, charged once. No `bpy` module use.

- `quote()` prices a request (`POST /tasks/pricing/quote`: creates and freezes nothing).
- `upload_image()` sends an input image (`POST /upload/image`) and answers its `file_key`.
- `create()` creates the task, charged once: every press has its own `client_order_id`, and a retry after a
  timeout, a cut connection, a 429 or a 5xx resends the very same request with the same id, so the service
  can recognise it instead of creating (and charging) a second task.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .account import account
from .api import TriverseClient
from .generation_request import IMAGE_KINDS, ORDER_ID, GenerationRequest, sniff_image
from .http_errors import Asked, credits_message
from .numbers import number

__all__ = ["MAX_ATTEMPTS", "Created", "Quote", "create", "quote", "upload_image", "with_retries"]

MAX_ATTEMPTS = 4  # a creation or an upload is sent at most this many times
RETRY_FIRST = 1.0  # seconds before the first retry, doubling
MAX_RETRY_WAIT = 20.0  # a Retry-After longer than this is cut short (uploads allow 10 a minute)
_RETRYABLE = (errors.TimedOut, errors.ConnectionFailed, errors.ServiceBusy, errors.ServerError)


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


def quote(client: TriverseClient, req: GenerationRequest) -> Quote:
    """The price of `req` and the balance now (`POST /tasks/pricing/quote`: creates and freezes nothing)."""
    data = client.post_json(
        "/tasks/pricing/quote",
        {"flow_name": req.flow_name, "params": req.price_params()},
        asked=Asked(action="price quote"),
    )
    cost = number(data, "cost_credits", "costCredits")
    if cost is None:
        raise errors.UnexpectedResponse("Triverse sent a price quote without a cost.")
    available = number(data, "available_credits", "availableCredits")
    if available is None:
        available = account(client).balance
    return Quote(str(data.get("flow_name") or req.flow_name), math.ceil(cost), available)


def upload_image(client: TriverseClient, path: str | os.PathLike[str]) -> str:
    """Upload an input image (`POST /upload/image`, field `file`) and answer its `file_key`.

    Checked before anything is sent (PNG, JPEG or WebP by its bytes, at most 50 MB). Uploads are limited
    to 10 a minute: a 429 is retried after the service's Retry-After (capped); an upload creates nothing
    that is charged, so resending it after a cut connection is harmless.
    """
    kind = sniff_image(path)
    p = Path(path)
    asked = Asked(action="image upload", subject="image")

    def send() -> dict[str, Any]:
        return client.post_file("/upload/image", p, asked, content_type=IMAGE_KINDS[kind])

    data = with_retries(client, send)
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
    if not ORDER_ID.fullmatch(order_id or ""):
        raise ValueError("a creation is never sent without a valid client_order_id")
    problems = req.validate()
    if image_file:
        problems.pop("image_path", None)  # already uploaded (or a URL): the local file no longer matters
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))
    body = req.body(image_file, order_id, allow_duplicate)
    subject = "image" if req.mode == "image" else "prompt"
    asked = Asked(action="generation", subject=subject, order_id=order_id)

    def send() -> dict[str, Any]:
        return client.post_json(f"/tasks/{req.flow_name}", body, asked)

    try:
        data = with_retries(client, send)
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
    cost = number(data, "cost_credits", "costCredits")
    position = number(queue, "position")
    wait = number(queue, "estimated_wait_seconds")
    return Created(
        task_uuid=task_uuid,
        flow_name=str(data.get("flow_name") or req.flow_name),
        status=str(data.get("status") or "PENDING").upper(),
        cost_credits=None if cost is None else math.ceil(cost),
        queue_position=None if position is None else int(position),
        estimated_wait_seconds=wait,
        raw=data,
    )


def with_retries(client: TriverseClient, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
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
    return errors.InsufficientCredits(credits_message(q.cost_credits, q.available_credits), q.cost_credits,
                                      q.available_credits)  # fmt: skip
