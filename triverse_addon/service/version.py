"""The add-on's version, read from `blender_manifest.toml`, the one place it is written. Never imports bpy."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["FALLBACK", "USER_AGENT", "VERSION", "manifest_paths", "read_version"]

FALLBACK = "0.0.0"  # a version no release has: the add-on still runs when the manifest is unreadable

_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"\s*(?:#.*)?$', re.MULTILINE)


def manifest_paths() -> tuple[Path, ...]:
    """Where the manifest is: beside the add-on's package when staged or installed, else at the checkout's top."""
    package = Path(__file__).parent.parent  # this module is in the add-on's `service` subpackage
    return (package / "blender_manifest.toml", package.parent / "blender_manifest.toml")


def _parse(text: str) -> str | None:
    try:
        import tomllib
    except ImportError:  # Python 3.10 (the Blender 3.x builds): the manifest's top-level key by line
        found = _VERSION_LINE.search(text.split("\n[", 1)[0])
        return found.group(1) if found else None
    try:
        value = tomllib.loads(text).get("version")
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) and value else None


def read_version(paths: tuple[Path, ...] | None = None) -> str:
    """The `version` of the first readable manifest among `paths`, else FALLBACK."""
    for path in manifest_paths() if paths is None else paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        found = _parse(text)
        if found:
            return found
    return FALLBACK


VERSION = read_version()
USER_AGENT = f"triverse-blender/{VERSION}"
