"""background.Latest: the panel's price and account look-ups, debounced, off the main thread."""

from __future__ import annotations

import threading
import time

from triverse_addon.service.lookups import Latest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settle(latest: Latest, clock: Clock) -> bool:
    """Poll as the panel's timer does until the running call is taken in; whether anything changed."""
    changed = latest.poll()
    deadline = time.monotonic() + 5
    while latest.busy and time.monotonic() < deadline:
        time.sleep(0.005)
        changed = latest.poll() or changed
    return changed


def test_a_burst_of_changes_makes_one_call_for_the_last_key():
    clock, calls = Clock(), []
    latest: Latest[int] = Latest(debounce=0.4, clock=clock)
    for limit in (1000, 5000, 20000, 50000):  # dragging the polygon limit slider
        latest.want(("quote", limit), lambda limit=limit: calls.append(limit) or limit)
        clock.now += 0.1
        assert not latest.poll() and calls == []  # still inside the debounce
    clock.now += 0.5
    assert settle(latest, clock)
    assert calls == [50000] and latest.value == 50000 and latest.current(("quote", 50000))


def test_a_fresh_result_is_not_asked_again_but_an_old_one_is():
    clock, calls = Clock(), []
    latest: Latest[str] = Latest(debounce=0.0, max_age=60, clock=clock)
    assert latest.want("k", lambda: calls.append(1) or "a")
    settle(latest, clock)
    assert not latest.want("k", lambda: calls.append(2) or "b")  # every redraw may ask: no new call
    clock.now += 61
    assert latest.want("k", lambda: calls.append(3) or "c")
    settle(latest, clock)
    assert calls == [1, 3] and latest.value == "c"


def test_a_failure_is_kept_for_the_main_thread_and_retried_later():
    clock = Clock()
    latest: Latest[int] = Latest(debounce=0.0, error_age=15, clock=clock)

    def offline() -> int:
        raise ConnectionError("refused")

    latest.want("k", offline)
    assert settle(latest, clock)
    assert isinstance(latest.error, ConnectionError) and latest.value is None
    assert not latest.want("k", offline)
    clock.now += 16
    assert latest.want("k", lambda: 7)
    settle(latest, clock)
    assert latest.value == 7 and latest.error is None


def test_an_answer_for_a_key_already_changed_is_dropped():
    clock = Clock()
    release = threading.Event()
    latest: Latest[str] = Latest(debounce=0.0, clock=clock)

    def slow() -> str:
        release.wait(5)
        return "old"

    latest.want("texture 1024", slow)
    latest.poll()  # running now
    latest.want("texture 4096", lambda: "new")
    release.set()
    settle(latest, clock)
    assert latest.key == "texture 4096" and latest.value == "new"


def test_the_call_runs_on_another_thread():
    clock, seen = Clock(), []
    latest: Latest[int] = Latest(debounce=0.0, clock=clock)
    latest.want("k", lambda: seen.append(threading.current_thread() is threading.main_thread()) or 1)
    settle(latest, clock)
    assert seen == [False]
