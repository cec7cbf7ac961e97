"""Scene tools (service/scene_request, scene_api, scene_tools): texture or remesh an object's model, on the stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standin_server import RecordedRequest, StandinServer
from triverse_addon.service import errors, generation_api, scene_api, scene_tools
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.generations_store import GenerationStore
from triverse_addon.service.jobs import Job
from triverse_addon.service.obtain import Asset
from triverse_addon.service.scene_request import SCENE_FLOWS, SceneRequest
from triverse_addon.service.settings import Settings

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
OBJ = b"# Blender OBJ\nmtllib cube.mtl\no Cube\nv 1 1 -1\nv 1 -1 -1\nv -1 1 -1\nf 1 2 3\n"
COST = {"text-to-texture": 30, "texture-model": 40, "model-remesh": 20}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short back-off between attempts (the attempt counts and the Retry-After logic stay the module's)."""
    monkeypatch.setattr(generation_api, "RETRY_FIRST", 0.05)


@pytest.fixture
def srv() -> Iterator[StandinServer]:
    """A stand-in with 1000 credits and quick timelines."""
    with StandinServer(api_key=KEY, timeline_step=0.02) as server:
        yield server


@pytest.fixture
def ssettings(srv: StandinServer) -> Settings:
    return Settings(api_key=KEY, base_url=srv.base_url, connect_timeout=3, read_timeout=5)


@pytest.fixture
def sclient(ssettings: Settings) -> Iterator[TriverseClient]:
    with TriverseClient(ssettings) as c:
        yield c


@pytest.fixture
def model(tmp_path: Path, glb_factory: Callable[..., bytes]) -> Path:
    """The object's export: a GLB with a payload of its own (not the stand-in's sample asset)."""
    path = tmp_path / "Chair.glb"
    path.write_bytes(glb_factory(bin_size=4096, seed=7))
    return path


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "wood.png"
    path.write_bytes(PNG)
    return path


@pytest.fixture
def store(tmp_path: Path) -> GenerationStore:
    return GenerationStore(tmp_path / "generations.json")


@pytest.fixture(autouse=True)
def no_jobs_left() -> Iterator[None]:
    yield
    Job.cancel_all(join_seconds=5.0)


def request_for(flow: str, png: Path, **kw: object) -> SceneRequest:
    base: dict[str, object] = {"source_object": "Chair"}
    if flow == "text-to-texture":
        base["prompt"] = "weathered oak"
    if flow == "texture-model":
        base["image_path"] = str(png)
    base.update(kw)
    return SceneRequest(flow=flow, **base)  # type: ignore[arg-type]


def creations(srv: StandinServer) -> list[RecordedRequest]:
    """The scene tools' creation requests the stand-in received."""
    return [r for r in srv.requests if r.method == "POST" and r.path.rsplit("/", 1)[-1] in SCENE_FLOWS]


def bodies(srv: StandinServer) -> list[dict]:
    """Their JSON bodies."""
    return [json.loads(r.body) for r in creations(srv)]


# --- the request: checks, bodies, variants, price --------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"flow": "text-to-texture", "prompt": "ab"}, "prompt"),
        ({"flow": "text-to-texture", "polygon_limit": 999}, "polygon_limit"),
        ({"flow": "model-remesh", "polygon_limit": 1_500_001}, "polygon_limit"),
        ({"flow": "texture-model", "texture_size": 3000}, "texture_size"),
        ({"flow": "texture-model", "image_path": "/nowhere/wood.png"}, "image_path"),
        ({"flow": "texture-model", "image_path": ""}, "image_path"),
        ({"flow": "model-uv-unwrap"}, "flow"),
    ],
)
def test_invalid_requests_are_refused_before_any_request(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path, kw: dict, field: str
) -> None:
    flow = str(kw.pop("flow"))
    request = request_for(flow, png, **kw) if flow in SCENE_FLOWS else SceneRequest(flow=flow)
    assert set(request.validate()) == {field}
    with pytest.raises(errors.InvalidParameters):
        scene_tools.create_scene_task(sclient, request, model, "order-bad")
    assert srv.requests == []


