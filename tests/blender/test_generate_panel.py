"""The Generate panel's logic in real Blender without a window: validation under the fields, the price
asked for off the main thread when an option changes (never by drawing), the account, and the panel's
Generate with an image of the .blend (uploaded as PNG, the user's image untouched)."""

from __future__ import annotations

import glob
import importlib
import os
import tempfile
import time

import bpy
import pytest
from conftest import MODULE, addon_prefs


def _mod(name: str):
    return importlib.import_module(f"{MODULE}.{name}")


def _state():
    return bpy.context.window_manager.triverse_generate


def _settle(latest) -> None:
    """Run the look-ups' timer step (timers never fire in the bpy module) until the look-up has ended."""
    lookups = _mod("blender.common.lookups")
    deadline = time.monotonic() + 10
    lookups.tick()
    while latest.busy and time.monotonic() < deadline:
        time.sleep(0.02)
        lookups.tick()


class _Ui:
    """The Generate panel's look-ups and checks, where they live now."""

    def __getattr__(self, name: str):
        price, account, state = _mod("blender.generate.price"), _mod("blender.account"), _mod("blender.generate.state")
        return {
            "QUOTE": lambda: price.QUOTE,
            "ACCOUNT": lambda: account.ACCOUNT,
            "want_quote": lambda: price.ask_price,
            "want_account": lambda: account.ask_account,
            "quote_key": lambda: price.quote_key,
            "quiet_reason": lambda: _mod("blender.common.reporting").quiet_reason,
            "problems": lambda: state.problems,
        }[name]()


@pytest.fixture()
def panel(standin, sample_glb):
    """The stand-in serving generations quickly, and the panel's state and look-ups reset."""
    ui = _Ui()
    standin.gen.generated_asset = sample_glb
    standin.gen.timeline_step = 0.05
    standin.gen.balance = 1000.0
    ui.QUOTE.debounce = 0.0  # the debounce is checked in the pure tier; here every change asks at once
    ui.QUOTE.forget()
    ui.ACCOUNT.forget()
    st = _state()
    for name in ("mode", "prompt", "negative_prompt", "image_source", "image_path", "image_name", "output"):
        st.property_unset(name)
    for name in ("polygon_limit", "texture_size", "turbo"):
        st.property_unset(name)
    yield standin
    ui.QUOTE.wait(5)
    ui.QUOTE.debounce = 0.4


def _quotes(server) -> list:
    import json

    return [json.loads(r.body) for r in server.requests_for("/tasks/pricing/quote")]


def test_changing_a_price_option_asks_for_one_quote_off_the_main_thread(panel):
    ui = _Ui()
    _state().output = "MESH"  # the update callback asks; nothing is sent before the timer runs
    assert _quotes(panel) == [] and ui.QUOTE.busy
    _settle(ui.QUOTE)
    assert [q["flow_name"] for q in _quotes(panel)] == ["text-to-mesh"]
    assert ui.QUOTE.value.cost_credits == 20 and ui.QUOTE.value.available_credits == 1000
    for _ in range(5):  # what every redraw does: a fresh price is never asked again
        ui.want_quote(bpy.context)
        _settle(ui.QUOTE)
    _state().prompt = "a chair"  # the prompt does not change the price
    _settle(ui.QUOTE)
    assert len(_quotes(panel)) == 1
    _state().turbo = True
    _settle(ui.QUOTE)
    assert _quotes(panel)[-1]["params"] == {"polygon_limit": 1_000_000, "turbo": True}
    assert ui.QUOTE.value.cost_credits == 10


def test_without_a_key_or_online_access_no_request_is_sent(panel):
    ui = _Ui()
    addon_prefs().api_key = ""
    _state().texture_size = "4096"
    ui.want_account(bpy.context)
    _settle(ui.QUOTE)
    assert ui.quote_key(bpy.context)[2] == "no API key"
    addon_prefs().api_key = "test-key"
    bpy.context.preferences.system.use_online_access = False
    try:
        _state().texture_size = "2048"
        _settle(ui.QUOTE)
        assert ui.quote_key(bpy.context)[2] == "online access is off"
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert panel.requests == []


def test_a_failed_quote_is_kept_as_a_quiet_reason(panel):
    ui = _Ui()
    addon_prefs().base_url = "http://127.0.0.1:9/api/v1"  # nothing listens there
    _state().turbo = True
    _settle(ui.QUOTE)
    assert ui.QUOTE.value is None and ui.quiet_reason(ui.QUOTE.error) == "Offline: cannot reach Triverse"


