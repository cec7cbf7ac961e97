"""generate_core without Blender: names, the batch in order, watching again after a restart, quotes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from standin_server import StandinServer
from triverse_addon.service import errors, generate, generate_batch, generation_request, obtain, rewatch
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.generations_store import GenerationStore
from triverse_addon.service.settings import Settings


@pytest.fixture
def fast(server: StandinServer) -> StandinServer:
    server.gen.timeline_step = 0.02
    return server


@pytest.mark.parametrize(
    "prompt, image, expected",
    [
        ("a red chair", "", "a red chair 12345678"),
        ("  a\tred\nchair\x00 ", "", "a red chair 12345678"),
        ("x" * 40, "", "x" * 24 + "… 12345678"),
        ("", "/tmp/shots/garden bench.png", "garden bench.png 12345678"),
        ("", "", "Triverse 12345678"),
    ],
)
def test_collection_name_is_short_and_safe(prompt, image, expected):
    assert generation_request.collection_name(prompt, "12345678-aaaa", image) == expected


def test_collection_name_fits_blenders_63_bytes_without_cutting_a_character():
    name = generation_request.collection_name("椅子" * 20, "12345678-aaaa")
    assert len(name.encode()) <= 63 and name.endswith(" 12345678")
    name.encode().decode()  # whole characters only


def test_the_same_request_has_the_same_key_and_generate_again_another():
    a = generation_request.GenerationRequest(prompt="a chair")
    assert generate.request_key(a) == generate.request_key(generation_request.GenerationRequest(prompt="a chair"))
    assert generate.request_key(a) != generate.request_key(generation_request.GenerationRequest(prompt="a table"))
    assert generate.request_key(a) != generate.request_key(a, allow_duplicate=True)


def test_generate_many_gives_results_in_order_and_records_every_task(fast, settings, tmp_path):
    store = GenerationStore(tmp_path / "generations.json")
    fast.gen.script_next("SUCCESS")
    fast.gen.script_next("FAILED", error="No mesh")
    fast.gen.script_next("SUCCESS")
    requests = [generation_request.GenerationRequest(prompt=p) for p in ("a chair", "a vase", "ab", "a lamp")]

    outcomes = list(generate_batch.generate_many(settings, requests, jobs=1, store=store))

    assert [o.request.prompt for o in outcomes] == ["a chair", "a vase", "ab", "a lamp"]
    ok, failed, invalid, last = outcomes
    assert isinstance(ok.result, obtain.Asset) and ok.created is not None
    assert isinstance(failed.result, errors.TaskFailed) and "No mesh" in str(failed.result)
    assert isinstance(invalid.result, errors.InvalidParameters) and invalid.created is None
    assert isinstance(last.result, obtain.Asset)
    for o in (ok, last):
        o.result.cleanup()  # type: ignore[union-attr]
    assert fast.created == [ok.created.task_uuid, failed.created.task_uuid, last.created.task_uuid]  # type: ignore[union-attr]
    statuses = {r.task_uuid: r.status for r in store.all()}
    assert statuses == {ok.created.task_uuid: "SUCCESS", failed.created.task_uuid: "FAILED",  # type: ignore[union-attr]
                        last.created.task_uuid: "SUCCESS"}  # type: ignore[union-attr]  # fmt: skip


def test_rewatcher_updates_the_record_and_downloads_nothing(fast, settings, tmp_path):
    store = GenerationStore(tmp_path / "generations.json")
    fast.gen.script_next(hold=True)
    with TriverseClient(settings) as client:
        created = generate.create_task(
            client,
            generation_request.GenerationRequest(prompt="a chair"),
            generation_request.new_order_id(),
            store=store,
        )
    reopened = GenerationStore(tmp_path / "generations.json")  # a restart: the file is read again
    watcher = rewatch.Rewatcher(settings, reopened)

    assert watcher.start() == [created.task_uuid]
    fast.gen.release(created.task_uuid)
    deadline = time.monotonic() + 10
    while watcher.watching() and time.monotonic() < deadline:
        time.sleep(0.02)

    assert GenerationStore(tmp_path / "generations.json").get(created.task_uuid).status == "SUCCESS"  # type: ignore[union-attr]
    assert not fast.requests_for(f"/tasks/download/{created.task_uuid}")


def test_rewatcher_stop_leaves_the_last_status(fast, settings, tmp_path):
    store = GenerationStore(tmp_path / "generations.json")
    fast.gen.script_next(hold=True)
    with TriverseClient(settings) as client:
        created = generate.create_task(
            client,
            generation_request.GenerationRequest(prompt="a chair"),
            generation_request.new_order_id(),
            store=store,
        )
    watcher = rewatch.Rewatcher(settings, store)
    watcher.start()
    deadline = time.monotonic() + 10
    while store.get(created.task_uuid).status != "RUNNING" and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.02)

    watcher.stop(join_seconds=2.0)

    assert watcher.watching() == []
    assert store.get(created.task_uuid).status == "RUNNING"  # type: ignore[union-attr]
    fast.gen.release(created.task_uuid)


def test_quote_all_prices_every_request_and_creates_nothing(fast, settings):
    requests = [
        generation_request.GenerationRequest(prompt="a chair"),
        generation_request.GenerationRequest(prompt="x", mesh_only=True),
    ]
    quotes = generate_batch.quote_all(settings, requests)
    assert [q.cost_credits for q in quotes] == [40, 20]
    assert fast.created == []


def test_nothing_is_sent_without_online_access(fast, make_settings, tmp_path: Path):
    settings: Settings = make_settings()
    outcomes = list(
        generate_batch.generate_many(
            settings, [generation_request.GenerationRequest(prompt="a chair")], online_access=False
        )
    )
    assert isinstance(outcomes[0].result, errors.OnlineAccessDisabled)
    assert fast.requests == []


def test_a_finished_generation_keeps_its_preview_for_my_generations(fast, settings, tmp_path):
    from triverse_addon.service import thumbnail
    from triverse_addon.service.api import TriverseClient

    store = GenerationStore(tmp_path / "generations.json")
    with TriverseClient(settings) as client:
        done = generate.generate(client, generation_request.GenerationRequest(prompt="a chair"), "order-1", store=store)
    done.asset.cleanup()
    uuid = done.created.task_uuid
    deadline = time.monotonic() + 10  # the preview comes after the model, on a thread of its own
    while not (store.get(uuid) and store.get(uuid).preview_file) and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.02)
    preview = Path(store.get(uuid).preview_file)  # type: ignore[union-attr]
    assert preview.parent == tmp_path / "previews" and preview.is_file()
    assert thumbnail.decode_png(preview.read_bytes()) is not None  # a real picture the panel can show
    assert store.get(uuid).status == "SUCCESS"  # type: ignore[union-attr]  # the record's other fields kept


def test_a_just_created_task_the_service_does_not_show_yet_is_waited_for(fast, settings):
    from triverse_addon.service.api import TriverseClient

    fast.fail("not_found", times=2, on="status")  # read-after-write: the first looks answer 404
    with TriverseClient(settings) as client:
        done = generate.generate(client, generation_request.GenerationRequest(prompt="a chair"), "order-2")
    assert done.created.task_uuid in fast.created and done.asset.path.is_file()
    done.asset.cleanup()
