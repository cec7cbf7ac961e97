"""Shared test set-up: make the project's package and scripts importable."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

SHARED = ROOT.parent / "shared"
SHARED_ASSETS = SHARED / "assets"


def missing_tool(why: str) -> None:
    """A check that could not run for want of a tool or package: a failure, unless skips are allowed.

    `.ci/run` and `python3 scripts/test.py` fail a run in which a tier could not run; a developer may
    pass `--allow-skip` (TRIVERSE_ALLOW_SKIP=1) to skip such checks loudly on their own machine.
    `../shared` being absent is not a missing tool: those checks always skip with their own message.
    """
    import os

    import pytest

    if os.environ.get("TRIVERSE_ALLOW_SKIP") == "1":
        pytest.skip(f"SKIPPED, could not run: {why}")
    pytest.fail(f"could not run: {why} (pass --allow-skip to scripts/test.py to skip on purpose)", pytrace=False)
