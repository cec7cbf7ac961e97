"""The client's network settings against real servers: nginx with a private CA, tinyproxy, a dead proxy."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import KEY, SYSTEM_CA_STORE, Network

from triverse_addon.service import errors, obtain
from triverse_addon.service.api import TriverseClient

CONNECT = re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP")


def _port(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def _obtain(settings, task: str, **kw) -> obtain.Asset:
    library, warning = obtain.open_library(settings)
    assert library is not None, warning
    with TriverseClient(settings) as client:
        return obtain.obtain_asset(client, task, library, **kw)


def _tunnels(net: Network) -> list[str]:
    """host:port of each CONNECT tinyproxy received since the test began."""
    return CONNECT.findall(net.proxy_log.new_text())


def _assert_model(asset: obtain.Asset, model: bytes) -> None:
    assert asset.path.read_bytes() == model
    assert asset.size == len(model)
    assert asset.format == "glb" and not asset.from_library
    # The library records its copy, size and SHA-256 checked, once the model is imported (cleaned up).
    asset.cleanup()
    asset.wait_kept(10)
    library = asset.path.parent.parent
    meta = json.loads((library / asset.task_uuid / "meta.json").read_text())
    assert meta["sha256"] == hashlib.sha256(model).hexdigest() and meta["size"] == len(model)


def _nothing_on_disk(tmp_path: Path, leftovers) -> None:
    library = tmp_path / "library"
    assert not library.exists() or not [p for p in library.rglob("*") if p.is_file()]
    assert leftovers() == []


# -- TLS ---------------------------------------------------------------------------------------------


def test_ca_bundle_in_preferences_downloads_through_tls(net, task, model, tmp_path, monkeypatch):
    # The environment names the system store, which does not know the private CA: the preference must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_STORE)
    seen: list[tuple[int, int | None]] = []

    asset = _obtain(
        net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), task, progress=lambda r, t: seen.append((r, t))
    )

    _assert_model(asset, model)
    assert [r.authorization for r in net.standin.requests_for(f"/tasks/download/{task}")] == [f"Bearer {KEY}"]
    assert seen[0] == (0, len(model)) and seen[-1] == (len(model), len(model))  # identity: the total is known
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)
    assert f'"GET /api/v1/tasks/download/{task} HTTP/1.1" 200 {len(model)} "-"' in net.access_log.new_text()


def test_ca_bundle_from_requests_ca_bundle_only(net, task, model, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(net.ca_bundle))

    asset = _obtain(net.settings(tmp_path), task)

    _assert_model(asset, model)


@pytest.mark.parametrize("env_bundle", [SYSTEM_CA_STORE, None], ids=["system-store", "no-variable"])
def test_untrusted_certificate_is_refused_with_the_tls_sentence(
    net, task, tmp_path, monkeypatch, leftovers, env_bundle
):
    if env_bundle:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", env_bundle)

    with pytest.raises(errors.TlsError) as caught:
        _obtain(net.settings(tmp_path), task)

    assert str(caught.value) == (
        f"The secure connection to {_port(net.api_url)} failed (its certificate could not be verified): if your "
        "network uses an inspecting proxy, set its CA bundle in the add-on preferences "
        "(verification is never turned off)."
    )
    assert net.standin.requests == []  # refused during the handshake: nothing reached the service
    _nothing_on_disk(tmp_path, leftovers)


@pytest.mark.parametrize("where", ["preferences", "environment"])
def test_a_ca_bundle_that_is_not_pem_is_named_as_the_problem(net, task, tmp_path, monkeypatch, leftovers, where):
    """The CA certificate exported as DER (what Windows offers first) is a common mistake."""
    der = tmp_path / "proxy-ca.cer"
    subprocess.run(["openssl", "x509", "-in", str(net.ca_bundle), "-outform", "DER", "-out", str(der)], check=True)
    settings = net.settings(tmp_path, ca_bundle=str(der) if where == "preferences" else "")
    if where == "environment":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(der))

    with pytest.raises(errors.TlsError) as caught:
        _obtain(settings, task)

    if where == "preferences":
        expected = f"The CA bundle set in the preferences ({der}) holds no certificate in PEM form: choose your "
        expected += "proxy's certificate, its CA certificate exported as PEM (Base-64 text), or clear the field."
    else:
        expected = f"The CA bundle in REQUESTS_CA_BUNDLE ({der}) holds no certificate in PEM form: point it to your "
        expected += "proxy's certificate, its CA certificate exported as PEM (Base-64 text), or unset it."
    assert str(caught.value) == expected
    _nothing_on_disk(tmp_path, leftovers)


def test_a_missing_requests_ca_bundle_is_a_sentence_not_a_crash(net, task, tmp_path, monkeypatch, leftovers):
    missing = tmp_path / "gone.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))

    with pytest.raises(errors.TlsError) as caught:  # requests raises a bare OSError of its own here
        _obtain(net.settings(tmp_path), task)

    assert str(caught.value) == (
        f"The CA bundle in REQUESTS_CA_BUNDLE ({missing}) does not exist: point it to your proxy's certificate, "
        "its CA certificate exported as PEM (Base-64 text), or unset it."
    )
    _nothing_on_disk(tmp_path, leftovers)


# -- proxies -----------------------------------------------------------------------------------------


def test_proxy_from_the_environment_tunnels_through_tinyproxy(net, task, model, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)

    asset = _obtain(net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), task)

    _assert_model(asset, model)
    assert _tunnels(net) == [_port(net.api_url)]


def test_proxy_in_the_preferences_wins_over_the_environment(net, task, model, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.dead_proxy_url)
    monkeypatch.setenv("HTTP_PROXY", net.dead_proxy_url)
    monkeypatch.setenv("ALL_PROXY", net.dead_proxy_url)

    asset = _obtain(net.settings(tmp_path, ca_bundle=str(net.ca_bundle), proxy=net.proxy_url), task)

    _assert_model(asset, model)
    assert _tunnels(net) == [_port(net.api_url)]


def test_proxy_in_the_preferences_without_a_scheme(net, task, model, tmp_path):
    """What users paste: host:port."""
    proxy = net.proxy_url.split("://", 1)[1]

    asset = _obtain(net.settings(tmp_path, ca_bundle=str(net.ca_bundle), proxy=proxy), task)

    _assert_model(asset, model)
    assert _tunnels(net) == [_port(net.api_url)]


def test_no_proxy_bypasses_the_environment_proxy_when_the_preference_is_empty(net, task, model, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,127.0.0.2")

    asset = _obtain(net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), task)

    _assert_model(asset, model)
    assert _tunnels(net) == []
    assert net.standin.requests_for(f"/tasks/download/{task}")  # it went straight to the server instead


def test_no_proxy_applies_to_a_redirect_as_to_the_first_request(net, task, model, tmp_path, monkeypatch):
    """The API is reached through the proxy; the storage host it redirects to is listed in NO_PROXY."""
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    net.standin.fail("redirect", task)

    asset = _obtain(net.settings(tmp_path, ca_bundle=str(net.ca_bundle)), task)

    _assert_model(asset, model)
    assert _tunnels(net) == [_port(net.api_url)]  # requests alone tunnels the redirect too
    assert [r.host for r in net.standin.requests_for(f"/files/{task}")] == ["127.0.0.2"]


@pytest.mark.parametrize("where", ["preferences", "environment"])
def test_dead_proxy_gives_the_proxy_sentence(net, task, tmp_path, monkeypatch, leftovers, where):
    settings = net.settings(tmp_path, ca_bundle=str(net.ca_bundle))
    if where == "preferences":
        settings = net.settings(tmp_path, ca_bundle=str(net.ca_bundle), proxy=net.dead_proxy_url)
        monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)  # a working one, which must not be used instead
    else:
        monkeypatch.setenv("HTTPS_PROXY", net.dead_proxy_url)

    with pytest.raises(errors.ConnectionFailed) as caught:
        _obtain(settings, task)

    assert str(caught.value) == (
        f"The proxy refused or failed the connection to {_port(net.api_url)}: check the proxy in the add-on "
        "preferences or the HTTPS_PROXY variable."
    )
    assert _tunnels(net) == [] and net.standin.requests == []
    _nothing_on_disk(tmp_path, leftovers)


# -- gzip --------------------------------------------------------------------------------------------


def test_gzip_from_nginx_arrives_intact_with_sane_progress(net, task, model, tmp_path):
    seen: list[tuple[int, int | None]] = []
    settings = net.settings(tmp_path, base_url=net.gzip_api_url, ca_bundle=str(net.ca_bundle))

    asset = _obtain(settings, task, progress=lambda r, t: seen.append((r, t)))

    _assert_model(asset, model)
    line = next(x for x in net.access_log.new_text().splitlines() if f"/tasks/download/{task}" in x)
    sent = int(line.split()[-2])
    assert line.endswith('"gzip"') and 0 < sent < len(model) * 0.8  # really compressed on the wire
    received = [r for r, _ in seen]
    assert received[0] == 0 and received[-1] == len(model) and received == sorted(received)
    assert len(seen) > 2  # reported as it arrived, not once at the end
    assert {t for _, t in seen} == {None}  # the compressed length is no total for the decoded bytes


# -- the key -----------------------------------------------------------------------------------------


def test_key_travels_only_inside_the_tunnel_and_never_to_the_asset_host(net, task, model, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", net.proxy_url)
    net.standin.fail("redirect", task)  # the download answers 302 to the signed URL on the asset host
    settings = net.settings(tmp_path, ca_bundle=str(net.ca_bundle))

    asset = _obtain(settings, task)
    with TriverseClient(settings) as client:  # the signed URL the API hands out, fetched as such
        info = client.asset_info(task)
        assert info.download_url.startswith(net.asset_origin + "/files/")
        direct = client.fetch(info.download_url, tmp_path / "direct.glb", task)

    _assert_model(asset, model)
    assert direct.sha256 == hashlib.sha256(model).hexdigest()
    log = net.proxy_log.new_text()
    assert sorted(set(CONNECT.findall(log))) == sorted({_port(net.api_url), _port(net.asset_origin)})
    assert KEY not in log and "Bearer" not in log and "/api/v1" not in log  # only CONNECT host:port in clear
    api = [r for r in net.standin.requests if r.host == "127.0.0.1"]
    assets = [r for r in net.standin.requests if r.host == "127.0.0.2"]
    assert api and all(r.authorization == f"Bearer {KEY}" for r in api)  # it did travel, inside TLS
    assert len(assets) == 2 and all(r.authorization is None for r in assets)
    assert all(KEY not in str(r.headers) and KEY not in r.path for r in assets)


# -- the front-end itself ----------------------------------------------------------------------------


def test_nginx_passes_websocket_upgrade_headers_to_the_stand_in(net):
    """What a live-watch test over wss:// needs from the front-end (the stand-in answers 401 here, no key)."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    requests.get(net.api_url + "/tasks/watch", headers=headers, verify=str(net.ca_bundle), timeout=10).close()

    [seen] = net.standin.requests_for("/tasks/watch")
    received = {k.lower(): v for k, v in seen.headers.items()}
    assert received["upgrade"] == "websocket" and received["connection"].lower() == "upgrade"
    assert net.ws_origin == "wss://" + _port(net.api_url)
