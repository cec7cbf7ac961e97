"""UI tier for Scene Tools: Debian's Blender (3.4) in a real window under Xvfb, driven by drive_scene_tools.py.

The driver runs once for the module: a scene with a parent empty (moved, rotated) and a child mesh with a
modifier in its own collection, plus a second mesh; the stand-in answers the scene-tool endpoints fast, a
texturing with a differently looking model. Nothing selected: the panel's button is disabled and says why.
Then the child is selected by a click in the viewport, a prompt typed into the panel, the button clicked; the
job's progress shows in the panel; the result takes the original's place; Restore Original swaps them back.
Each test checks one step's facts (no timing: a behaviour test). Nothing here imports `bpy`.

Screenshots, result.json and Blender's log are copied to build/ui-screenshots/ (as scene-tools-*.png); with
TRIVERSE_UI_UPDATE_DOCS=1 the README's crops are written to docs/screenshots/scene-tools-{before,after}.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ui import png_facts
from ui_launch import Run, check_screenshot, launch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("drive_scene_tools.py")
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
DOCS = ROOT / "docs" / "screenshots"
RUN_TIMEOUT = 240.0
PROMPT = "colourful checker tiles"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the driver once for the whole module."""
    out = tmp_path_factory.mktemp("ui-scene-tools")
    pictures = {f"scene-tools-{step}.png": f"scene-tools-{step}.png" for step in ("before", "after")}
    return launch(DRIVER, out, name="scene-tools", timeout=RUN_TIMEOUT, docs=pictures)


def close(a: list[list[float]], b: list[list[float]], tolerance: float = 1e-4) -> bool:
    pairs = (pair for row_a, row_b in zip(a, b, strict=True) for pair in zip(row_a, row_b, strict=True))
    return all(abs(x - y) <= tolerance for x, y in pairs)


def test_driver_ran_every_step(run: Run) -> None:
    assert not run.killed, run.diagnosis()
    assert run.result.get("errors") == [], run.diagnosis()
    assert run.result.get("ok") is True and run.returncode == 0, run.diagnosis()


def test_no_traceback_in_blenders_log(run: Run) -> None:
    """An exception in a draw, timer, update callback or modal is printed by Blender, not raised."""
    blocks = run.log.split("Traceback (most recent call last):")[1:]
    assert not blocks, "Python tracebacks in Blender's log:\n" + "\n---\n".join(b[:1500] for b in blocks)


def test_nothing_selected_disables_the_button_and_says_why(run: Run) -> None:
    out = run.section("nothing_selected")
    words = out["words"]
    button = words["buttons"].get("triverse.scene_tools_from_panel")
    assert button is not None and button["enabled"] is False, words
    assert "Select the mesh objects to work on" in words["alerts"], words  # the reason, in red under the button
    assert not any(t.startswith("Cost:") for t in words["labels"]), "a price for nothing"
    assert out["scene_quotes"] == 0, "the panel asked the service for the price of nothing"
    assert out["red_pixels"] > 20, "the reason is not drawn in the sidebar (no red text in the screenshot)"
    assert out["jobs_after_click"] == 0 and out["uploads_after_click"] == 0, "a click on the disabled button did work"
    check_screenshot(run, "scene-tools-nothing-selected.png")


def test_selecting_the_child_enables_the_button(run: Run) -> None:
    tex = run.section("texture")
    assert tex["selected"] == ["Bust"], "the click in the viewport selects the child mesh"
    assert tex["prompt"] == PROMPT, "typed key by key into the panel's field"
    button = tex["words_before"]["buttons"]["triverse.scene_tools_from_panel"]
    assert button == {"text": "Texture Selected", "enabled": True}, tex["words_before"]
    assert tex["words_before"]["alerts"] == [] and tex["red_pixels_before"] <= 20, tex["words_before"]
    assert "Cost: 30 credits" in tex["words_before"]["labels"], tex["words_before"]  # one object's price
    assert tex["scene_quotes_before"] >= 1
    check_screenshot(run, "scene-tools-before.png")


def test_the_click_uploads_once_and_shows_progress_in_the_panel(run: Run) -> None:
    tex = run.section("texture")
    assert tex["job_error"] is None, tex
    assert tex["uploads"] == 1 and len(tex["tasks_created"]) == 1, "one selected object: one upload, one task"
    assert tex["create_body"]["prompt"] == PROMPT, tex["create_body"]
    seen = tex["texts_seen"]
    assert any(t.startswith("Running") for t in seen), seen
    running = tex["words_running"]["labels"]
    assert "Bust" in running and any(t.startswith("Running") for t in running), running  # the job's box
    check_screenshot(run, "scene-tools-running.png")


def test_the_result_takes_the_originals_place(run: Run) -> None:
    tex = run.section("texture")
    original, result = tex["original"], tex["result"]
    assert result is not None, tex
    assert close(result["matrix_world"], original["matrix_world"]), (result["matrix_world"], original["matrix_world"])
    assert result["parent"] == original["parent"] == "Rig"
    assert result["collections"] == original["collections"] == ["Props"]
    assert result["source"] == "Bust" and result["name"] == "Bust textured"
    assert result["hidden"] is False and result["materials"], result  # the textured model, shown
    assert tex["original_hidden"] is True and tex["original_hidden_in_renders"] is True
    assert tex["plinth"] == {"hidden": False, "has_result": False}, "the unselected mesh is left alone"
    assert sorted(tex["rig_children"]) == ["Bust", "Bust textured"], "the original is hidden, never deleted"
    after = tex["words_after"]["buttons"]
    assert "triverse.restore_original" in after, after
    check_screenshot(run, "scene-tools-after.png")


def test_restore_original_swaps_them(run: Run) -> None:
    restore = run.section("restore")
    assert restore["original_hidden"] is False and restore["original_hidden_in_renders"] is False, restore
    assert restore["result_hidden"] is True and restore["result_hidden_in_renders"] is True, restore
    assert restore["active"] == "Bust", restore
    check_screenshot(run, "scene-tools-restored.png")


def test_readme_crops_were_made(run: Run) -> None:
    crops = run.result.get("crops") or {}
    assert set(crops) == {"scene-tools-before.png", "scene-tools-after.png"}, run.diagnosis()
    for name, size in crops.items():
        facts = png_facts(run.out / f"crop-{name}")
        assert [facts["width"], facts["height"]] == size, (name, facts)
        assert facts["distinct_bytes"] > 100, f"the crop of {name} looks blank: {facts}"
