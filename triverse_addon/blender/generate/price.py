"""The price of the Generate panel's request and the balance, asked of the service off the main thread
(debounced while the user types) and shown above the Generate button."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import bpy

from ...service.lookups import Latest
from ..common import addon, lookups
from ..common.generation_input import request_from
from ..common.layout import lines
from ..common.reporting import quiet_reason

if TYPE_CHECKING:
    from ...service.generation_api import Quote
    from ...service.generation_request import GenerationRequest

QUOTE: Latest[Quote] = Latest(debounce=0.4)


def quote_key(context: bpy.types.Context) -> tuple[Hashable, GenerationRequest, str]:
    """(key, request, why not) of the price the panel shows now; cheap (drawn often)."""
    req = request_from(context.window_manager.triverse_generate, image_path="image-to-price")  # only its flow
    settings, why_not = addon.why_no_request(context)
    key = (req.flow_name, tuple(sorted(req.price_params().items())), settings.base_url, settings.api_key)
    return key, req, why_not


def ask_price(context: bpy.types.Context, force: bool = False) -> None:
    """Ask for the price of the panel's options (debounced), unless known, on its way, or not allowed."""
    if not hasattr(context.window_manager, "triverse_generate"):
        return  # the add-on is being disabled
    key, req, why_not = quote_key(context)
    if why_not or not (force or QUOTE.wants(key)):
        return
    settings = addon.get_settings(context)  # all of them (proxy, CA, timeouts), only when asking

    def call() -> Quote:  # a worker thread: never bpy (the settings are read already)
        from ...service.api import TriverseClient
        from ...service.generation_api import quote

        with TriverseClient(settings, online_access=True) as client:  # online access was checked above
            return quote(client, req)

    QUOTE.want(key, call, force=True)
    lookups.ensure_timer()


def credits_text(value: float) -> str:
    """1,234 or 12.5."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def draw_price(layout: bpy.types.UILayout, context: bpy.types.Context) -> str:
    """The cost and the balance (or a quiet line why not); returns why Generate is refused ("" if it is not)."""
    key, _req, why_not = quote_key(context)
    col = layout.column(align=True)
    if why_not:
        lines(col, f"Price unknown: {why_not}", "INFO")
        return ""
    if not QUOTE.current(key):
        if not QUOTE.busy:
            lookups.after_draw(ask_price)  # nothing asked yet (first draw, key or URL changed): from a timer
        col.label(text="Checking the price...", icon="SORTTIME")
        return ""
    if QUOTE.error is not None:
        row = col.row(align=True)
        lines(row, quiet_reason(QUOTE.error), "INFO")
        row.operator("triverse.refresh_price", text="", icon="FILE_REFRESH", emboss=False)
        return ""
    quote = QUOTE.value
    assert quote is not None
    row = col.row(align=True)
    row.label(text=f"Cost: {quote.cost_credits:,} credits")
    row.operator("triverse.refresh_price", text="", icon="FILE_REFRESH", emboss=False)
    col.label(text=f"Balance: {credits_text(quote.available_credits)} credits")
    if not quote.affordable:
        balance = credits_text(quote.available_credits)
        return f"Not enough credits: this costs {quote.cost_credits:,}, your balance is {balance}"
    return ""


class TRIVERSE_OT_refresh_price(bpy.types.Operator):
    """Ask Triverse for the price and your balance again"""

    bl_idname = "triverse.refresh_price"
    bl_label = "Refresh Price"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Schedule a new quote (off the main thread)."""
        ask_price(context, force=True)
        return {"FINISHED"}
