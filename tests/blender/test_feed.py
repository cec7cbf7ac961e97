"""The account's feed in real Blender (the bpy module): Sync My Generations and the live feed, against the stand-in."""

from __future__ import annotations

import importlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import bpy
import pytest
import requests
from conftest import MODULE, addon_prefs, library_settled

KEY = "test-key"  # the conftest stand-in's key


def stores():
    return importlib.import_module(MODULE + ".blender.common.stores")


def feed_room():
    return importlib.import_module(MODULE + ".blender.feed")


def wait_until(check: Callable[[], object], timeout: float = 10.0, step: float = 0.01) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(step)
    return time.monotonic() - start


@pytest.fixture
def store(standin, sample_glb):
    """My Generations, empty and never synced; tasks made on the stand-in serve the sample; the feed off after."""
    standin.gen.generated_asset = sample_glb
    standin.gen.timeline_step = 0.05
    generations = stores().generations()
    generations.path.unlink(missing_ok=True)
    generations.load()
    yield generations
    addon_prefs().watch_account = False
    addon_prefs().auto_import_finished = False


def make_task(server, prompt: str = "a brass lamp") -> str:
    """A task made elsewhere: a plain HTTP call with the key, as the web app or a script would."""
    body = {"prompt": prompt, "client_order_id": f"web-{secrets.token_hex(8)}"}
    answer = requests.post(
        f"{server.base_url}/tasks/text-to-model", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )
    answer.raise_for_status()
    data = answer.json()
    return str(data.get("data", data)["task_uuid"])


def feed_queries(server) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(r.path).query) for r in server.requests_for("/tasks/watch/all")]


def on_disk(store, task_uuid: str) -> dict | None:
    """The record as written in the store's file (what a restart would read)."""
    try:
        doc = json.loads(store.path.read_text())
    except (OSError, ValueError):
        return None
    return next((g for g in doc["generations"] if g["task_uuid"] == task_uuid), None)


def test_sync_lists_a_task_made_elsewhere_and_it_imports(standin, store, capfd):
    bpy.ops.triverse.sync_generations()  # what the session's other tests made (the stand-in is shared)
    capfd.readouterr()
    made = make_task(standin)
    assert bpy.ops.triverse.sync_generations() == {"FINISHED"}
    record = store.get(made)
    assert record is not None
    assert (record.origin, record.flow_name, record.cost_credits) == ("elsewhere", "text-to-model", None)
    assert "1 new task made elsewhere" in capfd.readouterr().out
    wait_until(lambda: standin._task(made).status == "SUCCESS")
    before = len(bpy.data.objects)
    assert bpy.ops.triverse.generation_import(task_uuid=made) == {"FINISHED"}
    library_settled()
    assert len(bpy.data.objects) > before
    assert store.get(made).imported
    assert KEY not in store.path.read_text()


def test_a_second_sync_asks_only_for_what_changed_since(standin, store, capfd):
    make_task(standin)
    bpy.ops.triverse.sync_generations()
    synced = store.synced_at
    assert synced
    capfd.readouterr()
    assert bpy.ops.triverse.sync_generations() == {"FINISHED"}
    first, second = feed_queries(standin)[-2:]
    assert "since" not in first
    service = importlib.import_module(MODULE + ".service.account_feed")
    assert second["since"] == [service.resume_since(synced)]  # the last sync's time, minus the margin
    assert "0 new tasks made elsewhere" in capfd.readouterr().out
    assert store.synced_at > synced


def test_sync_reports_a_refusal_in_one_sentence(standin, store, capfd):
    standin.fail("refused", on="watch_all")
    with pytest.raises(RuntimeError) as raised:
        bpy.ops.triverse.sync_generations()
    assert "refused" in str(raised.value) and KEY not in str(raised.value)
    assert KEY not in capfd.readouterr().out


def test_the_live_feed_adds_a_task_made_elsewhere_within_a_second(standin, store):
    prefs = addon_prefs()
    prefs.watch_account = True
    feed = feed_room()._feed["feed"]
    wait_until(lambda: feed.state.kind == "connected" and standin.gen.watching == 1)
    start = time.monotonic()
    made = make_task(standin)
    took = wait_until(lambda: on_disk(store, made) is not None, timeout=1.5, step=0.005)
    print(f"live feed: in the store's file {(time.monotonic() - start) * 1000:.0f} ms after the POST ({took:.3f} s)")
    assert on_disk(store, made)["origin"] == "elsewhere"
    wait_until(lambda: (on_disk(store, made) or {}).get("status") == "SUCCESS")  # its state follows
    assert feed_room().state()[0] == "connected"
    assert standin.gen.watching == 1  # one connection, never more
    start = time.monotonic()
    prefs.watch_account = False  # turning it off closes the connection, without holding Blender up
    assert time.monotonic() - start < 0.5
    wait_until(lambda: standin.gen.watching == 0, timeout=2)
    assert "feed" not in feed_room()._feed
    assert KEY not in store.path.read_text()


def test_turning_the_feed_on_twice_keeps_one_connection(standin, store):
    prefs = addon_prefs()
    prefs.watch_account = True
    prefs.watch_account = True  # the update runs again: the feed restarts, the old connection closes
    wait_until(lambda: feed_room()._feed["feed"].state.kind == "connected")
    time.sleep(0.3)
    assert standin.gen.watching == 1


def test_without_online_access_the_feed_says_why(standin, store):
    bpy.context.preferences.system.use_online_access = False
    try:
        addon_prefs().watch_account = True
        kind, line = feed_room().state()
        assert kind == "unavailable" and "online access" in line.lower()
        assert standin.gen.watching == 0
    finally:
        bpy.context.preferences.system.use_online_access = True


@pytest.mark.parametrize("auto", [True, False])
def test_a_task_made_elsewhere_that_succeeds_goes_to_the_import_when_asked(standin, store, monkeypatch, auto):
    """The window's timer (called here by hand: the bpy module runs no timer) hands it to My Generations' Import."""
    room = feed_room()
    asked: list[str] = []
    monkeypatch.setattr(room, "_import", asked.extend)  # the real one needs a window (INVOKE_DEFAULT, a modal job)
    prefs = addon_prefs()
    prefs.watch_account = True
    prefs.auto_import_finished = auto
    wait_until(lambda: store.synced_at != "")  # connected, and the first snapshot (older tasks: no news) is over
    made = make_task(standin)
    wait_until(lambda: store.get(made) is not None and store.get(made).status == "SUCCESS")
    time.sleep(0.1)
    room._tick()
    assert asked == ([made] if auto else [])


@pytest.fixture(autouse=True)
def _no_feed_left() -> Iterator[None]:
    yield
    feed_room().stop()