def test_the_account_is_fetched_in_the_background(panel):
    ui = _Ui()
    ui.want_account(bpy.context)
    _settle(ui.ACCOUNT)
    account = ui.ACCOUNT.value
    assert (account.email, account.plan_name, account.balance) == ("artist@example.com", "Pro", 1000.0)
    assert len(panel.requests_for("/users/me")) == 1


def test_reasons_are_shown_for_bad_options(panel, tmp_path):
    ui = _Ui()
    st = _state()
    st.prompt = "ab"
    st.polygon_limit = 500
    found = ui.problems(st, bpy.context)
    assert set(found) == {"prompt", "polygon_limit"}
    assert "at least 3 characters" in found["prompt"] and "1,000" in found["polygon_limit"]
    st.mode = "IMAGE"
    st.polygon_limit = 20_000
    (tmp_path / "notes.txt").write_text("not an image")
    st.image_path = str(tmp_path / "notes.txt")
    assert "PNG, JPEG or WebP" in ui.problems(st, bpy.context)["image"]
    bmp = bpy.data.images.new("bmp", 4, 4)
    bmp.filepath_raw = str(tmp_path / "pic.bmp")
    bmp.file_format = "BMP"
    bmp.save()
    st.image_path = str(tmp_path / "pic.bmp")
    assert ui.problems(st, bpy.context) == {}, "a BMP is converted to PNG when Generate is pressed"
    st.image_source = "BLEND"
    assert ui.problems(st, bpy.context)["image"] == "Choose an image of this .blend file."
    st.image_source = "CAMERA"
    assert "no camera" in ui.problems(st, bpy.context)["image"]


def test_panel_generate_with_a_packed_image_uploads_a_png_and_imports(panel, tmp_path):
    image = bpy.data.images.new("Sketch", 32, 16)
    image.generated_type = "COLOR_GRID"
    image.pack()
    before = (image.filepath, image.file_format, image.is_dirty, image.packed_file is not None)
    st = _state()
    st.mode = "IMAGE"
    st.image_source = "BLEND"
    st.image_name = "Sketch"
    files_before = set(panel.gen.files)
    temp_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "triverse-image-*")))
    assert bpy.ops.triverse.generate_from_panel() == {"FINISHED"}
    (key, data), *_ = [(k, v) for k, v in panel.gen.files.items() if k not in files_before]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    created = [r for r in panel.requests if r.path.endswith("/tasks/image-to-model")]
    assert len(created) == 1 and key.encode() in created[0].body
    assert any(ob.get("triverse_task_uuid") == panel.gen.created[-1] for ob in bpy.data.objects)
    assert (image.filepath, image.file_format, image.is_dirty, image.packed_file is not None) == before
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "triverse-image-*"))) == temp_before


def test_panel_generate_refuses_before_any_request_when_an_option_is_wrong(panel):
    created = list(panel.gen.created)
    _state().prompt = "ab"
    with pytest.raises(RuntimeError, match="at least 3 characters"):
        bpy.ops.triverse.generate_from_panel()
    assert panel.gen.created == created and panel.requests_for("/tasks/") == []


def test_my_generations_thumbnail_is_decoded_off_the_main_thread(panel, tmp_path):
    gens, store = _mod("service.generations_store"), _mod("blender.common.stores").generations()
    ui_list = _mod("blender.generations.panel")
    image = bpy.data.images.new("thumb", 40, 20)
    image.generated_type = "COLOR_GRID"
    image.filepath_raw = str(tmp_path / "thumb.png")
    image.file_format = "PNG"
    image.save()
    record = gens.GenerationRecord(
        task_uuid="0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        prompt="a lamp",
        status="SUCCESS",
        created_at=time.time(),
        preview_file=str(tmp_path / "thumb.png"),
    )
    store.upsert(record)
    try:
        thumbnails = ui_list.THUMBNAILS
        assert ui_list.thumbnail_icon(record.task_uuid) == 0  # nothing decoded yet: drawing shows the icon
        ui_list.load_thumbnails()  # the panel's timer (timers never fire in the bpy module): hands it over
        assert not thumbnails.has(record.task_uuid), "decoded on the main thread"
        deadline = time.monotonic() + 10
        while not thumbnails.has(record.task_uuid) and time.monotonic() < deadline:
            time.sleep(0.02)
            ui_list.load_thumbnails()
        # (icon ids need a GPU: without a window they stay 0; the picture itself is there)
        preview = thumbnails._collection[record.task_uuid]
        assert tuple(preview.image_size) == (40, 20)
    finally:
        store.remove(record.task_uuid)
