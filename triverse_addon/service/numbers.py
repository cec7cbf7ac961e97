"""Numbers from JSON answers that may spell them as numbers or strings, under one of several names."""

from __future__ import annotations

from typing import Any

__all__ = ["number"]


def number(data: dict[str, Any], *names: str) -> float | None:
    """The first of `names` in `data` that holds a number (or a numeric string), as a float; else None."""
    for name in names:
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None
