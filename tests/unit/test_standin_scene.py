"""The stand-in's scene tools (scripts/standin_scene.py): model uploads, texturing and remeshing, the watch of all."""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import pytest
import requests
from standin_generation import minimal_glb

from standin_server import StandinServer

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SEED = "5f0c8d1e-2b3a-4c5d-9e8f-7a6b5c4d3e2f"  # a finished task the server knows from the start
DATA = b"glTF" + random.Random(3).randbytes(3000)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
OBJ = b"# a triangle\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
KEY_SHAPE = re.compile(r"tasks/uid_standin/\d{8}/[0-9a-f-]{36}\.(glb|obj)")


def glb_of(tag: str, pad: int = 0) -> bytes:
    """A small valid GLB whose JSON names `tag` (so two of them differ), padded with `pad` spaces."""
    js = json.dumps({"asset": {"version": "2.0", "generator": tag}, "scene": 0, "scenes": [{}]}).encode()
    js += b" " * (-len(js) % 4 + pad * 4)
    chunk = struct.pack("<I4s", len(js), b"JSON") + js
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


MODEL = glb_of("uploaded by the scene tests")


@pytest.fixture
def srv() -> Iterator[StandinServer]:
    """A stand-in with 1000 credits, quick timelines and one finished task."""
    with StandinServer(api_key=KEY, balance=1000, timeline_step=0.02) as server:
        server.add(SEED, DATA)
        yield server
    assert server.gen.watching == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("standin")]


def get(server: StandinServer, path: str) -> requests.Response:
    return requests.get(server.base_url + path, headers=AUTH, timeout=5)


def post(server: StandinServer, path: str, body: object) -> requests.Response:
    return requests.post(server.base_url + path, json=body, headers=AUTH, timeout=5)


def data_of(response: requests.Response) -> dict:
    body = response.json()
    assert (response.status_code, body["code"], body["message"]) == (200, 0, "success"), body
    return body["data"]


def error_of(response: requests.Response) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"code", "message", "suggestion"}, body
    return response.status_code, body["code"]


def upload_model(server: StandinServer, data: bytes, name: str = "chair.glb", query: str = "") -> requests.Response:
    url = server.base_url + "/upload/model" + query
    return requests.post(url, files={"file": (name, data, "model/gltf-binary")}, headers=AUTH, timeout=5)


def upload_image(server: StandinServer, data: bytes = PNG) -> requests.Response:
    url = server.base_url + "/upload/image"
    return requests.post(url, files={"file": ("ref.png", data)}, headers=AUTH, timeout=5)


