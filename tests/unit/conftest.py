"""Fixtures of the pure tier: a running stand-in service, settings and a client for it, small models.

Nothing here imports `bpy`: the models are written by hand, byte by byte.
"""

from __future__ import annotations

import io
import json
import random
import struct
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import build
from standin_server import StandinServer
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.settings import Settings

# The add-on's WebSocket client, from the very wheel the extension ships (Blender installs it from the
# extension; the pure tier imports it straight from the wheel file, which is a zip).
sys.path.insert(0, str(build.fetch_wheels()[0]))

KEY = "sk-unit-3f9a7c1e5b2d4a6f8e0c"  # distinctive, so a leak is found by a plain substring search
TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"


def make_glb(bin_size: int = 0, seed: int = 1) -> bytes:
    """A minimal valid binary glTF: 12-byte header, a JSON chunk, and a BIN chunk of random bytes if asked."""
    doc: dict[str, object] = {"asset": {"version": "2.0", "generator": "unit tests"}, "scene": 0, "scenes": [{}]}
    if bin_size:
        doc["buffers"] = [{"byteLength": bin_size}]
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    chunks = struct.pack("<I4s", len(js), b"JSON") + js
    if bin_size:
        payload = random.Random(seed).randbytes(bin_size)
        payload += b"\x00" * (-len(payload) % 4)
        chunks += struct.pack("<I4s", len(payload), b"BIN\x00") + payload
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


@pytest.fixture
def glb_factory() -> Callable[..., bytes]:
    """`make_glb` as a fixture: test modules do not import conftest."""
    return make_glb


@pytest.fixture
def glb() -> bytes:
    """A small GLB (a few hundred bytes)."""
    return make_glb(bin_size=256)


@pytest.fixture
def big_glb() -> bytes:
    """A GLB of about 3 MB: several 1 MiB chunks on the wire."""
    return make_glb(bin_size=3 * 1024 * 1024 + 123)


@pytest.fixture
def server(glb: bytes) -> Iterator[StandinServer]:
    """A running stand-in (API on 127.0.0.1, assets on 127.0.0.2) with TASK finished."""
    with StandinServer(api_key=KEY) as srv:
        srv.add(TASK, glb)
        yield srv


@pytest.fixture
def make_settings(server: StandinServer) -> Callable[..., Settings]:
    """Settings for the stand-in; keyword arguments override (short timeouts by default)."""

    def make(**kw: object) -> Settings:
        values: dict[str, object] = {
            "api_key": KEY,
            "base_url": server.base_url,
            "connect_timeout": 3.0,
            "read_timeout": 5.0,
        }
        values.update(kw)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings for the stand-in, without a library."""
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TriverseClient]:
    """A client on the stand-in."""
    with TriverseClient(settings) as c:
        yield c


def fast_backoff(client: TriverseClient) -> None:
    """Shrink the back-off between retries (the retry count and logic stay the client's own)."""
    for prefix in ("http://", "https://"):
        client._session.get_adapter(prefix).max_retries.backoff_factor = 0.01


@pytest.fixture
def no_backoff() -> Callable[[TriverseClient], None]:
    """`fast_backoff` as a fixture: test modules do not import conftest."""
    return fast_backoff


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    """An empty folder for a test's files."""
    root = tmp_path / "files"
    root.mkdir()
    return root


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip of the given names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()
