"""The start-up benchmark stages both versions as scripts/build.py stages the extension (no timing here)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from bench.startup import RELEASE, export_release, stage_tree

import build


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_the_working_tree_is_staged_as_build_stages_it(tmp_path: Path) -> None:
    ours = stage_tree(build.ROOT, tmp_path / "ours")
    theirs = build.stage(tmp_path / "build", link=False)
    assert ours.name == theirs.name == "triverse"
    assert _files(ours) == _files(theirs)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_release_tree_is_staged_as_an_extension(tmp_path: Path) -> None:
    known = subprocess.run(["git", "-C", str(build.ROOT), "cat-file", "-e", f"{RELEASE[1]}^{{commit}}"], check=False)
    if known.returncode != 0:
        pytest.skip(f"commit {RELEASE[1]} is not in this clone")
    staged = stage_tree(export_release(RELEASE[1], tmp_path / "src"), tmp_path / "repo")
    files = _files(staged)
    with open(staged / "blender_manifest.toml", "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["id"] == staged.name and manifest["version"] == RELEASE[0]
    assert "__init__.py" in files and "client.py" in files  # 0.2.0's flat layout, at the top of the extension
    assert [f"wheels/{Path(w).name}" for w in manifest["wheels"]] == [f for f in files if f.startswith("wheels/")]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
