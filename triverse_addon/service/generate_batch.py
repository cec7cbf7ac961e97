"""Many generations on a bounded pool, results in the order given (the batch script), and their total price.
No `bpy` module use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from . import errors
from .api import TriverseClient
from .generate import WATCH_TIMEOUT, generate
from .generation_api import Created, Priced, Quote, quote
from .generation_request import GenerationRequest
from .generation_request import new_order_id as fresh_order_id
from .generations_store import GenerationStore
from .library import Library
from .obtain import Asset
from .settings import Settings

__all__ = ["BatchOutcome", "generate_many", "in_order", "quote_all"]

log = logging.getLogger(__name__)


class Outcome(Protocol):
    """What `in_order` yields: at least the model or the error."""

    @property
    def result(self) -> Asset | errors.TriverseError:
        """The model, or why there is none."""
        ...


T = TypeVar("T")
R = TypeVar("R", bound=Outcome)


@dataclass
class BatchOutcome:
    """One request of a batch: the task (when it was created), the model or the error, the time taken."""

    request: GenerationRequest
    created: Created | None
    result: Asset | errors.TriverseError
    seconds: float


def quote_all(
    settings: Settings, requests: Sequence[Priced], *, jobs: int = 4, online_access: bool = True
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

    def run(client: TriverseClient, request: GenerationRequest, on_created: Callable[[Created], None]) -> Asset:
        done = generate(
            client, request, new_order_id(), library=library, store=store, timeout=timeout, on_created=on_created
        )
        return done.asset

    return in_order(
        settings,
        requests,
        run,
        BatchOutcome,
        jobs=jobs,
        online_access=online_access,
        label=lambda r: f"Generation of {r.prompt[:40]!r}",
    )


def in_order(
    settings: Settings,
    items: Iterable[T],
    run: Callable[[TriverseClient, T, Callable[[Created], None]], Asset],
    outcome: Callable[[T, Created | None, Asset | errors.TriverseError, float], R],
    *,
    jobs: int = 4,
    online_access: bool = True,
    label: Callable[[T], str] = repr,
) -> Iterator[R]:
    """`run(client, item, on_created)` for every item on a bounded pool sharing one client, yielding
    `outcome(item, created or None, the model or the error, seconds)` in the order given.

    A failure of one item never stops the others. Closing the iterator early (an interrupt) stops the
    watches still running (their tasks go on on the service) and removes the files of models nobody took.
    """
    client = TriverseClient(settings, pool_size=max(jobs, 1), online_access=online_access)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="triverse-batch")

    def one(item: T) -> R:
        started = time.monotonic()
        created: Created | None = None

        def keep(c: Created) -> None:
            nonlocal created
            created = c

        try:
            asset = run(client, item, keep)  # first: it sets `created`
            return outcome(item, created, asset, time.monotonic() - started)
        except errors.TriverseError as exc:
            return outcome(item, created, exc, time.monotonic() - started)
        except Exception as exc:  # a bug in one item must not stop the others
            log.exception("%s failed unexpectedly", label(item))
            return outcome(item, created, errors.TriverseError(errors.describe(exc)), time.monotonic() - started)

    futures: list[Future[R]] = []
    completed = False
    try:
        futures = [pool.submit(one, item) for item in items]
        for future in futures:
            yield future.result()
        completed = True
    finally:
        if not completed:
            client.abort()  # the watches stop; the tasks go on on the service and stay in the store
        pool.shutdown(wait=True, cancel_futures=True)
        if not completed:  # models nobody took: remove their temporary files (never the library's copy)
            for future in futures:
                done = future.result() if future.done() and not future.cancelled() else None
                if done is not None and isinstance(done.result, Asset):
                    done.result.cleanup()
        client.close()
