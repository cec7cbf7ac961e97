"""The loopback stand-in of the Triverse service (scripts/standin_server.py) answers as documented."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from standin_server import RecordedRequest, StandinServer, Task

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "standin_server.py"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"
DATA = b"glTF" + random.Random(1).randbytes(200_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def server() -> Iterator[StandinServer]:
    """A running stand-in with one finished task (with a preview)."""
    with StandinServer(api_key=KEY) as srv:
        srv.add(TASK, DATA, preview=PNG)
        yield srv
    assert not [t for t in threading.enumerate() if t.name.startswith("standin")]


def get(srv: StandinServer, path: str, headers: dict[str, str] | None = AUTH, **kw) -> requests.Response:
    """GET base_url + path, with the key by default."""
    return requests.get(srv.base_url + path, headers=headers, timeout=5, **kw)


def download(srv: StandinServer, **kw) -> requests.Response:
    """The direct download of TASK."""
    return get(srv, f"/tasks/download/{TASK}", **kw)


def raw_get(url: str) -> tuple[bytes, bytes]:
    """(head, body) of a GET read with a bare socket until the server closes (or resets) the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        request = f"GET {parts.path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        try:
            while chunk := sock.recv(1 << 16):
                data += chunk
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def service_error(response: requests.Response) -> dict:
    """The service's error body, checked for its shape."""
    body = response.json()
    assert set(body) == {"code", "message", "suggestion"}
    return body


# --- authentication and the normal answers ---


@pytest.mark.parametrize("path", [f"/tasks/download/{TASK}", f"/tasks/url/{TASK}", f"/tasks/{TASK}", "/users/me"])
@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_every_endpoint_requires_the_key(server: StandinServer, path: str, headers: dict | None) -> None:
    response = get(server, path, headers=headers)
    assert response.status_code == 401
    assert service_error(response)["code"] == 1001


def test_download_returns_the_exact_bytes(server: StandinServer) -> None:
    response = download(server)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{TASK}.glb"'
    assert response.headers["Content-Length"] == str(len(DATA))


def test_filename_follows_the_extension_or_is_given(server: StandinServer) -> None:
    assert server.add("fbx-task", b"x", ext="fbx").filename == "fbx-task.fbx"
    assert 'filename="fbx-task.fbx"' in get(server, "/tasks/download/fbx-task").headers["Content-Disposition"]
    server.add("named", b"x", filename="model.obj", ext="obj")
    assert 'filename="model.obj"' in get(server, "/tasks/download/named").headers["Content-Disposition"]


def test_unknown_task_and_unknown_endpoint(server: StandinServer) -> None:
    for path in ("/tasks/download/nope", "/tasks/url/nope", "/tasks/nope"):
        response = get(server, path)
        assert (response.status_code, service_error(response)["code"]) == (404, 1006)
    response = get(server, "/users/nope")
    assert (response.status_code, service_error(response)["code"]) == (404, 1005)
    assert requests.post(server.base_url + f"/tasks/{TASK}", headers=AUTH, timeout=5).status_code == 404


@pytest.mark.parametrize("status", ["PENDING", "QUEUED", "RUNNING", "FAILED", "CANCELLED"])
def test_download_and_url_before_success_are_409(server: StandinServer, status: str) -> None:
    server.set_status(TASK, status, progress=40)
    for path in (f"/tasks/download/{TASK}", f"/tasks/url/{TASK}"):
        response = get(server, path)
        assert response.status_code == 409
        body = service_error(response)
        assert body["code"] == 2005
        assert status in body["message"]