def test_a_remesh_takes_no_texture_size_and_a_texture_model_image_is_sniffed(tmp_path: Path, png: Path) -> None:
    assert SceneRequest("model-remesh", texture_size=3000).validate() == {}
    not_png = tmp_path / "wood.png"
    not_png.write_bytes(b"GIF89a" + b"\x00" * 32)
    assert "PNG, JPEG or WebP" in SceneRequest("texture-model", image_path=str(not_png)).validate()["image_path"]


def test_bodies_send_only_what_is_verified(png: Path) -> None:
    text = request_for("text-to-texture", png, texture_size=2048).body("m-key", None, "order-1", False)
    assert text == {"prompt": "weathered oak", "model_file": "m-key", "model_version": "v2", "polygon_limit": 1_000_000,
                    "texture_size": 2048, "client_order_id": "order-1"}  # fmt: skip
    image = request_for("texture-model", png).body("m-key", "i-key", "order-2", True)
    assert image == {"image_file": "i-key", "model_file": "m-key", "model_version": "v2", "polygon_limit": 1_000_000,
                     "texture_size": 1024, "client_order_id": "order-2", "allow_duplicate": True}  # fmt: skip
    remesh = request_for("model-remesh", png, polygon_limit=5000, texture_size=4096).body("m-key", None, "o-3", False)
    assert remesh == {"model_file": "m-key", "polygon_limit": 5000, "client_order_id": "o-3"}
    with pytest.raises(ValueError):
        request_for("model-remesh", png).body("m-key", None, "", False)
    with pytest.raises(ValueError):
        request_for("texture-model", png).body("m-key", None, "order-4", False)


@pytest.mark.parametrize(
    ("flow", "has_textures", "variant"),
    [
        ("text-to-texture", False, "geometry"),
        ("text-to-texture", True, "geometry"),  # texturing replaces the textures
        ("texture-model", True, "geometry"),
        ("model-remesh", False, "geometry"),
        ("model-remesh", True, "textured"),  # remeshing keeps the look
    ],
)
def test_model_variant(flow: str, has_textures: bool, variant: str, png: Path) -> None:
    assert request_for(flow, png).model_variant(has_textures) == variant


def test_quote_prices_a_scene_request(srv: StandinServer, sclient: TriverseClient, png: Path) -> None:
    quote = generation_api.quote(sclient, request_for("texture-model", png, texture_size=4096))
    assert (quote.flow_name, quote.cost_credits, quote.affordable) == ("texture-model", 60, True)
    assert generation_api.quote(sclient, request_for("model-remesh", png, texture_size=4096)).cost_credits == 20
    assert srv.created == []


# --- the model upload ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["geometry", "textured"])
def test_upload_a_glb_with_its_variant(srv: StandinServer, sclient: TriverseClient, model: Path, variant: str) -> None:
    key = scene_api.upload_model(sclient, model, variant)
    sent = srv.gen.uploaded_models[key]
    assert (sent["bytes"], sent["variant"], sent["kind"], sent["filename"]) == (model.read_bytes(), variant, "glb",
                                                                                 "Chair.glb")  # fmt: skip
    (request,) = srv.requests_for("/upload/model")
    assert f"modelVariant={variant}" in request.path
    assert b"Content-Type: model/gltf-binary" in request.body


def test_upload_an_obj(srv: StandinServer, sclient: TriverseClient, tmp_path: Path) -> None:
    path = tmp_path / "cube.obj"
    path.write_bytes(OBJ)
    key = scene_api.upload_model(sclient, path, "geometry")
    assert srv.gen.uploaded_models[key]["bytes"] == OBJ and srv.gen.uploaded_models[key]["kind"] == "obj"


def test_a_model_over_the_limit_is_refused_before_sending(
    srv: StandinServer, sclient: TriverseClient, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scene_api, "MAX_MODEL_BYTES", 1000)
    size = model.stat().st_size
    with pytest.raises(errors.InvalidParameters) as info:
        scene_api.upload_model(sclient, model, "geometry")
    assert errors.human_size(size) in str(info.value) and "Chair.glb" in str(info.value)
    assert errors.human_size(1000) in str(info.value)
    assert srv.requests == []


