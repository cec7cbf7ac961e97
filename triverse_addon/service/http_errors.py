"""The one mapping from a non-success HTTP answer of the API to the error the user sees. No `bpy` module use.

`error_for()` reads whatever body came back (the service's `{code, message, suggestion}`, a proxy's
HTML page, plain text, nothing) and names the failure in the words of what was asked (`Asked`): a
task's model or status, or an action such as a generation, an upload or a price quote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import (
    PREFERENCES,
    AccessDenied,
    AlreadyCreated,
    AssetExpired,
    AuthenticationFailed,
    ContentRefused,
    InsufficientCredits,
    InvalidParameters,
    NoAsset,
    RateLimited,
    ServerError,
    ServiceBusy,
    TaskNotFound,
    TaskNotReady,
    TriverseError,
    UnexpectedResponse,
    UnsupportedImage,
    WrongState,
)

__all__ = [
    "Asked",
    "ServiceAnswer",
    "credits_message",
    "error_for",
    "expired_message",
    "parse_service_answer",
    "retry_after_seconds",
]


@dataclass(frozen=True)
class Asked:
    """What a request asked for, so that its failure is told in those words.

    `action` empty means a task's model or status (`task_uuid`); otherwise it names the action ("generation",
    "image upload", "price quote"). `subject` is the input moderation may refuse ("prompt" or "image"),
    `order_id` a creation's idempotency key (a 409 then means "already created"), `cost` and `balance`
    complete the insufficient-credits sentence.
    """

    action: str = ""
    task_uuid: str = ""
    subject: str = ""
    order_id: str = ""
    cost: float | None = None
    balance: float | None = None

    @property
    def about_task(self) -> bool:
        """A task's model or status was asked for (not an action)."""
        return not self.action


@dataclass(frozen=True)
class ServiceAnswer:
    """What could be read from an error body: the service's code and message, if any."""

    code: int | None = None
    message: str = ""
    suggestion: str = ""
    kind: str = "empty"  # json, html, text, empty


def parse_service_answer(body: bytes, content_type: str = "") -> ServiceAnswer:
    """Read `{"code","message","suggestion"}` or `{"detail"}` from a body that may be anything."""
    text = body[:65536].decode("utf-8", errors="replace").strip()
    if not text:
        return ServiceAnswer()
    if "html" in content_type.lower() or text[:15].lower().startswith(("<!doctype html", "<html")):
        return ServiceAnswer(kind="html")
    try:
        data = json.loads(text)
    except ValueError:
        first = text.splitlines()[0][:200]
        # Binary bodies decode to control and replacement characters: nothing worth showing a user.
        readable = first.isprintable() and "\ufffd" not in first
        return ServiceAnswer(message=first if readable else "", kind="text")
    if not isinstance(data, dict):
        return ServiceAnswer(kind="json")
    code = data.get("code")
    message = data.get("message") or data.get("detail") or data.get("error") or ""
    if isinstance(message, dict):
        message = message.get("message", "")
    elif isinstance(message, list):  # FastAPI's validation errors: [{"loc": [...], "msg": "..."}]
        message = "; ".join(str(item.get("msg", "")) for item in message if isinstance(item, dict))
    return ServiceAnswer(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        message=str(message)[:300],
        suggestion=str(data.get("suggestion") or "")[:300],
        kind="json",
    )


def error_for(status: int, headers: Mapping[str, str], body: bytes, host: str, asked: Asked) -> TriverseError:
    """The domain error for a non-success answer to what was `asked`."""
    answer = parse_service_answer(body, headers.get("Content-Type", ""))
    code, short = answer.code, asked.task_uuid[:8]
    if status == 409 and asked.order_id:
        return AlreadyCreated(
            f"This generation was already created (order {asked.order_id}), and Triverse did not say which task "
            "it is: find it in My Generations or on the Triverse web app before generating again.",
            _task_uuid_in(body),
        )
    if status == 401:
        return AuthenticationFailed(
            f"Triverse rejected the API key: check the key in {PREFERENCES} (or TRIVERSE_API_KEY)."
        )
    if code == 2010 and (status == 403 or not asked.about_task):
        if asked.about_task:
            return InsufficientCredits(
                "Your Triverse account has insufficient credits for this download: "
                "top up your balance on Triverse, then import again."
            )
        return InsufficientCredits(credits_message(asked.cost, asked.balance), asked.cost, asked.balance)
    if asked.about_task:
        found = _task_answer(status, answer, asked)
        if found is not None:
            return found
    else:
        found = _action_answer(status, answer, asked, headers)
        if found is not None:
            return found
    if status == 403:
        if asked.about_task:
            return AccessDenied(
                _with_message(
                    f"Triverse refused access to task {short} (HTTP 403): make sure the API key in {PREFERENCES} "
                    "belongs to the account that created the task",
                    answer,
                )
                + "."
            )
        sentence = f"Triverse refused this {asked.action} (HTTP 403): check the API key in {PREFERENCES}"
        return AccessDenied(_with_message(sentence, answer) + ".")
    if status >= 500:
        return _server_side(status, answer)
    what = "a web page" if answer.kind == "html" else f"HTTP {status}"
    sentence = (
        f"{host} answered with {what} instead of the model of task {short}"
        if asked.about_task
        else f"{host} answered this {asked.action} with {what}"
    )
    return UnexpectedResponse(
        _with_message(sentence, answer) + ": check the service URL in the add-on preferences and any proxy in between."
    )


