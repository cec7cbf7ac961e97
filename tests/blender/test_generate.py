"""Generate from Blender: `bpy.ops.triverse.generate` end to end against the stand-in, in real Blender.

Each test asserts what a user would notice: the objects and the collection in the scene, the message
read, the requests the service saw (one task per press, no polling while a watch pushes), the files
left on disk (none after a failure), and My Generations in the extension's user folder.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import addon_utils
import bpy
import pytest
from conftest import MODULE, addon_prefs, scene_counts, temp_dirs

PROMPT = "a small red wooden chair"


def _mod(name: str):
    return importlib.import_module(f"{MODULE}.{name}")


@pytest.fixture()
def gen(standin, sample_glb):
    """The stand-in's generation side, fast and predictable: every task ends in about 0.3 s with the sample."""
    g = standin.gen
    g.generated_asset = sample_glb
    g.timeline_step = 0.05
    g.balance = 1000.0
    g.repeat_answer = "original"
    g.upload_limit = (1000, 60.0)
    g._uploads.clear()
    g._plans.clear()
    g.created.clear()
    g.orders.clear()
    standin.record_watch = True  # the watch's handshake is in `requests` too
    yield g
    g._plans.clear()
    standin.record_watch = False


def _png(path: Path, name: str = "chair") -> Path:
    """A real PNG written by Blender."""
    image = bpy.data.images.new(name, 8, 8)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


def _posts(standin, fragment: str):
    return [r for r in standin.requests if r.method == "POST" and fragment in r.path]


def _status_gets(standin, task: str):
    return [r for r in standin.requests if r.method == "GET" and r.path.split("?")[0].endswith(f"/tasks/{task}")]


def _root(task: str) -> bpy.types.Object:
    objects = [ob for ob in bpy.data.objects if ob.get("triverse_task_uuid") == task]
    roots = [ob for ob in objects if ob.parent not in objects]
    assert objects and len(roots) == 1, f"expected one imported root for {task}, got {[o.name for o in objects]}"
    return roots[0]


def _store_records() -> dict:
    path = _mod("blender.common.stores").generations().path
    return {r["task_uuid"]: r for r in json.loads(Path(path).read_text())["generations"]}


# -- success ---------------------------------------------------------------------------------------


def test_text_prompt_is_generated_watched_live_and_imported(gen, standin):
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}

    assert len(gen.created) == 1
    task = gen.created[0]
    root = _root(task)
    assert root["triverse_prompt"] == PROMPT
    assert root["triverse_task_uuid"] == task
    collection = root.users_collection[0]
    assert collection.name == f"a small red wooden chair {task[:8]}"
    assert len(collection.all_objects) == 2  # the sample: a textured cube under an empty
    assert len(_posts(standin, "/tasks/text-to-model")) == 1
    # Pushed, not polled: the watch opened once and the status was asked once, after it opened.
    assert len(standin.requests_for(f"/tasks/watch/{task}")) == 1
    assert len(_status_gets(standin, task)) == 1
    record = _store_records()[task]
    assert record["status"] == "SUCCESS" and record["prompt"] == PROMPT and record["cost_credits"] == 40
    assert record["imported"] is True and record["order_id"].startswith("blender-")


def test_image_from_a_file_is_uploaded_and_named_after_the_image(gen, standin, tmp_path):
    image = _png(tmp_path / "garden chair.png")

    assert bpy.ops.triverse.generate(image_path=str(image)) == {"FINISHED"}

    task = gen.created[0]
    assert len(_posts(standin, "/upload/image")) == 1
    assert len(_posts(standin, "/tasks/image-to-model")) == 1
    assert gen.orders  # created with an order id
    assert _root(task).users_collection[0].name == f"garden chair.png {task[:8]}"
    assert _store_records()[task]["image_name"] == "garden chair.png"


def test_mesh_only_uses_the_mesh_flow(gen, standin):
    assert bpy.ops.triverse.generate(prompt="a stone bench", mesh_only=True, texture_size=4096) == {"FINISHED"}

    assert len(_posts(standin, "/tasks/text-to-mesh")) == 1 and not _posts(standin, "/tasks/text-to-model")
    task = gen.created[0]
    assert _root(task)["triverse_prompt"] == "a stone bench"
    assert _store_records()[task]["cost_credits"] == 20  # the mesh flow's price: texture size ignored


