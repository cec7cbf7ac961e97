"""Generation endpoints: the price quote, the image upload and the task's creation, charged once. No `bpy` module use.

- `quote()` prices a request (`POST /tasks/pricing/quote`: creates and freezes nothing).
- `upload_image()` sends an input image (`POST /upload/image`) and answers its `file_key`.
- `create()` creates the task, charged once: every press has its own `client_order_id`, and a retry after a
  timeout, a cut connection, a 429 or a 5xx resends the very same request with the same id, so the service
  can recognise it instead of creating (and charging) a second task.

`quote()` and `create()` take any request shaped like `GenerationRequest` (the `Priced` and `Creatable`
protocols): the scene tools' requests go through the very same code (`scene_api`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import errors
from .account import account
from .api import TriverseClient
from .generation_request import IMAGE_KINDS, ORDER_ID, sniff_image
from .http_errors import Asked, credits_message
from .numbers import number

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_LIMIT_WAIT",
    "UPLOAD_LIMIT_ATTEMPTS",
    "Creatable",
    "Created",
    "Priced",
    "Quote",
    "Validated",
    "WaitCallback",
    "create",
    "quote",
    "upload_image",
    "upload_limited",
    "with_retries",
]

MAX_ATTEMPTS = 4  # a creation or an upload is sent at most this many times
RETRY_FIRST = 1.0  # seconds before the first retry, doubling
MAX_RETRY_WAIT = 20.0  # a Retry-After longer than this is cut short (uploads allow 10 a minute)
# Waiting out the upload limit (10 uploads a minute, images and models together): a batch of many objects
# must never fail for it, so a 429 is answered by waiting the service's Retry-After (up to a whole window
# and a margin), this many sends in all; other failures keep MAX_ATTEMPTS.
UPLOAD_LIMIT_ATTEMPTS = 8
MAX_LIMIT_WAIT = 65.0
_RETRYABLE = (errors.TimedOut, errors.ConnectionFailed, errors.ServiceBusy, errors.ServerError)

WaitCallback = Callable[[float], None]  # told the seconds about to be waited for the upload limit


class Validated(Protocol):
    """A request checked before anything is sent."""

    def validate(self) -> dict[str, str]:
        """Field name -> the reason it is not acceptable; empty when all is well."""
        ...


class Priced(Protocol):
    """A request a price can be asked for."""

    @property
    def flow_name(self) -> str:
        """The service's flow (its creation path and the quote's `flow_name`)."""
        ...

    def price_params(self) -> dict[str, Any]:
        """The options that change the price."""
        ...


class Creatable(Priced, Validated, Protocol):
    """A request `create()` can send: checked, priced, and its JSON body for an order id."""

    @property
    def mode(self) -> str:
        """ "image" when an input image is the subject moderation may refuse, "text" when a prompt is."""
        ...

    def body(self, image_file: str | None, order_id: str, allow_duplicate: bool) -> dict[str, Any]:
        """The creation's JSON body."""
        ...


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


def quote(client: TriverseClient, req: Priced) -> Quote:
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


def upload_image(
    client: TriverseClient,
    path: str | os.PathLike[str],
    *,
    wait_out_limit: bool = False,
    on_wait: WaitCallback | None = None,
) -> str:
    """Upload an input image (`POST /upload/image`, field `file`) and answer its `file_key`.

    Checked before anything is sent (PNG, JPEG or WebP by its bytes, at most 50 MB). Uploads are limited
    to 10 a minute: a 429 is retried after the service's Retry-After (capped); an upload creates nothing
    that is charged, so resending it after a cut connection is harmless. `wait_out_limit` (the scene tools,
    which upload a model beside the image) waits the limit out as `upload_limited` does.
    """
    kind = sniff_image(path)
    p = Path(path)
    asked = Asked(action="image upload", subject="image")

    def send() -> dict[str, Any]:
        return client.post_file("/upload/image", p, asked, content_type=IMAGE_KINDS[kind])

    data = upload_limited(client, send, on_wait) if wait_out_limit else with_retries(client, send)
    key = data.get("file_key") or data.get("fileKey")
    if not isinstance(key, str) or not key:
        raise errors.UnexpectedResponse("Triverse accepted the image but sent no file_key for it.")
    return key


def create(
    client: TriverseClient,
    req: Creatable,
    order_id: str,
    image_file: str | None = None,
    allow_duplicate: bool = False,
    *,
    action: str = "generation",
) -> Created:
    """Create the task once (`POST /tasks/{flow}`), retrying the same request with the same order id.

    The loop is explicit rather than urllib3's Retry, which must never replay a POST on its own: here
    every attempt carries `order_id`, at most MAX_ATTEMPTS are made, after a timeout, a cut connection,
    a 429 or a 5xx only, waiting the back-off or the service's Retry-After (capped), and a cancel
    interrupts the wait. A 409 (the id was used) answers the task it names, else `errors.AlreadyCreated`.
    `action` names the request in the user's sentences ("generation", "texturing", "remesh").
    """
    if not ORDER_ID.fullmatch(order_id or ""):
        raise ValueError("a creation is never sent without a valid client_order_id")
    problems = req.validate()
    if image_file:
        problems.pop("image_path", None)  # already uploaded (or a URL): the local file no longer matters
    if problems:
        raise errors.InvalidParameters(next(iter(problems.values())))
    body = req.body(image_file, order_id, allow_duplicate)
    subject = {"image": "image", "text": "prompt"}.get(req.mode, "")
    asked = Asked(action=action, subject=subject, order_id=order_id)

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
        raise errors.UnexpectedResponse(f"Triverse accepted the {action} but sent no task UUID.")
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


def with_retries(
    client: TriverseClient,
    send: Callable[[], dict[str, Any]],
    *,
    attempts: int = MAX_ATTEMPTS,
    limit_attempts: int | None = None,
    max_wait: float = MAX_RETRY_WAIT,
    on_wait: WaitCallback | None = None,
) -> dict[str, Any]:
    """`send()` until it answers, retrying transient failures (see `create`); the last failure is raised.

    At most `attempts` sends. With `limit_attempts`, a 429 (the service's limit) is counted apart: up to
    that many sends refused for the limit, each followed by the service's Retry-After (capped at
    `max_wait`), `on_wait(seconds)` told before each such wait; other failures still count against
    `attempts`.
    """
    delay = RETRY_FIRST
    failed = limited = 0
    while True:
        try:
            return send()
        except _RETRYABLE as exc:
            told = exc.retry_after if isinstance(exc, errors.RateLimited) else None
            for_limit = False
            if isinstance(exc, errors.RateLimited) and limit_attempts is not None:
                limited += 1
                for_limit, over = True, limited >= limit_attempts
            else:
                failed += 1
                over = failed >= attempts
            if over:
                raise
            wait = min(max_wait, told if told is not None else delay)
            delay *= 2
            if for_limit and on_wait is not None:
                on_wait(wait)
            if client.cancel_event.wait(wait):
                raise errors.Cancelled("Cancelled.") from None


def upload_limited(
    client: TriverseClient, send: Callable[[], dict[str, Any]], on_wait: WaitCallback | None = None
) -> dict[str, Any]:
    """An upload that waits the service's upload limit out (see UPLOAD_LIMIT_ATTEMPTS), telling `on_wait`."""
    return with_retries(client, send, limit_attempts=UPLOAD_LIMIT_ATTEMPTS, max_wait=MAX_LIMIT_WAIT, on_wait=on_wait)


def _with_numbers(client: TriverseClient, req: Priced, exc: errors.InsufficientCredits) -> errors.InsufficientCredits:
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
