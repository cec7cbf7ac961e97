"""UI tier for Generate: Debian's Blender (3.4) in a real window under Xvfb, driven by drive_generate.py.

The driver runs once for the module (about a minute): it loads the add-on the legacy way (no wheel, so
the watch falls back to polling), runs the stand-in service with its generation endpoints in Blender's
process, types a prompt and clicks the panel's buttons with simulated events, and writes result.json
and screenshots; each test checks one scenario's facts. Nothing here imports `bpy`. Screenshots,
result.json and Blender's log are copied to build/ui-screenshots/ (as generate-*.png).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ui import png_facts
from ui_launch import Run, check_screenshot, launch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("drive_generate.py")
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the driver once for the whole module."""
    return launch(DRIVER, tmp_path_factory.mktemp("ui-generate"), name="generate", timeout=RUN_TIMEOUT)


def test_driver_ran_every_scenario(run: Run) -> None:
    assert not run.killed, run.diagnosis()
    assert run.result.get("errors") == [], run.diagnosis()
    assert run.result.get("ok") is True and run.returncode == 0, run.diagnosis()


def test_no_traceback_in_blenders_log(run: Run) -> None:
    """An exception in a draw, timer, update callback or modal is printed by Blender, not raised."""
    blocks = run.log.split("Traceback (most recent call last):")[1:]
    assert not blocks, "Python tracebacks in Blender's log:\n" + "\n---\n".join(b[:1500] for b in blocks)


def test_legacy_loading_without_the_websocket_wheel(run: Run) -> None:
    setup = run.section("setup")
    assert setup["legacy_addon"] is True and Path(setup["addon_file"]).as_posix().endswith("triverse/__init__.py")
    assert setup["websocket_client_importable"] is False, "3.4 installs no wheel: the watch must poll"


def test_typed_prompt_and_price_before_spending(run: Run) -> None:
    typing = run.section("typing")
    assert "prompt" in typing["reason_shown_for_empty_prompt"], typing  # the reason under the empty field
    assert typing["prompt"] == "a red chair"  # typed key by key into the field
    assert typing["reasons_after_typing"] == {}
    assert typing["quotes_for_typing"] == 0, "typing a prompt does not change the price: no quote"
    assert typing["price"] == {"cost": 40, "balance": 1000.0}  # the stand-in's text-to-model price
    assert typing["quote_params"]["flow_name"] == "text-to-model"
    assert typing["quotes_for_texture_change"] == 1, "one quote per change, none per redraw"
    assert typing["quote_after_texture_change"]["params"]["texture_size"] == 2048
    assert typing["price_2048"] == 50
    check_screenshot(run, "generate-empty.png")
    check_screenshot(run, "generate-idle.png")


def test_generate_click_watches_queue_then_progress_then_imports(run: Run) -> None:
    gen = run.section("generate")
    texts = gen["texts_seen"]
    assert gen["job_error"] is None, gen
    assert any(t.startswith("Queued: position") for t in texts), texts
    running = [t for t in texts if t.startswith("Running")]
    assert len(running) >= 2, f"progress did not move: {texts}"
    assert texts.index(next(t for t in texts if t.startswith("Queued"))) < texts.index(running[0])
    assert len(gen["tasks_created"]) == 1, "one click, one task"
    assert gen["create_bodies"][-1]["prompt"] == "a red chair" and gen["create_bodies"][-1]["texture_size"] == 2048
    assert len(gen["collections"]) == 1 and gen["collections"][0].startswith("a red chair"), gen["collections"]
    assert gen["objects"] == ["Chair", "Seat"], gen
    assert gen["root_properties"].get("triverse_prompt") == "a red chair", gen["root_properties"]
    assert gen["record"] == {"status": "SUCCESS", "prompt": "a red chair", "cost": 50}
    assert gen["balance_after"] == 950.0, "the balance shown after spending is the new one"
    for name in ("generate-queued.png", "generate-running.png", "generate-done.png"):
        check_screenshot(run, name)


def test_x_stops_watching_and_the_task_stays_listed(run: Run) -> None:
    stop = run.section("stop")
    assert len(stop["new_tasks"]) == 1 and stop["new_tasks"][0] == stop["task"]
    assert stop["job_error"] == "Cancelled", stop
    assert stop["still_listed"] is True and stop["record_status"] == "RUNNING", stop
    assert stop["service_status"] == "RUNNING", "stopping the watch must not stop the task on the service"
    assert stop["collections"] == [], "nothing is imported after stopping the watch"
    check_screenshot(run, "generate-watching.png")
    check_screenshot(run, "generate-stopped.png")


def test_short_balance_disables_generate(run: Run) -> None:
    short = run.section("short")
    assert short["price"]["balance"] < short["price"]["cost"], short
    assert short["new_tasks"] == [] and short["jobs"] == 0, "a disabled Generate created a task"
    assert short["creation_requests"] == 0, "a click on the disabled Generate sent a request"
    check_screenshot(run, "generate-short.png")


def test_viewport_capture_uploads_a_png(run: Run) -> None:
    cap = run.section("capture")
    assert cap["job_error"] is None, cap
    assert len(cap["uploaded"]) == 1 and cap["uploaded"][0]["png"] is True, cap
    assert cap["image_file_sent"] == cap["uploaded"][0]["key"]
    assert len(cap["new_tasks"]) == 1
    assert cap["temp_image_folders"] == [], "the capture's private folder stayed after the upload"
    facts = png_facts(run.out / "generate-uploaded.png")
    assert [facts["width"], facts["height"]] == cap["viewport"], (facts, cap["viewport"])
    assert facts["distinct_bytes"] > 20, f"the captured image looks blank: {facts}"
    # The pixels are the viewport's (an image of wrongly ordered bytes is far from the screenshot).
    assert cap["capture_vs_screenshot"]["mean_abs_diff"] < 0.06, cap["capture_vs_screenshot"]
    assert cap["capture_vs_screenshot"]["alpha_min"] == 1.0
    assert cap["camera_capture"] == cap["render_size"], "the camera's view follows the render size"
    check_screenshot(run, "generate-image.png")


def test_account_shown_as_in_the_preferences(run: Run) -> None:
    account = run.section("account")
    assert (account["email"], account["plan"]) == ("artist@example.com", "Pro")
    assert account["balance"] == account["service_available"]
    assert account["requests"] == 1, "fetched once on the first draw, then kept"
    check_screenshot(run, "generate-account.png")
