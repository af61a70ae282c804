"""What every page and action shares: the App, the templates, who is asking, forms.

Each endpoint is wrapped by ``Dashboard.endpoint``: who is asking (a login, or anyone on
loopback when no user is configured), the CSRF token of a POST, and the role an action
needs are checked there, once, before any handler runs. Handlers read the ledger on
worker threads (``in_thread``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channelsync.config import WebConfig, is_loopback
from channelsync.service.app import App
from channelsync.service.web import read_body
from channelsync.service.web.dashboard import _format
from channelsync.service.web.dashboard._auth import ADMIN, Passwords, Throttle, Visitor
from channelsync.service.web.dashboard._scrub import Scrubber
from channelsync.service.web.dashboard._sessions import (
    CSRF_FIELD,
    csrf_token,
    csrf_valid,
    new_secret,
    user_key,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_FORM = 16 * 1024  # bytes of a form's body
MAX_FIELDS = 20
FORM_TYPE = "application/x-www-form-urlencoded"
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

Handler = Callable[["Dashboard", Request, Visitor], Awaitable[Response]]


class Dashboard:
    """The state every page shares: where the App is, the templates, the session secret."""

    def __init__(self, source: Callable[[], App], web: WebConfig) -> None:
        self.source = source  # the daemon's App is replaced on reload: always ask
        secret = web.session_secret.get_secret_value()
        if not secret:
            secret = new_secret()
            log.warning("web: no session_secret configured: a random one was made, so "
                        "dashboard sessions end when channelsync restarts")
        if not web.users:
            log.warning("web: no [[web.users]]: the dashboard answers requests made on this "
                        "machine only, and everyone is admin; add users before putting a "
                        "proxy in front of it")
        self.secret = secret
        self.max_age = web.session_hours * 3600
        self.secure = web.secure_cookies
        self.passwords = Passwords()
        self.throttle = Throttle()
        self.templates = _environment()
        self._scrubber: tuple[object, Scrubber] | None = None

    @property
    def app(self) -> App:
        return self.source()

    @property
    def web(self) -> WebConfig:
        return self.app.config.web

    # -- who is asking --------------------------------------------------------------------

    def visitor(self, request: Request) -> Visitor | None:
        """The logged-in user (their role as configured now), anyone local when no user is
        configured, or None. Raises 403 for a remote request when no user is configured."""
        web = self.web
        if not web.users:
            if not _local(request):
                raise HTTPException(403, "this dashboard has no users configured, so it "
                                    "answers only requests made on this machine, not "
                                    "through a proxy: add [[web.users]] to the config")
            return Visitor("", ADMIN, open_access=True)
        session = request.session
        user = web.user(str(session.get("user", "")))
        if user is None or session.get("key") != user_key(
                self.secret, user.password_hash.get_secret_value()):
            return None
        if time.time() - float(session.get("since", 0)) > self.max_age:
            return None
        return Visitor(user.name, user.role)

    def endpoint(self, handler: Handler, *, admin: bool = False,
                 login: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the checks: a visitor (unless ``login=False``), the CSRF token
        of a POST (its form is then in ``request.state.form``), the admin role."""

        async def run(request: Request) -> Response:
            visitor = self.visitor(request) if login else Visitor("", "")
            if visitor is None:
                if request.method != "GET":
                    raise HTTPException(403, "log in first")
                if request.headers.get("x-requested-with") == "fetch":
                    return Response(status_code=401)  # the page's script reloads it
                target = quote(request.url.path + (f"?{request.url.query}"
                                                   if request.url.query else ""), safe="")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            if request.method == "POST":
                request.state.form = await self.form(request)
                if not csrf_valid(request.session, request.state.form.get(CSRF_FIELD)):
                    raise HTTPException(403, "the form has expired or did not come from this "
                                        "dashboard: reload the page and try again")
            if admin and not visitor.admin:
                raise HTTPException(403, "only an admin may do this")
            return await handler(self, request, visitor)

        return run

    async def form(self, request: Request) -> dict[str, str]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            raise HTTPException(415, f"a form is sent as {FORM_TYPE}")
        body = await read_body(request, MAX_FORM)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "the form could not be read") from None
        return dict(pairs)

    # -- pages -------------------------------------------------------------------------------

    def render(self, request: Request, template: str, visitor: Visitor | None, *,
               http_status: int = 200, **context: Any) -> HTMLResponse:
        session = request.session
        page = self.templates.get_template(template).render(
            visitor=visitor, csrf=lambda: csrf_token(session), flash=session.pop("flash", None),
            path=request.url.path, now=self.app.now(), **context)
        return HTMLResponse(self.scrubber.clean(page), status_code=http_status,
                            headers={"cache-control": "no-store"})

    @property
    def scrubber(self) -> Scrubber:
        config = self.app.config  # a reload brings new secrets
        if self._scrubber is None or self._scrubber[0] is not config:
            self._scrubber = (config, Scrubber(config, self.secret))
        return self._scrubber[1]

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        try:
            visitor = self.visitor(request) if exc.status_code != 403 else None
        except HTTPException:
            visitor = None
        return self.render(request, "error.html", visitor, http_status=exc.status_code,
                           code=exc.status_code, detail=exc.detail)


def _local(request: Request) -> bool:
    """Made on this machine and not forwarded by a proxy (which could be anyone's)."""
    host = request.client.host if request.client else ""
    return is_loopback(host) and not any(h in request.headers for h in PROXY_HEADERS)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(_format.FILTERS)
    return env


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, add if scope["type"] == "http" else send)
