"""Domain errors, each carrying one sentence a Blender user understands. No `bpy` module use.

Every failure the add-on can meet ends up as a `TriverseError` whose `str()` is shown to the user
as is (in the sidebar, the Info editor, a script's `RuntimeError`, the batch script's output).
The mapping from HTTP answers to these errors lives here, in one place (`error_for_response`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "AccessDenied",
    "AlreadyCreated",
    "AlreadyRunning",
    "AssetExpired",
    "AuthenticationFailed",
    "Cancelled",
    "ConnectionFailed",
    "ContentRefused",
    "ImportFailed",
    "IncompleteDownload",
    "InsufficientCredits",
    "InvalidParameters",
    "InvalidTaskId",
    "MissingApiKey",
    "NoAsset",
    "NotAModel",
    "OnlineAccessDisabled",
    "RateLimited",
    "ServerError",
    "ServiceAnswer",
    "ServiceBusy",
    "StorageError",
    "TaskFailed",
    "TaskNotFound",
    "TaskNotReady",
    "TimedOut",
    "TlsError",
    "TriverseError",
    "UnexpectedResponse",
    "UnsafeArchive",
    "UnsupportedFormat",
    "UnsupportedImage",
    "WrongState",
    "credits_message",
    "describe",
    "error_for_request",
    "error_for_response",
    "expired_message",
    "human_size",
    "parse_service_answer",
    "retry_after_seconds",
]

PREFERENCES = "Edit > Preferences > Add-ons > Triverse"


class TriverseError(Exception):
    """A failure with a message meant for the user."""


class InvalidTaskId(TriverseError):
    """The text given is not a task UUID."""


class MissingApiKey(TriverseError):
    """No API key in the preferences nor in the environment."""


class OnlineAccessDisabled(TriverseError):
    """Blender's "Allow Online Access" is off."""


class AuthenticationFailed(TriverseError):
    """The service rejected the API key (401)."""


class AccessDenied(TriverseError):
    """The key is valid but lacks credits or access (403)."""


class TaskNotFound(TriverseError):
    """No such task for this key (404)."""


class NoAsset(TriverseError):
    """The task succeeded but has no downloadable asset."""


