"""Task UUIDs as users paste them: a bare UUID in any spelling, or the one UUID in a task page's address.
No `bpy` module use."""

from __future__ import annotations

import re
import uuid as uuidlib

from . import errors

__all__ = ["parse_task_uuid"]

# A hyphenated UUID standing alone (not inside a longer word), as in a task page's address.
_UUID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z-])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z-])")


def parse_task_uuid(text: str) -> str:
    """The canonical form of a pasted task UUID, or of the one UUID in a pasted task URL.

    Spaces, newlines, capitals, braces and urn: are accepted around a bare UUID; in longer text (a task
    page's address, a line of a log) exactly one UUID must appear, so a wrong task is never picked.
    """
    cleaned = "".join(str(text).split()).strip("{}").lower()
    if cleaned.startswith("urn:uuid:"):
        cleaned = cleaned[len("urn:uuid:") :]
    try:
        return str(uuidlib.UUID(cleaned))
    except ValueError:
        pass
    shown = " ".join(str(text).split())[:60]
    found = list(dict.fromkeys(str(uuidlib.UUID(m)) for m in _UUID_IN_TEXT.findall(str(text))))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise errors.InvalidTaskId(
            f'"{shown}" holds {len(found)} different task UUIDs ({found[0][:8]}... and {found[1][:8]}...): '
            "paste only the one to import."
        )
    what = f'"{shown}" is not' if shown else "No task UUID was given; it should be"
    raise errors.InvalidTaskId(
        f"{what} a Triverse task UUID (like 92483a80-236c-4889-9a95-4c90bb64dfd8): copy it from the task page."
    )
