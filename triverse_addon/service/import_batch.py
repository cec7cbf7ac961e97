"""Many tasks obtained on a bounded pool, results in the order given (the batch script). No `bpy` module use."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from . import errors
from .api import TriverseClient
from .library import Library
from .obtain import Asset, obtain_asset
from .settings import Settings

__all__ = ["obtain_many"]

log = logging.getLogger(__name__)


def obtain_many(
    settings: Settings,
    task_uuids: Iterable[str],
    *,
    jobs: int = 4,
    wait: float = 0.0,
    client: TriverseClient | None = None,
    library: Library | None = None,
    online_access: bool = True,
) -> Iterator[tuple[str, Asset | errors.TriverseError, float]]:
    """Obtain many tasks on `jobs` threads; yield (uuid, asset or error, seconds) in the order given.

    Closing the generator (or an exception in the caller, such as Ctrl-C) cancels what is left.
    """
    own_client = client is None
    client = client or TriverseClient(settings, pool_size=jobs, online_access=online_access)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-batch")

    def one(task_uuid: str) -> tuple[Asset | errors.TriverseError, float]:
        started = time.monotonic()
        try:
            return obtain_asset(client, task_uuid, library, wait=wait), time.monotonic() - started
        except errors.TriverseError as exc:
            return exc, time.monotonic() - started
        except Exception as exc:  # a bug in one task must not stop the others
            log.exception("Task %s failed unexpectedly", task_uuid)
            return errors.TriverseError(errors.describe(exc)), time.monotonic() - started

    futures: list[tuple[str, Future[tuple[Asset | errors.TriverseError, float]]]] = []
    completed = False
    try:
        futures = [(u, pool.submit(one, u)) for u in task_uuids]
        for task_uuid, future in futures:
            outcome, seconds = future.result()
            yield task_uuid, outcome, seconds
        completed = True
    finally:
        if not completed:
            client.abort()  # stop the downloads still running; their partial files are removed
        pool.shutdown(wait=True, cancel_futures=True)
        for _, future in futures:  # results nobody took (cancelled part-way): remove their temp files
            if future.done() and not future.cancelled():
                outcome = future.result()[0]
                if isinstance(outcome, Asset):
                    outcome.cleanup()
        if own_client:
            client.close()
