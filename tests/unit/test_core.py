"""The one path from a task UUID to a local model file, and its worker and batch forms (obtain.py, settings.py)."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import zip_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from standin_server import StandinServer
from triverse_addon.service import errors, obtain
from triverse_addon.service import settings as config
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.import_batch import obtain_many
from triverse_addon.service.jobs import Job
from triverse_addon.service.library import Library
from triverse_addon.service.obtain import obtain_asset
from triverse_addon.service.settings import Settings
from triverse_addon.service.task_ids import parse_task_uuid

TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"
GLTF = json.dumps({"asset": {"version": "2.0"}, "buffers": [{"uri": "model.bin", "byteLength": 8}]}).encode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every temporary folder the code makes lands here, so a test can see what is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_jobs_left() -> Iterator[None]:
    """Jobs are registered on the class: none may leak from one test into the next."""
    yield
    Job.cancel_all(join_seconds=3)
    with Job._active_lock:
        Job._active.clear()


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    return Library(tmp_path / "lib")


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def downloads(server: StandinServer, task: str = TASK) -> list[object]:
    return server.requests_for(f"/tasks/download/{task}")


def poll_until_finished(job: Job, timeout: float = 10.0) -> float:
    """Poll the way the sidebar's timer does; return the seconds it took."""
    started = time.monotonic()
    while not job.poll():
        assert time.monotonic() - started < timeout, f"job still {job.phase} after {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


# -- task UUIDs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        TASK,
        "  92483A80-236C-4889-9A95-4C90BB64DFD8\n",
        "\t92483a80-236c-4889-\n9a95-4c90bb64dfd8 \r\n",
        "{92483a80-236c-4889-9a95-4c90bb64dfd8}",
        "urn:uuid:92483a80-236c-4889-9a95-4c90bb64dfd8",
        "URN:UUID:92483A80-236C-4889-9A95-4C90BB64DFD8",
        "92483a80236c48899a954c90bb64dfd8",
    ],
)
def test_parse_task_uuid_accepts_what_people_paste(text: str) -> None:
    assert parse_task_uuid(text) == TASK


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "92483a80-236c-4889-9a95-4c90bb64dfd",
        "92483a80-236c-4889-9a95-4c90bb64dfd8x",
        "g2483a80-236c-4889-9a95-4c90bb64dfd8",
        "../../etc/passwd",
        "https://app.triverse.ai/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8x",
        "https://app.triverse.ai/tasks/x92483a80-236c-4889-9a95-4c90bb64dfd8",
        "https://app.triverse.ai/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8-1",
    ],
)
def test_parse_task_uuid_rejects_junk_with_a_clear_message(text: str) -> None:
    with pytest.raises(errors.InvalidTaskId) as info:
        parse_task_uuid(text)
    message = str(info.value)
    assert "is not a Triverse task UUID" in message and "92483a80-236c-4889-9a95-4c90bb64dfd8" in message
    assert "\n" not in message and len(message) < 250


@pytest.mark.parametrize(
    "text",
    [
        "https://app.triverse.ai/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8?tab=x",
        "https://app.triverse.ai/tasks/92483A80-236C-4889-9A95-4C90BB64DFD8",
        " app.triverse.ai/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8/\n",
        "Task 92483a80-236c-4889-9a95-4c90bb64dfd8 succeeded",
        "/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8#92483A80-236C-4889-9A95-4C90BB64DFD8",  # one task, twice
    ],
)
def test_parse_task_uuid_accepts_a_pasted_task_url(text: str) -> None:
    assert parse_task_uuid(text) == TASK


@pytest.mark.parametrize(
    "text",
    [
        "92483a80-236c-4889-9a95-4c90bb64dfd8\n0f8fad5b-d9cb-469f-a165-70867728950e",
        "https://app.triverse.ai/tasks/92483a80-236c-4889-9a95-4c90bb64dfd8?from=0f8fad5b-d9cb-469f-a165-70867728950e",
    ],
)
def test_parse_task_uuid_refuses_two_different_uuids(text: str) -> None:
    with pytest.raises(errors.InvalidTaskId) as info:
        parse_task_uuid(text)
    message = str(info.value)
    assert "2 different task UUIDs" in message and "92483a80" in message and "0f8fad5b" in message, message
    assert "paste only the one" in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_parse_task_uuid_of_nothing(text: str) -> None:
    with pytest.raises(errors.InvalidTaskId) as info:
        parse_task_uuid(text)
    assert str(info.value).startswith("No task UUID was given")


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.one_of(st.text(max_size=80), st.uuids().map(lambda u: f" {str(u).upper()}\n")))
def test_parse_task_uuid_is_canonical_or_refuses(text: str) -> None:
    try:
        result = parse_task_uuid(text)
    except errors.InvalidTaskId as exc:
        assert "\n" not in str(exc)
        return
    assert result == str(uuid.UUID(result))  # lower case, hyphenated: safe as a folder name


