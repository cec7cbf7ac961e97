"""The HTTP client against the loopback stand-in: bytes on disk, requests seen, errors a user can act on."""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from socketserver import TCPServer
from typing import Any

import pytest

from standin_server import StandinServer
from triverse_addon.service import errors, transport
from triverse_addon.service.api import AssetInfo, TriverseClient
from triverse_addon.service.settings import Settings

TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"
OTHER = "0f8fad5b-d9cb-469f-a165-70867728950e"
PACKAGE = Path(__file__).resolve().parents[2] / "triverse_addon"


def assert_user_message(exc: BaseException) -> str:
    """The message is one readable sentence, without the transport's internals."""
    text = str(exc)
    assert text and "\n" not in text
    for internal in (
        "Traceback",
        "HTTPConnectionPool",
        "HTTPSConnectionPool",
        "Max retries",
        "urllib3",
        "Errno",
        "object at 0x",
        "NewConnectionError",
        "<html",
    ):
        assert internal not in text, text
    return text


def downloads(server: StandinServer, task: str = TASK) -> list[Any]:
    return server.requests_for(f"/tasks/download/{task}")


def free_port() -> int:
    """A port nothing listens on (bound, then closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a normal download -----------------------------------------------------------------------------


def test_download_writes_exactly_the_served_bytes(
    server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    calls: list[tuple[int, int | None]] = []
    dest = tmp_path / "model.part"
    result = client.download(TASK, dest, progress=lambda n, total: calls.append((n, total)))
    assert dest.read_bytes() == big_glb
    assert result.path == dest
    assert result.size == len(big_glb)
    assert result.sha256 == hashlib.sha256(big_glb).hexdigest()
    assert result.filename == f"{TASK}.glb"
    assert result.content_type == "application/octet-stream"
    # Progress: starts at 0, only ever grows, ends at the total, and always knows the total.
    counts = [n for n, _ in calls]
    assert counts[0] == 0 and counts[-1] == len(big_glb)
    assert all(b > a for a, b in pairwise(counts))
    assert len(counts) >= 4  # ~3 MB arrives in several pieces
    assert {total for _, total in calls} == {len(big_glb)}


def test_the_key_goes_to_the_api_host_as_bearer(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    client.download(TASK, tmp_path / "a.part")
    (request,) = downloads(server)
    assert request.host == "127.0.0.1"
    assert request.authorization == f"Bearer {server.api_key}"
    assert request.headers.get("User-Agent", "").startswith("triverse-blender/")


def test_redirect_to_the_asset_host_carries_no_key(
    server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    server.fail("redirect", TASK)
    result = client.download(TASK, tmp_path / "a.part")
    assert (tmp_path / "a.part").read_bytes() == big_glb and result.size == len(big_glb)
    api = [r for r in server.requests if r.host == "127.0.0.1"]
    assets = [r for r in server.requests if r.host == "127.0.0.2"]
    assert [r.path.split("?")[0] for r in api] == [f"/api/v1/tasks/download/{TASK}"]
    assert [r.path.split("?")[0] for r in assets] == [f"/files/{TASK}.glb"]
    assert api[0].authorization == f"Bearer {server.api_key}"
    assert assets[0].authorization is None
    assert not any(server.api_key in f"{k}: {v}" for k, v in assets[0].headers.items())


def test_same_host_on_another_port_is_another_origin(glb: bytes, tmp_path: Path) -> None:
    with StandinServer(api_key="k", asset_host="127.0.0.1") as srv:
        srv.add(TASK, glb)
        srv.fail("redirect", TASK)
        with TriverseClient(Settings(api_key="k", base_url=srv.base_url)) as c:
            c.download(TASK, tmp_path / "a.part")
        api_port = srv.base_url.split(":")[2].split("/")[0]
        asset_port = srv.asset_base.rsplit(":", 1)[1]
    assert api_port != asset_port
    first, second = srv.requests
    assert first.authorization == "Bearer k"
    assert second.path.startswith("/files/") and second.authorization is None


def test_the_server_file_name_is_made_safe(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    server.add(TASK, b"glTF" + b"\x00" * 100, filename="../../../evil\x01name.glb")
    result = client.download(TASK, tmp_path / "a.part")
    assert result.filename == "evil_name.glb"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.part"]


def test_a_signed_url_failing_after_the_redirect_is_asset_expired(
    server: StandinServer, client: TriverseClient, tmp_path: Path
) -> None:
    server.fail("redirect", TASK)
    server.fail("not_found", TASK, on="files")
    with pytest.raises(errors.AssetExpired):
        client.download(TASK, tmp_path / "a.part")
    assert [r.host for r in server.requests][:2] == ["127.0.0.1", "127.0.0.2"]
    assert not (tmp_path / "a.part").exists()


def test_fetch_of_a_signed_url_sends_no_key(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    info = client.asset_info(TASK)
    client.fetch(info.download_url, tmp_path / "a.part", TASK)
    (asset_request,) = [r for r in server.requests if r.host == "127.0.0.2"]
    assert asset_request.authorization is None


def test_an_expired_signed_url_is_asset_expired(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    with pytest.raises(errors.AssetExpired) as info:
        client.fetch(server.signed_url(TASK, ttl=-60), tmp_path / "a.part", TASK)
    assert "expired" in assert_user_message(info.value)
    assert not (tmp_path / "a.part").exists()


# -- answers the service gives, and the error each becomes -----------------------------------------


@pytest.mark.parametrize(
    ("mode", "error", "words"),
    [
        ("unauthorized", errors.AuthenticationFailed, "API key"),
        ("forbidden", errors.InsufficientCredits, "credits"),
        ("no_assets", errors.NoAsset, "no downloadable model"),
        ("expired", errors.AssetExpired, "expired"),
        ("server_error", errors.ServerError, "Persistence error"),
    ],
)
def test_error_answers_map_to_domain_errors(
    server: StandinServer, client: TriverseClient, tmp_path: Path, mode: str, error: type, words: str
) -> None:
    server.fail(mode, TASK)
    with pytest.raises(error) as info:
        client.download(TASK, tmp_path / "a.part")
    assert type(info.value) is error
    assert words in assert_user_message(info.value)
    assert not (tmp_path / "a.part").exists()
    assert len(downloads(server)) == 1  # not retried


def test_a_wrong_key_is_authentication_failed(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with TriverseClient(make_settings(api_key="not-the-key")) as c, pytest.raises(errors.AuthenticationFailed):
        c.download(TASK, tmp_path / "a.part")


def test_an_unknown_task_is_task_not_found(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    with pytest.raises(errors.TaskNotFound) as info:
        client.download(OTHER, tmp_path / "a.part")
    assert type(info.value) is errors.TaskNotFound
    assert OTHER in assert_user_message(info.value)


def test_not_found_everywhere_is_task_not_found(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    server.fail("not_found", TASK, on="any")
    with pytest.raises(errors.TaskNotFound):
        client.download(TASK, tmp_path / "a.part")


def test_404_for_a_task_that_succeeded_is_asset_expired(
    server: StandinServer, client: TriverseClient, tmp_path: Path
) -> None:
    server.fail("not_found", TASK)  # the download says 404, the status still says SUCCESS
    with pytest.raises(errors.AssetExpired) as info:
        client.download(TASK, tmp_path / "a.part")
    assert "expired" in assert_user_message(info.value)
    assert len(server.requests_for(f"/api/v1/tasks/{TASK}")) == 1  # the status was asked once


def test_not_finished_says_the_status(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    server.set_status(TASK, "RUNNING", progress=40)
    with pytest.raises(errors.TaskNotReady) as info:
        client.download(TASK, tmp_path / "a.part")
    assert "RUNNING" in assert_user_message(info.value) and "40%" in str(info.value)
    assert (info.value.status, info.value.progress) == ("RUNNING", 40)


def test_not_finished_mode_is_task_not_ready(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    server.fail("not_finished", TASK, status="QUEUED", on="any")
    with pytest.raises(errors.TaskNotReady) as info:
        client.download(TASK, tmp_path / "a.part")
    assert "not finished" in assert_user_message(info.value)


def test_a_failed_task_is_task_failed_with_the_service_error(
    server: StandinServer, client: TriverseClient, tmp_path: Path
) -> None:
    server.set_status(TASK, "FAILED", error={"code": 5004, "message": "GPU out of memory"})
    with pytest.raises(errors.TaskFailed) as info:
        client.download(TASK, tmp_path / "a.part")
    assert "FAILED" in assert_user_message(info.value) and "GPU out of memory" in str(info.value)


def test_rate_limited_twice_then_succeeds_after_waiting(
    server: StandinServer, client: TriverseClient, tmp_path: Path, glb: bytes
) -> None:
    server.fail("rate_limited", TASK, times=2, retry_after=1)
    started = time.monotonic()
    client.download(TASK, tmp_path / "a.part")
    elapsed = time.monotonic() - started
    assert (tmp_path / "a.part").read_bytes() == glb
    assert len(downloads(server)) == 3
    assert elapsed >= 1.9  # Retry-After honoured, twice
    assert elapsed < 10


def test_rate_limited_forever_is_service_busy_in_bounded_time(
    server: StandinServer, client: TriverseClient, tmp_path: Path
) -> None:
    server.fail("rate_limited", TASK, retry_after=1)
    started = time.monotonic()
    with pytest.raises(errors.ServiceBusy) as info:
        client.download(TASK, tmp_path / "a.part")
    assert time.monotonic() - started < 40
    assert "busy" in assert_user_message(info.value)
    assert 2 <= len(downloads(server)) <= 6  # retried, but not forever
    assert not (tmp_path / "a.part").exists()


def test_a_huge_retry_after_is_capped(
    server: StandinServer, client: TriverseClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_RETRY_AFTER", 0.5)  # the real cap is 8 s: too long for a unit test
    server.fail("rate_limited", TASK, times=1, retry_after=3600)
    started = time.monotonic()
    client.download(TASK, tmp_path / "a.part")
    assert 0.4 <= time.monotonic() - started < 3
    assert len(downloads(server)) == 2


@pytest.mark.parametrize(
    ("mode", "params", "status"),
    [("unavailable", {"retry_after": 0}, 503), ("bad_gateway", {}, 502), ("gateway_timeout", {}, 504)],
)
def test_unavailable_answers_are_service_busy(
    server: StandinServer,
    client: TriverseClient,
    tmp_path: Path,
    no_backoff: Callable[[TriverseClient], None],
    mode: str,
    params: dict[str, Any],
    status: int,
) -> None:
    no_backoff(client)
    server.fail(mode, TASK, **params)
    with pytest.raises(errors.ServiceBusy) as info:
        client.download(TASK, tmp_path / "a.part")
    text = assert_user_message(info.value)
    assert str(status) in text and "nginx" not in text
    assert len(downloads(server)) > 1  # retried first


def test_one_bad_gateway_is_retried_away(
    server: StandinServer, client: TriverseClient, tmp_path: Path, glb: bytes, no_backoff: Callable[..., None]
) -> None:
    no_backoff(client)
    server.fail("bad_gateway", TASK, times=1)
    client.download(TASK, tmp_path / "a.part")
    assert (tmp_path / "a.part").read_bytes() == glb


@pytest.mark.parametrize("mode", ["truncated", "drop"])
def test_a_cut_body_is_incomplete_and_leaves_no_file(
    server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes, mode: str
) -> None:
    server.add(TASK, big_glb)
    server.fail(mode, TASK)
    dest = tmp_path / "a.part"
    with pytest.raises(errors.IncompleteDownload) as info:
        client.download(TASK, dest)
    assert "cut off" in assert_user_message(info.value)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fraction", [0.0, 0.5])
@pytest.mark.parametrize("mode", ["truncated", "drop"])
def test_a_cut_small_body_is_incomplete(
    server: StandinServer, client: TriverseClient, tmp_path: Path, glb: bytes, mode: str, fraction: float
) -> None:
    server.fail(mode, TASK, fraction=fraction)
    with pytest.raises(errors.IncompleteDownload):
        client.download(TASK, tmp_path / "a.part")
    assert not (tmp_path / "a.part").exists()


@pytest.mark.parametrize("mode", ["html", "json", "garbage"])
def test_wrong_bodies_with_200_are_downloaded_as_is(
    server: StandinServer, client: TriverseClient, tmp_path: Path, mode: str
) -> None:
    # The client only moves bytes; formats.detect_format / obtain.obtain_asset refuse them (see test_core).
    server.fail(mode, TASK)
    result = client.download(TASK, tmp_path / "a.part")
    data = (tmp_path / "a.part").read_bytes()
    assert result.size == len(data) > 0
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_gzip_is_decoded(server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes) -> None:
    server.add(TASK, big_glb)
    server.fail("gzip", TASK)
    calls: list[tuple[int, int | None]] = []
    result = client.download(TASK, tmp_path / "a.part", progress=lambda n, t: calls.append((n, t)))
    assert (tmp_path / "a.part").read_bytes() == big_glb
    assert result.size == len(big_glb) and result.sha256 == hashlib.sha256(big_glb).hexdigest()
    assert len(gzip.compress(big_glb)) != len(big_glb)  # the wire size differs
    assert calls[-1][0] == len(big_glb)
    assert all(total is None or total == len(big_glb) for _, total in calls)  # never the gzip size


def test_chunked_works(server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes) -> None:
    server.add(TASK, big_glb)
    server.fail("chunked", TASK)
    calls: list[tuple[int, int | None]] = []
    client.download(TASK, tmp_path / "a.part", progress=lambda n, t: calls.append((n, t)))
    assert (tmp_path / "a.part").read_bytes() == big_glb
    assert calls[-1] == (len(big_glb), None)


def test_a_late_first_byte_is_waited_for(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    server.fail("first_byte_delay", TASK, seconds=0.5)
    client.download(TASK, tmp_path / "a.part")
    assert (tmp_path / "a.part").stat().st_size > 0


# -- the network failing ---------------------------------------------------------------------------


def test_connection_refused_is_connection_failed(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    port = free_port()
    with TriverseClient(make_settings(base_url=f"http://127.0.0.1:{port}/api/v1")) as c:
        started = time.monotonic()
        with pytest.raises(errors.ConnectionFailed) as info:
            c.download(TASK, tmp_path / "a.part")
    assert time.monotonic() - started < 10
    text = assert_user_message(info.value)
    assert f"127.0.0.1:{port}" in text and "proxy" in text
    assert not (tmp_path / "a.part").exists()


def test_an_unresolvable_host_says_the_name_lookup_failed(tmp_path: Path) -> None:
    settings = Settings(api_key="k", base_url="http://nonexistent.invalid/api/v1", connect_timeout=3, read_timeout=3)
    with TriverseClient(settings) as c, pytest.raises(errors.ConnectionFailed) as info:
        c.download(TASK, tmp_path / "a.part")
    text = assert_user_message(info.value)
    assert "nonexistent.invalid" in text and "name lookup" in text


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/api", "http://"])
def test_a_malformed_service_url_is_reported(tmp_path: Path, url: str) -> None:
    with TriverseClient(Settings(api_key="k", base_url=url)) as c, pytest.raises(errors.ConnectionFailed) as info:
        c.download(TASK, tmp_path / "a.part")
    assert "not valid" in assert_user_message(info.value)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: new connections get no answer (SYNs are dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        reproducible = False
    except OSError:
        reproducible = True
    finally:
        probe.close()
    try:
        if not reproducible:
            pytest.skip("this kernel accepts connections beyond the backlog: no connect timeout to provoke")
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_connect_timeout_is_timed_out(
    full_backlog: int, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(base_url=f"http://127.0.0.1:{full_backlog}/api/v1", connect_timeout=0.5)
    with TriverseClient(settings) as c:
        started = time.monotonic()
        with pytest.raises(errors.TimedOut) as info:
            c.download(TASK, tmp_path / "a.part")
    assert time.monotonic() - started < 5  # one retry of the connection at most
    assert "did not accept a connection within 0.5 s" in assert_user_message(info.value)


def test_read_timeout_is_timed_out_and_leaves_no_file(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    server.fail("stall", TASK, seconds=10)
    with TriverseClient(make_settings(read_timeout=1)) as c:
        started = time.monotonic()
        with pytest.raises(errors.TimedOut) as info:
            c.download(TASK, tmp_path / "a.part")
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3
    assert "sent nothing for 1 s" in assert_user_message(info.value)
    assert not (tmp_path / "a.part").exists()
    assert len(downloads(server)) == 1  # a read timeout already waited: not retried


def test_a_stalled_api_answer_is_timed_out(
    server: StandinServer, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    server.fail("first_byte_delay", TASK, seconds=5)
    with TriverseClient(make_settings(read_timeout=0.5)) as c:
        started = time.monotonic()
        with pytest.raises(errors.TimedOut):
            c.download(TASK, tmp_path / "a.part")
    assert time.monotonic() - started < 3


def test_a_closed_proxy_is_connection_failed_mentioning_the_proxy(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    settings = make_settings(proxy=f"http://127.0.0.1:{free_port()}")
    with TriverseClient(settings) as c, pytest.raises(errors.ConnectionFailed) as info:
        c.download(TASK, tmp_path / "a.part")
    assert "The proxy refused or failed" in assert_user_message(info.value)


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, signed by nobody."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_base(self_signed: tuple[Path, Path], glb: bytes) -> Iterator[str]:
    """An HTTPS stand-in (one endpoint: the download) with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, self_signed))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f'attachment; filename="{TASK}.glb"')
            self.send_header("Content-Length", str(len(glb)))
            self.end_headers()
            self.wfile.write(glb)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self) -> None:
            TCPServer.server_bind(self)  # no reverse lookup of the address
            self.server_name, self.server_port = self.server_address[:2]

        def get_request(self) -> tuple[socket.socket, Any]:
            sock, addr = self.socket.accept()
            # The handshake happens on the connection's own thread, not in the accept loop.
            return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client refusing the certificate is the point of some tests

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/api/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_an_unknown_certificate_is_a_tls_error(https_base: str, tmp_path: Path) -> None:
    with TriverseClient(Settings(api_key="k", base_url=https_base)) as c, pytest.raises(errors.TlsError) as info:
        c.download(TASK, tmp_path / "a.part")
    text = assert_user_message(info.value)
    assert "certificate" in text and "CA bundle" in text and "never turned off" in text
    assert not (tmp_path / "a.part").exists()