@pytest.mark.parametrize(
    ("data", "error"),
    [(None, errors.StorageError), (PNG, errors.UnsupportedFormat), (b"v 1 2 3\x00\x01", errors.UnsupportedFormat)],
)
def test_what_is_not_a_model_is_refused_before_sending(
    srv: StandinServer, sclient: TriverseClient, tmp_path: Path, data: bytes | None, error: type
) -> None:
    path = tmp_path / "thing.glb"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(error):
        scene_api.upload_model(sclient, path, "geometry")
    with pytest.raises(ValueError):
        scene_api.upload_model(sclient, path, "painted")
    assert srv.requests == []


def test_twelve_uploads_wait_the_limit_out(srv: StandinServer, sclient: TriverseClient, model: Path) -> None:
    srv.gen.upload_limit = (10, 2.0)
    waits: list[float] = []
    keys = [scene_api.upload_model(sclient, model, "geometry", on_wait=waits.append) for _ in range(12)]
    assert len(set(keys)) == 12 and set(keys) <= set(srv.gen.uploaded_models)
    assert waits and all(0 < w <= 2.0 for w in waits)  # the service's Retry-After, told before each wait
    assert len(srv.requests_for("/upload/model")) == 12 + len(waits)


def test_a_long_refusal_by_the_limit_is_waited_out(srv: StandinServer, sclient: TriverseClient, model: Path) -> None:
    srv.fail("rate_limited", on="upload", times=6, retry_after=0)  # more refusals than a creation's 4 attempts
    waits: list[float] = []
    assert scene_api.upload_model(sclient, model, "geometry", on_wait=waits.append)
    assert len(waits) == 6 and len(srv.requests_for("/upload/model")) == 7


def test_the_limit_gives_up_after_its_attempts(srv: StandinServer, sclient: TriverseClient, model: Path) -> None:
    srv.fail("rate_limited", on="upload", retry_after=0)
    with pytest.raises(errors.RateLimited):
        scene_api.upload_model(sclient, model, "geometry")
    assert len(srv.requests_for("/upload/model")) == generation_api.UPLOAD_LIMIT_ATTEMPTS


def test_the_upload_limit_waits_longer_than_a_creation_and_a_cancel_stops_it(
    srv: StandinServer, sclient: TriverseClient, model: Path
) -> None:
    srv.fail("rate_limited", on="upload", retry_after=300)
    told: list[float] = []

    def on_wait(seconds: float) -> None:
        told.append(seconds)
        sclient.cancel_event.set()  # the user stops: the wait ends at once

    started = time.monotonic()
    with pytest.raises(errors.Cancelled):
        scene_api.upload_model(sclient, model, "geometry", on_wait=on_wait)
    assert told == [generation_api.MAX_LIMIT_WAIT] and told[0] > generation_api.MAX_RETRY_WAIT
    assert time.monotonic() - started < 5


# --- creation, end to end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["text-to-texture", "texture-model", "model-remesh"])
def test_each_flow_end_to_end(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path, store: GenerationStore, flow: str
) -> None:
    request = request_for(flow, png)
    created = scene_tools.create_scene_task(sclient, request, model, "order-e2e", store=store, has_textures=True)
    assert (created.flow_name, created.cost_credits) == (flow, COST[flow])
    (body,) = bodies(srv)
    assert body["client_order_id"] == "order-e2e"
    uploaded = srv.gen.uploaded_models[body["model_file"]]
    assert uploaded["bytes"] == model.read_bytes()
    assert uploaded["variant"] == ("textured" if flow == "model-remesh" else "geometry")
    assert ("image_file" in body) == (flow == "texture-model")
    if flow == "texture-model":
        assert len(srv.requests_for("/upload/image")) == 1

    asset = scene_tools.finish_scene_task(sclient, created.task_uuid, store=store)
    try:
        assert isinstance(asset, Asset) and asset.path.read_bytes() == model.read_bytes()
    finally:
        asset.cleanup()
    record = GenerationStore(store.path).get(created.task_uuid)  # as written to the file
    assert record is not None
    assert (record.flow_name, record.source_object, record.status, record.order_id) == (flow, "Chair", "SUCCESS",
                                                                                       "order-e2e")  # fmt: skip
    assert record.prompt == "" and record.texture_prompt == ("weathered oak" if flow == "text-to-texture" else "")
    assert record.cost_credits == COST[flow]
    assert record.image_name == ("wood.png" if flow == "texture-model" else "")


