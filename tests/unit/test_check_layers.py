"""scripts/check_layers.py: the real package passes; copies of it with one defect each fail, naming file and rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import check_layers
import pytest
from support import missing_tool

import _bootstrap

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "scripts" / "check_layers.py"
SERVICE = "triverse_addon.service"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of triverse_addon/ (same folder name, so its absolute imports resolve as in the original)."""
    copy = tmp_path / "triverse_addon"
    shutil.copytree(ROOT / "triverse_addon", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def append(path: Path, text: str) -> int:
    """Add `text` at the end of a module; the line number of its first line."""
    before = path.read_text(encoding="utf-8")
    path.write_text(before.rstrip("\n") + "\n" + text.rstrip("\n") + "\n", encoding="utf-8")
    return len(before.rstrip("\n").splitlines()) + 1


def run(package: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The checker's exit status and output on `package`."""
    code = check_layers.main(["--package", str(package)])
    return code, capsys.readouterr().out


def test_real_package_passes() -> None:
    """The repository's own package, checked as the lint tier runs it: exit 0 and the one-line summary."""
    proc = subprocess.run([sys.executable, str(CHECKER)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [proc.stdout.strip()], proc.stdout
    assert proc.stdout.startswith("layers ok: ") and proc.stdout.strip().endswith(" modules, 0 circles")


def test_an_unchanged_copy_passes(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--package checks another folder; an exact copy is as good as the original."""
    code, out = run(package, capsys)
    assert code == 0, out
    assert out.startswith("layers ok: ")


@pytest.mark.parametrize(
    "statement",
    [
        "import bpy",
        "from mathutils import Vector",
        "import bpy.utils.previews",
        "def later():\n    import bmesh",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bpy.types import Context",
    ],
)
def test_blender_in_the_pure_layer_fails(package: Path, capsys: pytest.CaptureFixture[str], statement: str) -> None:
    """Blender imported by a pure module, at module level, in a function or for types only."""
    first = append(package / "service" / "errors.py", statement)
    line = first + statement.count("\n")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"service/errors.py:{line}: " in out
    assert "the pure layer (service/) never imports Blender" in out
    assert out.splitlines()[-1].startswith("layers FAILED: 1 problem, ")


@pytest.mark.parametrize(
    "statement",
    [
        "from ..blender import addon",
        "from ..blender.common import addon",
        "from .. import bl_info",
        "from triverse_addon.blender.common import addon",
        "import triverse_addon.blender.library",
    ],
)
def test_the_addon_outside_service_in_the_pure_layer_fails(
    package: Path, capsys: pytest.CaptureFixture[str], statement: str
) -> None:
    """A pure module reaching the Blender side or the package's __init__, relatively or absolutely."""
    line = append(package / "service" / "obtain.py", statement)
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"service/obtain.py:{line}: {statement}: the pure layer (service/) never imports the add-on outside" in out


@pytest.mark.parametrize(
    ("module", "statement", "rule"),
    [
        ("library.py", "from .account import ask_account", "(library imports account)"),
        ("generate/panel.py", "from ..library import draw_library", "(generate imports library)"),
        ("library.py", "from .generations import panel", "(library imports generations)"),
        ("importing/operators.py", "from ...blender.generate import state", "(importing imports generate)"),
    ],
)
def test_a_feature_importing_another_feature_fails(
    package: Path, capsys: pytest.CaptureFixture[str], module: str, statement: str, rule: str
) -> None:
    """One room reaching into another, from a module room or a package room."""
    line = append(package / "blender" / module, statement)
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"blender/{module}:{line}: {statement}: a feature never imports another feature {rule}" in out


@pytest.mark.parametrize(
    "statement",
    ["from .. import library", "from ..generate.state import GenerateState", "from ..importing import panel"],
)
def test_common_importing_a_feature_fails(package: Path, capsys: pytest.CaptureFixture[str], statement: str) -> None:
    """The shared helpers reaching into a room."""
    line = append(package / "blender" / "common" / "redraw.py", statement)
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"common/redraw.py:{line}: {statement}: common never imports a feature" in out


def test_a_feature_importing_the_blender_hub_fails(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """blender/__init__.py imports every feature: a feature importing it imports them all."""
    line = append(package / "blender" / "account.py", "from . import PARTS")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"blender/account.py:{line}: from . import PARTS: common and the features never import" in out


def test_a_circle_fails_and_names_its_modules(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """jobs imports obtain; obtain importing jobs closes a circle, printed with the imports that make it."""
    line = append(package / "service" / "obtain.py", "from . import jobs")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"import circle: {SERVICE}.jobs -> {SERVICE}.obtain -> {SERVICE}.jobs" in out
    assert f"service/obtain.py:{line}: from . import jobs" in out
    assert "service/jobs.py:" in out
    assert out.splitlines()[-1].endswith(" modules, 1 circle")


def test_a_circle_through_another_package_s_init_fails(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Importing `service.sub.leaf` runs `service/sub/__init__.py` first: when that imports the importer, a circle."""
    (package / "service" / "sub").mkdir()
    (package / "service" / "sub" / "__init__.py").write_text("from .. import numbers\n")
    (package / "service" / "sub" / "leaf.py").write_text("X = 1\n")
    append(package / "service" / "numbers.py", "from .sub import leaf")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"import circle: {SERVICE}.numbers -> {SERVICE}.sub" in out
    assert f"(importing it runs package {SERVICE}.sub first)" in out


def test_a_package_importing_its_children_is_no_circle(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A package's __init__ importing child `a` while `a` imports sibling `b` through the package: no circle."""
    (package / "service" / "sub").mkdir()
    (package / "service" / "sub" / "__init__.py").write_text("from . import a\n")
    (package / "service" / "sub" / "a.py").write_text("from . import b\nfrom .b import Y\n")
    (package / "service" / "sub" / "b.py").write_text("Y = 1\n")
    code, out = run(package, capsys)
    assert code == 0, out


def test_a_child_reading_its_own_package_s_init_is_a_circle(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`from . import NAME` with NAME defined in the __init__ that imports the child: a real circle."""
    (package / "service" / "sub").mkdir()
    (package / "service" / "sub" / "__init__.py").write_text("from . import a\nLIMIT = 3\n")
    (package / "service" / "sub" / "a.py").write_text("from . import LIMIT\n")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"import circle: {SERVICE}.sub -> {SERVICE}.sub.a -> {SERVICE}.sub" in out


@pytest.mark.parametrize(("lines", "fails"), [(450, False), (451, True)])
def test_a_module_over_450_lines_fails(
    package: Path, capsys: pytest.CaptureFixture[str], lines: int, fails: bool
) -> None:
    """450 lines is the most a module may have."""
    path = package / "service" / "numbers.py"
    have = len(path.read_text(encoding="utf-8").splitlines())
    append(path, "\n".join(f"# padding {i}" for i in range(lines - have)))
    assert len(path.read_text(encoding="utf-8").splitlines()) == lines
    code, out = run(package, capsys)
    assert code == int(fails), out
    assert (f"service/numbers.py:{lines}: {lines} lines, over the 450-line limit" in out) == fails


def test_a_module_outside_the_two_layers_fails(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the package's __init__.py sits beside service/ and blender/."""
    (package / "helpers.py").write_text("X = 1\n")
    code, out = run(package, capsys)
    assert code == 1, out
    assert "triverse_addon/helpers.py:1: outside the two layers" in out


def test_an_import_of_nothing_fails(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A relative import that reaches no module of the package (here one dot too many) is reported, not skipped."""
    line = append(package / "blender" / "library.py", "from ..account import ask_account")
    code, out = run(package, capsys)
    assert code == 1, out
    assert f"blender/library.py:{line}: from ..account import ask_account: no module triverse_addon.account" in out


def test_lint_fails_on_a_copy_with_bpy_in_a_pure_module(tmp_path: Path) -> None:
    """`python3 scripts/test.py lint` on a copy of the repository whose service/errors.py imports bpy fails there."""
    lint_venv = ROOT / ".venv" / "lint"
    marker = lint_venv / ".requirements"
    if not marker.is_file() or marker.read_text() != "\n".join(_bootstrap.VENVS["lint"]):
        missing_tool("the lint environment .venv/lint (run `python3 scripts/test.py lint` once to make it)")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        missing_tool(f"git ls-files: {listed.stderr.decode(errors='replace').strip()}")
    repo = tmp_path / "repo"
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    (repo / ".venv").symlink_to(ROOT / ".venv")  # the same tools: nothing is installed
    line = append(repo / "triverse_addon" / "service" / "errors.py", "import bpy")
    env = {k: v for k, v in os.environ.items() if k != "TRIVERSE_ALLOW_SKIP"}
    proc = subprocess.run(
        [sys.executable, "scripts/test.py", "lint"], cwd=repo, capture_output=True, text=True, check=False, env=env
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "scripts/check_layers.py: FAILED layers FAILED: 1 problem, " in out
    assert f"triverse_addon/service/errors.py:{line}: import bpy: the pure layer (service/) never imports" in out
    assert "FAILED tiers: lint" in out
