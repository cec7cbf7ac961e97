"""UI tier for the Triverse asset library and the account feed: Debian's Blender (3.4) in a real window under
Xvfb, driven by drive_assets_feed.py. Nothing here imports `bpy`.

(a) A task imported through the sidebar becomes an asset of the library named "Triverse" (an entry in
    Blender's preferences pointing at the add-on's folder); an Asset Browser shows it; its tile is dragged into
    the 3D viewport with simulated mouse events, and the scene gets the model from the asset's file.
(b) With `watch_account` on, a task made elsewhere (a plain HTTP POST with the key) is drawn in My Generations
    within seconds, with its "Made elsewhere" line.

Blender 3.4 loads the add-on the legacy way, without the extension's websocket-client wheel. The feed needs it:
the driver gets websocket-client on its sys.path from a folder this module prepares (TRIVERSE_UI_PYLIB) and no
other driver sees it (test_generate_ui.py and tests/binary check that 3.4 has none). Its source, in order:
Debian's python3-websocket (1.2.3) when installed, else the same package fetched with `apt-get download` and
unpacked into build/ui-deps/, else the extension's wheel in build/wheels/ (recorded: the test says which). The
stand-in's WebSocket watch needs `websockets`, which Debian's Python lacks: the folder links the one of the
Python running pytest (the same 3.11).

Screenshots, result.json and Blender's log are copied to build/ui-screenshots/ (as assets-feed-*.png); with
TRIVERSE_UI_UPDATE_DOCS=1 the README's crops are written to docs/screenshots/{asset-browser,made-elsewhere}.png.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_ui import png_facts
from ui_launch import Run, check_screenshot, launch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("drive_assets_feed.py")
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
DOCS = ROOT / "docs" / "screenshots"
DEPS = ROOT / "build" / "ui-deps"
RUN_TIMEOUT = 240.0
PROMPT_ELSEWHERE = "a lantern made on the web"
DEBIAN_WEBSOCKET = Path("/usr/lib/python3/dist-packages/websocket")


def websocket_client(pylib: Path) -> str:
    """Put websocket-client where the driver finds it; which one ("debian-installed", "debian-1.2.3", "wheel")."""
    if DEBIAN_WEBSOCKET.is_dir():
        return "debian-installed"  # on Debian's Python's path already
    unpacked = DEPS / "python3-websocket" / "usr" / "lib" / "python3" / "dist-packages" / "websocket"
    if not unpacked.is_dir() and shutil.which("apt-get") and shutil.which("dpkg-deb"):
        DEPS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "python3-websocket"], cwd=DEPS, capture_output=True, timeout=120)
        for deb in sorted(DEPS.glob("python3-websocket_*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(DEPS / "python3-websocket")], check=False, timeout=60)
    if unpacked.is_dir():
        (pylib / "websocket").symlink_to(unpacked)
        return "debian-1.2.3"
    wheels = sorted((ROOT / "build" / "wheels").glob("websocket_client-*.whl"))
    if wheels:
        import zipfile

        with zipfile.ZipFile(wheels[-1]) as wheel:
            wheel.extractall(pylib / "wheel")
        (pylib / "websocket").symlink_to(pylib / "wheel" / "websocket")
        return "wheel"
    return "none"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the driver once for the whole module (websocket-client, and the stand-in's websockets, on the path
    of this test's Blender only)."""
    out = tmp_path_factory.mktemp("ui-assets-feed")
    pylib = out / "pylib"
    pylib.mkdir()
    source = websocket_client(pylib)
    try:
        import websockets

        (pylib / "websockets").symlink_to(Path(websockets.__file__).parent)
    except ImportError:
        pass
    pictures = {"asset-browser.png": "asset-browser.png", "made-elsewhere.png": "made-elsewhere.png"}
    run = launch(DRIVER, out, name="assets-feed", timeout=RUN_TIMEOUT, env_extra={"TRIVERSE_UI_PYLIB": str(pylib)},
                 docs=pictures)  # fmt: skip
    run.result["websocket_source"] = source
    return run


def test_driver_ran_every_step(run: Run) -> None:
    assert not run.killed, run.diagnosis()
    assert run.result.get("errors") == [], run.diagnosis()
    assert run.result.get("ok") is True and run.returncode == 0, run.diagnosis()


