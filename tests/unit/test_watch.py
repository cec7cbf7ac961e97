"""The live watch of a task (triverse_addon/watch.py) against the stand-in's real WebSocket, and its fallback."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from standin_server import StandinServer
from triverse_addon.service import errors, generation_api, generation_request, watch
from triverse_addon.service.api import TaskStatus, TriverseClient
from triverse_addon.service.settings import Settings

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"  # the conftest key: distinctive, so a leak is found by substring
RUNNING = "5b0e0c1a-7d3e-4f7a-9c1b-2e4d6f8a0b1c"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls every 0.1 s (the back-off logic stays the module's own)."""
    monkeypatch.setattr(watch, "POLL_FIRST", 0.1)
    monkeypatch.setattr(watch, "POLL_MAX", 0.2)


@pytest.fixture
def running(server: StandinServer, glb: bytes) -> str:
    """A task RUNNING at 40%; it records watch connections too."""
    server.record_watch = True
    server.add(RUNNING, glb, status="RUNNING", progress=40)
    return RUNNING


def later(seconds: float, action: Callable[[], object]) -> threading.Timer:
    """Run `action` on a timer thread."""
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


def status_polls(server: StandinServer, uuid: str) -> int:
    """How many times the status endpoint of `uuid` was asked."""
    return len([r for r in server.requests if r.path.split("?")[0].endswith(f"/tasks/{uuid}")])


def watches(server: StandinServer, uuid: str) -> int:
    """How many watch connections the server saw for `uuid`."""
    return len(server.requests_for(f"/tasks/watch/{uuid}"))


def run(client: TriverseClient, uuid: str, timeout: float = 10, **kw: object) -> tuple[TaskStatus, list[str], list]:
    """wait_for_success, with the statuses seen and the path that served it."""
    seen: list[TaskStatus] = []
    paths: list[str] = []
    status = watch.wait_for_success(client, uuid, timeout, seen.append, on_path=paths.append, **kw)  # type: ignore[arg-type]
    return status, paths, seen


# --- pushed -------------------------------------------------------------------------------------------


def test_success_is_pushed_not_polled(server: StandinServer, client: TriverseClient, running: str) -> None:
    later(0.3, lambda: server.set_status(running, "RUNNING", 80))
    later(0.6, lambda: server.set_status(running, "SUCCESS"))
    status, paths, seen = run(client, running)
    assert status.status == "SUCCESS"
    assert paths == ["socket"]
    assert status_polls(server, running) == 1  # the one GET after opening the socket, nothing after it
    assert watches(server, running) == 1
    assert [s.describe() for s in seen][-1] == "SUCCESS, 100%"
    assert "RUNNING, 80%" in [s.describe() for s in seen]


def test_a_created_task_reports_its_queue_then_progress(client: TriverseClient) -> None:

    with StandinServer(api_key=KEY, timeline_step=0.05) as srv:
        settings = Settings(api_key=KEY, base_url=srv.base_url, connect_timeout=3, read_timeout=5)
        with TriverseClient(settings) as c:
            srv.script_next_generation(hold=True)
            created = generation_api.create(c, generation_request.GenerationRequest(prompt="a red chair"), "order-1")
            later(0.5, lambda: srv.release(created.task_uuid))
            status, paths, seen = run(c, created.task_uuid)
        assert status.status == "SUCCESS" and paths == ["socket"]
        assert status_polls(srv, created.task_uuid) == 1
    assert created.queue_position == 2
    assert any(s.status == "RUNNING" and s.progress for s in seen)


def test_an_already_finished_task_needs_no_wait(server: StandinServer, client: TriverseClient) -> None:
    from conftest import TASK

    status, _, _ = run(client, TASK)
    assert status.status == "SUCCESS"
    assert status_polls(server, TASK) == 1


def test_a_final_status_without_finalized_ends_the_watch(
    server: StandinServer, client: TriverseClient, running: str
) -> None:
    server.fail("no_finalized", on="watch")  # the socket stays open after the final update
    later(0.3, lambda: server.set_status(running, "SUCCESS"))
    status, paths, _ = run(client, running, timeout=5, silence=30)  # waiting for more would time out
    assert (status.status, paths) == ("SUCCESS", ["socket"])


