"""The asset library's folder without Blender: catalogs, tags, file names, clearing."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from triverse_addon.service import asset_catalog as ac


def test_catalog_uuids_are_stable_and_distinct():
    assert ac.catalog_uuid("Triverse/Imported") == ac.catalog_uuid("Triverse/Imported")
    assert len({ac.catalog_uuid(path) for path in ac.CATALOGS}) == len(ac.CATALOGS)
    uuid.UUID(ac.catalog_uuid("Triverse/Imported"))


@pytest.mark.parametrize(
    ("flow", "catalog"),
    [
        ("", "Triverse/Imported"),
        ("text-to-model", "Triverse/Generated/Text"),
        ("image-to-mesh", "Triverse/Generated/Image"),
        ("image-to-model", "Triverse/Generated/Image"),
        ("text-to-texture", "Triverse/Textured"),
        ("texture-model", "Triverse/Textured"),
        ("model-remesh", "Triverse/Remeshed"),
        ("Model-Remesh ", "Triverse/Remeshed"),
        ("something-new", "Triverse/Imported"),
    ],
)
def test_catalog_for_flow(flow, catalog):
    assert ac.catalog_for_flow(flow) == catalog


def test_new_catalog_file_lists_every_kind_and_its_parents(tmp_path):
    ids = ac.ensure_catalogs(tmp_path)
    text = (tmp_path / ac.CATALOG_FILE).read_text()
    assert "VERSION 1" in text.splitlines()
    _, catalogs = ac.read_catalogs(tmp_path)
    assert set(catalogs) == {"Triverse", "Triverse/Generated", *ac.CATALOGS}
    assert ids == {path: ac.catalog_uuid(path) for path in ac.CATALOGS}
    assert catalogs["Triverse/Generated/Text"].simple_name == "Triverse-Generated-Text"


def test_lines_the_user_added_are_kept_and_their_uuids_win(tmp_path):
    mine = "0f2d5b8e-1111-4222-8333-944455566677"
    original = [
        "# my catalogs",
        "VERSION 1",
        "",
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee:Props/Chairs:Props-Chairs",
        f"{mine}:Triverse/Imported:Imported by hand",
        "some line Blender may add one day",
    ]
    (tmp_path / ac.CATALOG_FILE).write_text("\n".join(original) + "\n")

    ids = ac.ensure_catalogs(tmp_path)

    lines = (tmp_path / ac.CATALOG_FILE).read_text().splitlines()
    assert lines[: len(original)] == original
    assert ids["Triverse/Imported"] == mine
    assert sum(":Triverse/Imported:" in line for line in lines) == 1
    before = (tmp_path / ac.CATALOG_FILE).stat().st_mtime_ns
    ac.ensure_catalogs(tmp_path)  # nothing missing: not rewritten
    assert (tmp_path / ac.CATALOG_FILE).stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [ac.CATALOG_FILE], "temporary file left behind"


def test_tags_from_flow_prompt_and_format():
    tags = ac.tags_for("text-to-model", "A rusty old robot, with a red hat and a RED scarf!", "GLB")
    assert tags[:2] == ["Triverse", "text-to-model"]
    assert tags[-1] == "glb"
    assert {"rusty", "robot", "red", "hat", "scarf"} <= set(tags)
    assert "a" not in tags and "with" not in tags and tags.count("red") == 1
    assert ac.tags_for("", "", "fbx") == ["Triverse", "fbx"]
    long = ac.tags_for("", " ".join(f"word{i}" for i in range(30)), "glb")
    assert len(long) <= 11


def test_asset_files_clear_and_stale_partials(tmp_path):
    task = str(uuid.uuid4())
    done = ac.asset_file(tmp_path, task)
    done.write_bytes(b"BLENDER")
    (tmp_path / "notes.blend").write_bytes(b"BLENDER")  # not ours: never listed nor removed
    ac.ensure_catalogs(tmp_path)
    fresh = ac.incoming(tmp_path) / f"{uuid.uuid4()}.blend"
    fresh.write_bytes(b"BLEN")
    stale = tmp_path / f"{uuid.uuid4()}.blend.tmp"
    stale.write_bytes(b"BLEN")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    assert ac.asset_files(tmp_path) == [done]
    assert ac.remove_stale_partials(tmp_path) == 1
    assert fresh.exists() and not stale.exists()
    assert ac.clear(tmp_path) == 1
    assert not done.exists() and not fresh.exists()
    assert (tmp_path / "notes.blend").exists() and (tmp_path / ac.CATALOG_FILE).exists()
    with pytest.raises(ValueError):
        ac.asset_file(tmp_path, "../escape")
