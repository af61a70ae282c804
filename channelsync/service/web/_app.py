"""Starlette, not FastAPI: the endpoints take raw bodies (a webhook is authenticated, never
parsed) and the dashboard to come is server-rendered, so request models and OpenAPI would
be weight without use.

Every request is logged at debug level as method, path and status; bodies never are. An
endpoint that raises is answered with a plain 500 and logged here, never shown to the caller.
Handlers that touch the database or take locks run on worker threads (``in_thread``), so
one slow query never holds up the event loop and the other endpoints with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # bytes; a larger request body is refused with 413
REQUEST_TIMEOUT = 15.0  # seconds a client may take to send a request's head, and its body
TEXT = "text/plain; charset=utf-8"

P = ParamSpec("P")
T = TypeVar("T")


def text(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, media_type=TEXT)


async def in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await run_in_threadpool(func, *args, **kwargs)


def application(
    routes: Sequence[BaseRoute], *, request_timeout: float = REQUEST_TIMEOUT
) -> Starlette:
    app = Starlette(routes=list(routes), middleware=[Middleware(_Guard)])
    app.state.request_timeout = request_timeout
    return app


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, read as it streams in: 413 as soon as it passes ``limit`` (the rest is
    never read), 408 if the client takes longer than the request timeout to send it."""
    declared = request.headers.get("content-length", "").strip()
    if declared and not declared.isdigit():
        raise HTTPException(400, "bad Content-Length")
    too_large = HTTPException(413, f"the body is larger than {limit} bytes")
    if declared and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(request.app.state.request_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, "the body took too long to arrive") from None
    except ClientDisconnect:
        raise HTTPException(400, "the client went away") from None
    return b"".join(chunks)


class _Guard:
    """Logs each request, and answers an endpoint's exception with a plain 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]  # the path comes without the query
        status = 0

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        except Exception:  # a failing endpoint answers 500 and leaves the daemon alone
            log.exception("%s %s failed", method, path)
            if status:  # the answer had begun: all that is left is to end the connection
                return
            await text(500, "internal error")(scope, receive, record)
        log.debug("%s %s -> %d", method, path, status)