# -- settings and readiness ------------------------------------------------------------------------


def test_resolve_prefers_preferences_then_environment_then_defaults() -> None:
    env = {config.ENV_API_KEY: " env-key ", config.ENV_API_URL: "http://env.example/api/v1/"}
    s = config.resolve(api_key=" pref-key ", base_url="", env=env)
    assert (s.api_key, s.key_source) == ("pref-key", "preferences")
    assert (s.base_url, s.url_source) == ("http://env.example/api/v1", "environment")
    s = config.resolve(env=env)
    assert (s.api_key, s.key_source) == ("env-key", "environment")
    s = config.resolve(env={})
    assert (s.api_key, s.key_source, s.base_url, s.url_source) == ("", "", config.DEFAULT_BASE_URL, "default")
    assert config.resolve(base_url="http://x/api/v1", env={}, read_timeout=3.0).read_timeout == 3.0


def test_the_key_is_not_in_the_settings_repr() -> None:
    s = config.resolve(api_key="sk-secret-value-123", env={})
    assert "sk-secret-value-123" not in repr(s)


def test_no_key_is_missing_api_key_and_sends_nothing(
    server: StandinServer, make_settings: Callable[..., Settings], lib: Library
) -> None:
    with TriverseClient(make_settings(api_key="")) as c, pytest.raises(errors.MissingApiKey) as info:
        obtain_asset(c, TASK, lib, wait=5)
    assert "Preferences" in str(info.value) and "TRIVERSE_API_KEY" in str(info.value)
    assert server.requests == []


def test_online_access_off_is_refused_and_sends_nothing(
    server: StandinServer, settings: Settings, lib: Library
) -> None:
    with TriverseClient(settings, online_access=False) as c, pytest.raises(errors.OnlineAccessDisabled) as info:
        obtain_asset(c, TASK, lib)
    assert "Allow Online Access" in str(info.value)
    assert server.requests == []


def test_check_ready_directly() -> None:
    with pytest.raises(errors.MissingApiKey):
        config.check_ready(Settings(api_key=""), online_access=True)
    with pytest.raises(errors.MissingApiKey):  # the key is asked for first
        config.check_ready(Settings(api_key=""), online_access=False)
    with pytest.raises(errors.OnlineAccessDisabled):
        config.check_ready(Settings(api_key="k"), online_access=False)
    config.check_ready(Settings(api_key="k"), online_access=True)


def test_a_kept_model_imports_offline(server: StandinServer, settings: Settings, lib: Library, glb: bytes) -> None:
    with TriverseClient(settings) as c:
        kept(obtain_asset(c, TASK, lib))
    seen = len(server.requests)
    with TriverseClient(settings, online_access=False) as c:
        asset = obtain_asset(c, TASK, lib)
    assert asset.from_library and asset.path.read_bytes() == glb
    assert len(server.requests) == seen


# -- obtain_asset ----------------------------------------------------------------------------------


def kept(asset: obtain.Asset) -> obtain.Asset:
    """What a door does once the model is imported: clean up, and (here) wait for the library's record."""
    asset.cleanup()
    asset.wait_kept(10)
    return asset


def test_obtain_downloads_detects_and_keeps(
    server: StandinServer, client: TriverseClient, lib: Library, glb: bytes, tmp_path: Path, temp_dir: Path
) -> None:
    asset = obtain_asset(client, TASK, lib)
    assert asset.path == tmp_path / "lib" / TASK / "asset.glb"
    assert asset.path.read_bytes() == glb
    assert (asset.format, asset.size, asset.from_library) == ("glb", len(glb), False)
    assert asset.filename == f"{TASK}.glb"
    assert files_under(tmp_path / "lib") == [f"{TASK}/asset.glb"]  # recorded once imported and hashed
    kept(asset)
    assert files_under(tmp_path / "lib") == [f"{TASK}/asset.glb", f"{TASK}/meta.json"]
    assert lib.lookup(TASK).sha256 == hashlib.sha256(glb).hexdigest()
    assert asset.path.exists()  # cleanup never removes the library's copy
    assert files_under(temp_dir) == []
    assert len(downloads(server)) == 1


