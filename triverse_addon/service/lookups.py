"""Background look-ups for the UI (the price quote, the account): one call at a time on a worker
thread, debounced, the latest result kept for the main thread to read. No `bpy` module use.

The panel asks with `want(key, call)` (from property update callbacks, a button, or a first draw);
a main-thread timer calls `poll()`, which starts the call once the key has stopped changing for
`debounce` seconds and takes in a finished result. Drawing only reads `value`, `error` and `busy`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Latest"]

T = TypeVar("T")


class Latest(Generic[T]):
    """The latest result (or error) of a keyed call run off the main thread."""

    def __init__(
        self,
        debounce: float = 0.4,
        max_age: float = 120.0,
        error_age: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.debounce = debounce
        self.max_age = max_age  # a result older than this is fetched again when asked for
        self.error_age = error_age  # a failure is retried no sooner than this (offline: no hammering)
        self._clock = clock
        self.key: Hashable | None = None  # the key `value` / `error` answer
        self.value: T | None = None
        self.error: BaseException | None = None
        self._at = 0.0  # when value / error arrived
        self._wanted: tuple[Hashable, Callable[[], T], float] | None = None  # (key, call, due time)
        self._running: Hashable | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._finished: tuple[Hashable, T | None, BaseException | None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a call is waiting for its debounce or running."""
        return self._wanted is not None or self._thread is not None

    def current(self, key: Hashable) -> bool:
        """Whether `value` / `error` answer `key` (not an earlier key)."""
        return self.key == key and (self.value is not None or self.error is not None)

    def wants(self, key: Hashable) -> bool:
        """Whether `want(key, ...)` would schedule a call: no fresh result for `key`, none on its way."""
        fresh = self.max_age if self.error is None else self.error_age
        if self.current(key) and self._clock() - self._at < fresh:
            return False
        if self._wanted is not None and self._wanted[0] == key:
            return False
        return not (self._running == key and self._wanted is None)

    def want(self, key: Hashable, call: Callable[[], T], *, force: bool = False) -> bool:
        """Ask for `call()`'s result for `key` unless it is fresh or already on its way; True if scheduled."""
        if not force and not self.wants(key):
            return False
        self._wanted = (key, call, self._clock() + self.debounce)
        return True

    def forget(self) -> None:
        """Drop the result kept (e.g. after spending credits), so that the next `want` fetches again."""
        self.key, self.value, self.error, self._at = None, None, None, 0.0

    def poll(self) -> bool:
        """Main thread: take in a finished call, start a due one; True when `value` or `error` changed."""
        changed = False
        with self._lock:
            finished, self._finished = self._finished, None
        if finished is not None:
            self._thread, self._running = None, None
            key, value, error = finished
            wanted_other = self._wanted is not None and self._wanted[0] != key
            if not wanted_other:  # an answer for a key the user has already changed is stale: drop it
                self.key, self.value, self.error, self._at = key, value, error, self._clock()
                changed = True
        if self._wanted is not None and self._thread is None and self._clock() >= self._wanted[2]:
            key, call, _ = self._wanted
            self._wanted = None
            self._running = key
            self._thread = threading.Thread(target=self._run, args=(key, call), name="triverse-lookup", daemon=True)
            self._thread.start()
        return changed

    def _run(self, key: Hashable, call: Callable[[], T]) -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = call()
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which shows it quietly
            error = exc
        with self._lock:
            self._finished = (key, value, error)

    def wait(self, timeout: float) -> bool:
        """Block until the running call ends (tests and unregister only); True if none is left running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