def test_the_ca_bundle_from_the_preferences_is_trusted(
    https_base: str, self_signed: tuple[Path, Path], tmp_path: Path, glb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A system-wide bundle in the environment must not override the one chosen in the preferences.
    system_bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)
    settings = Settings(api_key="k", base_url=https_base, ca_bundle=str(self_signed[0]))
    with TriverseClient(settings) as c:
        result = c.download(TASK, tmp_path / "a.part")
    assert (tmp_path / "a.part").read_bytes() == glb and result.filename == f"{TASK}.glb"


def test_a_missing_ca_bundle_is_a_tls_error_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle.pem"
    with pytest.raises(errors.TlsError) as info:
        TriverseClient(Settings(api_key="k", ca_bundle=str(missing)))
    assert str(missing) in assert_user_message(info.value)


def test_verification_is_never_turned_off_in_the_source() -> None:
    source = "\n".join(p.read_text("utf-8") for p in sorted(PACKAGE.rglob("*.py")))
    assert source.count("def ") > 20  # the package was really read
    for pattern in (
        r"verify\s*=\s*False",
        r"CERT_NONE",
        r"check_hostname\s*=\s*False",
        r"_create_unverified_context",
        r"disable_warnings",
    ):
        assert not re.search(pattern, source), pattern


# -- cancelling ------------------------------------------------------------------------------------