def wait_status(server: StandinServer, task: str, wanted: str, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = data_of(get(server, f"/tasks/{task}"))
        if data["status"] == wanted:
            return data
        time.sleep(0.01)
    raise AssertionError(f"{task} never reached {wanted}")


# --- uploads ------------------------------------------------------------------------------------------------


def test_model_uploads_are_kept_by_file_key(srv: StandinServer) -> None:
    glb_key = data_of(upload_model(srv, MODEL, query="?modelVariant=geometry"))["file_key"]
    obj_key = data_of(upload_model(srv, OBJ, name="tri.obj"))["file_key"]
    textured = data_of(upload_model(srv, DATA, name="t.glb", query="?modelVariant=textured"))["file_key"]
    assert KEY_SHAPE.fullmatch(glb_key) and glb_key.endswith(".glb")
    assert KEY_SHAPE.fullmatch(obj_key) and obj_key.endswith(".obj")
    assert datetime.now(UTC).strftime("%Y%m%d") in glb_key
    models = srv.gen.uploaded_models
    assert models[glb_key] == {"bytes": MODEL, "variant": "geometry", "filename": "chair.glb", "kind": "glb"}
    assert models[obj_key] == {"bytes": OBJ, "variant": None, "filename": "tri.obj", "kind": "obj"}
    assert models[textured]["variant"] == "textured" and models[textured]["bytes"] == DATA
    assert len({glb_key, obj_key, textured}) == 3
    assert glb_key not in srv.gen.files  # a model is not an image input


@pytest.mark.parametrize(
    ("data", "query", "expected"),
    [
        (PNG, "", (400, 2004)),  # an image is not a model
        (b"solid cube\nfacet normal 0 0 1\n", "", (400, 2004)),  # ASCII STL: text without vertex lines
        (b"\x00\x01\x02glTF", "", (400, 2004)),
        (MODEL, "?modelVariant=both", (400, 1004)),
        (MODEL, "?modelVariant=", (400, 1004)),
        (MODEL, "?modelVariant=geometry&modelVariant=textured", (400, 1004)),
    ],
)
def test_model_upload_refusals(srv: StandinServer, data: bytes, query: str, expected: tuple[int, int]) -> None:
    assert error_of(upload_model(srv, data, query=query)) == expected
    assert srv.gen.uploaded_models == {}


def test_model_upload_not_multipart(srv: StandinServer) -> None:
    response = requests.post(srv.base_url + "/upload/model", data=MODEL, headers=AUTH, timeout=5)
    assert error_of(response) == (400, 1004)


def test_model_upload_size_limit(srv: StandinServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert srv.gen.max_model_upload == 200_000_000
    monkeypatch.setattr(srv.gen, "max_model_upload", 1000)
    exact = glb_of("x")
    exact += b" " * (1000 - len(exact))
    assert data_of(upload_model(srv, exact))["file_key"]  # at the limit: accepted
    response = upload_model(srv, exact + b" ")
    assert error_of(response) == (400, 1004) and "1000" in response.json()["message"]

    # Far over it: answered from the headers, without reading the body (like an image over 50 MB).
    parts = urlsplit(srv.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"POST {parts.path}/upload/model HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {5_000_000}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b'"code": 1004' in answer
    assert len(srv.gen.uploaded_models) == 1


def test_image_and_model_uploads_share_one_rate_limit(srv: StandinServer) -> None:
    assert srv.gen.upload_limit == (10, 60.0)
    for i in range(10):
        data_of(upload_image(srv) if i % 2 else upload_model(srv, MODEL))
    for response in (upload_model(srv, MODEL), upload_image(srv)):
        assert error_of(response) == (429, 2000)
        assert 1 <= int(response.headers["Retry-After"]) <= 60

    srv.gen.upload_limit = (2, 0.4)
    srv.gen._uploads.clear()
    data_of(upload_image(srv))
    data_of(upload_model(srv, OBJ, name="a.obj"))
    refused = upload_model(srv, MODEL)
    assert error_of(refused) == (429, 2000)
    assert refused.headers["Retry-After"] == "1"  # a whole number of seconds, at least 1
    assert error_of(upload_image(srv)) == (429, 2000)
    time.sleep(0.45)  # the window has passed
    assert KEY_SHAPE.fullmatch(data_of(upload_model(srv, MODEL))["file_key"])


# --- the scene tasks ----------------------------------------------------------------------------------------


def bodies(srv: StandinServer, model_key: str) -> dict[str, dict]:
    """A valid creation body per scene flow."""
    image_key = data_of(upload_image(srv))["file_key"]
    return {
        "texture-model": {"image_file": image_key, "model_file": model_key, "texture_size": 2048},
        "text-to-texture": {"prompt": "weathered oak", "model_file": model_key, "model_version": "v2"},
        "model-remesh": {"model_file": model_key, "polygon_limit": 5000, "output_format": "glb"},
    }


@pytest.mark.parametrize(("flow", "cost"), [("texture-model", 50), ("text-to-texture", 30), ("model-remesh", 20)])
def test_a_scene_task_runs_to_success_and_serves_the_uploaded_model(srv: StandinServer, flow: str, cost: int) -> None:
    key = data_of(upload_model(srv, MODEL))["file_key"]
    body = bodies(srv, key)[flow]
    quoted = data_of(post(srv, "/tasks/pricing/quote", {"flow_name": flow, "params": body}))
    assert quoted["cost_credits"] == cost and quoted["available_credits"] == 1000.0
    srv.script_next_generation(hold=True)
    created = data_of(post(srv, f"/tasks/{flow}", body))
    assert (created["flow_name"], created["status"], created["cost_credits"]) == (flow, "QUEUED", cost)
    task = created["task_uuid"]
    assert data_of(get(srv, "/users/balance")) == {"balance": 1000.0 - cost, "frozen": float(cost)}  # available

    running = wait_status(srv, task, "RUNNING")
    assert running["flow_name"] == flow
    assert running["input"] == body  # what was sent, echoed
    assert error_of(get(srv, f"/tasks/download/{task}")) == (409, 2005)
    srv.release(task)
    done = wait_status(srv, task, "SUCCESS")
    assert done["progress"] == 100 and done["output"]["format"] == "glb"
    assert data_of(get(srv, "/users/balance")) == {"balance": 1000.0 - cost, "frozen": 0.0}

    download = get(srv, f"/tasks/download/{task}")
    assert download.content == MODEL and download.headers["Content-Disposition"] == f'attachment; filename="{task}.glb"'
    signed = data_of(get(srv, f"/tasks/url/{task}"))["download_url"]
    assert requests.get(signed, timeout=5).content == MODEL


def test_text_prompt_is_an_alias_recorded_as_prompt(srv: StandinServer) -> None:
    key = data_of(upload_model(srv, MODEL))["file_key"]
    task = data_of(post(srv, "/tasks/text-to-texture", {"text_prompt": "rusty metal", "model_file": key}))
    assert data_of(get(srv, f"/tasks/{task['task_uuid']}"))["input"] == {"prompt": "rusty metal", "model_file": key}
    response = post(srv, "/tasks/text-to-texture", {"text_prompt": "a refuse-me texture", "model_file": key})
    assert error_of(response) == (400, 2008)  # the alias is moderated too


def test_an_obj_or_a_url_gives_the_sample_asset_and_scene_result_overrides(srv: StandinServer) -> None:
    obj_key = data_of(upload_model(srv, OBJ, name="tri.obj"))["file_key"]
    from_obj = data_of(post(srv, "/tasks/model-remesh", {"model_file": obj_key}))["task_uuid"]
    from_url = data_of(post(srv, "/tasks/model-remesh", {"model_file": "https://example.com/m.glb"}))["task_uuid"]
    seen: list[tuple[str, bytes | None]] = []
    remeshed = glb_of("remeshed", pad=10)
    srv.gen.scene_result = lambda flow, model: seen.append((flow, model)) or remeshed
    glb_key = data_of(upload_model(srv, MODEL))["file_key"]
    custom = data_of(post(srv, "/tasks/model-remesh", {"model_file": glb_key}))["task_uuid"]
    assert seen == [("model-remesh", MODEL)]
    for task in (from_obj, from_url, custom):
        wait_status(srv, task, "SUCCESS")
    assert get(srv, f"/tasks/download/{from_obj}").content == minimal_glb()
    assert get(srv, f"/tasks/download/{from_url}").content == minimal_glb()
    assert get(srv, f"/tasks/download/{custom}").content == remeshed


@pytest.mark.parametrize(
    ("flow", "change", "code", "problem"),
    [
        ("texture-model", {"model_file": None}, 1004, "model_file"),
        ("texture-model", {"model_file": "tasks/uid_standin/20260101/nope.glb"}, 1004, "model_file"),
        ("texture-model", {"model_file": "IMAGE"}, 1004, "model_file"),  # an image's key is no model
        ("texture-model", {"image_file": None}, 1004, "image_file"),
        ("texture-model", {"image_file": "MODEL"}, 1004, "image_file"),  # nor a model's an image
        ("texture-model", {"image_file": "ftp://example.com/a.png"}, 1004, "image_file"),
        ("texture-model", {"polygon_limit": 999}, 1004, "polygon_limit"),
        ("texture-model", {"polygon_limit": 1_500_001}, 1004, "polygon_limit"),
        ("texture-model", {"texture_size": 1023}, 1004, "texture_size"),
        ("texture-model", {"texture_size": 4097}, 1004, "texture_size"),
        ("texture-model", {"model_version": "v9"}, 1004, "model_version"),
        ("texture-model", {"allow_duplicate": "yes"}, 1004, "allow_duplicate"),
        ("text-to-texture", {"prompt": "ab"}, 1004, "prompt"),
        ("text-to-texture", {"prompt": None}, 1004, "prompt"),
        ("text-to-texture", {"model_file": None}, 1004, "model_file"),
        ("text-to-texture", {"texture_size": 8192}, 1004, "texture_size"),
        ("model-remesh", {"model_file": "nope"}, 1004, "model_file"),
        ("model-remesh", {"polygon_limit": 0}, 1004, "polygon_limit"),
        ("model-remesh", {"polygon_limit": True}, 1004, "polygon_limit"),
        ("model-remesh", {"texture_size": 1024}, 1004, "texture_size"),
        ("model-remesh", {"output_format": "fbx"}, 2004, "output_format"),
        ("model-remesh", {"output_format": 3}, 1004, "output_format"),
    ],
)
def test_scene_creation_validates(srv: StandinServer, flow: str, change: dict, code: int, problem: str) -> None:
    model_key = data_of(upload_model(srv, MODEL))["file_key"]
    body = bodies(srv, model_key)[flow]
    image_key = body.get("image_file") or data_of(upload_image(srv))["file_key"]
    for name, value in change.items():
        value = {"IMAGE": image_key, "MODEL": model_key}.get(value, value) if isinstance(value, str) else value
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    response = post(srv, f"/tasks/{flow}", body)
    assert error_of(response) == (400, code)
    assert problem in response.json()["message"]
    assert srv.created == [] and data_of(get(srv, "/users/balance"))["frozen"] == 0.0


@pytest.mark.parametrize("flow", ["texture-model", "text-to-texture", "model-remesh"])
def test_a_repeated_order_id_is_one_task_charged_once(srv: StandinServer, flow: str) -> None:
    key = data_of(upload_model(srv, MODEL))["file_key"]
    body = {**bodies(srv, key)[flow], "client_order_id": f"{flow}-example-001"}
    first = data_of(post(srv, f"/tasks/{flow}", body))
    again = data_of(post(srv, f"/tasks/{flow}", {**body, "allow_duplicate": True}))
    assert first == again and srv.created == [first["task_uuid"]]
    wait_status(srv, first["task_uuid"], "SUCCESS")
    assert data_of(post(srv, f"/tasks/{flow}", body)) == first
    assert data_of(get(srv, "/users/balance")) == {"balance": 1000.0 - first["cost_credits"], "frozen": 0.0}


def test_a_failed_scene_task_releases_its_credits(srv: StandinServer) -> None:
    key = data_of(upload_model(srv, MODEL))["file_key"]
    srv.script_next_generation(outcome="FAILED", error="Mesh is not manifold")
    task = data_of(post(srv, "/tasks/model-remesh", {"model_file": key}))["task_uuid"]
    assert wait_status(srv, task, "FAILED")["error"]["message"] == "Mesh is not manifold"
    assert data_of(get(srv, "/users/balance")) == {"balance": 1000.0, "frozen": 0.0}
    assert error_of(get(srv, f"/tasks/download/{task}")) == (409, 2005)


@pytest.mark.parametrize(
    ("flow", "params", "kept", "cost"),
    [
        ("texture-model", {"texture_size": 4096, "polygon_limit": 5000, "image_file": "x"}, 2, 60),
        ("texture-model", {}, 0, 40),
        ("text-to-texture", {"texture_size": 2048, "prompt": "x"}, 1, 40),
        ("model-remesh", {"texture_size": 4096, "polygon_limit": 5000}, 1, 20),
    ],
)
def test_quotes_of_the_scene_flows(srv: StandinServer, flow: str, params: dict, kept: int, cost: int) -> None:
    data = data_of(post(srv, "/tasks/pricing/quote", {"flow_name": flow, "params": params}))
    assert (data["flow_name"], data["cost_credits"], data["available_credits"]) == (flow, cost, 1000.0)
    assert len(data["params"]) == kept and set(data["params"]) <= {"texture_size", "polygon_limit"}
    assert data_of(post(srv, "/tasks/pricing/quote", {"flowName": flow, "params": params}))["cost_credits"] == cost
    assert data_of(post(srv, "/tasks/pricing/quote", {"flow_name": "text-to-model"}))["cost_credits"] == 40
    assert error_of(post(srv, "/tasks/pricing/quote", {"flow_name": "model-recolor"})) == (400, 1004)


# --- the watch of the whole account -------------------------------------------------------------------------


def watch_all_url(server: StandinServer, since: str | None = None, key: str = KEY) -> str:
    url = server.base_url.replace("http://", "ws://") + f"/tasks/watch/all?token={key}"
    return url if since is None else url + "&since=" + quote(since, safe="")


def connect(url: str):
    from websockets.sync.client import connect as ws_connect

    return ws_connect(url, open_timeout=5, close_timeout=1)


def frame(ws, timeout: float = 2) -> tuple[str, dict]:
    """(event, data) of the next message."""
    event, data = ws.recv(timeout=timeout).split("\n", 1)
    assert event.startswith("event: ") and data.startswith("data: ")
    body = json.loads(data.removeprefix("data: "))
    assert (body["code"], body["message"]) == (0, "success")
    return event.removeprefix("event: "), body["data"]


def frames_until_quiet(ws, quiet: float = 0.3) -> list[tuple[str, dict]]:
    """Every message until none comes for `quiet` seconds."""
    out = []
    while True:
        try:
            out.append(frame(ws, timeout=quiet))
        except TimeoutError:
            return out


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_watch_all_starts_with_every_task_then_stays_open(srv: StandinServer) -> None:
    srv.script_next_generation(hold=True)
    running = data_of(post(srv, "/tasks/text-to-model", {"prompt": "a chair"}))["task_uuid"]
    wait_status(srv, running, "RUNNING")
    time.sleep(0.2)  # held at RUNNING 95%
    with connect(watch_all_url(srv)) as ws:
        got = frames_until_quiet(ws)
        assert [(e, d["task_uuid"], d["status"]) for e, d in got] == [
            ("finalized", SEED, "SUCCESS"),  # the oldest change first
            ("update", running, "RUNNING"),
        ]
        for _, data in got:  # the status endpoint's own data (its signed URLs aside)
            status = data_of(get(srv, f"/tasks/{data['task_uuid']}"))
            assert set(data) == set(status)
            unsigned = {k: v for k, v in status.items() if k != "output"}
            assert {k: v for k, v in data.items() if k != "output"} == unsigned
        srv.release(running)
        assert [(e, d["status"]) for e, d in frames_until_quiet(ws)] == [("finalized", "SUCCESS")]
        with pytest.raises(TimeoutError):  # open and quiet, not closed
            ws.recv(timeout=0.3)
    (recorded,) = srv.requests_for("/tasks/watch/all")
    assert recorded.path == f"/api/v1/tasks/watch/all?token={KEY}"


def test_watch_all_since_is_exclusive(srv: StandinServer) -> None:
    edge = 1_700_000_001.0  # 2023-11-14T22:13:21.000Z
    srv.add("old", DATA, updated_at=edge - 5)
    srv.add("at-since", DATA, updated_at=edge)
    srv.add("just-after", DATA, updated_at=edge + 0.001)
    for since in ("2023-11-14T22:13:21.000Z", "2023-11-14T22:13:21+00:00", "2023-11-14T23:13:21.000+01:00",
                  "2023-11-14T22:13:21"):  # fmt: skip
        with connect(watch_all_url(srv, since)) as ws:
            assert [d["task_uuid"] for _, d in frames_until_quiet(ws, 0.2)] == ["just-after", SEED], since
    assert srv.requests_for("since=")[0].path.endswith("&since=2023-11-14T22%3A13%3A21.000Z")


def test_watch_all_since_follows_changes(srv: StandinServer) -> None:
    srv.add("other", DATA, status="RUNNING", progress=20)
    time.sleep(0.05)
    since = iso(time.time())
    time.sleep(0.05)
    srv.set_status("other", "RUNNING", progress=60)
    with connect(watch_all_url(srv, since)) as ws:
        assert [(d["task_uuid"], d["progress"]) for _, d in frames_until_quiet(ws, 0.2)] == [("other", 60)]
    future = iso(time.time() + 60)
    with connect(watch_all_url(srv, future)) as ws:  # nothing changed after a future time
        assert frames_until_quiet(ws, 0.2) == []
        srv.set_status(SEED, "FAILED", error={"code": 5001, "message": "gone"})
        event, data = frame(ws)
        assert (event, data["task_uuid"], data["error"]) == ("finalized", SEED, {"code": 5001, "message": "gone"})
    sent = [r.path.split("&since=")[1] for r in srv.requests_for("/tasks/watch/all")]
    assert sent == [quote(since, safe=""), quote(future, safe="")]  # what each client sent, for tests to check


def test_a_task_created_elsewhere_shows_up_live_with_every_step(srv: StandinServer) -> None:
    with connect(watch_all_url(srv)) as ws:
        assert frame(ws)[1]["task_uuid"] == SEED
        began = time.monotonic()
        task = data_of(post(srv, "/tasks/text-to-model", {"prompt": "a lamp"}))["task_uuid"]
        event, first = frame(ws, timeout=1)
        assert time.monotonic() - began < 1.0
        assert (event, first["task_uuid"], first["status"]) == ("update", task, "QUEUED")
        got = [(event, first)]
        while got[-1][1]["status"] != "SUCCESS":
            got.append(frame(ws))
    assert {d["task_uuid"] for _, d in got} == {task}
    steps = [(d["status"], d["progress"]) for _, d in got]
    # Pushed as each change happens (20 ms apart), so a coarse poll would miss some of these.
    assert [s for s in steps if s[0] == "RUNNING"] == [("RUNNING", p) for p in (10, 40, 70, 95)]
    assert steps[-1] == ("SUCCESS", 100)
    assert [e for e, _ in got] == ["update"] * (len(got) - 1) + ["finalized"]
    assert [d["queue"]["position"] for _, d in got if d["status"] == "QUEUED"] == [2, 1]


def test_watch_all_refusals(srv: StandinServer) -> None:
    from websockets.exceptions import InvalidStatus

    for url, status in (
        (watch_all_url(srv, key="wrong"), 401),
        (watch_all_url(srv, since="yesterday"), 400),
        (watch_all_url(srv, since="2026-13-01T00:00:00Z"), 400),
    ):
        with pytest.raises(InvalidStatus) as info:
            connect(url)
        assert info.value.response.status_code == status, url
    srv.fail("refused", on="watch_all", times=1)
    with connect(watch_all_url(srv).replace("/all?", f"/{SEED}?")) as ws:  # the single-task watch is not affected
        assert frame(ws)[1]["task_uuid"] == SEED
    with pytest.raises(InvalidStatus) as info:
        connect(watch_all_url(srv))
    assert info.value.response.status_code == 404
    srv.fail("unavailable", on="watch_all", times=1)
    with pytest.raises(InvalidStatus) as info:
        connect(watch_all_url(srv))
    assert info.value.response.status_code == 503
    with connect(watch_all_url(srv)) as ws:  # both used up
        assert frame(ws)[1]["task_uuid"] == SEED
    assert len(srv.requests_for("/tasks/watch/all")) == 6  # recorded even without record_watch


def test_watch_all_drop_and_close_early(srv: StandinServer) -> None:
    from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

    srv.add("second", DATA)
    srv.fail("drop", on="watch_all", times=1)
    with connect(watch_all_url(srv)) as ws:
        assert frame(ws)[1]["task_uuid"] == SEED
        with pytest.raises(ConnectionClosedError):  # abruptly: no close frame
            ws.recv(timeout=2)
    srv.fail("close_early", on="watch_all", times=1)
    with connect(watch_all_url(srv)) as ws:
        assert frame(ws)[1]["task_uuid"] == SEED
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=2)
        assert ws.close_code == 1000
    with connect(watch_all_url(srv)) as ws:
        assert [d["task_uuid"] for _, d in frames_until_quiet(ws, 0.2)] == [SEED, "second"]


def test_watch_all_silent_and_no_finalized(srv: StandinServer) -> None:
    srv.fail("silent", on="watch_all", times=1)
    with connect(watch_all_url(srv)) as ws:
        post(srv, "/tasks/text-to-mesh", {"prompt": "a cup"})
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    srv.fail("no_finalized", on="watch_all", times=1)
    with connect(watch_all_url(srv)) as ws:
        got = frames_until_quiet(ws, 0.2)
    assert ("update", SEED, "SUCCESS") in [(e, d["task_uuid"], d["status"]) for e, d in got]
    assert "finalized" not in [e for e, _ in got]


def test_stop_closes_open_watches() -> None:
    from websockets.exceptions import ConnectionClosed

    server = StandinServer(api_key=KEY).start()
    server.add(SEED, DATA)
    with connect(watch_all_url(server)) as ws:
        frame(ws)
        assert server.gen.watching == 1
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 2 and server.gen.watching == 0
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=2)