def test_an_earlier_image_upload_is_reused(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path, store: GenerationStore
) -> None:
    image_file = generation_api.upload_image(sclient, png)
    request = request_for("texture-model", png)
    created = scene_tools.create_scene_task(sclient, request, model, "order-img", store=store, image_file=image_file)
    assert len(srv.requests_for("/upload/image")) == 1 and bodies(srv)[0]["image_file"] == image_file
    assert store.get(created.task_uuid).image_file == image_file  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["unavailable", "reset"])
def test_a_retried_creation_reuses_the_order_id_and_charges_once(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path, mode: str
) -> None:
    srv.fail(mode, on="create", times=1)  # the task IS created, then the answer fails
    created = scene_tools.create_scene_task(sclient, request_for("model-remesh", png), model, "order-once")
    assert srv.created == [created.task_uuid]
    assert [b["client_order_id"] for b in bodies(srv)] == ["order-once", "order-once"]
    assert srv.gen.available == 1000 - COST["model-remesh"]
    assert len(srv.requests_for("/upload/model")) == 1  # the model went up once


def test_a_conflict_on_a_repeated_order_id_is_that_task(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path
) -> None:
    request = request_for("text-to-texture", png)
    first = scene_tools.create_scene_task(sclient, request, model, "order-c")
    srv.gen.repeat_answer = "conflict"
    again = scene_tools.create_scene_task(sclient, request, model, "order-c")
    assert again.task_uuid == first.task_uuid and len(srv.created) == 1


def test_a_failed_task_raises_and_its_record_says_so(
    srv: StandinServer, sclient: TriverseClient, model: Path, png: Path, store: GenerationStore
) -> None:
    srv.gen.script_next("FAILED", error="The mesh has no UVs")
    created = scene_tools.create_scene_task(sclient, request_for("texture-model", png), model, "order-f", store=store)
    with pytest.raises(errors.TaskFailed) as info:
        scene_tools.finish_scene_task(sclient, created.task_uuid, store=store)
    assert "The mesh has no UVs" in str(info.value)
    record = store.get(created.task_uuid)
    assert record is not None and record.status == "FAILED" and "The mesh has no UVs" in record.error
    assert not srv.requests_for(f"/tasks/download/{created.task_uuid}")


# --- the sidebar's job and the batch ----------------------------------------------------------------------


def run_job(job: scene_tools.SceneJob, seen: Callable[[scene_tools.SceneJob], None] = lambda j: None) -> None:
    deadline = time.monotonic() + 20
    while not job.poll():
        seen(job)
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.01)


def test_scene_job_creates_reports_and_obtains(
    srv: StandinServer, ssettings: Settings, model: Path, png: Path, store: GenerationStore
) -> None:
    srv.fail("rate_limited", on="upload", times=1, retry_after=1)
    srv.fail("rate_limited", on="create", times=1, retry_after=1, before=True)  # the creation waits a second
    cleaned: list[float] = []
    request = request_for("model-remesh", png)
    job = scene_tools.SceneJob.begin(ssettings, request, model, "order-job", store=store, has_textures=True,
                                     cleanup=lambda: cleaned.append(time.time()))  # fmt: skip
    assert job.kind == "scene" and job.key == "scene:model-remesh:Chair:order-job" and job.request == request
    waiting: list[float] = []
    statuses: list[str] = []

    def seen(j: scene_tools.SceneJob) -> None:
        if j.waiting_seconds is not None:
            waiting.append(j.waiting_seconds)
        if j.status is not None:
            statuses.append(j.status.status)

    run_job(job, seen)
    try:
        assert job.error is None and isinstance(job.result, Asset), job.error
        assert job.result.path.read_bytes() == model.read_bytes()
        assert job.created is not None and job.task_uuid == job.created.task_uuid == srv.created[0]
        assert job.created.cost_credits == COST["model-remesh"]
        assert waiting and waiting[0] == 1.0 and job.waiting_seconds is None  # told, then over
        assert statuses and job.phase == "done"
        first_creation = creations(srv)[0]
        assert len(cleaned) == 1 and cleaned[0] <= first_creation.time  # once, as soon as the model was sent
        assert srv.gen.uploaded_models[bodies(srv)[0]["model_file"]]["variant"] == "textured"
        assert store.get(job.created.task_uuid).source_object == "Chair"  # type: ignore[union-attr]
    finally:
        if job.result is not None:
            job.result.cleanup()
        job.finish()


