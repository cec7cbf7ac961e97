"""Build the extension zip with Blender's own tool, the Blender 3.x legacy zip, and publish a repository.

    python3 scripts/build.py                       # dist/triverse-<version>.zip and dist/triverse-<version>-legacy.zip
    python3 scripts/build.py --repository DIR      # also publish the extension into DIR (zip + index.json + index.html)
    python3 scripts/build.py --version 0.2.1 ...   # build a given version (tests: "a newer version"); the
                                                   # repository's manifest is never changed, only the staged copy

Blender's tool comes from .venv/bpy50 (made on first use). The manifest stays at the top level of the
repository and holds the version (the one place it is written); Blender wants it beside `__init__.py`,
so the package is staged first: copied for the build, symlinked for tests (live source). A published
folder keeps one version per id (Blender does not upgrade from an index listing an id twice); any
static web server can serve it, e.g. `python3 -m http.server -d DIR`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap

ROOT = _bootstrap.ROOT
PACKAGE = ROOT / "triverse_addon"
MANIFEST = ROOT / "blender_manifest.toml"
WHEEL_CACHE = ROOT / "build" / "wheels"


def manifest() -> dict:
    """The parsed manifest."""
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)


def fetch_wheels() -> list[Path]:
    """The wheels the manifest lists, fetched from PyPI into build/wheels on first use (pinned by name)."""
    found = []
    for entry in manifest().get("wheels", []):
        name = Path(entry).name
        path = WHEEL_CACHE / name
        if not path.is_file():
            dist, version = name.split("-")[:2]
            print(f"[setup] fetching {name} for the extension: first run only", flush=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--only-binary=:all:", "--dest", str(WHEEL_CACHE), f"{dist.replace('_', '-')}=={version}"],
                check=True,
            )  # fmt: skip
        if not path.is_file():
            sys.exit(f"pip did not fetch {name}: check the manifest's wheels list")
        found.append(path)
    return found


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def stage(dest_parent: Path, link: bool) -> Path:
    """Lay out `<dest_parent>/<id>/` as Blender loads an extension: package files plus the manifest."""
    target = dest_parent / manifest()["id"]
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    wheels = fetch_wheels()
    for src in [*_package_files(), MANIFEST, *wheels]:
        if src in wheels:
            dst = target / "wheels" / src.name
        else:
            dst = target / (src.relative_to(PACKAGE) if src != MANIFEST else MANIFEST.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if link:
            os.symlink(src, dst)
        else:
            shutil.copy2(src, dst)
    return target


def _version_edits(version: str) -> tuple[tuple[str, str, str], ...]:
    """(file name, pattern, replacement) for each place a tool needs the version written out."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        sys.exit(f"the version must be MAJOR.MINOR.PATCH, not {version!r}")
    return (
        ("blender_manifest.toml", r'^version = "[^"]*"', f'version = "{version}"'),
        ("__init__.py", r'"version": \(\d+, \d+, \d+\)', f'"version": ({version.replace(".", ", ")})'),
        ("pyproject.toml", r'^version = "[^"]*"', f'version = "{version}"'),
    )


