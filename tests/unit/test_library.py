"""The library keeps verified copies, writes atomically, and says clearly when it cannot (library.py)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from triverse_addon.service import errors
from triverse_addon.service.library import Library, sha256_of

T1 = "11111111-1111-4111-8111-111111111111"
T2 = "22222222-2222-4222-8222-222222222222"
T3 = "33333333-3333-4333-8333-333333333333"


def put(lib: Library, task: str, data: bytes, fmt: str = "glb", filename: str = "") -> Path:
    """Write `data` as a partial download and commit it."""
    partial = lib.partial_path(task)
    partial.write_bytes(data)
    entry = lib.commit(task, partial, fmt, len(data), hashlib.sha256(data).hexdigest(), filename)
    assert not partial.exists()
    return entry.path


def test_commit_then_lookup_verifies(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    path = put(lib, T1, glb, filename="Robot.glb")
    assert path == tmp_path / "lib" / T1 / "asset.glb"
    assert path.read_bytes() == glb
    entry = lib.lookup(T1)
    assert entry is not None
    assert (entry.task_uuid, entry.format, entry.size, entry.filename) == (T1, "glb", len(glb), "Robot.glb")
    assert entry.sha256 == hashlib.sha256(glb).hexdigest() == sha256_of(path)
    assert entry.path == path


def test_commit_records_meta_json_and_leaves_no_partial(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    put(lib, T1, glb)
    folder = tmp_path / "lib" / T1
    assert sorted(p.name for p in folder.iterdir()) == ["asset.glb", "meta.json"]
    meta = json.loads((folder / "meta.json").read_text("utf-8"))
    assert meta["task_uuid"] == T1 and meta["size"] == len(glb) and meta["format"] == "glb"
    assert meta["filename"] == "asset.glb"  # no server name given: the kept file's name
    assert list(lib.incoming.iterdir()) == []


def test_a_second_commit_replaces_the_first(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    put(lib, T1, b"old model " * 10, fmt="obj")
    put(lib, T1, glb)
    assert sorted(p.name for p in (tmp_path / "lib" / T1).iterdir()) == ["asset.glb", "meta.json"]
    entry = lib.lookup(T1)
    assert entry is not None and entry.format == "glb" and entry.path.read_bytes() == glb


def test_lookup_of_an_unknown_task(tmp_path: Path) -> None:
    assert Library(tmp_path / "lib").lookup(T1) is None


@pytest.mark.parametrize("damage", ["flip-byte", "truncate", "grow", "delete-asset", "bad-meta", "meta-missing-key"])
def test_a_damaged_copy_is_not_returned_and_is_removed(tmp_path: Path, glb: bytes, damage: str) -> None:
    lib = Library(tmp_path / "lib")
    path = put(lib, T1, glb)
    data = bytearray(path.read_bytes())
    meta_path = path.parent / "meta.json"
    if damage == "flip-byte":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(data)
    elif damage == "truncate":
        path.write_bytes(data[:-10])
    elif damage == "grow":
        path.write_bytes(data + b"\x00")
    elif damage == "delete-asset":
        path.unlink()
    elif damage == "bad-meta":
        meta_path.write_text("{not json", "utf-8")
    else:
        meta = json.loads(meta_path.read_text("utf-8"))
        del meta["sha256"]
        meta_path.write_text(json.dumps(meta), "utf-8")
    assert lib.lookup(T1) is None
    assert not (tmp_path / "lib" / T1).exists()


def test_a_damaged_copy_does_not_touch_the_others(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    bad = put(lib, T1, glb)
    put(lib, T2, glb)
    bad.write_bytes(b"\x00" * len(glb))  # same size, other bytes: only the checksum tells
    assert lib.lookup(T1) is None
    assert lib.lookup(T2) is not None


def test_cap_removes_the_oldest_first(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib", cap_bytes=2500)
    for task in (T1, T2):
        put(lib, task, b"x" * 1000)
        time.sleep(0.01)  # distinct saved_at
    assert {e.task_uuid for e in lib.entries()} == {T1, T2}
    put(lib, T3, b"y" * 1000)
    assert [e.task_uuid for e in lib.entries()] == [T3, T2]
    assert not (tmp_path / "lib" / T1).exists()
    assert lib.lookup(T2) is not None and lib.lookup(T3) is not None


def test_cap_never_removes_what_was_just_kept(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib", cap_bytes=100)
    put(lib, T1, b"x" * 50)
    time.sleep(0.01)
    put(lib, T2, b"y" * 1000)  # alone larger than the cap: still kept, the older one goes
    assert [e.task_uuid for e in lib.entries()] == [T2]
    assert lib.lookup(T2) is not None


def test_no_cap_keeps_everything(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib", cap_bytes=0)
    for task in (T1, T2, T3):
        put(lib, task, b"z" * 10_000)
    assert len(lib.entries()) == 3
    assert lib.enforce_cap() == []


def test_size_counts_the_kept_files(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    put(lib, T1, b"x" * 4000)
    assert 4000 < lib.size() < 5000  # the asset and its small record


def test_clear_removes_assets_but_not_downloads_in_progress(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    put(lib, T1, glb)
    put(lib, T2, glb)
    running = lib.partial_path(T3)
    running.write_bytes(b"half")
    assert lib.clear() == 2
    assert lib.entries() == []
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == [".incoming"]
    assert running.exists()


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_an_unwritable_root_is_a_storage_error_with_a_clear_message(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    root = blocker / "library" if where == "under-a-file" else blocker
    with pytest.raises(errors.StorageError) as info:
        Library(root)
    message = str(info.value)
    assert str(root) in message and "not writable" in message and "preferences" in message
    assert "\n" not in message and "Errno" not in message and "Traceback" not in message
    assert blocker.read_text() == "a file, not a folder"


def test_a_read_only_library_makes_no_folder(tmp_path: Path) -> None:
    lib = Library(tmp_path / "nowhere", writable=False)
    assert lib.lookup(T1) is None
    assert not (tmp_path / "nowhere").exists()


def test_commit_failure_is_a_storage_error_and_removes_the_partial(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    partial = lib.partial_path(T1)
    partial.write_bytes(glb)
    (tmp_path / "lib" / T1).write_text("a file where the task's folder goes")
    with pytest.raises(errors.StorageError) as info:
        lib.commit(T1, partial, "glb", len(glb), hashlib.sha256(glb).hexdigest())
    assert "library folder" in str(info.value) and "\n" not in str(info.value)
    assert not partial.exists()


def test_stale_partials_are_removed_recent_ones_kept(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    stale, recent, other = lib.partial_path(T1), lib.partial_path(T2), lib.incoming / "notes.txt"
    for path in (stale, recent, other):
        path.write_bytes(b"partial")
    seven_hours_ago = time.time() - 7 * 3600
    os.utime(stale, (seven_hours_ago, seven_hours_ago))
    os.utime(other, (seven_hours_ago, seven_hours_ago))
    five_hours_ago = time.time() - 5 * 3600
    os.utime(recent, (five_hours_ago, five_hours_ago))
    Library(tmp_path / "lib")  # opening the library tidies up
    assert not stale.exists()
    assert recent.exists()
    assert other.exists()  # only the library's own partial files are touched


def test_partial_paths_are_unique_and_in_incoming(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    paths = {lib.partial_path(T1) for _ in range(50)}
    assert len(paths) == 50
    assert all(p.parent == lib.incoming and p.name.startswith(T1) and p.suffix == ".part" for p in paths)
