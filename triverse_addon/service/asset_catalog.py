"""The Triverse asset library's folder on disk: its catalogs (`blender_assets.cats.txt`), the catalog and tags of a
model, the names of its asset files, and clearing. No `bpy`: the Blender side writes the .blend files themselves.

Layout: `<folder>/<task_uuid>.blend` per model (only complete files carry that name: they are written under
`<folder>/.incoming/` first, then renamed), and `<folder>/blender_assets.cats.txt`, whose lines the user (or
Blender) added are kept as they are.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CATALOGS",
    "CATALOG_FILE",
    "Catalog",
    "asset_file",
    "asset_files",
    "catalog_for_flow",
    "catalog_uuid",
    "clear",
    "ensure_catalogs",
    "incoming",
    "read_catalogs",
    "remove_stale_partials",
    "tags_for",
]

CATALOG_FILE = "blender_assets.cats.txt"
INCOMING = ".incoming"  # files being written: never a name the Asset Browser lists
_NAMESPACE = "5b7c1d0e-2f4a-4c8e-9a61-7d3e0b9f2a14"  # the add-on's: catalog UUIDs are stable
_STALE_PARTIAL_SECONDS = 3600

# Catalog paths of the kinds of models, in the order they are listed.
GENERATED_TEXT = "Triverse/Generated/Text"
GENERATED_IMAGE = "Triverse/Generated/Image"
IMPORTED = "Triverse/Imported"
TEXTURED = "Triverse/Textured"
REMESHED = "Triverse/Remeshed"
CATALOGS = (GENERATED_TEXT, GENERATED_IMAGE, IMPORTED, TEXTURED, REMESHED)

_FLOW_CATALOGS = {
    "text-to-model": GENERATED_TEXT,
    "text-to-mesh": GENERATED_TEXT,
    "image-to-model": GENERATED_IMAGE,
    "image-to-mesh": GENERATED_IMAGE,
    "multiview-to-model": GENERATED_IMAGE,
    "text-to-texture": TEXTURED,
    "texture-model": TEXTURED,
    "model-remesh": REMESHED,
}
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "without",
        "very",
        "some",
        "this",
        "that",
        "is",
        "are",
        "be",
    ]
)
_MAX_PROMPT_TAGS = 8


@dataclass(frozen=True)
class Catalog:
    """One line of a catalog file."""

    uuid: str
    path: str
    simple_name: str

    def line(self) -> str:
        """The line as Blender writes it."""
        return f"{self.uuid}:{self.path}:{self.simple_name}"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical(task_uuid: str) -> str:
    """A task UUID in canonical form (it names a file); ValueError for anything else (a path, `..`)."""
    text = str(task_uuid).strip().lower()
    if not _UUID.fullmatch(text):
        raise ValueError(f"not a task UUID: {task_uuid!r}")
    return text


def catalog_uuid(path: str) -> str:
    """The catalog's UUID: the same for the same path on every machine and in every session."""
    import uuid  # with the first catalog (a main-thread write), not at Blender's start: it loads a C extension

    return str(uuid.uuid5(uuid.UUID(_NAMESPACE), path))


def catalog_for_flow(flow: str) -> str:
    """The catalog path of a model made by the service's `flow` ("" for a plain import)."""
    flow = flow.strip().lower()
    if flow in _FLOW_CATALOGS:
        return _FLOW_CATALOGS[flow]
    if "remesh" in flow:
        return REMESHED
    if "texture" in flow:
        return TEXTURED
    if flow.startswith(("image", "multiview")):
        return GENERATED_IMAGE
    if flow.startswith("text"):
        return GENERATED_TEXT
    return IMPORTED