def _stamp(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text(encoding="utf-8")
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        sys.exit(f"could not stamp the version into {path}")
    if path.is_symlink():
        path.unlink()  # a staged file may be a symlink to the sources: never write through it
    path.write_text(new, encoding="utf-8")


def stamp_version(staged: Path, version: str) -> None:
    """Give a staged copy another version: its manifest's `version` and its `bl_info` (never the sources)."""
    for name, pattern, replacement in _version_edits(version)[:2]:
        _stamp(staged / name, pattern, replacement)


def set_version(version: str) -> None:
    """A new release: the manifest's version, and the copies Blender 3.x (bl_info) and pyproject.toml need."""
    places = {
        "blender_manifest.toml": MANIFEST,
        "__init__.py": PACKAGE / "__init__.py",
        "pyproject.toml": ROOT / "pyproject.toml",
    }
    for name, pattern, replacement in _version_edits(version):
        _stamp(places[name], pattern, replacement)


def bl_info_version(init_py: Path) -> tuple[int, ...]:
    """The `bl_info` version as Blender 3.x reads it: a literal, without importing the module."""
    for node in ast.parse(init_py.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in node.targets):
            return tuple(ast.literal_eval(node.value)["version"])
    sys.exit(f"{init_py} has no literal bl_info")


def blender_ext_tool(python: str) -> tuple[Path, Path]:
    """Paths of Blender's `blender_ext.py` and its list of valid tags, from the bpy wheel of `python`."""
    code = (
        "import bpy,os;s=bpy.utils.system_resource('SCRIPTS');"
        "print(os.path.join(s,'addons_core','bl_pkg','cli','blender_ext.py'));"
        "print(os.path.join(s,'modules','_bpy_internal','extensions','tags.py'))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    lines = [line for line in out if line.endswith(".py")]
    return Path(lines[-2]), Path(lines[-1])


@contextlib.contextmanager
def _staging_dir() -> Iterator[Path]:
    """A fresh folder under build/ for one build: builds running side by side (test tiers) never share one."""
    (ROOT / "build").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="stage-", dir=ROOT / "build"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def build(out_dir: Path, python: str, version: str | None = None) -> Path:
    """Stage, build with Blender's tool, validate the zip; return its path."""
    with _staging_dir() as staging:
        return _build(staging, out_dir, python, version)


def _build(staging: Path, out_dir: Path, python: str, version: str | None) -> Path:
    tool, tags = blender_ext_tool(python)
    source = stage(staging, link=False)
    info = manifest()
    version = version or info["version"]
    stamp_version(source, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{info['id']}-{version}.zip"
    zip_path.unlink(missing_ok=True)
    run = [python, str(tool)]
    subprocess.run([*run, "validate", str(source)], check=True)
    subprocess.run(
        [*run, "build", "--source-dir", str(source), "--output-filepath", str(zip_path), "--valid-tags", str(tags)],
        check=True,
    )
    subprocess.run([*run, "validate", str(zip_path)], check=True)
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    if "blender_manifest.toml" not in names or "__init__.py" not in names:
        sys.exit(f"{zip_path} lacks the manifest or __init__.py beside it: {names}")
    missing = [entry for entry in info.get("wheels", []) if os.path.normpath(entry) not in names]
    if missing:
        sys.exit(f"{zip_path} lacks the wheels its manifest lists: {missing}")
    return zip_path


def build_legacy(out_dir: Path, version: str | None = None) -> Path:
    """`<id>-<version>-legacy.zip` for Blender 3.x: one package folder with `bl_info`, no wheels."""
    with _staging_dir() as staged:
        return _build_legacy(staged, out_dir, version)


def _build_legacy(staged: Path, out_dir: Path, version: str | None) -> Path:
    info = manifest()
    version = version or info["version"]
    package = staged / info["id"]
    package.mkdir(parents=True)
    # Blender 3.x cannot install wheels: the add-on works without websocket-client there (it polls).
    # The manifest goes in too: version.py reads the version from it (Blender 3.x itself ignores it).
    for src in [*_package_files(), MANIFEST]:
        dst = package / (src.relative_to(PACKAGE) if src != MANIFEST else MANIFEST.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    stamp_version(package, version)
    expected = tuple(int(part) for part in version.split("."))
    if bl_info_version(package / "__init__.py") != expected:
        sys.exit(f"bl_info's version in the legacy package is not {version}")
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{info['id']}-{version}-legacy.zip"
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in package.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(staged).as_posix())
    return zip_path


def _zip_id(path: Path) -> str | None:
    """The extension id in a zip's manifest (None when it is not an extension zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return str(tomllib.loads(zf.read("blender_manifest.toml").decode("utf-8")).get("id"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError, OSError):
        return None


def publish(repo_dir: Path, python: str, version: str | None = None) -> Path:
    """Put this version into the static repository `repo_dir` (older versions of the id removed), regenerate
    its index.json and index.html with Blender's own tool; return the zip's path."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    pkg_id = manifest()["id"]
    with _staging_dir() as out:
        built = build(out, python, version)  # built and validated before anything published is touched
        # Blender does not upgrade from an index that lists an id twice: one version per id.
        for old in repo_dir.glob("*.zip"):
            if _zip_id(old) == pkg_id:
                old.unlink()
        zip_path = Path(shutil.move(built, repo_dir / built.name))
    tool, _tags = blender_ext_tool(python)
    subprocess.run([python, str(tool), "server-generate", "--repo-dir", str(repo_dir), "--html"], check=True)
    index = json.loads((repo_dir / "index.json").read_text(encoding="utf-8"))
    listed = [entry.get("version") for entry in index.get("data", []) if entry.get("id") == pkg_id]
    if listed != [version or manifest()["version"]]:
        sys.exit(f"{repo_dir / 'index.json'} lists {pkg_id} as {listed}: expected one version")
    return zip_path


def check_versions() -> None:
    """The manifest holds the version; pyproject.toml and the literal bl_info must say the same."""
    version = manifest()["version"]
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]["version"]
    literal = ".".join(str(part) for part in bl_info_version(PACKAGE / "__init__.py"))
    if project != version or literal != version:
        sys.exit(
            f"version mismatch: blender_manifest.toml says {version}, pyproject.toml {project}, "
            f"bl_info in triverse_addon/__init__.py {literal}: run scripts/build.py --set-version {version}"
        )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--python", help="a Python with the bpy module (default: .venv/bpy50, made on first use)")
    parser.add_argument("--repository", type=Path, metavar="DIR", help="publish the extension into this folder")
    parser.add_argument("--version", help="build this version (a staged copy is stamped; the manifest is not)")
    parser.add_argument(
        "--set-version",
        metavar="X.Y.Z",
        help="start a release: write X.Y.Z into the manifest (and its copies), then stop",
    )
    args = parser.parse_args()
    if args.set_version:
        set_version(args.set_version)
        print(
            f"version {args.set_version}: blender_manifest.toml, bl_info and pyproject.toml; now add it to CHANGELOG.md"
        )
        return
    if args.version is None:
        check_versions()
    python = args.python or str(_bootstrap.venv_python("bpy50"))
    if args.repository:
        print(publish(args.repository, python, args.version))
    else:
        print(build(args.output_dir, python, args.version))
    print(build_legacy(args.output_dir, args.version))


if __name__ == "__main__":
    main()
