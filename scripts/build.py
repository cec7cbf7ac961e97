"""Build `dist/triverse-<version>.zip` with Blender's own extension tool, and validate it.

    python3 scripts/build.py            # uses .venv/bpy50 (made on first use) for Blender's tool

The manifest stays at the top level of the repository (one source of truth); Blender wants it beside
`__init__.py`, so the package is staged first: copied for the build, symlinked for tests (live source).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
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


def build(out_dir: Path, python: str) -> Path:
    """Stage, build with Blender's tool, validate the zip; return its path."""
    tool, tags = blender_ext_tool(python)
    staging = ROOT / "build" / "stage"
    source = stage(staging, link=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = manifest()
    zip_path = out_dir / f"{info['id']}-{info['version']}.zip"
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
    return zip_path


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--python", help="a Python with the bpy module (default: .venv/bpy50, made on first use)")
    args = parser.parse_args()
    python = args.python or str(_bootstrap.venv_python("bpy50"))
    print(build(args.output_dir, python))


if __name__ == "__main__":
    main()