@pytest.mark.parametrize(
    ("final", "error", "said"),
    [
        ("FAILED", {"code": 5001, "message": "The input image is too dark"}, "The input image is too dark"),
        ("CANCELLED", {"message": "Cancelled by the user on the web app"}, "Cancelled by the user on the web app"),
    ],
)
def test_failed_or_cancelled_says_the_service_reason(
    server: StandinServer, client: TriverseClient, running: str, final: str, error: dict, said: str
) -> None:
    later(0.3, lambda: server.set_status(running, final, error=error))
    with pytest.raises(errors.TaskFailed) as info:
        run(client, running)
    message = str(info.value)
    assert said in message and final in message and "\n" not in message
    assert status_polls(server, running) == 1  # told by the socket


# --- falling back to polling --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refused", "drop", "close_early", "silent", "unauthorized"])
def test_fallback_to_polling_when_the_watch_fails(
    server: StandinServer, client: TriverseClient, running: str, mode: str
) -> None:
    server.fail(mode, on="watch")
    later(0.8, lambda: server.set_status(running, "SUCCESS"))
    status, paths, _ = run(client, running, silence=0.4)
    assert (status.status, paths) == ("SUCCESS", ["poll"])
    assert watches(server, running) == 1
    assert status_polls(server, running) >= 2


def test_fallback_when_the_watch_port_is_closed(
    server: StandinServer, client: TriverseClient, running: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr(watch, "watch_url", lambda base, uuid, key: f"ws://127.0.0.1:{closed}/x?token={key}")
    later(0.3, lambda: server.set_status(running, "SUCCESS"))
    status, paths, _ = run(client, running)
    assert (status.status, paths) == ("SUCCESS", ["poll"])


def test_without_websocket_client_it_polls(
    server: StandinServer, client: TriverseClient, running: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "websocket", None)  # as in Blender 3.4, which loads the add-on without its wheel
    later(0.3, lambda: server.set_status(running, "SUCCESS"))
    status, paths, _ = run(client, running)
    assert (status.status, paths) == ("SUCCESS", ["poll"])
    assert watches(server, running) == 0


def test_use_socket_false_polls(server: StandinServer, client: TriverseClient, running: str) -> None:
    later(0.3, lambda: server.set_status(running, "SUCCESS"))
    status, paths, _ = run(client, running, use_socket=False)
    assert (status.status, paths) == ("SUCCESS", ["poll"])
    assert watches(server, running) == 0


# --- ending early ---------------------------------------------------------------------------------------


def test_cancel_during_a_watch(server: StandinServer, client: TriverseClient, running: str) -> None:
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            run(client, running, timeout=30)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    later(0.4, client.abort)
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], errors.Cancelled)


def test_cancel_while_polling(server: StandinServer, client: TriverseClient, running: str) -> None:
    server.fail("refused", on="watch")
    later(0.3, client.abort)
    with pytest.raises(errors.Cancelled):
        run(client, running, timeout=30)


def test_time_running_out_is_task_not_ready(server: StandinServer, client: TriverseClient, running: str) -> None:
    with pytest.raises(errors.TaskNotReady) as info:
        run(client, running, timeout=0.5)
    assert "RUNNING, 40%" in str(info.value)


def test_zero_timeout_asks_once(server: StandinServer, client: TriverseClient, running: str) -> None:
    with pytest.raises(errors.TaskNotReady):
        run(client, running, timeout=0)
    assert status_polls(server, running) == 1 and watches(server, running) == 0


def test_online_access_off_sends_nothing(server: StandinServer, settings: Settings, running: str) -> None:
    server.requests.clear()
    with TriverseClient(settings, online_access=False) as offline, pytest.raises(errors.OnlineAccessDisabled):
        run(offline, running)
    assert server.requests == []