def _task_answer(status: int, answer: ServiceAnswer, asked: Asked) -> TriverseError | None:
    """The answers that only a task's model or status can get (404, 409, 410, 429), or None."""
    task_uuid, short = asked.task_uuid, asked.task_uuid[:8]
    if status == 404 and answer.code == 4042:
        return NoAsset(f"Task {short} finished but has no downloadable model on Triverse.")
    if status == 404:
        return TaskNotFound(
            f"Triverse has no task {task_uuid} for this API key: check the UUID, and that the key "
            "belongs to the account that created the task."
        )
    if status == 409:
        return TaskNotReady(f"Task {short} has not finished yet: wait until it succeeds, or use Wait and Import.")
    if status == 410:
        return AssetExpired(expired_message(task_uuid))
    if status == 429:
        return ServiceBusy("Triverse is busy (too many requests, still so after retrying): try again in a minute.")
    return None


def _action_answer(
    status: int, answer: ServiceAnswer, asked: Asked, headers: Mapping[str, str]
) -> TriverseError | None:
    """The answers an action (a creation, an upload, a quote) can get from the service's codes, or None."""
    code, action = answer.code, asked.action
    if code == 2008:
        what = {"prompt": "the prompt", "image": "the input image"}.get(asked.subject, "the input")
        return ContentRefused(
            _with_message(f"Triverse refused {what} (content not allowed)", answer) + f": change {what} and try again.",
            asked.subject,
        )
    if status == 429 or code == 2000:
        return RateLimited(
            _with_message(f"Triverse is busy (too many requests or the queue is full) for this {action}", answer)
            + ": try again in a minute.",
            retry_after_seconds(headers),
        )
    if code == 1004 or (status in (400, 422) and code is None and answer.kind == "json"):
        return InvalidParameters(
            _with_message(f"Triverse rejected the parameters of this {action}", answer) + ": change them and try again."
        )
    if code == 2004 or status == 413:
        return UnsupportedImage(
            _with_message("Triverse cannot use this image", answer) + ": use a PNG, JPEG or WebP file of at most 50 MB."
        )
    if status == 409:
        return WrongState(_with_message(f"Triverse cannot accept this {action} now (HTTP 409)", answer) + ".")
    return None


def _with_message(sentence: str, answer: ServiceAnswer) -> str:
    """Append the service's own words, when it sent some, to one of ours."""
    return f"{sentence} (Triverse said: {answer.message.rstrip('.')})" if answer.message else sentence


def _server_side(status: int, answer: ServiceAnswer) -> TriverseError:
    """A 5xx still so after the retries: busy (502/503/504) or a failure on the service's side."""
    if status in (502, 503, 504):
        return ServiceBusy(
            f"Triverse is temporarily unavailable (HTTP {status}, still so after retrying): try again in a few minutes."
        )
    return ServerError(
        _with_message(f"Triverse failed on its side (HTTP {status})", answer)
        + ": try again later, and contact Triverse support if it persists."
    )


def expired_message(task_uuid: str) -> str:
    """The sentence for an asset the service no longer keeps."""
    return (
        f"The model of task {task_uuid[:8]} has expired on Triverse (assets are kept only for a while): "
        "generate it again, and keep the library on to keep future imports."
    )


def credits_message(cost: float | None, balance: float | None) -> str:
    """The sentence for a balance that does not cover a cost, with the numbers when known."""
    numbers = []
    if cost is not None:
        numbers.append(f"this costs {cost:g} credits")
    if balance is not None:
        numbers.append(f"your balance is {balance:g}")
    said = f" ({' and '.join(numbers)})" if numbers else ""
    return f"Your Triverse account has insufficient credits{said}: top up your balance on Triverse, then try again."


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The `Retry-After` header in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _task_uuid_in(body: bytes) -> str | None:
    """`data.task_uuid` (or a top-level `task_uuid`) of an error body, if it names one."""
    try:
        doc = json.loads(body[:65536])
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    inner = doc.get("data")
    data = inner if isinstance(inner, dict) else doc
    value = data.get("task_uuid") or data.get("taskId")
    return value if isinstance(value, str) and value else None
