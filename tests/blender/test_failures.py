"""Every failure in the table of issue 3, through the operator in real Blender, against the stand-in.

Each case asserts what the user sees (one sentence, no traceback) and that nothing was lost or left:
the scene is unchanged and no partial or temporary file remains.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bpy
import pytest
from conftest import addon_prefs, scene_counts, temp_dirs


def _leftovers() -> list[str]:
    """Partial files in the library and temporary folders made by the add-on."""
    incoming = Path(addon_prefs().library_dir) / ".incoming"
    parts = [str(p) for p in incoming.glob("*")] if incoming.exists() else []
    return parts


def _fails_cleanly(task: str, match: str) -> str:
    """Run the operator, expect a RuntimeError matching `match`; check nothing changed or stayed."""
    bpy.ops.mesh.primitive_cube_add()
    before = scene_counts()
    temp_before = temp_dirs()
    with pytest.raises(RuntimeError, match=match) as info:
        bpy.ops.triverse.import_task(task_uuid=task)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message
    assert message.count("\n") <= 1, f"more than one sentence: {message!r}"
    assert scene_counts() == before, "the scene changed after a failure"
    assert _leftovers() == [], "partial files left in the library"
    assert temp_dirs() - temp_before == set(), "temporary folders left behind"
    kept = Path(addon_prefs().library_dir) / task
    assert not kept.exists(), "a failed download was kept in the library"
    return message


def _task(server, source) -> str:
    task = str(uuid.uuid4())
    server.add(task, source)
    return task


CASES = [
    # (failure mode, params, what the user must read)
    ("unauthorized", {}, "rejected the API key: check the key in Edit > Preferences"),
    ("forbidden", {}, "insufficient credits"),
    ("no_assets", {}, "finished but has no downloadable model"),
    ("expired", {}, "has expired on Triverse"),
    ("rate_limited", {"retry_after": 0}, "busy .*too many requests"),
    ("unavailable", {"retry_after": 0}, r"temporarily unavailable \(HTTP 503"),
    ("bad_gateway", {}, r"temporarily unavailable \(HTTP 502"),
    ("gateway_timeout", {}, r"temporarily unavailable \(HTTP 504"),
    ("server_error", {"message": "Persistence error"}, r"failed on its side \(HTTP 500\).*Persistence error"),
    ("truncated", {"fraction": 0.5}, "cut off after"),
    ("drop", {}, "cut off after"),
    ("html", {}, "a web page"),
    ("json", {}, "a JSON"),
    ("garbage", {"size": 5000}, "unrecognised data"),
]


@pytest.mark.parametrize("mode, params, message", CASES, ids=[c[0] for c in CASES])
def test_failure_is_reported_and_leaves_nothing(standin, sample_glb, mode, params, message):
    task = _task(standin, sample_glb)
    standin.fail(mode, task, **params)
    _fails_cleanly(task, message)


def test_not_finished_says_the_status(standin, sample_glb):
    task = _task(standin, sample_glb)
    standin.set_status(task, "RUNNING", progress=40)
    _fails_cleanly(task, r"has not finished yet \(status RUNNING, 40%\)")


def test_failed_task_says_it_will_never_have_a_model(standin, sample_glb):
    task = _task(standin, sample_glb)
    standin.set_status(task, "FAILED", progress=100, error={"message": "Content violation"})
    _fails_cleanly(task, "ended FAILED: Content violation")


def test_404_after_success_means_expired(standin, sample_glb):
    task = _task(standin, sample_glb)  # the task's status is SUCCESS
    standin.fail("not_found", task)
    _fails_cleanly(task, "has expired on Triverse")


def test_unknown_task(standin):
    _fails_cleanly(str(uuid.uuid4()), "has no task")


def test_busy_then_available_is_retried_honouring_retry_after(standin, sample_glb):
    task = _task(standin, sample_glb)
    standin.fail("rate_limited", task, times=2, retry_after=1)
    started = time.monotonic()
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert time.monotonic() - started >= 1.8  # two Retry-After waits of 1 s
    assert len(standin.requests_for(f"/tasks/download/{task}")) == 3


def test_busy_retries_are_bounded(standin, sample_glb):
    task = _task(standin, sample_glb)
    standin.fail("rate_limited", task, retry_after=120)  # the service asks for much longer
    started = time.monotonic()
    _fails_cleanly(task, "busy")
    assert time.monotonic() - started < 40  # about 30 s at worst in all
    assert len(standin.requests_for(f"/tasks/download/{task}")) == 4  # the first try and 3 retries


@pytest.mark.parametrize("mode", ["gzip", "chunked"])
def test_compressed_and_chunked_downloads_work(standin, sample_glb, mode):
    task = _task(standin, sample_glb)
    standin.fail(mode, task)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    kept = Path(addon_prefs().library_dir) / task / "asset.glb"
    assert kept.read_bytes() == sample_glb.read_bytes()


def test_read_timeout_from_preferences(standin, sample_glb):
    task = _task(standin, sample_glb)
    addon_prefs().read_timeout = 1.0
    standin.fail("stall", task, after_bytes=1000, seconds=10)
    try:
        started = time.monotonic()
        _fails_cleanly(task, "sent nothing for 1 s")
        assert time.monotonic() - started < 5
    finally:
        addon_prefs().read_timeout = 30.0


def test_connection_refused(standin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    addon_prefs().base_url = f"http://127.0.0.1:{port}/api/v1"
    _fails_cleanly(str(uuid.uuid4()), f"Cannot reach Triverse at 127.0.0.1:{port}")


def test_unreachable_proxy(standin):
    addon_prefs().proxy = "http://127.0.0.1:9"
    try:
        _fails_cleanly(str(uuid.uuid4()), "The proxy refused or failed the connection")
    finally:
        addon_prefs().proxy = ""


@pytest.fixture()
def https_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate, answering like the download endpoint."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    body = Path(tmp_path / "x.glb")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = body.read_bytes() if body.exists() else b""
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, cert, body
    server.shutdown()
    server.server_close()


def test_tls_failure_is_explained_and_a_ca_bundle_fixes_it(standin, sample_glb, https_server):
    server, cert, body = https_server
    body.write_bytes(sample_glb.read_bytes())
    addon_prefs().base_url = f"https://127.0.0.1:{server.server_address[1]}/api/v1"
    _fails_cleanly(str(uuid.uuid4()), r"secure connection .* could not be verified\).* CA bundle")
    addon_prefs().ca_bundle = str(cert)
    try:
        assert bpy.ops.triverse.import_task(task_uuid=str(uuid.uuid4())) == {"FINISHED"}
    finally:
        addon_prefs().ca_bundle = ""


def test_missing_ca_bundle_file(standin):
    addon_prefs().ca_bundle = "/nonexistent/ca.pem"
    try:
        _fails_cleanly(str(uuid.uuid4()), "CA bundle set in the preferences does not exist")
    finally:
        addon_prefs().ca_bundle = ""


def test_unwritable_library_falls_back_to_a_temporary_folder(standin, sample_glb, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    addon_prefs().library_dir = str(blocker / "library")  # cannot be created, even as root
    task = _task(standin, sample_glb)
    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}
    assert len(bpy.data.collections[f"Triverse {task[:8]}"].objects) == 2


def test_an_unsupported_format_is_named(standin):
    task = str(uuid.uuid4())
    standin.add(task, b"PK\x03\x04" + b"\x00" * 100, ext="zip")
    _fails_cleanly(task, "damaged zip")
