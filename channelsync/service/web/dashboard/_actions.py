"""The forms (POST): log in and out, set and adjust stock, acknowledge a conflict.

Every POST passed ``Dashboard.endpoint`` first (a visitor, the session's CSRF token, the
admin role for stock and conflicts). A stock change is ``App.set_stock`` /
``App.adjust_stock``, what ``channelsync stock set/adjust`` call: a movement in the
ledger, then the waiting orders and the outbox catch up. The movement's source names the
dashboard user (``web:<name>``). Each action is logged; the answer is a redirect (303)
with a message.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from channelsync.errors import LedgerError
from channelsync.ledger import stock as ledger_stock
from channelsync.ledger.conflicts import acknowledge
from channelsync.service.app import App
from channelsync.service.web import in_thread
from channelsync.service.web.dashboard._app import Dashboard
from channelsync.service.web.dashboard._auth import Visitor
from channelsync.service.web.dashboard._sessions import csrf_token, user_key

log = logging.getLogger(__name__)

MAX_REASON = 200


def routes(dash: Dashboard) -> list[BaseRoute]:
    act = dash.endpoint
    return [
        Route("/login", act(login_page, login=False), methods=["GET"]),
        Route("/login", act(login, login=False), methods=["POST"]),
        Route("/logout", act(logout), methods=["POST"]),
        Route("/stock/set", act(stock_set, admin=True), methods=["POST"]),
        Route("/stock/adjust", act(stock_adjust, admin=True), methods=["POST"]),
        Route("/conflicts/{conflict_id:int}/ack", act(ack, admin=True), methods=["POST"]),
    ]


async def login_page(dash: Dashboard, request: Request, _: Visitor) -> Response:
    target = _safe_next(request.query_params.get("next"))
    if not dash.web.users or dash.visitor(request) is not None:
        return RedirectResponse(target, status_code=303)
    return dash.render(request, "login.html", None, next=target, error="", name="")


async def login(dash: Dashboard, request: Request, _: Visitor) -> Response:
    form = request.state.form
    target = _safe_next(form.get("next"))
    if not dash.web.users:
        return RedirectResponse(target, status_code=303)
    client = request.client.host if request.client else ""
    name = form.get("name", "").strip()
    if dash.throttle.blocked(client):
        log.warning("web: login refused for %r from %s: too many failures", name, client)
        return dash.render(request, "login.html", None, http_status=429, next=target, name=name,
                           error="Too many failed attempts: wait a few minutes.")
    user = dash.web.user(name)
    if not await in_thread(dash.passwords.check, user, form.get("password", "")):
        dash.throttle.failed(client)
        log.warning("web: failed login for %r from %s", name, client)
        return dash.render(request, "login.html", None, http_status=400, next=target, name=name,
                           error="Wrong name or password.")
    assert user is not None
    dash.throttle.succeeded(client)
    session = request.session
    session.clear()  # a new session: nothing from before the login carries over
    session.update(user=user.name, since=time.time(),
                   key=user_key(dash.secret, user.password_hash.get_secret_value()))
    csrf_token(session)
    log.info("web: %s logged in from %s", user.name, client)
    return RedirectResponse(target, status_code=303)


async def logout(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    request.session.clear()
    if visitor.name:
        log.info("web: %s logged out", visitor.name)
    return RedirectResponse("/login" if dash.web.users else "/", status_code=303)


async def stock_set(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    form = request.state.form
    sku = form.get("sku", "")
    try:
        quantity = _whole(form.get("quantity"), "the quantity")
        reason = _reason(form.get("reason"))
        await in_thread(_set, dash.app, sku, quantity, reason, _source(visitor))
    except (LedgerError, ValueError) as exc:
        return _back(request, _sku_path(sku), str(exc), error=True)
    log.info("web: %s set %s to %d on hand (%s)", _who(visitor), sku, quantity, reason)
    return _back(request, _sku_path(sku), f"{sku}: on hand set to {quantity}.")


def _set(app: App, sku: str, quantity: int, reason: str, source: str) -> None:
    if quantity < 0:
        raise LedgerError("on hand cannot be negative")
    app.set_stock([ledger_stock.StockRow(sku, quantity)], reason=reason, source=source)


async def stock_adjust(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    form = request.state.form
    sku = form.get("sku", "")
    try:
        delta = _whole(form.get("delta"), "the change")
        if delta == 0:
            raise ValueError("the change is 0: nothing to adjust")
        reason = _reason(form.get("reason"))
        on_hand, _ = await in_thread(dash.app.adjust_stock, sku, delta, reason,
                                     _source(visitor))
    except (LedgerError, ValueError) as exc:
        return _back(request, _sku_path(sku), str(exc), error=True)
    log.info("web: %s adjusted %s by %+d (%s)", _who(visitor), sku, delta, reason)
    return _back(request, _sku_path(sku), f"{sku}: {delta:+d}, now {on_hand} on hand.")


async def ack(dash: Dashboard, request: Request, visitor: Visitor) -> Response:
    conflict_id = int(request.path_params["conflict_id"])
    found = await in_thread(_ack, dash.app, conflict_id)
    target = _safe_next(request.state.form.get("next"), "/conflicts")
    if not found:
        return _back(request, target, f"There is no conflict #{conflict_id}.", error=True)
    log.info("web: %s acknowledged conflict %d", _who(visitor), conflict_id)
    return _back(request, target, f"Conflict #{conflict_id} acknowledged.")


def _ack(app: App, conflict_id: int) -> bool:
    with app.db.begin() as conn:
        return acknowledge(conn, conflict_id, app.now())


def _whole(text: str | None, what: str) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number") from None


def _reason(text: str | None) -> str:
    reason = " ".join((text or "").split())[:MAX_REASON]
    if not reason:
        raise ValueError("give a reason: it is kept with the movement")
    return reason


def _source(visitor: Visitor) -> str:
    """Who made the change, on its movement: ``web:alice`` (``web`` without a login)."""
    return f"web:{visitor.name}" if visitor.name else "web"


def _sku_path(sku: str) -> str:
    return f"/stock/{quote(sku)}" if sku else "/stock"


def _who(visitor: Visitor) -> str:
    return visitor.name or "local visitor"


def _safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never another host (``//evil``, ``/\\evil``, ``https:``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


def _back(request: Request, target: str, text: str, *, error: bool = False) -> Response:
    request.session["flash"] = {"text": text, "error": error}
    return RedirectResponse(target, status_code=303)
