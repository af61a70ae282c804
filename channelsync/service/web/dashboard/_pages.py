"""The pages (GET): overview, stock, a SKU, conflicts, orders, an order.

Each reads what it shows in one connection on a worker thread, with the same functions
the commands use (``reports.status``, ``reports.explain``, ``orders.queries``) and the
dashboard's own queries for what no command shows; the templates only lay it out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from channelsync.customers import queries as customers
from channelsync.orders import book, queries
from channelsync.service import reports
from channelsync.service.app import App
from channelsync.service.web import in_thread
from channelsync.service.web.dashboard import _chart, _queries
from channelsync.service.web.dashboard._app import Dashboard
from channelsync.service.web.dashboard._auth import Visitor

REFRESH_SECONDS = 10  # the overview's live part
CHART_DAYS = (1, 7, 30, 90)
DEFAULT_CHART_DAYS = 30
ORDER_LIMITS = (50, 100, 200, 500)


def routes(dash: Dashboard) -> list[BaseRoute]:
    page = dash.endpoint
    return [
        Route("/", page(overview), methods=["GET"]),
        Route("/stock", page(stock), methods=["GET"]),
        Route("/stock/{sku:path}", page(sku_page), methods=["GET"]),
        Route("/conflicts", page(conflicts), methods=["GET"]),
        Route("/orders", page(orders), methods=["GET"]),
        Route("/orders/{channel}/{order_id:path}", page(order_page), methods=["GET"]),
    ]


async def overview(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    data = await in_thread(_overview, dash.app)
    live = request.query_params.get("fragment") == "live"
    return dash.render(request, "_overview_live.html" if live else "overview.html", visitor,
                       refresh=REFRESH_SECONDS, **data)


def _overview(app: App) -> dict[str, Any]:
    now = app.now()
    with app.db.connect() as conn:
        status = reports.status(conn, app.config, now)
        budgets = _queries.revision_budgets(conn, app.config, now)
    return {"status": status, "budgets": budgets}


async def stock(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    params = request.query_params
    query = _queries.StockQuery(
        search=params.get("q", "").strip()[:200],
        sort=params.get("sort", "sku") if params.get("sort") in _queries.SORTS else "sku",
        descending=params.get("dir") == "desc",
        page=_number(params.get("page"), 1),
        per_page=min(_number(params.get("per"), _queries.PER_PAGE), _queries.MAX_PER_PAGE))
    found = await in_thread(_stock, dash.app, query)
    return dash.render(request, "stock.html", visitor, stock=found, sorts=list(_queries.SORTS),
                       kits=[k.sku for k in dash.app.config.kits])


def _stock(app: App, query: _queries.StockQuery) -> _queries.StockPage:
    with app.db.connect() as conn:
        return _queries.stock_page(conn, app.config, query)


async def sku_page(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    sku = request.path_params["sku"]
    days = _number(request.query_params.get("days"), DEFAULT_CHART_DAYS)
    days = days if days in CHART_DAYS else DEFAULT_CHART_DAYS
    data = await in_thread(_sku, dash.app, sku, days)
    if data is None:
        raise HTTPException(404, f"no SKU or kit {sku!r} in the ledger")
    return dash.render(request, "sku.html", visitor, sku=sku, days=days,
                       chart_days=CHART_DAYS, **data)


def _sku(app: App, sku: str, days: int) -> dict[str, Any] | None:
    now = app.now()
    start = now - timedelta(days=days)
    with app.db.connect() as conn:
        explained = reports.explain(conn, app.config, sku)
        if explained is None:
            return None
        history = _queries.sku_history(conn, sku, start)
        outbox = _queries.sku_outbox(conn, sku)
    chart = None
    if history is not None:
        if history.truncated:  # the levels are known only from the oldest movement read
            start = history.movements[0]["created_at"]
        levels = _chart.levels(history.on_hand, history.reserved, history.safety_stock,
                               history.movements, start)
        if len(levels) > 1 and levels[0].on_hand == levels[0].reserved == 0:
            levels = levels[1:]  # a SKU younger than the period: drawn from its first count
        chart = _chart.chart(levels, now)
    pushes: dict[str, list[dict[str, Any]]] = {}
    for push in explained["recent_pushes"]:
        pushes.setdefault(push["channel"], []).append(push)
    return {"explain": explained, "chart": chart, "truncated": bool(
        history and history.truncated), "outbox": outbox, "pushes": pushes}


async def conflicts(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    data = await in_thread(_conflicts, dash.app)
    return dash.render(request, "conflicts.html", visitor, **data)


def _conflicts(app: App) -> dict[str, Any]:
    with app.db.connect() as conn:
        return {"open": reports.conflicts(conn, include_resolved=False),
                "resolved": _queries.resolved_conflicts(conn),
                "resolved_shown": _queries.RESOLVED_SHOWN}


async def orders(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    params = request.query_params
    names = [c.name for c in dash.app.config.channels]
    channel = params.get("channel") if params.get("channel") in names else None
    stage = params.get("stage", "")
    stages = tuple(book.OPEN_STAGES) if stage == "open" else (
        (stage,) if stage in book.STAGES else ())
    limit = _number(params.get("limit"), ORDER_LIMITS[1])
    limit = limit if limit in ORDER_LIMITS else ORDER_LIMITS[1]
    found, tiers = await in_thread(_orders, dash.app, channel, stages, limit)
    return dash.render(request, "orders.html", visitor, orders=found, tiers=tiers,
                       channels=names, channel=channel or "", stage=stage if stages else "",
                       stages=book.STAGES, limit=limit, limits=ORDER_LIMITS)


def _orders(app: App, channel: str | None, stages: tuple[str, ...],
            limit: int) -> tuple[list[queries.Order], dict[str, str]]:
    """The orders, and the loyalty tier each of their buyers reached."""
    with app.db.connect() as conn:
        found = queries.list_orders(conn, channel=channel, stages=stages, limit=limit)
        return found, customers.tiers_of(conn, [o.buyer_key for o in found])


async def order_page(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    channel, order_id = request.path_params["channel"], request.path_params["order_id"]
    found = await in_thread(_order, dash.app, channel, order_id)
    if found is None:
        raise HTTPException(404, f"no order {order_id!r} from {channel!r} in the book")
    return dash.render(request, "order.html", visitor, order=found)


def _order(app: App, channel: str, order_id: str) -> queries.Order | None:
    with app.db.connect() as conn:
        return queries.get_order(conn, channel, order_id)


def _number(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
