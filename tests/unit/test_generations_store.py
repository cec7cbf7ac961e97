"""The "My Generations" store (triverse_addon/generations.py): a JSON file written atomically, never the key."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from triverse_addon.service import errors
from triverse_addon.service.generations_store import GenerationRecord, GenerationStore

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"


def record(n: int, **kw: object) -> GenerationRecord:
    """A record for task number n, created n seconds after the epoch's day one."""
    values: dict[str, object] = {"task_uuid": f"00000000-0000-4000-8000-{n:012d}", "prompt": f"chair {n}",
                                 "created_at": 86_400.0 + n}  # fmt: skip
    values.update(kw)
    return GenerationRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the list is kept (its folder does not exist yet)."""
    return tmp_path / "user" / "generations.json"


def test_round_trip(path: Path) -> None:
    store = GenerationStore(path)
    full = record(1, order_id="blender-1", flow_name="image-to-mesh", negative_prompt="blurry",
                  image_name="/home/me/secret folder/photo.png", mesh_only=True, polygon_limit=5000,
                  texture_size=2048, turbo=True, status="SUCCESS", progress=100, cost_credits=30,
                  finished_at=86_500.0, error="", preview_file="/tmp/p.png", imported=True)  # fmt: skip
    store.upsert(full)
    store.upsert(record(2, status="RUNNING", progress=40))
    again = GenerationStore(path).load()
    assert [r.task_uuid for r in again.all()] == [record(2).task_uuid, full.task_uuid]  # newest first
    assert again.get(full.task_uuid) == full
    assert full.image_name == "photo.png"  # the base name only
    assert [r.task_uuid for r in again.running()] == [record(2).task_uuid]


def test_updates_replace_and_remove(path: Path) -> None:
    store = GenerationStore(path)
    store.upsert(record(1, status="RUNNING"))
    store.upsert(record(1, status="SUCCESS", progress=100))
    assert [r.status for r in GenerationStore(path).all()] == ["SUCCESS"]
    assert store.remove(record(1).task_uuid) and not store.remove("nope")
    assert GenerationStore(path).all() == []


def test_writes_are_atomic_and_leave_no_temporary_files(path: Path) -> None:
    store = GenerationStore(path)
    threads = [threading.Thread(target=lambda i=i: store.upsert(record(i))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in path.parent.iterdir()) == ["generations.json"]
    assert len(json.loads(path.read_text())["generations"]) == 20


def test_a_failed_write_leaves_the_old_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = GenerationStore(path)
    store.upsert(record(1))
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("triverse_addon.service.generations_store.os.replace", boom)
    with pytest.raises(errors.StorageError):
        store.upsert(record(2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["generations.json"]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"generations": 3}', b"\xff\xfe\x00",
                                     b'{"generations": [{"prompt": "no uuid"}]}'])  # fmt: skip
def test_a_corrupt_file_is_set_aside(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    store = GenerationStore(path).load()
    assert store.all() == []
    assert (path.parent / "generations.json.corrupt").read_bytes() == content
    store.upsert(record(1))
    assert len(GenerationStore(path).all()) == 1


def test_unknown_and_missing_keys_are_tolerated(path: Path) -> None:
    path.parent.mkdir(parents=True)
    doc = {"version": 9, "generations": [{"task_uuid": "t-1", "future_field": 1, "polygon_limit": "many"},
                                         {"task_uuid": "t-2", "status": "QUEUED", "progress": 12.0}]}  # fmt: skip
    path.write_text(json.dumps(doc))
    store = GenerationStore(path).load()
    first, second = store.get("t-1"), store.get("t-2")
    assert first is not None and first.polygon_limit == 1_000_000 and first.status == "PENDING"
    assert second is not None and (second.status, second.progress) == ("QUEUED", 12)


def test_the_list_is_capped_to_the_newest(path: Path) -> None:
    store = GenerationStore(path, cap=5)
    for i in range(8):
        store.upsert(record(i))
    kept = [r.task_uuid for r in GenerationStore(path).all()]
    assert kept == [record(i).task_uuid for i in (7, 6, 5, 4, 3)]


def test_the_key_is_never_in_the_file(path: Path) -> None:
    store = GenerationStore(path)
    store.upsert(record(1, prompt="a chair", error="Triverse rejected the API key"))
    data = GenerationRecord.from_json({**record(2).to_json(), "api_key": KEY, "token": KEY})
    store.upsert(data)  # a record built from a dict holding a key drops the key
    assert KEY not in path.read_text()
    assert set(json.loads(path.read_text())["generations"][0]) == set(record(1).to_json())


def test_a_removed_or_trimmed_record_takes_its_preview_with_it(tmp_path):
    from triverse_addon.service.generations_store import GenerationRecord, GenerationStore

    store = GenerationStore(tmp_path / "generations.json", cap=2)
    previews = tmp_path / "previews"
    previews.mkdir()
    elsewhere = tmp_path / "mine.png"  # a file the store did not make is never removed
    elsewhere.write_bytes(b"x")
    files = []
    for i, uuid in enumerate(("a", "b", "c")):
        path = previews / f"{uuid}.preview"
        path.write_bytes(b"png")
        files.append(path)
        store.upsert(GenerationRecord(task_uuid=uuid, created_at=float(i + 1), preview_file=str(path)))
    assert not files[0].exists() and files[1].exists()  # "a", the oldest, was trimmed by the cap
    store.remove("b")
    assert not files[1].exists() and files[2].exists()
    store.upsert(GenerationRecord(task_uuid="d", created_at=9.0, preview_file=str(elsewhere)))
    store.remove("d")
    assert elsewhere.exists()