def test_scene_job_refused_before_upload_still_cleans_up(
    srv: StandinServer, ssettings: Settings, model: Path, png: Path
) -> None:
    cleaned: list[int] = []
    job = scene_tools.SceneJob.begin(ssettings, request_for("text-to-texture", png, prompt="x"), model, "order-x",
                                     store=None, cleanup=lambda: cleaned.append(1))  # fmt: skip
    run_job(job)
    job.finish()
    assert isinstance(job.error, errors.InvalidParameters) and job.created is None
    assert cleaned == [1] and srv.requests == []


def test_the_same_press_twice_is_refused_and_cleans_up(
    srv: StandinServer, ssettings: Settings, model: Path, png: Path
) -> None:
    srv.gen.script_next(hold=True)
    request = request_for("model-remesh", png)
    first = scene_tools.SceneJob.begin(ssettings, request, model, "order-twice", store=None)
    cleaned: list[int] = []
    with pytest.raises(errors.AlreadyRunning):
        scene_tools.SceneJob.begin(
            ssettings, request, model, "order-twice", store=None, cleanup=lambda: cleaned.append(1)
        )
    assert cleaned == [1]
    deadline = time.monotonic() + 10
    while first.created is None and time.monotonic() < deadline:
        first.poll()
        time.sleep(0.01)
    assert first.created is not None
    srv.release(first.created.task_uuid)
    run_job(first)
    assert isinstance(first.result, Asset)
    first.result.cleanup()
    first.finish()


def test_scene_many_gives_outcomes_in_order(
    srv: StandinServer, ssettings: Settings, tmp_path: Path, png: Path, store: GenerationStore,
    glb_factory: Callable[..., bytes],
) -> None:  # fmt: skip
    srv.gen.upload_limit = (3, 1.0)  # four uploads in all: the limit is met and waited out
    items = []
    for i, flow in enumerate(["model-remesh", "text-to-texture", "texture-model"]):
        path = tmp_path / f"object{i}.glb"
        path.write_bytes(glb_factory(bin_size=512 + i, seed=i))
        items.append((request_for(flow, png, source_object=f"Object{i}"), path, i == 0))

    outcomes = list(scene_tools.scene_many(ssettings, items, jobs=3, store=store))

    assert [o.request.source_object for o in outcomes] == ["Object0", "Object1", "Object2"]
    for outcome, (request, path, _) in zip(outcomes, items, strict=True):
        assert isinstance(outcome.result, Asset), outcome.result
        assert outcome.result.path.read_bytes() == path.read_bytes()  # each object's own model came back
        assert outcome.created is not None and outcome.created.flow_name == request.flow and outcome.seconds > 0
        outcome.result.cleanup()
    assert {r.source_object: r.status for r in store.all()} == {f"Object{i}": "SUCCESS" for i in range(3)}
    assert len(srv.gen.uploaded_models) == 3


def test_scene_many_reports_a_bad_item_and_goes_on(
    srv: StandinServer, ssettings: Settings, model: Path, png: Path
) -> None:
    items = [
        (request_for("text-to-texture", png, prompt="ab"), model, False),
        (request_for("model-remesh", png), model, False),
    ]
    bad, good = scene_tools.scene_many(ssettings, items, jobs=2)
    assert isinstance(bad.result, errors.InvalidParameters) and bad.created is None
    assert isinstance(good.result, Asset)
    good.result.cleanup()
    assert len(srv.created) == 1