def test_a_second_obtain_comes_from_the_library_without_a_request(
    server: StandinServer, client: TriverseClient, lib: Library, glb: bytes
) -> None:
    first = kept(obtain_asset(client, TASK, lib))
    seen = list(server.requests)
    second = obtain_asset(client, TASK, lib)
    assert server.requests == seen
    assert second.from_library and second.path == first.path and second.sha256 == hashlib.sha256(glb).hexdigest()
    assert second.filename == first.filename


def test_a_damaged_library_copy_is_downloaded_again(
    server: StandinServer, client: TriverseClient, lib: Library, glb: bytes
) -> None:
    kept = obtain_asset(client, TASK, lib).path
    data = bytearray(kept.read_bytes())
    data[-5] ^= 0xFF
    kept.write_bytes(data)
    again = obtain_asset(client, TASK, lib)
    assert not again.from_library
    assert again.path.read_bytes() == glb
    assert len(downloads(server)) == 2


def test_without_a_library_the_model_is_in_a_temp_folder_that_cleanup_removes(
    server: StandinServer, client: TriverseClient, glb: bytes, temp_dir: Path
) -> None:
    asset = obtain_asset(client, TASK)
    assert asset.path.read_bytes() == glb and asset.format == "glb"
    assert asset.workdir is not None and asset.path.is_relative_to(asset.workdir)
    assert asset.workdir.parent == temp_dir
    assert files_under(temp_dir) == [f"{asset.workdir.name}/{TASK}.glb"]
    asset.cleanup()
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("mode", "words"),
    [("html", "a web page (HTML)"), ("json", 'a JSON message ("something")'), ("garbage", "unrecognised data")],
)
@pytest.mark.parametrize("keep", [True, False], ids=["library", "no-library"])
def test_a_non_model_is_refused_and_nothing_is_left(
    server: StandinServer,
    client: TriverseClient,
    tmp_path: Path,
    temp_dir: Path,
    mode: str,
    words: str,
    keep: bool,
) -> None:
    library = Library(tmp_path / "lib") if keep else None
    server.fail(mode, TASK)
    with pytest.raises(errors.NotAModel) as info:
        obtain_asset(client, TASK, library)
    assert words in str(info.value) and "nothing was imported" in str(info.value)
    assert list(temp_dir.iterdir()) == []
    if library is not None:
        assert files_under(tmp_path / "lib") == []
        assert not (tmp_path / "lib" / TASK).exists()