def test_no_traceback_in_blenders_log(run: Run) -> None:
    blocks = run.log.split("Traceback (most recent call last):")[1:]
    assert not blocks, "Python tracebacks in Blender's log:\n" + "\n---\n".join(b[:1500] for b in blocks)


def test_the_triverse_library_is_registered_at_the_addons_folder(run: Run) -> None:
    assets = run.section("assets")
    entries = [e for e in assets["library_entries"] if e["name"] == "Triverse"]
    assert len(entries) == 1, assets["library_entries"]
    assert entries[0]["path"] == assets["asset_folder"], (entries, assets["asset_folder"])
    assert Path(assets["asset_file"]).parent.resolve() == Path(assets["asset_folder"])


def test_the_imported_model_is_an_asset_of_the_library(run: Run) -> None:
    assets = run.section("assets")
    assert assets["asset_wait"] is True and assets["asset_file_exists"] is True, assets
    assert assets["assets_in_file"]["collections"] == [assets["model_collection"]], assets
    assert assets["catalogs_file"] is True


def test_the_asset_browser_shows_the_triverse_library(run: Run) -> None:
    assets = run.section("assets")
    assert assets["library_shown"] == "Triverse", assets
    assert assets["browser_tile_std"] > 0.02, "the browser's top row looks empty (no tile drawn)"
    check_screenshot(run, "assets-feed-asset-browser.png")


def test_dragging_the_tile_into_the_viewport_adds_the_model(run: Run) -> None:
    assets = run.section("assets")
    assert assets["drag"] == "simulated"
    dropped = assets["dropped"]
    assert len(dropped) >= 1, assets
    instances = [d for d in dropped if d.get("instance_type") == "COLLECTION" and d.get("collection")]
    assert instances, dropped
    coll = instances[0]["collection"]
    source = coll["library"] or coll["weak_reference"]
    assert source and Path(source).resolve() == Path(assets["asset_file"]).resolve(), coll
    assert coll["meshes"] >= 1 and coll["task"] == run.result["setup"]["task"], coll
    check_screenshot(run, "assets-feed-dropped.png")


def test_the_open_file_keeps_no_asset_mark(run: Run) -> None:
    assets = run.section("assets")
    assert assets["marked_before_drag"] == [], assets["marked_before_drag"]


def test_the_feed_uses_websocket_client_in_blender_34(run: Run) -> None:
    client = run.result.get("websocket_client") or {}
    assert client.get("version"), f"no websocket-client in the driver's Blender ({run.result['websocket_source']})"
    feed = run.section("feed")
    assert feed["state_after_start"][0] == "connected", feed["state_after_start"]
    assert feed["watch_all_requests"] >= 1


def test_a_task_made_elsewhere_appears_live_in_my_generations(run: Run) -> None:
    feed = run.section("feed")
    assert "error" not in feed["post"], feed["post"]
    words = feed["words"]
    i = next(k for k, w in enumerate(words) if w in feed["titles"])
    assert words[i + 2].startswith("Made elsewhere"), words  # title, status, then "Made elsewhere  just now"
    assert feed["seconds_to_drawn"] < 5.0, feed["seconds_to_drawn"]
    assert feed["record"]["origin"] == "elsewhere", feed["record"]
    assert not any("last seen" in w for w in words), words  # the connected feed follows it: no stale status
    done = feed["words_done"]
    j = next(k for k, w in enumerate(done) if w in feed["titles"])
    assert done[j + 1] == "Done", done  # followed live until it succeeded
    assert feed["connections"] == 1, "one WebSocket stayed open"
    check_screenshot(run, "assets-feed-made-elsewhere.png")


def test_readme_crops_were_made(run: Run) -> None:
    crops = run.result.get("crops") or {}
    assert set(crops) == {"asset-browser.png", "made-elsewhere.png"}, run.diagnosis()
    for name, size in crops.items():
        facts = png_facts(run.out / f"crop-{name}")
        assert [facts["width"], facts["height"]] == size, (name, facts)
        assert facts["distinct_bytes"] > 100, f"the crop of {name} looks blank: {facts}"
