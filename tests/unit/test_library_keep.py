"""`Library.keep`: the file is in place at once, and kept (recorded, found by lookup) only once hashed (library.py)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from triverse_addon.service import errors, library
from triverse_addon.service.library import Library

T1 = "11111111-1111-4111-8111-111111111111"


def partial_with(lib: Library, data: bytes) -> Path:
    partial = lib.partial_path(T1)
    partial.write_bytes(data)
    return partial


def test_keep_records_size_and_sha256_of_the_file(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    pending = lib.keep(T1, partial_with(lib, glb), "glb", len(glb), "Robot.glb")
    assert pending.path == tmp_path / "lib" / T1 / "asset.glb" and pending.path.read_bytes() == glb
    entry = pending.wait()
    assert entry.sha256 == hashlib.sha256(glb).hexdigest() and entry.size == len(glb)
    assert entry.filename == "Robot.glb" and pending.done
    meta = json.loads((tmp_path / "lib" / T1 / "meta.json").read_text("utf-8"))
    assert meta["sha256"] == entry.sha256 and meta["size"] == len(glb)
    found = lib.lookup(T1)
    assert found is not None and found.sha256 == entry.sha256
    assert list(lib.incoming.iterdir()) == []


def test_nothing_is_kept_before_the_hash_is_known(tmp_path: Path, glb: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = Library(tmp_path / "lib")
    lib.commit(T1, partial_with(lib, b"an older model" * 8), "obj", 112, hashlib.sha256(b"x").hexdigest())
    release = threading.Event()
    real = library.sha256_of

    def slow_sha256_of(path: Path) -> str:
        release.wait(10)
        return real(path)

    monkeypatch.setattr(library, "sha256_of", slow_sha256_of)
    pending = lib.keep(T1, partial_with(lib, glb), "glb", len(glb))
    pending.start()
    # The older record is gone at once (it must never describe the new file), the new one not yet written.
    assert not (tmp_path / "lib" / T1 / "meta.json").exists()
    assert lib.entries() == []
    release.set()
    assert pending.wait().format == "glb"
    assert [e.format for e in lib.entries()] == ["glb"]


def test_a_short_file_is_not_kept_and_is_removed(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    pending = lib.keep(T1, partial_with(lib, glb), "glb", len(glb) + 1)  # fewer bytes on disk than received
    with pytest.raises(errors.StorageError, match="library folder"):
        pending.wait()
    assert not pending.path.exists()
    assert not (tmp_path / "lib" / T1 / "meta.json").exists()
    assert lib.lookup(T1) is None


def test_a_file_replaced_while_hashed_is_left_to_its_own_import(
    tmp_path: Path, glb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = Library(tmp_path / "lib")
    release = threading.Event()
    real = library.sha256_of
    calls: list[Path] = []

    def gated(path: Path) -> str:
        calls.append(path)
        if len(calls) == 1:
            release.wait(10)
        return real(path)

    monkeypatch.setattr(library, "sha256_of", gated)
    first = lib.keep(T1, partial_with(lib, b"first " * 100), "glb", 600)
    first.start()
    while not calls:
        release.wait(0.01)  # until the first one is hashing
    second = lib.keep(T1, partial_with(lib, glb), "glb", len(glb))  # the same task again, meanwhile
    assert second.wait().sha256 == hashlib.sha256(glb).hexdigest()
    release.set()
    with pytest.raises(errors.StorageError):
        first.wait()
    entry = lib.lookup(T1)  # the second import's file and record survive the first one's failure
    assert entry is not None and entry.path.read_bytes() == glb


def test_keep_into_an_unwritable_place_is_a_storage_error_and_removes_the_partial(tmp_path: Path, glb: bytes) -> None:
    lib = Library(tmp_path / "lib")
    partial = partial_with(lib, glb)
    (tmp_path / "lib" / T1).write_text("a file where the task's folder should be")
    with pytest.raises(errors.StorageError, match="Cannot write to the library folder"):
        lib.keep(T1, partial, "glb", len(glb))
    assert not partial.exists()


def test_hashing_waits_for_start_and_runs_on_a_helper_thread(
    tmp_path: Path, glb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = Library(tmp_path / "lib")
    threads: list[str] = []
    real = library.sha256_of

    def recording(path: Path) -> str:
        threads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(library, "sha256_of", recording)
    pending = lib.keep(T1, partial_with(lib, glb), "glb", len(glb))
    assert threads == [] and not pending.done and lib.lookup(T1) is None  # the import runs meanwhile
    pending.start()
    pending.start()  # twice is once
    entry = pending.wait()
    assert threads == ["triverse-keep"] and pending.done
    assert lib.lookup(T1) == entry