def test_a_failed_download_leaves_nothing(
    server: StandinServer, client: TriverseClient, lib: Library, tmp_path: Path, temp_dir: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    server.fail("truncated", TASK)
    with pytest.raises(errors.IncompleteDownload):
        obtain_asset(client, TASK, lib)
    assert files_under(tmp_path / "lib") == [] and list(temp_dir.iterdir()) == []


def test_a_zip_is_kept_and_unpacked_to_a_temp_folder(
    server: StandinServer, client: TriverseClient, lib: Library, tmp_path: Path, temp_dir: Path
) -> None:
    entries = {"model.gltf": GLTF, "model.bin": b"\x00" * 8, "textures/color.png": PNG}
    server.add(TASK, zip_bytes(entries), ext="zip")
    asset = obtain_asset(client, TASK, lib)
    assert asset.format == "gltf" and asset.path.name == "model.gltf"
    assert asset.workdir is not None and asset.workdir.parent == temp_dir
    assert asset.path.is_relative_to(asset.workdir)
    assert (asset.path.parent / "model.bin").exists() and (asset.path.parent / "textures" / "color.png").exists()
    assert asset.path.read_bytes() == GLTF
    kept(asset)
    assert files_under(tmp_path / "lib") == [f"{TASK}/asset.zip", f"{TASK}/meta.json"]
    assert list(temp_dir.iterdir()) == []
    # From the library: unpacked again, into a new temporary folder, with no request.
    seen = len(server.requests)
    again = obtain_asset(client, TASK, lib)
    assert again.from_library and again.path.name == "model.gltf" and again.path.read_bytes() == GLTF
    assert len(server.requests) == seen
    again.cleanup()
    assert list(temp_dir.iterdir()) == []


def test_a_zip_without_a_model_is_not_kept(
    server: StandinServer, client: TriverseClient, lib: Library, tmp_path: Path, temp_dir: Path
) -> None:
    server.add(TASK, zip_bytes({"readme.txt": b"hi", "preview.png": PNG}), ext="zip")
    with pytest.raises(errors.UnsupportedFormat) as info:
        obtain_asset(client, TASK, lib)
    assert "png" in str(info.value) and "txt" in str(info.value)
    assert files_under(tmp_path / "lib") == [] and list(temp_dir.iterdir()) == []


def test_an_unsafe_zip_is_not_kept_and_writes_nothing_outside(
    server: StandinServer, client: TriverseClient, lib: Library, tmp_path: Path, temp_dir: Path
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.gltf", GLTF)
        zf.writestr(zipfile.ZipInfo("../../../escaped.txt"), b"evil")
    server.add(TASK, buf.getvalue(), ext="zip")
    with pytest.raises(errors.UnsafeArchive):
        obtain_asset(client, TASK, lib)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert files_under(tmp_path / "lib") == [] and list(temp_dir.iterdir()) == []


# -- waiting for the task --------------------------------------------------------------------------


def test_wait_until_the_task_succeeds(server: StandinServer, client: TriverseClient, lib: Library, glb: bytes) -> None:
    server.set_status(TASK, "RUNNING", progress=30)
    timer = threading.Timer(1.0, server.set_status, args=(TASK, "SUCCESS"))
    timer.start()
    seen: list[str] = []
    try:
        asset = obtain_asset(client, TASK, lib, wait=10, on_status=lambda s: seen.append(s.describe()))
    finally:
        timer.cancel()
    assert asset.path.read_bytes() == glb
    assert seen[0] == "RUNNING, 30%" and seen[-1] == "SUCCESS, 100%"
    assert len(downloads(server)) == 1  # no download was tried before SUCCESS


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_a_task_that_ended_badly_is_task_failed_at_once(
    server: StandinServer, client: TriverseClient, status: str
) -> None:
    server.set_status(TASK, status, progress=100, error={"code": 2008, "message": "Content violation"})
    started = time.monotonic()
    with pytest.raises(errors.TaskFailed) as info:
        obtain_asset(client, TASK, wait=30)
    assert time.monotonic() - started < 2
    assert status in str(info.value) and "Content violation" in str(info.value)
    assert downloads(server) == []


def test_waiting_too_long_is_task_not_ready(server: StandinServer, client: TriverseClient) -> None:
    server.set_status(TASK, "QUEUED", progress=0)
    started = time.monotonic()
    with pytest.raises(errors.TaskNotReady) as info:
        obtain_asset(client, TASK, wait=1)
    assert time.monotonic() - started < 4
    assert "still QUEUED" in str(info.value) and "1 s" in str(info.value)
    assert info.value.status == "QUEUED"
    assert downloads(server) == []


def test_without_waiting_an_unfinished_task_is_task_not_ready(server: StandinServer, client: TriverseClient) -> None:
    server.set_status(TASK, "RUNNING", progress=55)
    with pytest.raises(errors.TaskNotReady) as info:
        obtain_asset(client, TASK, on_status=lambda s: None)
    assert "RUNNING, 55%" in str(info.value)


def test_cancel_while_waiting(server: StandinServer, client: TriverseClient) -> None:
    server.set_status(TASK, "RUNNING")
    threading.Timer(0.3, client.abort).start()
    started = time.monotonic()
    with pytest.raises(errors.Cancelled):
        obtain_asset(client, TASK, wait=30)
    assert time.monotonic() - started < 1.5


# -- the sidebar's Job -----------------------------------------------------------------------------


def test_job_runs_and_hands_over_the_result(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb, preview=PNG)
    job = Job.start(make_settings(library_dir=str(tmp_path / "lib")), TASK)
    assert Job.get(TASK) is job and job in Job.active()
    poll_until_finished(job)
    assert job.error is None and job.phase == "done"
    assert job.result is not None and job.result.path.read_bytes() == big_glb
    assert job.received == job.total == len(big_glb)
    assert job.status is None  # not waiting: no status request before the model
    assert job.library_warning == ""
    job.finish()
    job.join(5)
    assert Job.get(TASK) is None


def wait_for_preview(job: Job, timeout: float = 10.0) -> Path:
    deadline = time.monotonic() + timeout
    while job.preview is None:
        assert not job.poll() or job.preview is not None, f"job ended without a preview: {job.error!r}"
        assert time.monotonic() < deadline, "no preview arrived"
        time.sleep(0.02)
    return job.preview


def test_the_preview_is_private_and_removed_with_the_job(
    server: StandinServer, settings: Settings, big_glb: bytes, temp_dir: Path
) -> None:
    server.add(TASK, big_glb, preview=PNG)
    server.fail("stall", TASK, seconds=10, after_bytes=100_000)
    job = Job.start(settings, TASK)
    preview = wait_for_preview(job)
    assert preview.read_bytes() == PNG
    folder = preview.parent
    assert folder.parent == temp_dir and folder.name.startswith("triverse-preview-")  # a fresh folder per job
    assert folder.stat().st_mode & 0o777 == 0o700, oct(folder.stat().st_mode)  # the user's alone
    job.cancel()
    poll_until_finished(job)
    job.finish()
    job.join(5)
    assert not folder.exists(), "the preview stayed after its job ended"
    assert list(temp_dir.iterdir()) == []


def test_the_model_download_starts_before_the_preview_is_asked_for(
    server: StandinServer, settings: Settings, big_glb: bytes
) -> None:
    server.add(TASK, big_glb, preview=PNG)
    server.fail("first_byte_delay", TASK, on="url", seconds=5)  # a slow preview link must not hold the model
    job = Job.start(settings, TASK)
    poll_until_finished(job)
    assert job.phase == "done" and job.result is not None and job.result.path.read_bytes() == big_glb
    paths = [r.path.split("?")[0] for r in server.requests]
    assert paths[0].endswith(f"/tasks/download/{TASK}"), paths  # the model first
    assert f"/api/v1/tasks/url/{TASK}" in paths, paths  # then the preview, beside it
    assert job.preview is None  # the model was in before the slow preview link answered
    job.result.cleanup()
    job.finish()
    job.join(2)  # well before the preview host's 5 s: a picture never holds the job (nor a new import)
    assert not job.alive  # the slow preview was abandoned once the model was in
    assert Job.get(TASK) is None


def test_a_finished_task_shows_starting_not_its_status(server: StandinServer, settings: Settings) -> None:
    server.fail("first_byte_delay", TASK, seconds=1.0)
    job = Job.start(settings, TASK, wait=30)  # waiting asks the status first: SUCCESS at once
    deadline = time.monotonic() + 5
    while job.status is None:
        assert not job.poll() and time.monotonic() < deadline
        time.sleep(0.02)
    assert job.status.status == "SUCCESS"
    assert job.phase == "starting", "a finished task whose download has not begun is not being waited for"
    poll_until_finished(job)
    assert job.phase == "done"


def test_a_job_cancelled_while_its_worker_still_runs_stays_registered(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path, glb: bytes
) -> None:
    settings = make_settings(library_dir=str(tmp_path / "lib"))
    server.fail("first_byte_delay", TASK, times=1, seconds=2.0)  # the worker blocks where abort cannot wake it
    job = Job.start(settings, TASK)
    deadline = time.monotonic() + 5
    while not downloads(server):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.cancel()
    poll_until_finished(job, timeout=5)  # declared cancelled after the grace period...
    assert isinstance(job.error, errors.Cancelled)
    job.finish()
    assert job.alive  # ...while its worker still waits for the server
    assert Job.get(TASK) is job and Job.active() == []  # not shown, but still registered
    with pytest.raises(errors.AlreadyRunning, match="still stopping"):
        Job.start(settings, TASK)  # a second writer for the same library entry is refused
    with pytest.raises(errors.AlreadyRunning, match="still stopping"):
        Job.refuse_if_busy(TASK)  # (the synchronous operator asks this)
    job.join(10)
    assert not job.alive and Job.get(TASK) is None  # it leaves once the worker has ended
    again = Job.start(settings, TASK)
    poll_until_finished(again)
    assert again.result is not None and again.result.path.read_bytes() == glb
    again.result.cleanup()
    again.finish()
    assert len(downloads(server)) == 2 and not list((tmp_path / "lib" / ".incoming").glob("*"))


def test_a_job_runs_injected_work_under_its_own_key(server: StandinServer, settings: Settings, glb: bytes) -> None:
    """A job that learns its task late (a generation creates it first) runs the same machinery."""
    other = "0f8fad5b-d9cb-469f-a165-70867728950e"
    server.add(other, glb)
    gate = threading.Event()
    busy = Job.start(settings, other, work=lambda job: (gate.wait(5), obtain_asset(job.client, other))[1])
    seen: list[str] = []

    def create_then_obtain(job: Job) -> obtain.Asset:
        job.claim_task(TASK)
        seen.append(job.task_uuid)
        try:
            job.claim_task(other)
        except errors.AlreadyRunning as exc:
            seen.append(str(exc))
        asset = obtain_asset(job.client, TASK, progress=job.report_progress)
        return asset

    job = Job.start(settings, key="generate-1", work=create_then_obtain)
    assert Job.get("generate-1") is job
    poll_until_finished(job)
    assert seen[0] == TASK and "already being imported" in seen[1]
    assert job.phase == "done" and job.result is not None and job.result.path.read_bytes() == glb
    assert job.received == job.total == len(glb)
    assert Job.get(TASK) is job  # found by the task it claimed
    with pytest.raises(errors.AlreadyRunning):
        Job.start(settings, TASK)
    job.result.cleanup()
    job.finish()
    gate.set()
    poll_until_finished(busy)
    busy.result.cleanup()  # type: ignore[union-attr]
    busy.finish()


def test_the_same_task_twice_is_already_running(server: StandinServer, settings: Settings, big_glb: bytes) -> None:
    server.add(TASK, big_glb)
    server.fail("stall", TASK, seconds=10)
    job = Job.start(settings, TASK)
    with pytest.raises(errors.AlreadyRunning) as info:
        Job.start(settings, TASK)
    assert TASK[:8] in str(info.value)
    job.cancel()
    poll_until_finished(job)
    job.finish()
    Job.start(settings, TASK).cancel()  # once finished, the task can be started again


def test_cancel_during_a_stall_finishes_at_once_and_removes_the_partial(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path, temp_dir: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    server.fail("stall", TASK, seconds=10, after_bytes=1_500_000)
    job = Job.start(make_settings(library_dir=str(tmp_path / "lib")), TASK)
    incoming = tmp_path / "lib" / ".incoming"
    deadline = time.monotonic() + 5
    # Bytes are on disk: the worker is mid-body, blocked in the stall.
    while not (incoming.is_dir() and any(p.stat().st_size > 0 for p in incoming.glob("*.part"))):
        assert not job.poll(), job.error
        assert time.monotonic() < deadline, "no bytes arrived"
        time.sleep(0.02)
    time.sleep(0.2)
    assert [p.suffix for p in incoming.iterdir()] == [".part"]
    job.cancel()
    assert poll_until_finished(job, timeout=5) < 1.5
    assert isinstance(job.error, errors.Cancelled) and job.phase == "cancelled" and job.result is None
    job._thread.join(3)
    assert not job.alive
    assert list(incoming.iterdir()) == []
    assert not (tmp_path / "lib" / TASK).exists()
    assert list(temp_dir.iterdir()) == []


def test_cancel_before_the_first_byte_is_reported_at_once(server: StandinServer, settings: Settings) -> None:
    server.fail("first_byte_delay", TASK, seconds=5)
    job = Job.start(settings, TASK)
    deadline = time.monotonic() + 5
    while not downloads(server):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.cancel()
    assert poll_until_finished(job, timeout=5) < 1.5
    assert isinstance(job.error, errors.Cancelled)


def test_a_job_reports_a_failure(server: StandinServer, settings: Settings) -> None:
    server.fail("forbidden", TASK)
    job = Job.start(settings, TASK)
    poll_until_finished(job)
    assert isinstance(job.error, errors.AccessDenied) and job.phase == "failed"
    assert "credits" in errors.describe(job.error)


def test_a_job_with_online_access_off_sends_nothing(server: StandinServer, settings: Settings) -> None:
    job = Job.start(settings, TASK, online_access=False)
    poll_until_finished(job)
    assert isinstance(job.error, errors.OnlineAccessDisabled)
    assert server.requests == []


def test_an_unwritable_library_falls_back_to_a_temp_folder_with_a_warning(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path, glb: bytes
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    job = Job.start(make_settings(library_dir=str(blocker / "library")), TASK)
    poll_until_finished(job)
    assert job.result is not None and job.result.path.read_bytes() == glb
    assert "not writable" in job.library_warning and "temporary folder" in job.library_warning
    job.result.cleanup()


# -- the batch: many tasks at once -----------------------------------------------------------------


@pytest.fixture
def eight(server: StandinServer, glb_factory: Callable[..., bytes]) -> list[str]:
    tasks = [str(uuid.UUID(int=i + 1, version=4)) for i in range(8)]
    for i, task in enumerate(tasks):
        server.add(task, glb_factory(bin_size=1000 + i, seed=i))
    return tasks


def test_obtain_many_overlaps_and_keeps_the_order(
    server: StandinServer, settings: Settings, eight: list[str], temp_dir: Path
) -> None:
    server.fail("first_byte_delay", seconds=0.3)
    results = list(obtain_many(settings, eight, jobs=4))
    assert [task for task, _, _ in results] == eight
    assets = [outcome for _, outcome, _ in results]
    assert all(isinstance(a, obtain.Asset) for a in assets), assets
    assert [a.task_uuid for a in assets] == eight  # type: ignore[union-attr]
    assert len({a.sha256 for a in assets}) == 8  # type: ignore[union-attr]
    arrivals = sorted(r.time for r in server.requests_for("/tasks/download/"))
    assert len(arrivals) == 8
    assert any(b - a < 0.1 for a, b in pairwise(arrivals)), arrivals
    for a in assets:
        a.cleanup()  # type: ignore[union-attr]
    assert list(temp_dir.iterdir()) == []


def test_obtain_many_with_one_job_is_sequential(server: StandinServer, settings: Settings, eight: list[str]) -> None:
    server.fail("first_byte_delay", seconds=0.3)
    results = list(obtain_many(settings, eight[:3], jobs=1))
    assert [task for task, _, _ in results] == eight[:3]
    arrivals = sorted(r.time for r in server.requests_for("/tasks/download/"))
    assert all(b - a >= 0.25 for a, b in pairwise(arrivals)), arrivals
    for _, asset, _ in results:
        asset.cleanup()  # type: ignore[union-attr]


def test_one_failing_task_does_not_stop_the_others(
    server: StandinServer, settings: Settings, eight: list[str], tmp_path: Path
) -> None:
    unknown = "0f8fad5b-d9cb-469f-a165-70867728950e"
    server.fail("server_error", eight[2])
    server.fail("html", eight[5])
    library = Library(tmp_path / "lib")
    tasks = [*eight[:4], unknown, *eight[4:]]
    results = list(obtain_many(settings, tasks, jobs=4, library=library))
    assert [task for task, _, _ in results] == tasks
    by_task = {task: outcome for task, outcome, _ in results}
    assert isinstance(by_task[eight[2]], errors.ServerError)
    assert isinstance(by_task[eight[5]], errors.NotAModel)
    assert isinstance(by_task[unknown], errors.TaskNotFound)
    good = [t for t in tasks if t not in (eight[2], eight[5], unknown)]
    assert all(isinstance(by_task[t], obtain.Asset) and by_task[t].path.is_file() for t in good)  # type: ignore[union-attr]
    for t in good:
        kept(by_task[t])  # type: ignore[arg-type]
    assert sorted(e.task_uuid for e in library.entries()) == sorted(good)
    assert all(seconds >= 0 for _, _, seconds in results)


def test_closing_the_batch_early_cancels_the_rest_and_cleans_up(
    server: StandinServer, settings: Settings, eight: list[str], temp_dir: Path
) -> None:
    server.fail("first_byte_delay", seconds=0.3)
    gen = obtain_many(settings, eight, jobs=2)
    task, first, _ = next(gen)
    assert task == eight[0] and isinstance(first, obtain.Asset)
    started = time.monotonic()
    gen.close()
    assert time.monotonic() - started < 3
    assert len(server.requests_for("/tasks/download/")) < 8  # the queued ones never started
    first.cleanup()
    assert list(temp_dir.iterdir()) == []
