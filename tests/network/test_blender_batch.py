"""End to end through Blender: scripts/batch_import.py (the bpy module, in a subprocess) over TLS and a proxy."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import KEY, SYSTEM_CA_STORE, Network, missing_tool
from test_tls_proxy import CONNECT, _port

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
# Sets the add-on's preferences once the script has enabled it, then runs the script's own main().
PREFS_DRIVER = textwrap.dedent(
    f"""
    import os, sys
    sys.path.insert(0, {str(SCRIPTS)!r})
    import batch_import, bpy

    enable = batch_import.load_addon

    def enable_with_preferences(*args):
        addon = enable(*args)
        prefs = bpy.context.preferences.addons[addon.__name__].preferences
        prefs.ca_bundle, prefs.proxy = os.environ["TEST_CA_BUNDLE"], os.environ["TEST_PROXY"]
        return addon

    batch_import.load_addon = enable_with_preferences
    code = batch_import.main(batch_import.script_argv())
    sys.stdout.flush()
    os._exit(code)
    """
)


def _batch(
    net: Network, tmp_path: Path, task: str, script: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    if importlib.util.find_spec("bpy") is None:
        missing_tool("the bpy module: run this tier with .venv/bpy50/bin/python")
    out, report = tmp_path / "scene.blend", tmp_path / "report.json"
    (tmp_path / "tmp").mkdir()
    full_env = {
        **os.environ,  # the `net` fixture has removed every proxy and CA variable
        "TRIVERSE_API_URL": net.api_url,
        "TRIVERSE_API_KEY": KEY,
        "BLENDER_USER_RESOURCES": str(tmp_path / "user"),  # the batch's own preferences and library
        "TMPDIR": str(tmp_path / "tmp"),
        **env,
    }
    cmd = [sys.executable, str(script), "--", "-o", str(out), "--report", str(report), task]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=180, check=False)
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc, out, data


def _assert_imported(proc: subprocess.CompletedProcess[str], out: Path, data: dict, model: bytes) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = out.read_bytes()[:7] if out.is_file() else b""
    assert head == b"BLENDER" or head[:4] == b"\x28\xb5\x2f\xfd"  # a .blend, plain or zstd-compressed
    [result] = data["tasks"]
    assert (result["status"], result["objects"], result["bytes"], result["source"]) == (
        "imported",
        1,
        len(model),
        "network",
    )
    assert KEY not in proc.stdout + proc.stderr


def test_batch_script_over_tls_through_the_environment_proxy(net, task, model, tmp_path):
    proc, out, data = _batch(
        net,
        tmp_path,
        task,
        SCRIPTS / "batch_import.py",
        REQUESTS_CA_BUNDLE=str(net.ca_bundle),
        HTTPS_PROXY=net.proxy_url,
    )

    _assert_imported(proc, out, data, model)
    log = net.proxy_log.new_text()
    assert _port(net.api_url) in CONNECT.findall(log) and KEY not in log
    assert net.standin.requests_for(f"/tasks/download/{task}")[0].authorization == f"Bearer {KEY}"


def test_batch_script_with_ca_bundle_and_proxy_in_the_preferences(net, task, model, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(PREFS_DRIVER)

    proc, out, data = _batch(
        net,
        tmp_path,
        task,
        driver,
        TEST_CA_BUNDLE=str(net.ca_bundle),
        TEST_PROXY=net.proxy_url,
        # What the preferences must win over: a CA store without the private CA, a dead proxy.
        REQUESTS_CA_BUNDLE=SYSTEM_CA_STORE,
        HTTPS_PROXY=net.dead_proxy_url,
    )

    _assert_imported(proc, out, data, model)
    log = net.proxy_log.new_text()
    assert _port(net.api_url) in CONNECT.findall(log) and KEY not in log


@pytest.mark.parametrize("case", ["untrusted", "dead-proxy"])
def test_batch_script_reports_tls_and_proxy_failures_and_exits_1(net, task, tmp_path, case):
    env = {"REQUESTS_CA_BUNDLE": SYSTEM_CA_STORE}
    if case == "dead-proxy":
        env = {"REQUESTS_CA_BUNDLE": str(net.ca_bundle), "HTTPS_PROXY": net.dead_proxy_url}

    proc, out, data = _batch(net, tmp_path, task, SCRIPTS / "batch_import.py", **env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    sentence = "The secure connection to" if case == "untrusted" else "The proxy refused or failed the connection to"
    assert f"[1/1] {task} failed: {sentence} {_port(net.api_url)}" in proc.stdout
    assert not out.exists() and data["tasks"][0]["status"] == "failed"
