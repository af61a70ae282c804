"""The daemon's ASGI application: one Starlette app for metrics, health and webhooks.

``channelsync.service.httpd`` serves it with uvicorn; the route sets come from
``observability.routes`` and ``webhooks.routes``.
"""

from channelsync.service.web._app import (
    MAX_BODY,
    REQUEST_TIMEOUT,
    application,
    in_thread,
    read_body,
    text,
)

__all__ = ["MAX_BODY", "REQUEST_TIMEOUT", "application", "in_thread", "read_body", "text"]
