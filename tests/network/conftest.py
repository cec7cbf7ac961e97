"""Real-network tier: the stand-in behind Debian's nginx (TLS, private CA) and Debian's tinyproxy, on loopback.

Per session, in one temporary folder: a private certificate authority and a server certificate for
127.0.0.1, 127.0.0.2 and localhost (openssl CLI); nginx terminating TLS in front of the stand-in's API
host (plain and gzip-compressing server blocks, WebSocket upgrades passed through) and its asset host;
tinyproxy as a forward proxy whose log records every CONNECT; and a dead proxy (a closed port). Every
port is a free one, never a default; no file under /etc is read. Both daemons stop at the session's end.

The `network` fixture (a `Network`) is the reusable entry point: URLs, the CA bundle, the proxy and its
log. Nothing here imports `bpy`; the Blender end-to-end tests run `scripts/batch_import.py` in a subprocess.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import missing_tool

import build
from standin_server import StandinServer
from triverse_addon.service.settings import Settings

# The add-on's WebSocket client from the wheel the extension ships, as in the pure tier.
sys.path.insert(0, str(build.fetch_wheels()[0]))

KEY = "sk-net-7d41c0e9a2b64f58b3e1"  # distinctive, so a leak is found by a plain substring search
TASK = "5f0c8a2e-93b1-4d7a-8c66-0e2f4b9a1d37"
ENV_VARS = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "TRIVERSE_API_KEY",
    "TRIVERSE_API_URL",
)
SYSTEM_CA_STORE = "/etc/ssl/certs/ca-certificates.crt"
START_TIMEOUT = 15.0  # seconds for a daemon to listen

# The add-on's temporary files go to a folder of this session, so "nothing left on disk" is checked exactly.
_SESSION_TMP = tempfile.tempdir = tempfile.mkdtemp(prefix="triverse-network-tmp-")


def make_model(padding: int = 0, seed: int = 7) -> bytes:
    """A valid GLB holding one triangle (Blender imports it as one object), padded with an unused buffer tail.

    The padding is half text-like (it compresses) and half random (it does not), so gzip on the wire is
    visible in the bytes sent and the body spans several 1 MiB reads.
    """
    positions = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    rng = random.Random(seed)
    tail = (b"triverse network tier " * (padding // 44 + 1))[: padding // 2] + rng.randbytes(padding - padding // 2)
    data = positions + tail
    data += b"\x00" * (-len(data) % 4)
    doc = {
        "asset": {"version": "2.0", "generator": "triverse network tests"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "Triangle", "mesh": 0}],
        "meshes": [{"name": "Triangle", "primitives": [{"attributes": {"POSITION": 0}, "mode": 4}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}
        ],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(positions)}],
        "buffers": [{"byteLength": len(data)}],
    }
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    chunks = struct.pack("<I4s", len(js), b"JSON") + js + struct.pack("<I4s", len(data), b"BIN\x00") + data
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


class _FrontedStandin(StandinServer):
    """The stand-in whose signed asset URLs point at the TLS front-end of its asset host, not at the host itself."""

    front_asset_base: str | None = None

    @property
    def asset_base(self) -> str:
        """The nginx origin for the asset host once the front-end runs (the stand-in's own before)."""
        return self.front_asset_base or StandinServer.asset_base.fget(self)  # type: ignore[attr-defined]


@dataclass
class LogFile:
    """A daemon's log file, read from a mark so a test sees only its own lines."""

    path: Path
    _mark: int = 0

    def mark(self) -> None:
        """Forget what is already there."""
        self._mark = self.path.stat().st_size if self.path.exists() else 0

    def new_text(self, settle: float = 0.2) -> str:
        """What was appended since the mark (after a short wait: daemons write their log after answering)."""
        time.sleep(settle)
        with self.path.open("rb") as f:
            f.seek(self._mark)
            return f.read().decode("utf-8", "replace")


@dataclass
class Network:
    """The running servers of the tier and how to reach them."""

    standin: _FrontedStandin
    api_url: str  # https://127.0.0.1:P/api/v1 through nginx, bodies as the stand-in sends them
    gzip_api_url: str  # the same through a server block that gzips JSON and model bodies
    asset_origin: str  # https://127.0.0.2:P through nginx: the signed asset URLs point here
    ca_bundle: Path  # the private CA's certificate (PEM)
    proxy_url: str  # tinyproxy, http://127.0.0.1:P
    dead_proxy_url: str  # a closed port
    proxy_log: LogFile
    access_log: LogFile  # nginx: server port, request line, status, bytes sent, Content-Encoding
    workdir: Path
    tls_ports: tuple[int, ...] = field(default=())

    @property
    def ws_origin(self) -> str:
        """wss://127.0.0.1:P: nginx passes WebSocket upgrades of the API host through to the stand-in."""
        return "wss://" + self.api_url.split("://", 1)[1].split("/", 1)[0]

    def settings(self, tmp_path: Path, **kw: object) -> Settings:
        """Settings for the TLS front-end with the right key and a library in `tmp_path`; `kw` overrides."""
        values: dict[str, object] = {
            "api_key": KEY,
            "base_url": self.api_url,
            "connect_timeout": 5.0,
            "read_timeout": 10.0,
            "library_dir": str(tmp_path / "library"),
        }
        values.update(kw)
        return Settings(**values)  # type: ignore[arg-type]


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        missing_tool(f"{tool} is not installed (apt-get install {package})")
    return str(path)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def make_certificates(openssl: str, d: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1, 127.0.0.2 and localhost, signed by it: (ca, cert, key)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Triverse Network Tier Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        d,
    )
    _run([openssl, "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        d,
    )
    return d / "ca.pem", d / "server.pem", d / "server.key"


def _nginx_conf(d: Path, cert: Path, key: Path, fronts: list[tuple[str, int, str, bool]]) -> str:
    """nginx.conf: one TLS server block per (listen host, port, upstream origin, gzip)."""
    user = "user root root;" if os.geteuid() == 0 else ""  # workers must write the temp paths in our 0700 folder
    servers = []
    for host, port, upstream, gz in fronts:
        gzip = "gzip on; gzip_types application/octet-stream application/json; gzip_proxied any; gzip_min_length 64;"
        servers.append(
            f"server {{ listen {host}:{port} ssl; server_name _; {gzip if gz else 'gzip off;'}\n"
            f"  location / {{ proxy_pass {upstream}; }} }}"
        )
    temp = " ".join(
        f"{name}_temp_path {d}/{name}_temp;" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  {temp}
  log_format front '$server_port "$request" $status $body_bytes_sent "$sent_http_content_encoding"';
  access_log {d}/access.log front;
  ssl_certificate {cert};
  ssl_certificate_key {key};
  ssl_protocols TLSv1.2 TLSv1.3;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  proxy_http_version 1.1;
  proxy_set_header Host $http_host;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection $connection_upgrade;
  proxy_set_header X-Forwarded-Proto https;
  proxy_buffering off;
  proxy_read_timeout 300s;
  proxy_send_timeout 300s;
  {chr(10).join(servers)}
}}
"""


def _wait_listening(proc: subprocess.Popen[bytes], addresses: list[tuple[str, int]], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for address in addresses:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {_tail(log)}")
            try:
                socket.create_connection(address, timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.args[0]} did not listen on {address}: {_tail(log)}") from None
                time.sleep(0.05)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def _die_with_us() -> None:
    """In the daemon's child before exec: SIGTERM when pytest dies, even by SIGKILL (no daemon outlives a run)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_us)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon we started (SIGTERM: nginx's fast shutdown, tinyproxy's exit), by force if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """The stand-in behind nginx (TLS) and a tinyproxy, all on loopback, for the whole session."""
    openssl, nginx, tinyproxy = _need("openssl", "openssl"), _need("nginx", "nginx"), _need("tinyproxy", "tinyproxy")
    d = tmp_path_factory.mktemp("network")
    ca, cert, key = make_certificates(openssl, d / "tls")
    procs: list[subprocess.Popen[bytes]] = []
    with _FrontedStandin(api_key=KEY) as standin:
        backend_api = standin.base_url.rsplit("/api/v1", 1)[0]
        backend_assets = standin.asset_base
        ports = [_free_port("127.0.0.1"), _free_port("127.0.0.1"), _free_port("127.0.0.2")]
        fronts = [
            ("127.0.0.1", ports[0], backend_api, False),
            ("127.0.0.1", ports[1], backend_api, True),
            ("127.0.0.2", ports[2], backend_assets, False),
        ]
        ngx = d / "nginx"
        ngx.mkdir()
        (ngx / "nginx.conf").write_text(_nginx_conf(ngx, cert, key, fronts))
        # -e: the error log before the configuration is read; -p/-c: nothing from /etc/nginx.
        procs.append(_spawn([nginx, "-p", str(ngx), "-c", str(ngx / "nginx.conf"), "-e", str(ngx / "error.log")]))
        proxy_port, dead_port = _free_port(), _free_port()  # nothing listens on the dead one
        tp = d / "tinyproxy"
        tp.mkdir()
        connect_ports = "\n".join(f"ConnectPort {p}" for p in ports)
        (tp / "tinyproxy.conf").write_text(
            f'Port {proxy_port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{tp}/tinyproxy.log"\nLogLevel Connect\n'
            f"MaxClients 50\nAllow 127.0.0.1\nDisableViaHeader Yes\n{connect_ports}\n"
        )
        try:
            procs.append(_spawn([tinyproxy, "-d", "-c", str(tp / "tinyproxy.conf")]))
            _wait_listening(procs[0], [(h, p) for h, p, _, _ in fronts], ngx / "error.log")
            _wait_listening(procs[1], [("127.0.0.1", proxy_port)], tp / "tinyproxy.log")
            standin.front_asset_base = f"https://127.0.0.2:{ports[2]}"
            yield Network(
                standin=standin,
                api_url=f"https://127.0.0.1:{ports[0]}/api/v1",
                gzip_api_url=f"https://127.0.0.1:{ports[1]}/api/v1",
                asset_origin=standin.front_asset_base,
                ca_bundle=ca,
                proxy_url=f"http://127.0.0.1:{proxy_port}",
                dead_proxy_url=f"http://127.0.0.1:{dead_port}",
                proxy_log=LogFile(tp / "tinyproxy.log"),
                access_log=LogFile(ngx / "access.log"),
                workdir=d,
                tls_ports=tuple(ports),
            )
        finally:
            for proc in reversed(procs):
                _stop(proc)


@pytest.fixture()
def net(network: Network, monkeypatch: pytest.MonkeyPatch) -> Network:
    """The network with a clean slate: no proxy or CA variables, no failures, logs and requests read from here on."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    network.standin.clear_failures()
    network.standin.requests.clear()
    network.proxy_log.mark()
    network.access_log.mark()
    return network


@pytest.fixture()
def model() -> bytes:
    """A 2.5 MB GLB (one triangle and padding): several reads on the wire, compressible in part."""
    return make_model(padding=int(2.5 * 1024 * 1024))


@pytest.fixture()
def task(net: Network, model: bytes) -> str:
    """TASK, finished, serving `model`."""
    net.standin.add(TASK, model)
    return TASK


@pytest.fixture()
def leftovers() -> Callable[[], list[str]]:
    """The add-on's temporary files left in this session's temporary folder."""
    root = Path(tempfile.gettempdir())
    before = set(os.listdir(root))

    def left() -> list[str]:
        return sorted(set(os.listdir(root)) - before)

    return left


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this session's temporary folder (the daemons are stopped by then)."""
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