class TaskNotReady(TriverseError):
    """The task has not reached SUCCESS yet (409)."""

    def __init__(self, message: str, status: str | None = None, progress: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.progress = progress


class TaskFailed(TriverseError):
    """The task ended FAILED or CANCELLED, so it will never have an asset."""


class AssetExpired(TriverseError):
    """The service no longer keeps the asset (410, or 404 after success)."""


class ServiceBusy(TriverseError):
    """Rate limited or temporarily unavailable, still so after the retries."""


class ServerError(TriverseError):
    """The service failed on its side (5xx)."""


class UnexpectedResponse(TriverseError):
    """An answer the contract does not describe."""


class ConnectionFailed(TriverseError):
    """The service could not be reached (refused, DNS, proxy)."""


class TlsError(TriverseError):
    """The secure connection could not be established or verified."""


class TimedOut(TriverseError):
    """No connection, or no bytes, within the configured time."""


class IncompleteDownload(TriverseError):
    """The body ended before all of it arrived."""


class NotAModel(TriverseError):
    """The bytes received are not a 3D model."""


class UnsupportedFormat(TriverseError):
    """A model format this Blender cannot import."""


class UnsafeArchive(TriverseError):
    """A zip whose contents would escape its folder or are too large."""


class ImportFailed(TriverseError):
    """Blender's importer failed; the scene was left as it was."""


class StorageError(TriverseError):
    """A file could not be written (folder not writable, disk full)."""


class Cancelled(TriverseError):
    """The user cancelled."""


class AlreadyRunning(TriverseError):
    """The same task is already being imported."""


class InsufficientCredits(AccessDenied):
    """The account's balance does not cover the cost (code 2010)."""

    def __init__(self, message: str, cost: float | None = None, balance: float | None = None) -> None:
        super().__init__(message)
        self.cost = cost
        self.balance = balance


class ContentRefused(TriverseError):
    """The service's moderation refused an input (code 2008); `field` is "prompt" or "image"."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class RateLimited(ServiceBusy):
    """Too many requests or the queue is full (429, code 2000); `retry_after` in seconds when told."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidParameters(TriverseError):
    """The service rejected the request's parameters (code 1004), or they fail the add-on's own checks."""


class UnsupportedImage(TriverseError):
    """An input image that is not PNG, JPEG or WebP, or too large (code 2004)."""


class WrongState(TriverseError):
    """The request does not fit the state of what it acts on (code 2005)."""


class AlreadyCreated(TriverseError):
    """The order id was already used (409): `task_uuid` is the task it created, when the answer says so."""

    def __init__(self, message: str, task_uuid: str | None = None) -> None:
        super().__init__(message)
        self.task_uuid = task_uuid


def human_size(n: int | float | None) -> str:
    """Format a byte count the way Blender's UI does (1.5 MB)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - loop always returns


def describe(exc: BaseException) -> str:
    """The one sentence shown to the user for any exception; never a traceback."""
    if isinstance(exc, TriverseError):
        return str(exc)
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{name}: {text}" if text else name
    return f"Unexpected error ({detail}); see the system console for details and report it to the add-on's developers."


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


def _with_message(sentence: str, answer: ServiceAnswer) -> str:
    """Append the service's own words, when it sent some, to one of ours."""
    return f"{sentence} (Triverse said: {answer.message.rstrip('.')})" if answer.message else sentence


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    task_uuid: str,
    host: str,
) -> TriverseError:
    """Map a non-success HTTP answer of the API to the domain error the user sees."""
    answer = parse_service_answer(body, headers.get("Content-Type", ""))
    short = task_uuid[:8]
    if status == 401:
        return AuthenticationFailed(
            f"Triverse rejected the API key: check the key in {PREFERENCES} (or TRIVERSE_API_KEY)."
        )
    if status == 403:
        if answer.code == 2010:
            return AccessDenied(
                "Your Triverse account has insufficient credits for this download: "
                "top up your balance on Triverse, then import again."
            )
        return AccessDenied(
            _with_message(
                f"Triverse refused access to task {short} (HTTP 403): make sure the API key in {PREFERENCES} "
                "belongs to the account that created the task",
                answer,
            )
            + "."
        )
    if status == 404 and answer.code == 4042:
        return NoAsset(f"Task {short} finished but has no downloadable model on Triverse.")
    if status == 404:
        return TaskNotFound(
            f"Triverse has no task {task_uuid} for this API key: check the UUID, and that the key "
            "belongs to the account that created the task."
        )
    if status == 409:
        return TaskNotReady(
            f"Task {short} has not finished yet: wait until it succeeds, or use Wait and Import.",
        )
    if status == 410:
        return AssetExpired(expired_message(task_uuid))
    if status == 429:
        return ServiceBusy("Triverse is busy (too many requests, still so after retrying): try again in a minute.")
    if status in (502, 503, 504):
        return ServiceBusy(
            f"Triverse is temporarily unavailable (HTTP {status}, still so after retrying): try again in a few minutes."
        )
    if status >= 500:
        return ServerError(
            _with_message(f"Triverse failed on its side (HTTP {status})", answer)
            + ": try again later, and contact Triverse support if it persists."
        )
    what = "a web page" if answer.kind == "html" else f"HTTP {status}"
    return UnexpectedResponse(
        _with_message(f"{host} answered with {what} instead of the model of task {short}", answer)
        + ": check the service URL in the add-on preferences and any proxy in between."
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


def error_for_request(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    host: str,
    *,
    action: str = "request",
    subject: str = "",
    cost: float | None = None,
    balance: float | None = None,
    order_id: str = "",
) -> TriverseError:
    """Map a non-success answer of a generation, upload, quote or account request to the user's error.

    `action` names what was asked ("generation", "image upload", "price quote"); `subject` the input the
    service's moderation may refuse ("prompt" or "image"); `cost` and `balance` complete the 2010 sentence;
    `order_id` (a creation's idempotency key) makes a 409 mean "already created" (`AlreadyCreated`).
    """
    answer = parse_service_answer(body, headers.get("Content-Type", ""))
    code = answer.code
    if status == 409 and order_id:
        return AlreadyCreated(
            f"This generation was already created (order {order_id}), and Triverse did not say which task it is: "
            "find it in My Generations or on the Triverse web app before generating again.",
            _task_uuid_in(body),
        )
    if status == 401:
        return AuthenticationFailed(
            f"Triverse rejected the API key: check the key in {PREFERENCES} (or TRIVERSE_API_KEY)."
        )
    if code == 2010:
        return InsufficientCredits(credits_message(cost, balance), cost, balance)
    if code == 2008:
        what = {"prompt": "the prompt", "image": "the input image"}.get(subject, "the input")
        return ContentRefused(
            _with_message(f"Triverse refused {what} (content not allowed)", answer) + f": change {what} and try again.",
            subject,
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
    if status == 403:
        return AccessDenied(
            _with_message(f"Triverse refused this {action} (HTTP 403): check the API key in {PREFERENCES}", answer)
            + "."
        )
    if status in (502, 503, 504):
        return ServiceBusy(
            f"Triverse is temporarily unavailable (HTTP {status}, still so after retrying): try again in a few minutes."
        )
    if status >= 500:
        return ServerError(
            _with_message(f"Triverse failed on its side (HTTP {status})", answer)
            + ": try again later, and contact Triverse support if it persists."
        )
    what = "a web page" if answer.kind == "html" else f"HTTP {status}"
    return UnexpectedResponse(
        _with_message(f"{host} answered this {action} with {what}", answer)
        + ": check the service URL in the add-on preferences and any proxy in between."
    )


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
