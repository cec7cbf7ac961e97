"""Domain errors, each carrying one sentence a Blender user understands. No `bpy` module use.

Every failure the add-on can meet ends up as a `TriverseError` whose `str()` is shown to the user
as is (in the sidebar, the Info editor, a script's `RuntimeError`, the batch script's output).
Which HTTP answer becomes which error is decided in `http_errors`.
"""

from __future__ import annotations

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
    "describe",
    "human_size",
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