def test_abort_during_a_stalled_body_cancels_at_once_and_removes_the_partial(
    server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes
) -> None:
    server.add(TASK, big_glb)
    server.fail("stall", TASK, seconds=10, after_bytes=1_500_000)
    got_bytes = threading.Event()
    aborted_at: list[float] = []

    def progress(received: int, total: int | None) -> None:
        if received > 0:
            got_bytes.set()

    def abort_later() -> None:
        got_bytes.wait(5)
        time.sleep(0.3)  # well inside the stall
        aborted_at.append(time.monotonic())
        client.abort()

    threading.Thread(target=abort_later, daemon=True).start()
    dest = tmp_path / "a.part"
    with pytest.raises(errors.Cancelled) as info:
        client.download(TASK, dest, progress=progress)
    assert got_bytes.is_set() and aborted_at
    assert time.monotonic() - aborted_at[0] < 1.0
    assert str(info.value) == "Import cancelled."
    assert not dest.exists()


def test_abort_during_a_retry_after_wait_cancels_at_once(
    server: StandinServer, client: TriverseClient, tmp_path: Path
) -> None:
    server.fail("rate_limited", TASK, retry_after=5)
    aborted_at: list[float] = []

    def abort_after_first_answer() -> None:
        deadline = time.monotonic() + 5
        while not downloads(server) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        aborted_at.append(time.monotonic())
        client.abort()

    threading.Thread(target=abort_after_first_answer, daemon=True).start()
    with pytest.raises(errors.Cancelled):
        client.download(TASK, tmp_path / "a.part")
    assert aborted_at and time.monotonic() - aborted_at[0] < 1.0
    assert len(downloads(server)) == 1
    assert not (tmp_path / "a.part").exists()


