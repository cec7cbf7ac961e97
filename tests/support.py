"""Helpers every test tier shares; importable as `support` (tests/conftest.py puts tests/ on the path)."""

from __future__ import annotations

import os

import pytest


def missing_tool(why: str) -> None:
    """A check that could not run for want of a tool or package: a failure, unless skips are allowed.

    `.ci/run` and `python3 scripts/test.py` fail a run in which a tier could not run; a developer may
    pass `--allow-skip` (TRIVERSE_ALLOW_SKIP=1) to skip such checks loudly on their own machine.
    `../shared` being absent is not a missing tool: those checks always skip with their own message.
    """
    if os.environ.get("TRIVERSE_ALLOW_SKIP") == "1":
        pytest.skip(f"SKIPPED, could not run: {why}")
    pytest.fail(f"could not run: {why} (pass --allow-skip to scripts/test.py to skip on purpose)", pytrace=False)
