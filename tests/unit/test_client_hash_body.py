"""`_write_body(hash_body=False)` writes the same bytes and leaves the digest to the library (client.py)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from standin_server import StandinServer
from triverse_addon.service.api import TriverseClient
from triverse_addon.service.streaming import write_body

TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"


@pytest.mark.parametrize("hash_body", [True, False])
def test_the_body_is_written_whole_and_hashed_only_when_asked(
    server: StandinServer, client: TriverseClient, tmp_path: Path, big_glb: bytes, hash_body: bool
) -> None:
    server.add(TASK, big_glb)
    before = {t.name for t in threading.enumerate()}
    dest = tmp_path / "model.part"
    response = client.send("GET", f"{server.base_url}/tasks/download/{TASK}")
    with response:
        seen: list[str] = []
        result = write_body(
            response,
            dest,
            cancel=client.cancel_event,
            transport_error=client.transport_error,
            progress=lambda n, total: seen.extend(t.name for t in threading.enumerate() if t.name not in before),
            hash_body=hash_body,
        )
    assert dest.read_bytes() == big_glb and result.size == len(big_glb)
    assert result.sha256 == (hashlib.sha256(big_glb).hexdigest() if hash_body else "")
    assert ("triverse-sha256" in seen) is hash_body  # no hashing thread competes with the download when not asked
