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
