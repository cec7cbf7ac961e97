"""The Triverse account of the key in effect (balance, plan, email), shown in the preferences, fetched off the
main thread and kept; Refresh asks again for it and for every other look-up (the price's balance too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from ..service.lookups import Latest
from .common import addon, lookups
from .common.reporting import quiet_reason

if TYPE_CHECKING:
    from ..service.account import Account

ACCOUNT: Latest[Account] = Latest(debounce=0.0)


def ask_account(context: bpy.types.Context, force: bool = False) -> None:
    """Ask for the account unless known, on its way, or not allowed (no key, offline)."""
    settings, why_not = addon.why_no_request(context)
    key = (settings.base_url, settings.api_key)
    if why_not or not (force or ACCOUNT.wants(key)):
        return
    full = addon.get_settings(context)  # all of them (proxy, CA, timeouts), only when asking

    def call() -> Account:  # a worker thread: never bpy (the settings are read already)
        from ..service.account import account
        from ..service.api import TriverseClient

        with TriverseClient(full, online_access=True) as client:  # online access was checked above
            return account(client)

    ACCOUNT.want(key, call, force=True)
    lookups.ensure_timer()


def credits_text(value: float) -> str:
    """1,234 or 12.5."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def draw_account(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The account box: balance, plan and email, or a quiet line why not."""
    box = layout.box()
    row = box.row()
    row.label(text="Account", icon="USER")
    row.operator(TRIVERSE_OT_account_refresh.bl_idname, text="Refresh", icon="FILE_REFRESH")
    settings, why_not = addon.why_no_request(context)
    if why_not:
        box.label(text=f"Not shown: {why_not}", icon="INFO")
        return
    if not ACCOUNT.current((settings.base_url, settings.api_key)):
        if not ACCOUNT.busy:
            lookups.after_draw(ask_account)  # the first draw has it fetched (from a timer); it never waits
        box.label(text="Fetching the account...", icon="SORTTIME")
        return
    if ACCOUNT.error is not None:
        box.label(text=quiet_reason(ACCOUNT.error), icon="INFO")
        return
    account = ACCOUNT.value
    assert account is not None
    col = box.column(align=True)
    col.label(text=f"Balance: {credits_text(account.balance)} credits")
    col.label(text=f"Plan: {account.plan_name or 'unknown'}")
    if account.email:
        col.label(text=account.email)


class TRIVERSE_OT_account_refresh(bpy.types.Operator):
    """Fetch your Triverse account's balance and plan again"""

    bl_idname = "triverse.account_refresh"
    bl_label = "Refresh Account"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Ask every look-up again (off the main thread): the account, and the price with its balance."""
        lookups.refresh_all(context)
        return {"FINISHED"}


_register_classes, _unregister_classes = addon.classes_registration((TRIVERSE_OT_account_refresh,))


def register() -> None:
    """The Refresh button, the look-up, the preferences' section."""
    _register_classes()
    lookups.watch(ACCOUNT, ask_account, "credits")
    addon.PREFERENCE_SECTIONS["end"].append(draw_account)


def unregister() -> None:
    """Remove what register() added."""
    addon.PREFERENCE_SECTIONS["end"].remove(draw_account)
    lookups.unwatch(ACCOUNT)
    _unregister_classes()
