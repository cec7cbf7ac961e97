"""Many generations on a bounded pool, results in the order given (the batch script), and their total price.
No `bpy` module use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from . import errors
from .api import TriverseClient
from .generate import WATCH_TIMEOUT, generate
from .generation_api import Created, Quote, quote
from .generation_request import GenerationRequest
from .generation_request import new_order_id as fresh_order_id
from .generations_store import GenerationStore
from .library import Library
from .obtain import Asset
from .settings import Settings

__all__ = ["BatchOutcome", "generate_many", "quote_all"]

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """One request of a batch: the task (when it was created), the model or the error, the time taken."""

    request: GenerationRequest
    created: Created | None
    result: Asset | errors.TriverseError
    seconds: float


def quote_all(
    settings: Settings, requests: list[GenerationRequest], *, jobs: int = 4, online_access: bool = True
) -> list[Quote]:
    """The price of every request (in order), asked in parallel; creates nothing. The first failure is raised."""
    with (
        TriverseClient(settings, pool_size=max(jobs, 1), online_access=online_access) as client,
        ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-quote") as pool,
    ):
        return list(pool.map(lambda r: quote(client, r), requests))


def generate_many(
    settings: Settings,
    requests: Iterable[GenerationRequest],
    *,
    jobs: int = 4,
    timeout: float = WATCH_TIMEOUT,
    library: Library | None = None,
    store: GenerationStore | None = None,
    online_access: bool = True,
    new_order_id: Callable[[], str] = fresh_order_id,
) -> Iterator[BatchOutcome]:
    """Generate every request on a bounded pool, yielding outcomes in the order given.

    Closing the iterator early (an interrupt) stops the watches still running (their tasks go on on the
    service and stay in the store) and removes the files of models nobody took.
    """
    client = TriverseClient(settings, pool_size=max(jobs, 1), online_access=online_access)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-generate")

    def one(request: GenerationRequest) -> BatchOutcome:
        started = time.monotonic()
        created: Created | None = None

        def keep(c: Created) -> None:
            nonlocal created
            created = c

        try:
            done = generate(
                client, request, new_order_id(), library=library, store=store, timeout=timeout, on_created=keep
            )
            return BatchOutcome(request, done.created, done.asset, time.monotonic() - started)
        except errors.TriverseError as exc:
            return BatchOutcome(request, created, exc, time.monotonic() - started)
        except Exception as exc:  # a bug in one request must not stop the others
            log.exception("Generation of %r failed unexpectedly", request.prompt[:40])
            failure = errors.TriverseError(errors.describe(exc))
            return BatchOutcome(request, created, failure, time.monotonic() - started)

    futures: list[Future[BatchOutcome]] = []
    completed = False
    try:
        futures = [pool.submit(one, r) for r in requests]
        for future in futures:
            yield future.result()
        completed = True
    finally:
        if not completed:
            client.abort()  # the watches stop; the tasks go on on the service and stay in the store
        pool.shutdown(wait=True, cancel_futures=True)
        if not completed:  # models nobody took: remove their temporary files (never the library's copy)
            for future in futures:
                outcome = future.result() if future.done() and not future.cancelled() else None
                if outcome is not None and isinstance(outcome.result, Asset):
                    outcome.result.cleanup()
        client.close()
