"""The API key goes to the API host only, and is never written into a .blend, a report, a log or the console."""

from __future__ import annotations

import logging
import uuid

import bpy
import pytest
from conftest import addon_prefs

SECRET = "tvk-SECRET-7f3a9c1e5b"


@pytest.fixture()
def secret_key(standin):
    """The stand-in and the add-on both use a distinctive key, easy to search for."""
    old = standin.api_key
    standin.api_key = SECRET
    addon_prefs().api_key = SECRET
    yield SECRET
    standin.api_key = old
    addon_prefs().api_key = old


def _task(server, source) -> str:
    task = str(uuid.uuid4())
    server.add(task, source)
    return task


def test_key_is_not_sent_to_the_asset_host_after_a_redirect(standin, sample_glb, secret_key):
    task = _task(standin, sample_glb)
    standin.fail("redirect", task)

    assert bpy.ops.triverse.import_task(task_uuid=task) == {"FINISHED"}

    api = [r for r in standin.requests if r.host == "127.0.0.1"]
    assets = [r for r in standin.requests if r.host == "127.0.0.2"]
    assert api and all(r.authorization == f"Bearer {secret_key}" for r in api)
    assert assets, "the redirect to the asset host was not followed"
    assert all(r.authorization is None for r in assets), "the key was sent to the asset host"
    assert all(secret_key not in str(r.headers) and secret_key not in r.path for r in assets)


def test_key_is_not_in_a_saved_blend(standin, sample_glb, secret_key, tmp_path):
    task = _task(standin, sample_glb)
    bpy.context.window_manager.triverse.task_uuid = task  # what the sidebar holds
    bpy.ops.triverse.import_task(task_uuid=task)
    path = tmp_path / "scene.blend"

    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)

    data = path.read_bytes()
    assert b"triverse_task_uuid" in data  # the file is searchable: the tag is there...
    assert secret_key.encode() not in data  # ...and the key is not
    assert secret_key.encode("utf-16-le") not in data


def test_key_is_in_no_report_log_or_console_output(standin, sample_glb, secret_key, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    good = _task(standin, sample_glb)
    bad = _task(standin, sample_glb)
    standin.fail("server_error", bad, message="boom")
    bpy.ops.triverse.import_task(task_uuid=good)
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.triverse.import_task(task_uuid=bad)
    standin.api_key = "another-key"  # now the key is rejected
    with pytest.raises(RuntimeError) as rejected:
        bpy.ops.triverse.import_task(task_uuid=str(uuid.uuid4()))

    out, err = capfd.readouterr()
    assert "rejected the API key" in str(rejected.value)
    for text in (str(failure.value), str(rejected.value), caplog.text, out, err):
        assert secret_key not in text


def test_settings_and_client_reprs_hide_the_key(secret_key):
    prefs_module = __import__("bl_ext.dev.triverse.blender.common.addon", fromlist=["get_settings"])
    client_module = __import__("bl_ext.dev.triverse.service.api", fromlist=["TriverseClient"])
    settings = prefs_module.get_settings()
    assert settings.api_key == secret_key
    assert secret_key not in repr(settings)
    with client_module.TriverseClient(settings) as client:
        assert secret_key not in repr(client._session.auth)
        assert secret_key not in repr(client.__dict__)


def test_the_key_lives_only_in_the_addon_preferences(secret_key):
    # The add-on's only other properties are the sidebar's, on the window manager (never saved).
    sidebar = bpy.context.window_manager.triverse
    assert set(sidebar.bl_rna.properties.keys()) == {"rna_type", "name", "task_uuid", "wait"}
    for owner in (bpy.types.Scene, bpy.types.Object, bpy.types.Collection):
        assert not [p.identifier for p in owner.bl_rna.properties if "triverse" in p.identifier.lower()]
    assert addon_prefs().api_key == secret_key
