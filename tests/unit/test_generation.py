"""Generation (triverse_addon/generation_api.py): checks, price, upload and a creation charged once, on the stand-in."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from standin_server import RecordedRequest, StandinServer
from triverse_addon.service import account, errors, generation_api, generation_request
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.generation_request import GenerationRequest
from triverse_addon.service.settings import Settings

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x40\x00\x00\x00WEBPVP8 " + b"\x00" * 64
CHAIR = GenerationRequest(prompt="a red wooden chair")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short back-off between attempts (the attempt count and the Retry-After logic stay the module's)."""
    monkeypatch.setattr(generation_api, "RETRY_FIRST", 0.05)


@pytest.fixture
def gen_server() -> Iterator[StandinServer]:
    """A stand-in with 1000 credits and quick timelines."""
    with StandinServer(api_key=KEY, timeline_step=0.05) as srv:
        yield srv


@pytest.fixture
def gclient(gen_server: StandinServer) -> Iterator[TriverseClient]:
    """A client on that stand-in."""
    settings = Settings(api_key=KEY, base_url=gen_server.base_url, connect_timeout=3, read_timeout=5)
    with TriverseClient(settings) as c:
        yield c


@pytest.fixture
def png(tmp_path: Path) -> Path:
    """A small PNG file."""
    path = tmp_path / "input.png"
    path.write_bytes(PNG)
    return path


def creations(srv: StandinServer) -> list[RecordedRequest]:
    """The creation requests the stand-in received."""
    return [r for r in srv.requests if r.method == "POST" and "-to-" in r.path]


def order_ids(srv: StandinServer) -> list[str]:
    """The client_order_id of each creation request received."""
    return [json.loads(r.body)["client_order_id"] for r in creations(srv)]


# --- the request ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (GenerationRequest(prompt="a chair"), set()),
        (GenerationRequest(prompt="  ab  "), {"prompt"}),
        (GenerationRequest(), {"prompt"}),
        (GenerationRequest(prompt="cat", polygon_limit=999), {"polygon_limit"}),
        (GenerationRequest(prompt="cat", polygon_limit=1_500_001), {"polygon_limit"}),
        (GenerationRequest(prompt="cat", polygon_limit=1_000), set()),
        (GenerationRequest(prompt="cat", polygon_limit=1_500_000), set()),
        (GenerationRequest(prompt="cat", texture_size=512), {"texture_size"}),
        (GenerationRequest(prompt="cat", texture_size=4096), set()),
        (GenerationRequest(image_path="/nonexistent/x.png"), {"image_path"}),
        (GenerationRequest(prompt="", polygon_limit=0, texture_size=3), {"prompt", "polygon_limit", "texture_size"}),
    ],
)
def test_validation(request_: GenerationRequest, fields: set[str]) -> None:
    problems = request_.validate()
    assert set(problems) == fields
    assert all(text.endswith(".") and "\n" not in text for text in problems.values())


def test_image_validation(tmp_path: Path, png: Path) -> None:
    assert GenerationRequest(image_path=str(png)).validate() == {}  # no prompt needed for an image
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "not a PNG, JPEG or WebP" in GenerationRequest(image_path=str(text)).validate()["image_path"]
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(PNG)
        f.truncate(generation_request.MAX_IMAGE_BYTES + 1)  # sparse: no disk used
    assert "larger than Triverse accepts" in GenerationRequest(image_path=str(big)).validate()["image_path"]


@pytest.mark.parametrize(("data", "kind"), [(PNG, "png"), (JPEG, "jpeg"), (WEBP, "webp")])
def test_sniff_image(tmp_path: Path, data: bytes, kind: str) -> None:
    path = tmp_path / "picture.bin"  # the name does not matter, the bytes do
    path.write_bytes(data)
    assert generation_request.sniff_image(path) == kind


def test_flows_and_bodies(png: Path) -> None:
    text = GenerationRequest(prompt=" a chair ", negative_prompt="blurry", texture_size=2048, turbo=True)
    assert (text.mode, text.flow_name) == ("text", "text-to-model")
    assert text.body(None, "o-1", False) == {
        "prompt": "a chair", "negative_prompt": "blurry", "polygon_limit": 1_000_000, "texture_size": 2048,
        "turbo": True, "client_order_id": "o-1",
    }  # fmt: skip
    mesh = GenerationRequest(image_path=str(png), mesh_only=True)
    assert (mesh.mode, mesh.flow_name) == ("image", "image-to-mesh")
    body = mesh.body("tasks/k.png", "o-2", True)
    assert "texture_size" not in body and body["image_file"] == "tasks/k.png" and body["allow_duplicate"] is True
    assert "prompt" not in mesh.price_params() and "texture_size" not in mesh.price_params()
    assert GenerationRequest(prompt="x", mesh_only=True).flow_name == "text-to-mesh"
    with pytest.raises(ValueError):
        text.body(None, "", False)  # never a creation without an order id
    with pytest.raises(ValueError):
        text.body(None, "has space", False)


