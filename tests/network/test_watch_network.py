"""The live watch (WebSocket) with the same network settings as every request: TLS via nginx, tinyproxy, NO_PROXY."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from conftest import KEY, SYSTEM_CA_STORE, Network, make_model

from triverse_addon.service import errors, watch
from triverse_addon.service.api import TriverseClient

RUNNING = "0d7e5b3a-6c2f-4e81-9a4d-3b5c7e9f1a2b"
CONNECT = re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls every 0.1 s when the watch falls back (the back-off logic stays the module's own)."""
    monkeypatch.setattr(watch, "POLL_FIRST", 0.1)
    monkeypatch.setattr(watch, "POLL_MAX", 0.2)


@pytest.fixture
def running(net: Network) -> str:
    """A task RUNNING at 40% on the stand-in behind nginx, finishing 0.4 s after the test starts."""
    net.standin.record_watch = True
    net.standin.add(RUNNING, make_model(), status="RUNNING", progress=40)
    timer = threading.Timer(0.4, lambda: net.standin.set_status(RUNNING, "SUCCESS"))
    timer.daemon = True
    timer.start()
    yield RUNNING
    timer.cancel()


def _watch(settings, uuid: str) -> tuple[str, list[str]]:
    paths: list[str] = []
    with TriverseClient(settings) as client:
        status = watch.wait_for_success(client, uuid, 10, on_path=paths.append, silence=5)
    return status.status, paths


def _api_port(net: Network) -> str:
    return net.api_url.split("://", 1)[1].split("/", 1)[0]


def _status_polls(net: Network, uuid: str) -> int:
    return len([r for r in net.standin.requests if r.path.split("?")[0].endswith(f"/tasks/{uuid}")])


def test_the_watch_opens_over_tls_with_the_ca_bundle_from_the_preferences(net, running, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_STORE)  # the preference must win over it

    assert _watch(net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), running) == ("SUCCESS", ["socket"])
    assert _status_polls(net, running) == 1  # pushed through nginx, not polled
    assert len(net.standin.requests_for(f"/tasks/watch/{running}")) == 1


def test_the_watch_uses_requests_ca_bundle_when_the_preference_is_empty(net, running, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(net.ca_bundle))

    assert _watch(net.settings(tmp_path), running) == ("SUCCESS", ["socket"])


def test_the_watch_tunnels_through_the_proxy_from_the_preferences(net, running, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.dead_proxy_url)  # the preference wins over the environment

    result = _watch(net.settings(tmp_path, ca_bundle=str(net.ca_bundle), proxy=net.proxy_url), running)

    assert result == ("SUCCESS", ["socket"])
    tunnels = CONNECT.findall(net.proxy_log.new_text())
    # One tunnel for the status request and one for the socket, both to the API host, nothing else.
    assert len(tunnels) >= 2 and set(tunnels) == {_api_port(net)}, tunnels


def test_the_watch_tunnels_through_the_proxy_from_the_environment(net, running, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)

    assert _watch(net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), running) == ("SUCCESS", ["socket"])
    tunnels = CONNECT.findall(net.proxy_log.new_text())
    assert len(tunnels) >= 2 and set(tunnels) == {_api_port(net)}, tunnels


@pytest.mark.parametrize("form", ["host", "host:port"])
def test_no_proxy_sends_the_watch_direct(net, running, tmp_path, monkeypatch, form):
    # requests honours both forms; websocket-client on its own knows only the first: the add-on's one
    # decision (requests') must hold for the socket too.
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)
    port = _api_port(net).rsplit(":", 1)[1]
    monkeypatch.setenv("NO_PROXY", "localhost" if form == "host" else f"localhost:{port}")
    settings = net.settings(
        tmp_path, ca_bundle=str(net.ca_bundle), base_url=net.api_url.replace("127.0.0.1", "localhost")
    )

    assert _watch(settings, running) == ("SUCCESS", ["socket"])
    assert CONNECT.findall(net.proxy_log.new_text()) == []


def test_an_untrusted_certificate_refuses_the_watch_too_with_the_tls_sentence(
    net, running, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_STORE)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(errors.TlsError) as info:
        _watch(net.settings(tmp_path), running)

    assert "certificate could not be verified" in str(info.value)
    assert KEY not in str(info.value) and KEY not in caplog.text
    assert net.standin.requests_for(f"/tasks/watch/{running}") == []  # verification is never turned off


def test_a_dead_proxy_in_the_preferences_gives_the_proxy_sentence(net, running, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    with pytest.raises(errors.ConnectionFailed) as info:
        _watch(net.settings(tmp_path, ca_bundle=str(net.ca_bundle), proxy=net.dead_proxy_url), running)

    assert "The proxy refused or failed" in str(info.value)
    assert KEY not in str(info.value) and KEY not in caplog.text