# --- the key in the URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "refused", "unauthorized", "drop", "closed_port"])
def test_the_key_is_never_logged_nor_in_an_error(
    server: StandinServer,
    client: TriverseClient,
    running: str,
    mode: str | None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, websocket-client's and urllib3's included
    if mode == "closed_port":
        monkeypatch.setattr(watch, "watch_url", lambda base, uuid, key: f"ws://127.0.0.1:9/x?token={key}")
    elif mode is not None:
        server.fail(mode, on="watch")
    later(0.3, lambda: server.set_status(running, "FAILED", error={"message": "no luck"}))
    with pytest.raises(errors.TaskFailed) as info:
        run(client, running, silence=0.3)
    chain: list[BaseException | None] = [info.value, info.value.__cause__, info.value.__context__]
    assert all(KEY not in repr(e) and KEY not in str(e) for e in chain if e is not None)
    assert KEY not in caplog.text
    assert "token=" not in caplog.text
    if mode is None:
        assert watches(server, running) == 1  # the socket was really used


def test_trace_on_means_no_socket(
    server: StandinServer, client: TriverseClient, running: str, caplog: pytest.LogCaptureFixture
) -> None:
    import websocket

    websocket.enableTrace(True, handler=logging.NullHandler())
    try:
        caplog.set_level(logging.DEBUG)
        later(0.3, lambda: server.set_status(running, "SUCCESS"))
        _, paths, _ = run(client, running)
    finally:
        websocket.enableTrace(False)
    assert paths == ["poll"] and watches(server, running) == 0
    assert KEY not in caplog.text


# --- messages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('event: update\ndata: {"status": "RUNNING", "progress": 5}', ("update", {"status": "RUNNING", "progress": 5})),
        ('event: finalized\r\ndata: {"code": 0, "message": "ok", "data": {"status": "SUCCESS"}}',
         ("finalized", {"status": "SUCCESS"})),
        ("event: update\ndata: not json", ("update", None)),
        ("data: [1, 2]", ("", None)),
        ("", ("", None)),
    ],
)  # fmt: skip
def test_parse_message(text: str, expected: tuple) -> None:
    assert watch.parse_message(text) == expected


def test_watch_url() -> None:
    assert (
        watch.watch_url("https://api.triverse.ai/api/v1/", "u-1", "a b/c&d")
        == "wss://api.triverse.ai/api/v1/tasks/watch/u-1?token=a%20b%2Fc%26d"
    )
    assert watch.watch_url("http://127.0.0.1:8000/api/v1", "u", "k").startswith("ws://127.0.0.1:8000/")


# --- the same network settings: a proxy ---------------------------------------------------------------


class Proxy:
    """A loopback HTTP proxy: forwards plain requests, tunnels CONNECT (or refuses it), records request lines."""

    def __init__(self, refuse_connect: bool = False) -> None:
        self.refuse_connect = refuse_connect
        self.lines: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """E.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        """Stop accepting and cut every connection."""
        self._stop.set()
        self._thread.join()
        for s in self._socks:
            s.close()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self._socks.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        line = data.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            if self.refuse_connect:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
                return
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            data = data.split(b"\r\n\r\n", 1)[1]
        else:
            parts = urlsplit(target)
            upstream = socket.create_connection((parts.hostname, parts.port))
        self._socks.append(upstream)
        if data:
            upstream.sendall(data)
        threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()
        self._pipe(conn, upstream)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.parametrize("refuse_connect", [False, True])
def test_the_watch_goes_through_the_proxy_of_the_preferences(
    server: StandinServer,
    make_settings: Callable[..., Settings],
    running: str,
    refuse_connect: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the preference wins over the environment
    proxy = Proxy(refuse_connect)
    try:
        with TriverseClient(make_settings(proxy=proxy.url)) as c:
            later(0.4, lambda: server.set_status(running, "SUCCESS"))
            status, paths, _ = run(c, running)
    finally:
        proxy.close()
    api = urlsplit(server.base_url).netloc
    assert status.status == "SUCCESS"
    assert f"CONNECT {api} HTTP/1.1" in proxy.lines  # the watch asked the proxy for a tunnel
    assert any(line.startswith(f"GET http://{api}/api/v1/tasks/{running}") for line in proxy.lines)
    assert paths == (["poll"] if refuse_connect else ["socket"])
    assert watches(server, running) == (0 if refuse_connect else 1)


def test_cancel_while_the_handshake_hangs(
    server: StandinServer, client: TriverseClient, running: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts connections (backlog), never answers
        port = mute.getsockname()[1]
        monkeypatch.setattr(watch, "watch_url", lambda base, uuid, key: f"ws://127.0.0.1:{port}/x?token={key}")
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                run(client, running, timeout=30)
            except BaseException as exc:  # handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        later(0.3, client.abort)
        thread.join(2)  # well before the 3 s connect timeout of these settings
        assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], errors.Cancelled)
    assert status_polls(server, running) == 0  # cancelled before the status was asked