def test_a_cancelled_client_sends_nothing(server: StandinServer, client: TriverseClient, tmp_path: Path) -> None:
    client.abort()
    with pytest.raises(errors.Cancelled):
        client.download(TASK, tmp_path / "a.part")
    assert server.requests == []


# -- status and URL endpoints ----------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["envelope", "bare"])
def any_server(request: pytest.FixtureRequest, glb: bytes) -> Iterator[StandinServer]:
    """A stand-in answering with the {code, message, data} envelope, or without it."""
    with StandinServer(api_key="k", envelope=request.param) as srv:
        srv.add(TASK, glb, preview=b"\x89PNG\r\n\x1a\n")
        yield srv


def test_task_status(any_server: StandinServer) -> None:
    any_server.set_status(TASK, "RUNNING", progress=40)
    with TriverseClient(Settings(api_key="k", base_url=any_server.base_url)) as c:
        status = c.task_status(TASK)
        assert (status.status, status.progress, status.error) == ("RUNNING", 40, "")
        assert status.describe() == "RUNNING, 40%"
        any_server.set_status(TASK, "FAILED", error={"code": 5004, "message": "Invalid flow"})
        failed = c.task_status(TASK)
    assert (failed.status, failed.error) == ("FAILED", "Invalid flow")
    assert failed.raw["task_uuid"] == TASK