def tags_for(flow: str, prompt: str, fmt: str) -> list[str]:
    """The asset's tags: "Triverse", the flow, up to eight words of the prompt (no stop words), the format."""
    tags = ["Triverse"]
    if flow.strip():
        tags.append(flow.strip().lower())
    for word in re.findall(r"[^\W_]+(?:['-][^\W_]+)*", prompt.lower()):
        if len(tags) >= 2 + _MAX_PROMPT_TAGS:
            break
        if len(word) > 1 and word not in _STOP_WORDS and word not in tags:
            tags.append(word[:63])
    if fmt.strip():
        tags.append(fmt.strip().lower())
    return list(dict.fromkeys(tags))


def _simple_name(path: str) -> str:
    return path.replace("/", "-")


def read_catalogs(folder: Path) -> tuple[list[str], dict[str, Catalog]]:
    """(every line of the folder's catalog file, its catalogs by path); nothing when there is no file."""
    try:
        lines = (folder / CATALOG_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], {}
    catalogs: dict[str, Catalog] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith(("#", "VERSION")):
            continue
        parts = line.split(":", 2)
        if len(parts) >= 2 and parts[1]:
            catalogs.setdefault(parts[1], Catalog(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return lines, catalogs


def ensure_catalogs(folder: Path, paths: tuple[str, ...] = CATALOGS) -> dict[str, str]:
    """Make sure the catalog file lists `paths` (and their parents); keep every other line. Returns path -> UUID.

    A catalog already listed keeps its UUID (the user may have made it in Blender). The file is rewritten only
    when something is missing, through a temporary file renamed over it.
    """
    lines, catalogs = read_catalogs(folder)
    wanted: list[str] = []
    for path in paths:
        parts = path.split("/")
        wanted.extend("/".join(parts[: i + 1]) for i in range(len(parts)))
    missing = [p for p in dict.fromkeys(wanted) if p not in catalogs]
    if missing:
        if not lines:
            lines = [
                "# This is an Asset Catalog Definition file for Blender.",
                "# Written by the Triverse add-on; lines added by hand or by Blender are kept.",
                "",
                "VERSION 1",
                "",
            ]
        elif not any(line.startswith("VERSION") for line in lines):
            lines.insert(0, "VERSION 1")
        for path in missing:
            catalog = Catalog(catalog_uuid(path), path, _simple_name(path))
            catalogs[path] = catalog
            lines.append(catalog.line())
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / CATALOG_FILE, ("\n".join(lines) + "\n").encode("utf-8"))
    return {path: catalogs[path].uuid for path in paths}


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def asset_file(folder: Path, task_uuid: str) -> Path:
    """The complete asset .blend of a task."""
    return folder / f"{_canonical(task_uuid)}.blend"


def incoming(folder: Path) -> Path:
    """The folder of files being written (created)."""
    path = folder / INCOMING
    path.mkdir(parents=True, exist_ok=True)
    return path


def asset_files(folder: Path) -> list[Path]:
    """The complete asset .blend files in the folder (named after a task UUID)."""
    found = []
    for path in folder.glob("*.blend") if folder.is_dir() else ():
        try:
            _canonical(path.stem)
        except ValueError:
            continue
        found.append(path)
    return sorted(found)


def remove_stale_partials(folder: Path, max_age: float = _STALE_PARTIAL_SECONDS) -> int:
    """Remove files left half-written (a crash, Blender closed meanwhile) older than `max_age` seconds."""
    removed = 0
    now = time.time()
    candidates = list((folder / INCOMING).glob("*")) if (folder / INCOMING).is_dir() else []
    candidates += list(folder.glob("*.tmp")) + list(folder.glob("*.blend@")) if folder.is_dir() else []
    for path in candidates:
        try:
            if now - path.stat().st_mtime >= max_age and path.is_file():
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def clear(folder: Path) -> int:
    """Remove every asset .blend and file being written; keep the catalog file (the user may have added to it).

    Returns how many assets were removed.
    """
    count = 0
    for path in asset_files(folder):
        try:
            path.unlink()
            count += 1
        except FileNotFoundError:
            continue
        Path(f"{path}1").unlink(missing_ok=True)  # Blender's backup of a file it saved over
    shutil.rmtree(folder / INCOMING, ignore_errors=True)
    return count
