"""The account's feed (service/account_feed.py) against the stand-in's real `/tasks/watch/all` WebSocket."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import TASK

from standin_server import StandinServer
from triverse_addon.service import account_feed
from triverse_addon.service.account_feed import AccountFeed, apply, catch_up, watch_all_url
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.generations_store import GenerationRecord, GenerationStore
from triverse_addon.service.settings import Settings

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"  # the conftest key: distinctive, so a leak is found by substring


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short waits: the logic stays the module's own."""
    monkeypatch.setattr(account_feed, "QUIET", 0.3)
    monkeypatch.setattr(account_feed, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(account_feed, "BACKOFF_MAX", 0.2)


@pytest.fixture
def store(tmp_path: Path) -> GenerationStore:
    return GenerationStore(tmp_path / "generations.json")


@pytest.fixture
def feeds() -> Iterator[list[AccountFeed]]:
    """Feeds started by a test, stopped after it whatever happens."""
    started: list[AccountFeed] = []
    yield started
    for feed in started:
        feed.stop()


def make_task(server: StandinServer, prompt: str = "a brass lamp") -> str:
    """A task created elsewhere: a plain HTTP call with the key, as the web app or a script would."""
    body = {"prompt": prompt, "client_order_id": f"web-{secrets.token_hex(8)}"}
    answer = requests.post(
        f"{server.base_url}/tasks/text-to-model", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )
    answer.raise_for_status()
    data = answer.json()
    return str(data.get("data", data)["task_uuid"])


def feed_queries(server: StandinServer) -> list[dict[str, list[str]]]:
    """The query of every `/tasks/watch/all` connection the stand-in saw, in order."""
    return [parse_qs(urlsplit(r.path).query) for r in server.requests_for("/tasks/watch/all")]


def wait_until(check: Callable[[], object], timeout: float = 5.0) -> float:
    """Poll `check` until true; the seconds it took (fails after `timeout`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


# --- pure helpers ---------------------------------------------------------------------------------------


def test_watch_all_url_encodes_the_key_and_since() -> None:
    url = watch_all_url("https://api.triverse.ai/api/v1/", "k+y/=", "2026-01-02T03:04:05.678+00:00")
    assert url.startswith("wss://api.triverse.ai/api/v1/tasks/watch/all?token=k%2By%2F%3D")
    assert url.endswith("&since=2026-01-02T03%3A04%3A05.678%2B00%3A00")
    assert "since" not in watch_all_url("http://127.0.0.1:9/api/v1", "k", "")


def test_times_round_trip_and_resume_since_takes_the_margin() -> None:
    assert account_feed.iso(0) == "1970-01-01T00:00:00.000Z"
    assert account_feed.parse_time("1970-01-01T00:01:00Z") == 60.0
    assert account_feed.parse_time("1970-01-01T00:01:00") == 60.0  # no zone: UTC
    assert account_feed.parse_time("not a time") is None
    assert account_feed.resume_since("1970-01-01T00:01:00.000Z") == "1970-01-01T00:00:55.000Z"
    assert account_feed.resume_since("") == ""


# --- catch-up -------------------------------------------------------------------------------------------


def test_catch_up_without_since_is_the_whole_snapshot(server: StandinServer, client: TriverseClient) -> None:
    made = make_task(server)
    seen = catch_up(client, "")
    uuids = [p["task_uuid"] for p in seen.payloads]
    assert made in uuids and len(uuids) == len(set(uuids)) == 2  # the conftest's TASK too, each once
    assert "since" not in feed_queries(server)[-1]
    wait_until(lambda: server.gen.watching == 0, timeout=2)  # closed again


def test_catch_up_with_since_gets_only_what_changed_after(server: StandinServer, client: TriverseClient) -> None:
    server.gen.timeline_step = 30  # nothing moves on its own during the test
    time.sleep(0.01)  # `since` has milliseconds: the conftest's task is not changed in the same one
    first = catch_up(client, "")
    later = make_task(server, "a later chair")
    second = catch_up(client, first.synced_at)
    assert [p["task_uuid"] for p in second.payloads] == [later]
    assert feed_queries(server)[-1]["since"] == [first.synced_at]


def test_apply_adds_unknown_tasks_as_made_elsewhere_and_is_idempotent(
    server: StandinServer, client: TriverseClient, store: GenerationStore
) -> None:
    made = make_task(server)
    known = GenerationRecord(task_uuid=TASK, prompt="mine", status="RUNNING", cost_credits=30)
    store.upsert(known)
    payloads = catch_up(client, "").payloads
    applied = apply(store, payloads)
    assert applied.new == [made]
    assert applied.updated == [known.task_uuid]  # RUNNING here, SUCCESS on the account
    record = store.get(made)
    assert record is not None
    assert (record.origin, record.flow_name, record.status, record.cost_credits) == (
        "elsewhere",
        "text-to-model",
        next(p["status"] for p in payloads if p["task_uuid"] == made),
        None,
    )
    mine = store.get(known.task_uuid)
    assert mine is not None and (mine.origin, mine.status, mine.cost_credits, mine.prompt) == (
        "",
        "SUCCESS",
        30,
        "mine",
    )
    again = apply(store, payloads)
    assert (again.new, again.updated) == ([], [])


def test_a_record_made_elsewhere_takes_what_the_status_carries() -> None:
    record = account_feed.record_from(
        {
            "task_uuid": "5b0e0c1a-7d3e-4f7a-9c1b-2e4d6f8a0b1c",
            "flow_name": "text-to-texture",
            "status": "FAILED",
            "progress": 95,
            "created_at": "2026-01-02T03:04:05.000Z",
            "completed_at": "2026-01-02T03:05:05.000Z",
            "input": {"prompt": "a mossy rock"},
            "error": {"code": 5001, "message": "The model could not be textured"},
        }
    )
    assert (record.origin, record.prompt, record.status, record.progress) == ("elsewhere", "a mossy rock", "FAILED", 95)
    assert record.error == "The model could not be textured" and record.cost_credits is None
    assert record.finished_at is not None and record.finished_at - record.created_at == 60.0
    assert account_feed.record_from({"task_uuid": "x", "input": "odd"}).prompt == ""


def test_catch_up_refused_raises_without_the_key(
    server: StandinServer, client: TriverseClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail("refused", on="watch_all")  # its body echoes the URL, key and all
    with pytest.raises(account_feed.FeedError) as raised:
        catch_up(client, "")
    assert KEY not in str(raised.value) and raised.value.__cause__ is None and raised.value.__context__ is None
    assert KEY not in caplog.text and "token=" not in caplog.text


def test_no_websocket_client_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, client: TriverseClient, settings: Settings, store: GenerationStore
) -> None:
    monkeypatch.setattr(account_feed, "websocket", None)  # as in Blender 3.4, which loads the add-on without wheels
    with pytest.raises(account_feed.FeedUnavailable, match="websocket-client"):
        catch_up(client, "")
    feed = AccountFeed(settings, store)
    assert feed.start().kind == "unavailable"
    assert feed.state.describe() == "Unavailable: no WebSocket client"


# --- the live feed --------------------------------------------------------------------------------------


def test_the_feed_sees_a_task_made_elsewhere_at_once(
    server: StandinServer, settings: Settings, store: GenerationStore, feeds: list[AccountFeed]
) -> None:
    changes: list[list[str]] = []
    feed = AccountFeed(settings, store, since=account_feed.iso(time.time()), on_change=lambda c, s: changes.append(c))
    feeds.append(feed)
    feed.start()
    wait_until(lambda: feed.state.kind == "connected")
    assert server.gen.watching == 1
    start = time.monotonic()
    made = make_task(server)
    took = wait_until(lambda: store.get(made) is not None, timeout=1.0)
    elapsed = time.monotonic() - start
    print(f"feed latency: {took * 1000:.0f} ms after the POST's answer, {elapsed * 1000:.0f} ms from the POST")
    assert elapsed < 1.0
    record = GenerationStore(store.path).load().get(made)  # on disk, written by the feed's thread
    assert record is not None and record.origin == "elsewhere"
    wait_until(lambda: (r := store.get(made)) is not None and r.status == "SUCCESS")  # its state follows
    assert any(made in c for c in changes)
    wait_until(lambda: store.synced_at != "")


def test_an_old_success_is_not_news_but_a_live_one_is(
    server: StandinServer, settings: Settings, store: GenerationStore, feeds: list[AccountFeed]
) -> None:
    succeeded: list[str] = []
    old = server._task(TASK)
    assert old is not None
    old.created_at -= 3600  # it succeeded an hour ago
    feed = AccountFeed(settings, store, on_change=lambda c, s: succeeded.extend(s))  # the whole snapshot
    feeds.append(feed)
    feed.start()
    wait_until(lambda: store.get(TASK) is not None and store.synced_at != "")  # the first snapshot is over
    made = make_task(server)
    wait_until(lambda: made in succeeded)
    assert TASK not in succeeded  # in My Generations, but not to import: it ended before the feed started


def test_reconnects_after_a_drop_with_since_advanced(
    server: StandinServer, settings: Settings, store: GenerationStore, feeds: list[AccountFeed]
) -> None:
    server.fail("drop", on="watch_all", times=1)  # the first connection breaks after its first message
    feed = AccountFeed(settings, store)
    feeds.append(feed)
    feed.start()
    wait_until(lambda: feed.connections >= 2 and feed.state.kind == "connected")
    queries = feed_queries(server)
    assert "since" not in queries[0]
    assert queries[1]["since"][0] > "2020"  # the time of the first connection, minus the margin
    assert account_feed.parse_time(queries[1]["since"][0]) == pytest.approx(time.time() - 5.0, abs=3)
    made = make_task(server)
    wait_until(lambda: store.get(made) is not None)
    assert server.gen.watching == 1  # never more than one


def test_refused_retries_and_says_so_once(
    server: StandinServer,
    settings: Settings,
    store: GenerationStore,
    feeds: list[AccountFeed],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail("refused", on="watch_all")
    feed = AccountFeed(settings, store)
    feeds.append(feed)
    feed.start()
    wait_until(lambda: len(feed_queries(server)) >= 4)
    assert feed.state.kind == "retrying" and feed.state.describe() == "Retrying: refused"
    said = [r for r in caplog.records if r.levelno >= logging.WARNING and "account feed" in r.getMessage()]
    assert len(said) == 1
    server.clear_failures()
    wait_until(lambda: feed.state.kind == "connected")
    assert KEY not in caplog.text and "token=" not in caplog.text


def test_stop_ends_the_thread_quickly_and_closes_the_socket(
    server: StandinServer, settings: Settings, store: GenerationStore
) -> None:
    feed = AccountFeed(settings, store)
    feed.start()
    wait_until(lambda: server.gen.watching == 1)
    threads = {t.name for t in threading.enumerate()}
    assert "triverse-account-feed" in threads
    start = time.monotonic()
    feed.stop()
    took = time.monotonic() - start
    assert took < 0.25, took
    assert not any(t.name == "triverse-account-feed" for t in threading.enumerate())
    wait_until(lambda: server.gen.watching == 0, timeout=2)
    assert feed.state.kind == "off"


def test_no_key_or_no_online_access_starts_nothing(server: StandinServer, store: GenerationStore) -> None:
    feed = AccountFeed(Settings(api_key="", base_url=server.base_url), store)
    assert feed.start().kind == "unavailable" and feed.state.reason == "No Triverse API key is set"
    feed = AccountFeed(Settings(api_key=KEY, base_url=server.base_url), store, online_access=False)
    assert feed.start().kind == "unavailable"
    assert feed_queries(server) == []


def test_the_key_is_never_in_the_store(
    server: StandinServer, settings: Settings, store: GenerationStore, feeds: list[AccountFeed]
) -> None:
    feed = AccountFeed(settings, store)
    feeds.append(feed)
    feed.start()
    made = make_task(server)
    wait_until(lambda: store.get(made) is not None)
    feed.stop()
    assert store.synced_at
    assert KEY not in store.path.read_text()
