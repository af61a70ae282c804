"""Rendering a follow-up: the rule's ``subject`` and ``template`` (Jinja2) with the order's
fields, in Jinja2's immutable sandbox.

The sandbox refuses what a template could use to reach Python itself (``__class__``,
``mro``, a list's ``append``...): a ``SecurityError``. An unknown name is an error too
(``StrictUndefined``), so that a misspelt field stops the message instead of sending it with
a blank. A syntax error is found when the config is loaded (``config.template_problem``);
everything else here, with the template's line, as a ``RenderError``.

The fields: ``rule``, ``channel``, ``order_id``, ``buyer`` (the display name, "" when the
channel gives none), ``total`` (the channel's decimal string), ``currency``, ``placed_at``,
``shipped_at``, ``delivered_at`` (timezone-aware UTC datetimes, or None, which prints as
nothing), ``items`` (``sku``, ``title``, ``quantity`` each) and ``tier`` (the loyalty tier
the buyer reached with this order, "" for none).
"""

from __future__ import annotations

from functools import cache, lru_cache
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy.engine import Connection

from channelsync.config import FollowupConfig
from channelsync.ledger.schema import line_t, sku_t

FIELDS = ("rule", "channel", "order_id", "buyer", "total", "currency", "placed_at",
          "shipped_at", "delivered_at", "items", "tier")
MAX_LENGTH = 100_000  # characters of a rendered message


class RenderError(Exception):
    """A template that failed on an order: the message says where (``template, line 3``)."""


@cache
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False,
        finalize=lambda value: "" if value is None else value)


def context(conn: Connection, rule: str, order: dict[str, Any]) -> dict[str, Any]:
    """The fields a template sees, from the order book's row and the ledger's lines."""
    return {"rule": rule, "channel": order["channel"], "order_id": order["order_id"],
            "buyer": order["buyer"], "total": order["total"], "currency": order["currency"],
            "placed_at": order["placed_at"], "shipped_at": order["shipped_at"],
            "delivered_at": order["delivered_at"], "tier": order["tier"],
            "items": items(conn, order["channel"], order["order_id"])}


def items(conn: Connection, channel: str, order_id: str) -> list[dict[str, Any]]:
    """The order's lines: SKU (the ledger's, else the channel's), title, units not cancelled."""
    rows = conn.execute(
        sa.select(line_t.c.sku, line_t.c.channel_sku, line_t.c.ordered, line_t.c.cancelled,
                  sku_t.c.title)
        .select_from(line_t.outerjoin(sku_t, sku_t.c.sku == line_t.c.sku))
        .where(line_t.c.channel == channel, line_t.c.order_id == order_id,
               line_t.c.state != "ignored")
        .order_by(line_t.c.id))
    return [{"sku": sku or channel_sku, "title": title or "", "quantity": ordered - cancelled}
            for sku, channel_sku, ordered, cancelled, title in rows if ordered > cancelled]


def render(rule: FollowupConfig, fields: dict[str, Any]) -> tuple[str, str]:
    """The subject and the body; a ``RenderError`` saying where it failed."""
    return (_render(rule.subject, fields, "subject").strip(),
            _render(rule.template, fields, "template"))


@lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    return environment().from_string(source)


def _render(source: str, fields: dict[str, Any], key: str) -> str:
    try:
        text = _compiled(source).render(fields)
    except Exception as exc:  # the sandbox's SecurityError, UndefinedError, a filter's error
        line = _template_line(exc.__traceback__)
        where = f"{key}, line {line}" if line else key
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if len(text) > MAX_LENGTH:
        raise RenderError(f"{key}: {len(text)} characters rendered (at most {MAX_LENGTH})")
    return text


def _template_line(tb: TracebackType | None) -> int | None:
    """Jinja2 rewrites a failing render's traceback to name the template's lines."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
