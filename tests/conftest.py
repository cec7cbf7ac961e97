"""Shared test set-up: make the project's package and scripts importable."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts", ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

SHARED = ROOT.parent / "shared"
SHARED_ASSETS = SHARED / "assets"


from support import missing_tool

__all__ = ["missing_tool"]
