"""The API's task endpoints: a task's status, its signed asset URL, and its model downloaded. No `bpy` module use.

`TriverseClient` is the transport (`transport.Transport`: session, retries, errors) with these endpoints;
the generation, upload, price and account endpoints take a client too (`generation_api`, `account`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .http_errors import Asked, expired_message
from .streaming import Download, ProgressCallback
from .transport import Transport

__all__ = ["AssetInfo", "TaskStatus", "TriverseClient"]


@dataclass(frozen=True)
class TaskStatus:
    """A task's state as `GET /tasks/{uuid}` tells it."""

    status: str
    progress: int | None = None
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """E.g. "RUNNING, 40%"."""
        return f"{self.status}, {self.progress}%" if self.progress is not None else self.status

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TaskStatus:
        """The status endpoint's `data` object (also what a watch message carries) as a TaskStatus."""
        progress = data.get("progress")
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or json.dumps(error)[:200]
        return cls(
            status=str(data.get("status") or "UNKNOWN").upper(),
            progress=int(progress) if isinstance(progress, (int, float)) and not isinstance(progress, bool) else None,
            error=str(error or ""),
            raw=data,
        )


@dataclass(frozen=True)
class AssetInfo:
    """`GET /tasks/url/{uuid}`: a signed, temporary URL for the asset and its preview."""

    download_url: str
    preview_url: str | None = None
    asset_id: str | None = None
    kind: str | None = None


class TriverseClient(Transport):
    """A session on the Triverse API with its task endpoints; safe to share between threads."""

    def download(
        self, task_uuid: str, dest: Path, progress: ProgressCallback | None = None, hash_body: bool = True
    ) -> Download:
        """Stream `GET /tasks/download/{uuid}` into `dest` (removed again on any failure)."""
        url = f"{self.settings.base_url}/tasks/download/{task_uuid}"
        try:
            return self.fetch(url, dest, task_uuid, progress, hash_body=hash_body)
        except errors.TaskNotFound:
            # A 404 for a task that did succeed means its asset is gone (assets are kept a while).
            status = self._status_or_none(task_uuid)
            if status is not None and status.status == "SUCCESS":
                raise errors.AssetExpired(expired_message(task_uuid)) from None
            raise
        except errors.TaskNotReady:
            status = self._status_or_none(task_uuid)
            raise self.not_ready_error(task_uuid, status) from None

    def task_status(self, task_uuid: str) -> TaskStatus:
        """`GET /tasks/{uuid}`."""
        return TaskStatus.from_data(self.get_json(f"/tasks/{task_uuid}", Asked(task_uuid=task_uuid)))

    def asset_info(self, task_uuid: str) -> AssetInfo:
        """`GET /tasks/url/{uuid}`, accepting a bare object or one wrapped in `data`."""
        data = self.get_json(f"/tasks/url/{task_uuid}", Asked(task_uuid=task_uuid))
        url = data.get("download_url")
        if not isinstance(url, str) or not url:
            raise errors.UnexpectedResponse(f"Triverse sent no download URL for task {task_uuid[:8]}.")
        return AssetInfo(
            download_url=url,
            preview_url=data.get("preview_url") or None,
            asset_id=data.get("asset_id"),
            kind=data.get("kind"),
        )

    @staticmethod
    def not_ready_error(task_uuid: str, status: TaskStatus | None) -> errors.TriverseError:
        """The error for a task that has no asset yet, saying its status when known."""
        short = task_uuid[:8]
        if status is not None and status.status in ("FAILED", "CANCELLED"):
            why = f": {status.error}" if status.error else ""
            return errors.TaskFailed(f"Task {short} ended {status.status}{why}; it has no model to import.")
        state = f" (status {status.describe()})" if status is not None else ""
        return errors.TaskNotReady(
            f"Task {short} has not finished yet{state}: wait until it succeeds, or use Wait and Import.",
            status=status.status if status else None,
            progress=status.progress if status else None,
        )

    def _status_or_none(self, task_uuid: str) -> TaskStatus | None:
        try:
            return self.task_status(task_uuid)
        except errors.Cancelled:
            raise
        except errors.TriverseError:
            return None
