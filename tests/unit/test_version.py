"""The version is written once, in the manifest: everything else that states it must say the same."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from triverse_addon.service import transport, version

ROOT = Path(__file__).resolve().parents[2]


def manifest_version() -> str:
    with open(ROOT / "blender_manifest.toml", "rb") as f:
        return str(tomllib.load(f)["version"])


def literal_bl_info(init_py: Path) -> dict[str, object]:
    """`bl_info` as Blender 3.x reads it: ast.literal_eval of the assignment, nothing imported."""
    for node in ast.parse(init_py.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in node.targets):
            info = ast.literal_eval(node.value)
            assert isinstance(info, dict)
            return info
    raise AssertionError(f"{init_py} has no literal bl_info")


def test_the_package_reads_its_version_from_the_manifest():
    expected = manifest_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", expected)
    assert expected == version.VERSION
    assert f"triverse-blender/{expected}" == version.USER_AGENT


def test_the_client_sends_the_manifests_version():
    assert f"triverse-blender/{manifest_version()}" == transport.USER_AGENT


def test_bl_info_in_the_source_is_the_manifests_version():
    info = literal_bl_info(ROOT / "triverse_addon" / "__init__.py")
    assert ".".join(map(str, info["version"])) == manifest_version()  # type: ignore[call-overload]


def test_pyproject_states_the_manifests_version():
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["version"] == manifest_version()


def test_the_changelog_describes_this_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[?(\d+\.\d+\.\d+)\]?", text, flags=re.MULTILINE)
    assert headings and headings[0] == manifest_version(), headings  # newest first


def test_the_readme_names_no_other_version():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"This release is \*\*(.+?)\*\*", text) == [manifest_version()]
    named = set(re.findall(r"triverse-(\d+\.\d+\.\d+)", text))
    assert named <= {manifest_version()}, named


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"blender_manifest.toml": 'id = "triverse"\nversion = "1.2.3"\n'}, "1.2.3"),  # staged or installed
        ({"../blender_manifest.toml": 'version = "4.5.6"\n'}, "4.5.6"),  # the checkout: one level up
        ({"blender_manifest.toml": "version = [not toml", "../blender_manifest.toml": 'version = "7.8.9"'}, "7.8.9"),
        ({"blender_manifest.toml": 'id = "x"\n'}, version.FALLBACK),  # no version: the safe fallback
        ({}, version.FALLBACK),  # no manifest at all (a copied package): still runs
    ],
)
def test_read_version_beside_then_above_the_package_else_the_fallback(tmp_path, files, expected):
    package = tmp_path / "top" / "triverse"
    package.mkdir(parents=True)
    for name, text in files.items():
        (package / name).write_text(text)
    assert version.read_version((package / "blender_manifest.toml", package.parent / "blender_manifest.toml")) == (
        expected
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ((ROOT / "blender_manifest.toml").read_text() + '\n[extra]\nversion = "9.9.9"\n', None),  # the manifest's
        ('id = "triverse"\n\n[build]\nversion = "9.9.9"\n', version.FALLBACK),  # a table's key is not it
    ],
)
def test_python_without_tomllib_reads_only_the_top_level_version(tmp_path, text, expected):
    # Blender 3.x's own builds run Python 3.10, which has no tomllib: the line-based reading must agree.
    manifest = tmp_path / "blender_manifest.toml"
    manifest.write_text(text)
    code = (
        "import sys; sys.modules['tomllib'] = None;"
        "import importlib.util as u; s = u.spec_from_file_location('v', sys.argv[1]); m = u.module_from_spec(s);"
        "s.loader.exec_module(m); from pathlib import Path; print(m.read_version((Path(sys.argv[2]),)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "triverse_addon" / "service" / "version.py"), str(manifest)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert run.stdout.strip() == (expected or manifest_version())


def test_build_stamps_a_given_version_into_a_staged_copy_only(tmp_path):
    import build

    source = build.stage(tmp_path, link=True)  # symlinks to the sources: stamping must not write through
    build.stamp_version(source, "3.4.5")
    assert 'version = "3.4.5"' in (source / "blender_manifest.toml").read_text()
    assert literal_bl_info(source / "__init__.py")["version"] == (3, 4, 5)
    assert manifest_version() != "3.4.5"
    assert literal_bl_info(ROOT / "triverse_addon" / "__init__.py")["version"] != (3, 4, 5)


def test_the_legacy_zip_is_one_package_folder_with_bl_info_and_no_wheels(tmp_path):
    import build

    path = build.build_legacy(tmp_path, "2.3.4")
    assert path.name == "triverse-2.3.4-legacy.zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        init = zf.read("triverse/__init__.py").decode()
        manifest = zf.read("triverse/blender_manifest.toml").decode()
    assert {name.split("/")[0] for name in names} == {"triverse"}
    assert {"triverse/__init__.py", "triverse/blender/__init__.py", "triverse/service/version.py"} <= set(names)
    assert not [n for n in names if n.endswith(".whl") or "__pycache__" in n]
    (tmp_path / "__init__.py").write_text(init)
    assert literal_bl_info(tmp_path / "__init__.py")["version"] == (2, 3, 4)
    assert 'version = "2.3.4"' in manifest
