"""The dashboard as an ASGI app of its own, mounted last in the daemon's route set.

It has its own middleware (the session cookie, security headers), so the metrics and
webhook endpoints that may share its listener are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from channelsync.config import WebConfig
from channelsync.service.app import App
from channelsync.service.web import REQUEST_TIMEOUT
from channelsync.service.web.dashboard import _actions, _pages
from channelsync.service.web.dashboard._app import HERE, Dashboard, SecurityHeaders
from channelsync.service.web.dashboard._sessions import SessionCookies


def build(dash: Dashboard) -> Starlette:
    routes = _pages.routes(dash) + _actions.routes(dash) + [
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(routes=routes, middleware=[
        Middleware(SecurityHeaders),
        Middleware(SessionCookies, secret=dash.secret, max_age=dash.max_age,
                   secure=dash.secure)],
        exception_handlers={HTTPException: dash.error})
    app.state.request_timeout = REQUEST_TIMEOUT  # read_body's deadline for a form
    return app


def routes(source: Callable[[], App], web: WebConfig) -> list[BaseRoute]:
    """The dashboard's route set for ``httpd.serve``. It answers every path not matched
    before it, so it comes last when it shares a listener with metrics or webhooks."""
    return [Mount("", app=build(Dashboard(source, web)))]