def test_status_endpoint(server: StandinServer) -> None:
    data = get(server, f"/tasks/{TASK}").json()
    assert (data["code"], data["message"]) == (0, "success")
    task = data["data"]
    assert task["task_uuid"] == TASK
    assert (task["status"], task["progress"], task["error"]) == ("SUCCESS", 100, None)
    assert task["flow_name"] and task["created_at"] and task["completed_at"] and task["input"] == {}
    assert task["output"]["model_url"].startswith(server.asset_base)

    server.set_status(TASK, "RUNNING", progress=40)
    task = get(server, f"/tasks/{TASK}").json()["data"]
    assert (task["status"], task["progress"], task["output"], task["completed_at"]) == ("RUNNING", 40, None, None)
    server.set_status(TASK, "FAILED", error={"code": 5004, "message": "invalid flow"})
    assert get(server, f"/tasks/{TASK}").json()["data"]["error"] == {"code": 5004, "message": "invalid flow"}


def test_url_endpoint_in_the_envelope(server: StandinServer) -> None:
    body = get(server, f"/tasks/url/{TASK}").json()
    assert (body["code"], body["message"]) == (0, "success")
    data = body["data"]
    assert data["kind"] == "model"
    assert data["asset_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, TASK))
    assert data["download_url"].startswith(f"{server.asset_base}/files/{TASK}.glb?expires=")
    assert server.asset_base.startswith("http://127.0.0.2:")
    asset = requests.get(data["download_url"], timeout=5)  # no key: the asset host needs none
    assert asset.status_code == 200
    assert asset.content == DATA
    assert asset.headers["Content-Disposition"] == f'attachment; filename="{TASK}.glb"'
    assert asset.headers["Content-Length"] == str(len(DATA))
    preview = requests.get(data["preview_url"], timeout=5)
    assert (preview.status_code, preview.headers["Content-Type"], preview.content) == (200, "image/png", PNG)


def test_url_endpoint_without_envelope() -> None:
    with StandinServer(envelope=False) as srv:
        srv.add(TASK, DATA)
        data = get(srv, f"/tasks/url/{TASK}").json()
        assert set(data) == {"download_url", "preview_url", "asset_id", "kind"}
        assert data["preview_url"] is None
        assert requests.get(data["download_url"], timeout=5).content == DATA


def test_assets_from_the_api_host_when_there_is_no_asset_host() -> None:
    with StandinServer(asset_host=None) as srv:
        srv.add(TASK, DATA)
        url = get(srv, f"/tasks/url/{TASK}").json()["data"]["download_url"]
        assert url.startswith(srv.base_url.removesuffix("/api/v1") + "/files/")
        assert requests.get(url, timeout=5).content == DATA


def test_signed_url_expired_or_tampered_is_403_xml(server: StandinServer) -> None:
    good = server.signed_url(TASK)
    tampered = [
        server.signed_url(TASK, ttl=-10),
        good.replace("sig=", "sig=0"),
        good.replace("expires=", "expires=9"),
        good.split("?")[0],
        good.replace(".glb", ".fbx"),
    ]
    for url in tampered:
        response = requests.get(url, timeout=5)
        assert response.status_code == 403, url
        assert response.headers["Content-Type"] == "application/xml"
        assert "<Error><Code>AccessDenied</Code>" in response.text
    assert "expired" in requests.get(tampered[0], timeout=5).text
    assert requests.get(good, timeout=5).status_code == 200
    assert requests.get(server.asset_base + "/api/v1/tasks/x", headers=AUTH, timeout=5).status_code == 404


def test_requests_are_recorded_with_their_host(server: StandinServer) -> None:
    url = get(server, f"/tasks/url/{TASK}").json()["data"]["download_url"]
    requests.get(url, timeout=5)
    assert [(r.method, r.host) for r in server.requests] == [("GET", "127.0.0.1"), ("GET", "127.0.0.2")]
    api, asset = server.requests
    assert isinstance(api, RecordedRequest)
    assert api.path == f"/api/v1/tasks/url/{TASK}"
    assert api.authorization == f"Bearer {KEY}"
    assert asset.authorization is None
    assert asset.path == urlsplit(url).path + "?" + urlsplit(url).query
    assert server.requests_for("/files/") == [asset]
    assert api.time <= asset.time


def test_a_path_is_streamed(server: StandinServer, tmp_path: Path) -> None:
    big = tmp_path / "big.glb"
    big.write_bytes(random.Random(2).randbytes(20 * 1024 * 1024))
    server.add_task(Task("big", big))
    digest = hashlib.sha256()
    with get(server, "/tasks/download/big", stream=True) as response:
        assert response.headers["Content-Length"] == str(big.stat().st_size)
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(big.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError):
        server.add("missing", tmp_path / "missing.glb")


# --- failure modes ---


@pytest.mark.parametrize(
    ("mode", "params", "status", "code", "message"),
    [
        ("unauthorized", {}, 401, 1001, "Invalid API key"),
        ("forbidden", {}, 403, 2010, "Insufficient credits"),
        ("not_found", {}, 404, 1006, "Task not found"),
        ("no_assets", {}, 404, 4042, "Task succeeded but has no assets"),
        ("not_finished", {}, 409, 2005, "Task is RUNNING"),
        ("not_finished", {"status": "QUEUED"}, 409, 2005, "Task is QUEUED"),
        ("rate_limited", {}, 429, 2000, None),
        ("unavailable", {}, 503, 5003, None),
        ("server_error", {}, 500, 5005, "Persistence error"),
        ("server_error", {"message": "Database down"}, 500, 5005, "Database down"),
    ],
)
def test_json_error_modes(server: StandinServer, mode: str, params: dict, status: int, code: int, message) -> None:
    server.fail(mode, **params)
    response = download(server)
    assert response.status_code == status
    body = service_error(response)
    assert body["code"] == code
    if message is not None:
        assert body["message"] == message


@pytest.mark.parametrize(
    ("mode", "params", "retry_after"),
    [
        ("rate_limited", {}, "1"),
        ("rate_limited", {"retry_after": 7}, "7"),
        ("rate_limited", {"retry_after": None}, None),
        ("unavailable", {}, None),
        ("unavailable", {"retry_after": 3}, "3"),
    ],
)
def test_retry_after(server: StandinServer, mode: str, params: dict, retry_after: str | None) -> None:
    server.fail(mode, **params)
    assert download(server).headers.get("Retry-After") == retry_after


def test_non_service_bodies(server: StandinServer) -> None:
    server.fail("expired", times=1)
    response = download(server)
    assert (response.status_code, response.json()) == (410, {"detail": "Asset expired"})
    for mode, status, text in (("bad_gateway", 502, "502 Bad Gateway"), ("gateway_timeout", 504, "504 Gateway")):
        server.fail(mode, times=1)
        response = download(server)
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("text/html")
        assert text in response.text
    server.fail("html", times=1)
    response = download(server)
    assert (response.status_code, response.headers["Content-Type"].split(";")[0]) == (200, "text/html")
    assert response.text.startswith("<!DOCTYPE html>") and "Sign in" in response.text
    server.fail("json", times=1)
    response = download(server)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json")
    assert response.json() == {"detail": "something"}


def test_garbage_is_deterministic_and_magicless(server: StandinServer) -> None:
    server.fail("garbage", times=2)
    first, second = download(server), download(server)
    assert first.headers["Content-Type"] == "application/octet-stream"
    assert len(first.content) == 4096 and first.content == second.content
    assert not first.content.startswith((b"glTF", b"PK", b"Kaydara", b"\x1f\x8b", b"\x89PNG", b"{", b"<"))
    server.fail("garbage", times=1, size=100)
    assert len(download(server).content) == 100


def test_gzip(server: StandinServer) -> None:
    server.fail("gzip")
    response = download(server, stream=True)
    assert response.headers["Content-Encoding"] == "gzip"
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Length"] == str(len(raw))
    assert gzip.decompress(raw) == DATA
    assert download(server).content == DATA  # requests decodes it


def test_chunked(server: StandinServer) -> None:
    server.fail("chunked")
    response = download(server)
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    assert response.content == DATA


def test_truncated(server: StandinServer) -> None:
    server.fail("truncated", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download(server)
    server.fail("truncated", times=1, fraction=0.25)
    head, body = raw_get(server.base_url + f"/tasks/download/{TASK}")
    assert f"Content-Length: {len(DATA)}".encode() in head
    assert body == DATA[: int(len(DATA) * 0.25)]


def test_drop(server: StandinServer) -> None:
    server.fail("drop", times=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        download(server)
    server.fail("drop", times=1)
    head, body = raw_get(server.base_url + f"/tasks/download/{TASK}")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert not body.endswith(b"0\r\n\r\n")


def test_stall_then_the_rest(server: StandinServer) -> None:
    server.fail("stall", after_bytes=10, seconds=0.3)
    started = time.monotonic()
    assert download(server).content == DATA
    assert time.monotonic() - started >= 0.3


def test_stop_interrupts_a_stall() -> None:
    srv = StandinServer().start()
    srv.add(TASK, DATA)
    srv.fail("stall", after_bytes=100, seconds=60)
    received: list[bytes] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            with download(srv, stream=True) as response:
                received.extend(response.iter_content(10))
        except requests.RequestException as exc:
            errors.append(exc)

    client = threading.Thread(target=fetch)
    client.start()
    deadline = time.monotonic() + 5
    while sum(map(len, received)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    client.join(5)
    assert time.monotonic() - started < 2
    assert not client.is_alive()
    assert b"".join(received) == DATA[:100] and errors


def test_slow(server: StandinServer) -> None:
    server.add("small", DATA[:50_000])
    server.fail("slow", uuid="small", bytes_per_second=200_000)
    started = time.monotonic()
    assert get(server, "/tasks/download/small").content == DATA[:50_000]
    assert time.monotonic() - started >= 0.2


def test_first_byte_delay(server: StandinServer) -> None:
    server.fail("first_byte_delay", seconds=0.15)
    for _ in range(2):  # until cleared
        started = time.monotonic()
        assert download(server).content == DATA
        assert time.monotonic() - started >= 0.15


def test_redirect_to_the_asset_host_drops_the_key(server: StandinServer) -> None:
    server.fail("redirect", times=1)
    response = download(server)
    assert response.content == DATA
    assert response.history[0].status_code == 302
    assert response.url.startswith(server.asset_base + "/files/")
    (fetched,) = server.requests_for("/files/")
    assert (fetched.host, fetched.authorization) == ("127.0.0.2", None)


def test_redirect_on_the_same_host(server: StandinServer) -> None:
    server.fail("redirect_same_host", times=1)
    response = download(server)
    assert response.content == DATA
    assert response.url.startswith(server.base_url.removesuffix("/api/v1") + "/files/")
    assert server.requests_for("/files/")[0].host == "127.0.0.1"


def test_times_consumption_order_and_scope(server: StandinServer) -> None:
    server.add("other", b"other")
    server.fail("server_error", times=2)
    assert [download(server).status_code for _ in range(3)] == [500, 500, 200]

    server.fail("forbidden")  # until cleared
    server.fail("rate_limited", times=1)  # the most recent applicable one wins
    assert [download(server).status_code for _ in range(3)] == [429, 403, 403]
    server.clear_failures()
    assert download(server).status_code == 200

    server.fail("not_found", uuid="other")
    assert download(server).status_code == 200
    assert get(server, "/tasks/download/other").status_code == 404
    assert get(server, f"/tasks/url/{TASK}").status_code == 200  # the download endpoint only, by default
    server.clear_failures()

    server.fail("unavailable", on="url", times=1)
    assert get(server, f"/tasks/url/{TASK}").status_code == 503
    server.fail("truncated", on="files", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.signed_url(TASK), timeout=5)

    with pytest.raises(ValueError):
        server.fail("explode")
    with pytest.raises(ValueError):
        server.fail("drop", times=0)


def test_transport_failures_wait_for_a_servable_task(server: StandinServer) -> None:
    server.fail("truncated", times=1)
    assert get(server, "/tasks/download/nope").status_code == 404  # not consumed: nothing to truncate
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download(server)


# --- lifecycle and command line ---


def test_stop_leaves_no_threads_or_ports() -> None:
    before = threading.active_count()
    srv = StandinServer().start()
    srv.add(TASK, DATA)
    session = requests.Session()  # keeps its connections open
    assert session.get(srv.base_url + f"/tasks/download/{TASK}", headers=AUTH, timeout=5).ok
    assert session.get(srv.signed_url(TASK), timeout=5).ok
    api = urlsplit(srv.base_url)
    srv.stop()
    srv.stop()  # idempotent
    assert threading.active_count() == before
    with pytest.raises(ConnectionRefusedError), socket.create_connection((api.hostname, api.port), timeout=1):
        pass
    session.close()


def test_command_line(tmp_path: Path) -> None:
    asset = tmp_path / "model.glb"
    asset.write_bytes(DATA)
    cmd = [sys.executable, str(SCRIPT), "--asset", str(asset), "--task", TASK]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            info = json.loads(proc.stdout.readline())
            assert (info["task_uuid"], info["api_key"]) == (TASK, "demo-key")
            response = requests.get(
                f"{info['base_url']}/tasks/download/{TASK}", headers={"Authorization": "Bearer demo-key"}, timeout=5
            )
            assert response.content == DATA
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


# --- generation: creation, upload, price, account, timelines, the watch ---------------------------------


def post(srv: StandinServer, path: str, body: object, **kw) -> requests.Response:
    """POST JSON to base_url + path with the key."""
    return requests.post(srv.base_url + path, json=body, headers=AUTH, timeout=5, **kw)


def data_of(response: requests.Response) -> dict:
    """The `data` of a success envelope, checked for its shape."""
    body = response.json()
    assert (response.status_code, body["code"]) == (200, 0), body
    return body["data"]


@pytest.fixture
def gen() -> Iterator[StandinServer]:
    """A stand-in with 100 credits and quick timelines."""
    with StandinServer(api_key=KEY, balance=100, timeline_step=0.02) as srv:
        yield srv
    assert not [t for t in threading.enumerate() if t.name.startswith("standin")]


def wait_status(srv: StandinServer, task: str, wanted: str, timeout: float = 5) -> dict:
    """Poll the status endpoint until `wanted`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = data_of(get(srv, f"/tasks/{task}"))
        if data["status"] == wanted:
            return data
        time.sleep(0.01)
    raise AssertionError(f"{task} never reached {wanted}")


@pytest.mark.parametrize(
    ("flow", "body", "problem"),
    [
        ("text-to-model", {}, "prompt"),
        ("text-to-model", {"prompt": "ab"}, "prompt"),
        ("text-to-model", {"prompt": "chair", "polygon_limit": 999}, "polygon_limit"),
        ("text-to-model", {"prompt": "chair", "polygon_limit": 1_500_001}, "polygon_limit"),
        ("text-to-model", {"prompt": "chair", "texture_size": 3000}, "texture_size"),
        ("text-to-mesh", {"prompt": "chair", "texture_size": 1024}, "texture_size"),
        ("text-to-model", {"prompt": "chair", "turbo": "yes"}, "turbo"),
        ("text-to-model", {"prompt": "chair", "client_order_id": "has space"}, "client_order_id"),
        ("image-to-model", {"image_file": "tasks/unknown.png"}, "image_file"),
    ],
)
def test_creation_validates_like_the_service(gen: StandinServer, flow: str, body: dict, problem: str) -> None:
    response = post(gen, f"/tasks/{flow}", body)
    assert (response.status_code, service_error(response)["code"]) == (400, 1004)
    assert problem in response.json()["message"]
    assert not gen.created


def test_creation_freezes_then_charges_on_success(gen: StandinServer) -> None:
    data = data_of(
        post(gen, "/tasks/text-to-model", {"prompt": "a chair", "texture_size": 2048, "client_order_id": "o1"})
    )
    assert data["status"] == "QUEUED" and data["cost_credits"] == 50 and data["queue"]["position"] == 2
    assert data_of(get(gen, "/users/balance")) == {"balance": 50.0, "frozen": 50.0}
    done = wait_status(gen, data["task_uuid"], "SUCCESS")
    assert done["flow_name"] == "text-to-model" and done["progress"] == 100
    assert data_of(get(gen, "/users/me"))["api_credits_balance"] == 50.0
    assert download_of(gen, data["task_uuid"]).content[:4] == b"glTF"


def download_of(srv: StandinServer, task: str) -> requests.Response:
    """The direct download of a task."""
    return get(srv, f"/tasks/download/{task}")


def test_a_failed_generation_releases_its_credits(gen: StandinServer) -> None:
    gen.script_next_generation(outcome="FAILED", error="Nothing recognisable")
    data = data_of(post(gen, "/tasks/text-to-mesh", {"prompt": "a chair"}))
    assert data["cost_credits"] == 20
    failed = wait_status(gen, data["task_uuid"], "FAILED")
    assert failed["error"]["message"] == "Nothing recognisable"
    assert data_of(get(gen, "/users/balance")) == {"balance": 100.0, "frozen": 0.0}


def test_a_repeated_order_id_answers_the_original(gen: StandinServer) -> None:
    body = {"prompt": "a chair", "client_order_id": "same"}
    first, again = data_of(post(gen, "/tasks/text-to-model", body)), data_of(post(gen, "/tasks/text-to-model", body))
    assert first == again and len(gen.created) == 1
    gen.gen.repeat_answer = "conflict"
    response = post(gen, "/tasks/text-to-model", body)
    assert response.status_code == 409 and response.json()["data"]["task_uuid"] == first["task_uuid"]


def test_insufficient_credits_and_refused_content(gen: StandinServer) -> None:
    response = post(gen, "/tasks/image-to-model", {"image_file": "https://example.com/x.png", "texture_size": 4096})
    assert data_of(response)["cost_credits"] == 70
    response = post(gen, "/tasks/image-to-model", {"image_file": "https://example.com/x.png"})
    assert (response.status_code, service_error(response)["code"]) == (403, 2010)
    response = post(gen, "/tasks/text-to-mesh", {"prompt": "a refuse-me thing"})
    assert (response.status_code, service_error(response)["code"]) == (400, 2008)


def test_quote(gen: StandinServer) -> None:
    body = {"flow_name": "image-to-model", "params": {"texture_size": 2048, "turbo": True, "prompt": "x"}}
    assert data_of(post(gen, "/tasks/pricing/quote", body)) == {
        "flow_name": "image-to-model", "params": {"texture_size": 2048, "turbo": True}, "cost_credits": 50,
        "available_credits": 100.0,
    }  # fmt: skip
    assert service_error(post(gen, "/tasks/pricing/quote", {"flow_name": "nope"}))["code"] == 1004


def upload(srv: StandinServer, data: bytes, name: str = "a.png") -> requests.Response:
    """POST /upload/image with `data` in the field `file`."""
    return requests.post(srv.base_url + "/upload/image", files={"file": (name, data)}, headers=AUTH, timeout=5)


def test_upload_checks_bytes_and_rate(gen: StandinServer) -> None:
    key = data_of(upload(gen, PNG))["file_key"]
    assert key.startswith("tasks/uid_standin/") and key.endswith(".png") and gen.gen.files[key] == PNG
    assert data_of(post(gen, "/tasks/image-to-mesh", {"image_file": key}))["flow_name"] == "image-to-mesh"
    response = upload(gen, b"GIF89a" + b"\x00" * 20)
    assert (response.status_code, service_error(response)["code"]) == (400, 2004)
    for _ in range(8):  # ten uploads in all (the refused one counted)
        data_of(upload(gen, b"\xff\xd8\xff\xe0jpeg"))
    response = upload(gen, PNG)
    assert (response.status_code, service_error(response)["code"]) == (429, 2000)
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_upload_larger_than_50_mb_is_refused_unread(gen: StandinServer) -> None:
    parts = urlsplit(gen.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"POST {parts.path}/upload/image HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {60_000_000}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server answers without reading the body, then closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b'"code": 2004' in answer


def test_generation_failures_are_switchable(gen: StandinServer) -> None:
    gen.fail("server_error", on="create", times=1)
    response = post(gen, "/tasks/text-to-mesh", {"prompt": "a chair", "client_order_id": "x1"})
    assert response.status_code == 500 and len(gen.created) == 1  # created, then answered 500
    assert data_of(post(gen, "/tasks/text-to-mesh", {"prompt": "a chair", "client_order_id": "x1"}))
    gen.fail("unavailable", on="quote", times=1, before=True)
    assert post(gen, "/tasks/pricing/quote", {"flow_name": "text-to-mesh", "params": {}}).status_code == 503
    gen.fail("reset", on="account", times=1)
    with pytest.raises(requests.ConnectionError):
        get(gen, "/users/me")
    gen.fail("server_error", on="any")
    assert get(gen, "/users/me").status_code == 200  # "any" does not cover the generation endpoints


def watch_url(srv: StandinServer, task: str, key: str = KEY) -> str:
    """The watch's ws:// URL."""
    return srv.base_url.replace("http://", "ws://") + f"/tasks/watch/{task}?token={key}"


def messages(url: str, limit: int = 50) -> list[tuple[str, dict]]:
    """(event, data) of each message until the server closes the watch."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    out = []
    with connect(url, open_timeout=5, close_timeout=1) as ws:
        try:
            while len(out) < limit:
                event, data = ws.recv(timeout=5).split("\n", 1)
                out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))["data"]))
        except ConnectionClosed:
            pass
    return out


def test_the_watch_pushes_a_whole_timeline(gen: StandinServer) -> None:
    gen.script_next_generation(hold=True)
    task = data_of(post(gen, "/tasks/text-to-model", {"prompt": "a chair"}))["task_uuid"]
    received: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: received.extend(messages(watch_url(gen, task))))
    reader.start()
    wait_status(gen, task, "RUNNING")
    time.sleep(0.2)  # held in RUNNING at 95%
    gen.release(task)
    reader.join(5)
    assert [e for e, _ in received][-2:] == ["update", "finalized"]
    assert received[-1][1]["status"] == "SUCCESS"
    statuses = [(d["status"], d["progress"]) for _, d in received]
    assert ("RUNNING", 95) in statuses and statuses.index(("RUNNING", 95)) < statuses.index(("SUCCESS", 100))


def test_the_watch_follows_set_status_and_refuses_a_bad_token(server: StandinServer) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server.record_watch = True
    server.set_status(TASK, "RUNNING", 30)
    threading.Timer(0.2, lambda: server.set_status(TASK, "FAILED", error={"message": "boom"})).start()
    got = messages(watch_url(server, TASK))
    assert [(e, d["status"]) for e, d in got] == [("update", "RUNNING"), ("update", "FAILED"), ("finalized", "FAILED")]
    assert len(server.requests_for("/tasks/watch/")) == 1
    with pytest.raises(InvalidStatus) as info:
        connect(watch_url(server, TASK, key="wrong"), open_timeout=5)
    assert info.value.response.status_code == 401
    server.fail("refused", on="watch", times=1)
    with pytest.raises(InvalidStatus) as info:
        connect(watch_url(server, TASK), open_timeout=5)
    assert info.value.response.status_code == 404
