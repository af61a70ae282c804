"""Sessions in a signed cookie, and the CSRF token each session carries.

The session is a small JSON document signed with ``[web] session_secret`` (itsdangerous,
with the time it was signed): the browser holds it, the server keeps nothing, so a
restart with a new random secret ends every session. The cookie is ``HttpOnly`` and
``SameSite=Strict`` always, and ``Secure`` as ``[web] secure_cookies`` says: ``"auto"``
sets it on requests that came over HTTPS (as uvicorn reports the scheme, which honours a
loopback proxy's ``X-Forwarded-Proto``). Starlette's own SessionMiddleware decides
``Secure`` once for all requests, hence this one.

Every form carries the session's CSRF token in a hidden field, and every POST is refused
unless it matches (``csrf_valid``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import Session
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "channelsync_session"
CSRF_FIELD = "csrf"
_SALT = "channelsync.dashboard.session"


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def user_key(secret: str, password_hash: str) -> str:
    """Ties a session to the user's current password: a new hash ends the old sessions."""
    return hmac.new(secret.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:24]


def csrf_token(session: dict[str, Any]) -> str:
    """The session's token, made on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_valid(session: dict[str, Any], given: str | None) -> bool:
    token = session.get(CSRF_FIELD)
    return bool(token) and isinstance(token, str) and isinstance(given, str) \
        and hmac.compare_digest(token.encode(), given.encode())


class SessionCookies:
    """ASGI middleware: ``scope["session"]`` from the cookie; a changed session is sent back,
    an emptied one is deleted."""

    def __init__(
        self, app: ASGIApp, *, secret: str, max_age: float, secure: bool | Literal["auto"]
    ) -> None:
        self.app = app
        self._signer = URLSafeTimedSerializer(secret, salt=_SALT)
        self._max_age = int(max_age)
        self._secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = HTTPConnection(scope).cookies.get(COOKIE)
        loaded = self._load(raw)
        session = Session(loaded)
        scope["session"] = session

        async def send_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                headers = MutableHeaders(scope=message)
                if session:
                    headers.append("set-cookie", self._cookie(
                        self._signer.dumps(dict(session)), self._max_age, scope))
                elif raw is not None:
                    headers.append("set-cookie", self._cookie("", 0, scope))
            await send(message)

        await self.app(scope, receive, send_cookie)

    def _load(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            data = self._signer.loads(raw, max_age=self._max_age)
        except BadData:  # forged, from another secret (a restart), expired, or garbled
            return {}
        return data if isinstance(data, dict) else {}

    def _cookie(self, value: str, max_age: int, scope: Scope) -> str:
        flags = f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
        if self._secure is True or (self._secure == "auto" and scope.get("scheme") == "https"):
            flags += "; Secure"
        return flags