def test_asset_info(any_server: StandinServer) -> None:
    with TriverseClient(Settings(api_key="k", base_url=any_server.base_url)) as c:
        info = c.asset_info(TASK)
    assert isinstance(info, AssetInfo)
    assert info.download_url.startswith(f"{any_server.asset_base}/files/{TASK}.glb?")
    assert info.preview_url is not None and info.preview_url.startswith(f"{any_server.asset_base}/previews/")
    assert info.kind == "model" and info.asset_id


def test_asset_info_without_a_url_is_unexpected(server: StandinServer, client: TriverseClient) -> None:
    server.fail("json", TASK, on="url")
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.asset_info(TASK)
    assert "no download URL" in assert_user_message(info.value)


def test_a_web_page_instead_of_json_is_unexpected(server: StandinServer, client: TriverseClient) -> None:
    server.fail("html", TASK, on="status")
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.task_status(TASK)
    assert "other than JSON" in assert_user_message(info.value)


def test_status_of_an_unknown_task(server: StandinServer, client: TriverseClient) -> None:
    with pytest.raises(errors.TaskNotFound):
        client.task_status(OTHER)


# -- the key stays secret --------------------------------------------------------------------------


def test_the_key_appears_in_no_message_repr_or_log(
    server: StandinServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    no_backoff: Callable[[TriverseClient], None],
) -> None:
    key = server.api_key
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    settings = make_settings(read_timeout=1)
    with TriverseClient(settings) as c:
        no_backoff(c)
        seen += [repr(settings), str(settings), repr(c._session.auth), repr(c), repr(c.settings)]
        for mode, params in [
            ("server_error", {}),
            ("unauthorized", {}),
            ("truncated", {}),
            ("redirect", {}),
            ("unavailable", {"retry_after": 0}),
            ("stall", {"seconds": 3}),
        ]:
            server.clear_failures()
            server.fail(mode, TASK, **params)
            try:
                result = c.download(TASK, tmp_path / f"{mode}.part")
                seen.append(repr(result))
            except errors.TriverseError as exc:
                seen += [str(exc), repr(exc), repr(exc.args), errors.describe(exc)]
    with TriverseClient(make_settings(base_url=f"http://127.0.0.1:{free_port()}/api/v1")) as c:
        with pytest.raises(errors.ConnectionFailed) as info:
            c.download(TASK, tmp_path / "x.part")
        seen += [str(info.value), repr(info.value)]
    assert len(seen) > 10
    assert caplog.records  # urllib3 did log at DEBUG level
    seen += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    seen.append(caplog.text)
    leaks = [s for s in seen if key in s]
    assert leaks == []