def test_without_waiting_it_reports_the_uuid_and_creates_exactly_one_task(gen, standin, capfd):
    gen.script_next(hold=True)
    before = scene_counts()

    assert bpy.ops.triverse.generate(prompt=PROMPT, wait=False) == {"FINISHED"}

    assert len(gen.created) == 1
    task = gen.created[0]
    out = capfd.readouterr()
    assert f"Created Triverse task {task}" in out.out + out.err
    assert scene_counts() == before
    assert not standin.requests_for("/tasks/watch/")
    assert _store_records()[task]["status"] in ("QUEUED", "PENDING")
    gen.release(task)


def test_a_long_prompt_gives_a_short_safe_collection_name(gen):
    prompt = "A\ttall\nlamp " + "with a very long description " * 4
    assert bpy.ops.triverse.generate(prompt=prompt) == {"FINISHED"}
    task = gen.created[0]
    name = _root(task).users_collection[0].name
    assert name == f"A tall lamp with a very… {task[:8]}"  # control characters gone, cut at 24 characters
    assert _root(task)["triverse_prompt"] == prompt


# -- failures (issue 10, section 3) -----------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _fails_cleanly(match: str, **props) -> str:
    """Generate, expect a RuntimeError matching `match`; the scene, the library and temp folders unchanged."""
    bpy.ops.mesh.primitive_cube_add()
    before = scene_counts()
    temp_before = temp_dirs()
    library = Path(addon_prefs().library_dir)
    kept_before = _files(library)
    with pytest.raises(RuntimeError, match=match) as info:
        bpy.ops.triverse.generate(**props)
    message = str(info.value)
    assert "Traceback" not in message and message.count("\n") <= 1, message
    assert scene_counts() == before, "the scene changed after a failure"
    assert temp_dirs() - temp_before == set(), "temporary folders left behind"
    assert _files(library) == kept_before, "files left in the library"
    return message


def test_insufficient_credits_says_the_cost_and_the_balance(gen, standin):
    gen.balance = 25.0
    message = _fails_cleanly("insufficient credits", prompt=PROMPT)
    assert "40" in message and "25" in message
    assert gen.created == []


def test_refused_prompt_says_which_input(gen):
    _fails_cleanly("refused the prompt", prompt="a refuse-me statue")
    assert gen.created == []


def test_refused_image_says_which_input(gen, tmp_path):
    image = _png(tmp_path / "bad.png")
    image.write_bytes(image.read_bytes() + b"REFUSE-ME")
    _fails_cleanly("refused the input image", image_path=str(image))
    assert gen.created == []


def test_rate_limited_creation_honours_retry_after_and_creates_one_task(gen, standin):
    standin.fail("rate_limited", on="create", times=1, retry_after=1)
    started = time.monotonic()
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
    assert time.monotonic() - started >= 0.9  # the service's Retry-After was waited
    assert len(_posts(standin, "/tasks/text-to-model")) == 2
    assert len(gen.created) == 1


def test_queue_full_still_so_after_retrying_is_one_sentence(gen, standin):
    standin.fail("rate_limited", on="create", retry_after=0)
    _fails_cleanly("busy", prompt=PROMPT)
    # Every retry carried the same order id: at most one task (the stand-in processes, then answers 429).
    assert len(gen.created) <= 1 and len(_posts(standin, "/tasks/text-to-model")) == 4


def test_invalid_parameters_are_refused_before_any_request(gen, standin):
    _fails_cleanly("at least 3 characters", prompt="ab")
    _fails_cleanly("texture size must be 1024, 2048 or 4096", prompt=PROMPT, texture_size=3000)
    _fails_cleanly("polygon limit must be between", prompt=PROMPT, polygon_limit=500)  # said, not clamped
    assert standin.requests == []


def test_invalid_parameters_from_the_service(gen, standin, monkeypatch):
    import standin_generation

    monkeypatch.setattr(standin_generation, "POLYGONS", (1_000, 500_000))  # the service's rule differs from ours
    _fails_cleanly("rejected the parameters.*polygon_limit", prompt=PROMPT, polygon_limit=800_000)
    assert gen.created == []