def test_each_press_has_its_own_order_id() -> None:
    ids = {generation_request.new_order_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(1 <= len(i) <= 64 and i.replace("-", "").replace("_", "").isalnum() for i in ids)


# --- price and account ----------------------------------------------------------------------------------


def test_quote(gen_server: StandinServer, gclient: TriverseClient) -> None:
    q = generation_api.quote(gclient, GenerationRequest(prompt="x", texture_size=4096))
    assert (q.flow_name, q.cost_credits, q.available_credits, q.affordable) == ("text-to-model", 60, 1000.0, True)
    assert generation_api.quote(gclient, GenerationRequest(prompt="x", mesh_only=True, turbo=True)).cost_credits == 10
    sent = json.loads(gen_server.requests_for("/pricing/quote")[0].body)
    assert "prompt" not in json.dumps(sent) and sent["flow_name"] == "text-to-model"
    assert not gen_server.created  # a quote creates nothing


def test_quote_unaffordable() -> None:
    with (
        StandinServer(api_key=KEY, balance=30) as srv,
        TriverseClient(Settings(api_key=KEY, base_url=srv.base_url)) as c,
    ):
        q = generation_api.quote(c, CHAIR)
    assert (q.cost_credits, q.available_credits, q.affordable) == (40, 30.0, False)


def test_account(gen_server: StandinServer, gclient: TriverseClient) -> None:
    assert account.account(gclient) == account.Account("artist@example.com", "Pro", 1000.0)
    generation_api.create(gclient, CHAIR, generation_request.new_order_id())
    assert account.account(gclient).balance == 960.0  # frozen while it runs


def test_account_with_a_rejected_key(gen_server: StandinServer) -> None:
    settings = Settings(api_key="wrong", base_url=gen_server.base_url)
    with TriverseClient(settings) as c, pytest.raises(errors.AuthenticationFailed):
        account.account(c)


# --- upload ---------------------------------------------------------------------------------------------


def test_upload(gen_server: StandinServer, gclient: TriverseClient, png: Path) -> None:
    key = generation_api.upload_image(gclient, png)
    assert gen_server.gen.files[key] == PNG
    (request,) = gen_server.requests_for("/upload/image")
    assert b'name="file"' in request.body and b"image/png" in request.body


@pytest.mark.parametrize("kind", ["text", "too_large", "missing"])
def test_bad_images_are_refused_before_any_request(
    gen_server: StandinServer, gclient: TriverseClient, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "input.png"
    if kind == "text":
        path.write_text("hello")
    elif kind == "too_large":
        with open(path, "wb") as f:
            f.write(PNG)
            f.truncate(generation_request.MAX_IMAGE_BYTES + 1)
    with pytest.raises(errors.UnsupportedImage) as info:
        generation_api.upload_image(gclient, path)
    assert "input.png" in str(info.value)
    assert gen_server.requests == []


def test_upload_rate_limit_honours_retry_after(gen_server: StandinServer, gclient: TriverseClient, png: Path) -> None:
    gen_server.fail("rate_limited", on="upload", times=1, retry_after=1)
    assert generation_api.upload_image(gclient, png)
    first, second = gen_server.requests_for("/upload/image")
    assert second.time - first.time >= 0.9  # waited as told, not the 0.05 s back-off


def test_refused_image_says_image(gen_server: StandinServer, gclient: TriverseClient, tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(PNG + b"REFUSE-ME")
    with pytest.raises(errors.ContentRefused) as info:
        generation_api.upload_image(gclient, path)
    assert info.value.field == "image" and "the input image" in str(info.value)


# --- creation, charged once -----------------------------------------------------------------------------


def test_create_text(gen_server: StandinServer, gclient: TriverseClient) -> None:
    created = generation_api.create(gclient, CHAIR, "order-a")
    assert created.task_uuid == gen_server.created[0]
    assert (created.flow_name, created.status, created.cost_credits) == ("text-to-model", "QUEUED", 40)
    assert (created.queue_position, created.estimated_wait_seconds) == (2, 0.3)
    assert order_ids(gen_server) == ["order-a"]


def test_create_from_an_image(gen_server: StandinServer, gclient: TriverseClient, png: Path) -> None:
    req = GenerationRequest(image_path=str(png), mesh_only=True)
    created = generation_api.create(gclient, req, "order-i", image_file=generation_api.upload_image(gclient, png))
    assert (created.flow_name, created.cost_credits) == ("image-to-mesh", 30)
    assert "texture_size" not in json.loads(creations(gen_server)[0].body)


@pytest.mark.parametrize(("mode", "params"), [("server_error", {}), ("unavailable", {}), ("reset", {}),
                                               ("drop", {}), ("rate_limited", {"retry_after": 0})])  # fmt: skip
def test_a_failed_answer_is_retried_with_the_same_order_id(
    gen_server: StandinServer, gclient: TriverseClient, mode: str, params: dict
) -> None:
    gen_server.fail(mode, on="create", times=1, **params)  # the task IS created, then the answer fails
    created = generation_api.create(gclient, CHAIR, "order-once")
    assert gen_server.created == [created.task_uuid]  # one task, charged once
    assert order_ids(gen_server) == ["order-once", "order-once"]
    assert gen_server.gen.available == 960.0


def test_create_gives_up_after_a_few_attempts(gen_server: StandinServer, gclient: TriverseClient) -> None:
    gen_server.fail("server_error", on="create")
    with pytest.raises(errors.ServerError):
        generation_api.create(gclient, CHAIR, "order-x")
    assert order_ids(gen_server) == ["order-x"] * generation_api.MAX_ATTEMPTS
    assert len(gen_server.created) == 1


def test_create_honours_retry_after(gen_server: StandinServer, gclient: TriverseClient) -> None:
    gen_server.fail("rate_limited", on="create", times=1, retry_after=1, before=True)
    generation_api.create(gclient, CHAIR, "order-r")
    first, second = creations(gen_server)
    assert second.time - first.time >= 0.9


def test_a_conflict_naming_the_task_is_that_task(gen_server: StandinServer, gclient: TriverseClient) -> None:
    first = generation_api.create(gclient, CHAIR, "order-c")
    gen_server.gen.repeat_answer = "conflict"
    again = generation_api.create(gclient, CHAIR, "order-c")
    assert again.task_uuid == first.task_uuid and len(gen_server.created) == 1


def test_a_bare_conflict_is_already_created(gen_server: StandinServer, gclient: TriverseClient) -> None:
    generation_api.create(gclient, CHAIR, "order-b")
    gen_server.gen.repeat_answer = "conflict_bare"
    with pytest.raises(errors.AlreadyCreated) as info:
        generation_api.create(gclient, CHAIR, "order-b")
    assert "already created" in str(info.value) and len(gen_server.created) == 1


def test_two_presses_two_tasks(gen_server: StandinServer, gclient: TriverseClient) -> None:
    a = generation_api.create(gclient, CHAIR, generation_request.new_order_id())
    b = generation_api.create(gclient, CHAIR, generation_request.new_order_id())
    assert a.task_uuid != b.task_uuid and len(set(order_ids(gen_server))) == 2


def test_insufficient_credits_says_cost_and_balance() -> None:
    with StandinServer(api_key=KEY, balance=25) as srv:
        settings = Settings(api_key=KEY, base_url=srv.base_url)
        with TriverseClient(settings) as c, pytest.raises(errors.InsufficientCredits) as info:
            generation_api.create(c, CHAIR, "order-p")
        assert not srv.created
    assert (info.value.cost, info.value.balance) == (40, 25.0)
    assert "costs 40 credits" in str(info.value) and "balance is 25" in str(info.value)


def test_refused_prompt_says_prompt(gen_server: StandinServer, gclient: TriverseClient) -> None:
    with pytest.raises(errors.ContentRefused) as info:
        generation_api.create(gclient, GenerationRequest(prompt="a refuse-me statue"), "order-q")
    assert info.value.field == "prompt" and "the prompt" in str(info.value)


def test_invalid_parameters_carry_the_service_message(gen_server: StandinServer, gclient: TriverseClient) -> None:
    req = GenerationRequest(image_path="unused.png")
    with pytest.raises(errors.InvalidParameters) as info:
        generation_api.create(gclient, req, "order-v", image_file="tasks/never-uploaded.png")
    assert "image_file must be a file_key" in str(info.value)
    assert len(creations(gen_server)) == 1  # a 1004 is not retried


def test_local_checks_come_before_any_request(gen_server: StandinServer, gclient: TriverseClient) -> None:
    with pytest.raises(errors.InvalidParameters):
        generation_api.create(gclient, GenerationRequest(prompt="ab"), "order-l")
    with pytest.raises(ValueError):
        generation_api.create(gclient, CHAIR, "")
    assert gen_server.requests == []


def test_online_access_off_sends_nothing(gen_server: StandinServer, png: Path) -> None:
    settings = Settings(api_key=KEY, base_url=gen_server.base_url)
    with TriverseClient(settings, online_access=False) as c:
        calls = (
            lambda: generation_api.quote(c, CHAIR),
            lambda: account.account(c),
            lambda: generation_api.upload_image(c, png),
            lambda: generation_api.create(c, CHAIR, "o"),
        )
        for call in calls:
            with pytest.raises(errors.OnlineAccessDisabled):
                call()
    assert gen_server.requests == []


def test_a_created_task_is_charged_on_success(gen_server: StandinServer, gclient: TriverseClient) -> None:
    from triverse_addon.service import watch

    created = generation_api.create(gclient, CHAIR, "order-s")
    watch.wait_for_success(gclient, created.task_uuid, 10)
    assert gen_server.gen.balance == 960.0 and gen_server.gen.available == 960.0
    gen_server.script_next_generation(outcome="FAILED", error="Could not make sense of the prompt")
    failed = generation_api.create(gclient, CHAIR, "order-f")
    with pytest.raises(errors.TaskFailed) as info:
        watch.wait_for_success(gclient, failed.task_uuid, 10)
    assert "Could not make sense of the prompt" in str(info.value)
    assert gen_server.gen.available == 960.0  # released, not spent
    assert os.environ.get("TRIVERSE_API_KEY", "") != KEY
