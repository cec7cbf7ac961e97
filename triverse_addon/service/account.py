"""The key's account: who it belongs to and what it can spend (`GET /users/me`). No `bpy` module use."""

from __future__ import annotations

from dataclasses import dataclass

from .api import TriverseClient
from .http_errors import Asked
from .numbers import number

__all__ = ["Account", "account"]


@dataclass(frozen=True)
class Account:
    """`GET /users/me`: who the key belongs to and what it can spend."""

    email: str
    plan_name: str
    balance: float  # available API credits (total minus those frozen by running tasks)


def account(client: TriverseClient) -> Account:
    """The key's account: email, plan and available credits (`GET /users/me`)."""
    data = client.get_json("/users/me", Asked(action="account request"))
    balance = number(data, "api_credits_balance", "balance")
    return Account(str(data.get("email") or ""), str(data.get("plan_name") or ""), balance or 0.0)