def test_unsupported_image_is_caught_before_upload(gen, standin, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not an image")
    _fails_cleanly("not a PNG, JPEG or WebP", image_path=str(fake))
    assert standin.requests == []  # no upload, nothing at all


def test_creation_answered_5xx_then_retried_makes_one_task(gen, standin):
    standin.fail("server_error", on="create", times=1)
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
    posts = _posts(standin, "/tasks/text-to-model")
    assert len(posts) == 2
    assert len(gen.created) == 1
    assert len(gen.orders) == 1  # both attempts carried the same order id


def test_creation_whose_answer_was_lost_is_retried_with_the_same_order_id(gen, standin):
    standin.fail("reset", on="create", times=1)  # created on the service, the answer lost
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
    assert len(_posts(standin, "/tasks/text-to-model")) == 2
    assert len(gen.created) == 1, "a retry without the same order id created (and charged) a second task"


@pytest.mark.parametrize("mode", ["refused", "drop", "silent"])
def test_watch_refused_dropped_or_silent_still_imports(gen, standin, mode, monkeypatch):
    if mode == "silent":
        monkeypatch.setattr(_mod("service.watch"), "SILENCE_SECONDS", 0.5)
    standin.fail(mode, on="watch")
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
    task = gen.created[0]
    assert _root(task)["triverse_prompt"] == PROMPT
    assert len(_status_gets(standin, task)) >= 2  # the fallback polled


def test_a_failed_task_says_why_and_leaves_nothing(gen, standin):
    gen.script_next("FAILED", error="The model could not be reconstructed")
    message = _fails_cleanly("ended FAILED: The model could not be reconstructed", prompt=PROMPT)
    task = gen.created[0]
    assert task[:8] in message
    assert not standin.requests_for(f"/tasks/download/{task}")
    record = _store_records()[task]
    assert record["status"] == "FAILED" and "reconstructed" in record["error"]


def test_the_key_rejected(gen, standin):
    addon_prefs().api_key = "wrong-key"
    _fails_cleanly("rejected the API key", prompt=PROMPT)
    assert gen.created == []


def test_online_access_off_sends_nothing(gen, standin):
    bpy.context.preferences.system.use_online_access = False
    try:
        _fails_cleanly("online access is off", prompt=PROMPT)
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert standin.requests == []


def test_no_key_sends_nothing(gen, standin):
    addon_prefs().api_key = ""
    _fails_cleanly("No Triverse API key is set", prompt=PROMPT)
    assert standin.requests == []


# -- My Generations ---------------------------------------------------------------------------------


def test_store_is_in_the_extension_user_folder_without_the_key(gen, standin):
    assert bpy.ops.triverse.generate(prompt=PROMPT, wait=False) == {"FINISHED"}
    path = Path(_mod("blender.common.stores").generations().path)
    assert path.parent == Path(bpy.utils.extension_path_user(MODULE, path="", create=False))
    text = path.read_text()
    assert gen.created[0] in text
    assert "test-key" not in text


def test_a_running_task_is_watched_again_after_a_restart(gen, standin):
    gen.script_next(hold=True)
    assert bpy.ops.triverse.generate(prompt=PROMPT, wait=False) == {"FINISHED"}
    task = gen.created[0]
    before = scene_counts()

    addon_utils.disable(MODULE)  # Blender closes...
    addon_utils.enable(MODULE, default_set=True)  # ...and starts again: the task is watched again
    _mod("blender.common.startup").ensure()  # what a window's timer does after the start (no timers here)
    assert task in _mod("blender.common.stores").watching()
    gen.release(task)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _store_records()[task]["status"] != "SUCCESS":
        time.sleep(0.05)
    assert _store_records()[task]["status"] == "SUCCESS"
    assert scene_counts() == before, "a task watched again must not import into whatever scene is open"


def test_import_generation_again_from_the_list(gen, standin):
    assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
    task = gen.created[0]
    bpy.ops.wm.read_homefile(use_empty=True)

    assert bpy.ops.triverse.generation_import(task_uuid=task) == {"FINISHED"}
    assert _root(task).users_collection[0].name == f"a small red wooden chair {task[:8]}"
    assert len(gen.created) == 1


def test_generate_again_makes_a_new_task_with_the_same_settings(gen, standin):
    assert bpy.ops.triverse.generate(prompt=PROMPT, turbo=True, wait=False) == {"FINISHED"}
    first = gen.created[0]

    assert bpy.ops.triverse.generation_again(task_uuid=first) == {"FINISHED"}

    assert len(gen.created) == 2 and gen.created[1] != first
    again = _store_records()[gen.created[1]]
    assert again["prompt"] == PROMPT and again["turbo"] is True
    assert len(gen.orders) == 2  # a fresh order id


def test_generate_again_from_an_image_that_is_gone_reuses_its_upload(gen, standin, tmp_path):
    image = _png(tmp_path / "capture.png")  # like a viewport capture, removed once uploaded
    assert bpy.ops.triverse.generate(image_path=str(image), wait=False) == {"FINISHED"}
    first = gen.created[0]
    image.unlink()

    assert bpy.ops.triverse.generation_again(task_uuid=first) == {"FINISHED"}

    assert len(gen.created) == 2
    assert len(_posts(standin, "/upload/image")) == 1  # the file_key of the first upload was sent again
    assert _root(gen.created[1]).users_collection[0].name == f"capture.png {gen.created[1][:8]}"


def test_copy_uuid(gen, standin, capfd):
    assert bpy.ops.triverse.generate(prompt=PROMPT, wait=False) == {"FINISHED"}
    task = gen.created[0]
    capfd.readouterr()
    assert bpy.ops.triverse.generation_copy_uuid(task_uuid=task) == {"FINISHED"}
    # The bpy module has no system clipboard (it reads back ""): the message tells what was copied.
    assert f"Copied task UUID {task}." in capfd.readouterr().out


def test_the_key_is_never_in_a_saved_blend(gen, standin, tmp_path):
    addon_prefs().api_key = "tvk-SECRET-gen-42"
    standin.api_key = "tvk-SECRET-gen-42"
    try:
        assert bpy.ops.triverse.generate(prompt=PROMPT) == {"FINISHED"}
        path = tmp_path / "scene.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
        data = path.read_bytes()
        assert b"triverse_prompt" in data
        assert b"tvk-SECRET-gen-42" not in data
        assert "tvk-SECRET-gen-42" not in _mod("blender.common.stores").generations().path.read_text()
    finally:
        standin.api_key = "test-key"


def test_redo_never_creates_another_task():
    op = bpy.types.TRIVERSE_OT_generate
    assert "REGISTER" not in op.bl_options  # no "Adjust Last Operation", no Repeat Last


# -- the sidebar's job (timers never run in the bpy module: the job is driven as the modal drives it) --


def _begin(prompt: str = PROMPT):
    generation = _mod("service.generation_request")
    return _mod("service.generate").GenerateJob.begin(
        _mod("blender.common.addon").get_settings(),
        generation.GenerationRequest(prompt=prompt),
        generation.new_order_id(),
        store=_mod("blender.common.stores").generations(),
    )


def _until(job, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not job.poll():
        assert time.monotonic() < deadline, f"the job is still {job.phase}"
        time.sleep(0.02)


def test_a_double_click_creates_one_task(gen, standin):
    errors = _mod("service.errors")
    job = _begin()
    try:
        with pytest.raises(errors.AlreadyRunning, match="already running"):
            _begin()  # the second click of a double click, while the first creates
        with pytest.raises(RuntimeError, match="already running"):
            bpy.ops.triverse.generate(prompt=PROMPT)
        _until(job)
    finally:
        job.finish()
        job.join(5.0)  # its worker leaves the registry as it ends
    assert job.error is None, job.error
    job.result.cleanup()
    assert len(gen.created) == 1
    assert len(_posts(standin, "/tasks/text-to-model")) == 1


def test_stopping_the_watch_leaves_the_task_running_and_listed(gen, standin):
    gen.script_next(hold=True)
    job = _begin()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (job.poll() or (job.status and job.status.status == "RUNNING")):
            time.sleep(0.02)
        task = job.task_uuid
        assert task and job.status.status == "RUNNING"
        job.cancel()
        _until(job)
    finally:
        job.finish()
        job.join(5.0)  # its worker leaves the registry as it ends
    assert isinstance(job.error, _mod("service.errors").Cancelled)
    assert "keeps running on Triverse" in _mod("blender.common.generated").stopped_message(task)
    record = _store_records()[task]
    assert record["status"] == "RUNNING"  # as last seen: watched again at the next start
    assert not standin.requests_for(f"/tasks/download/{task}")
    assert gen.created == [task]
    gen.release(task)
