"""Serving the daemon's ASGI app (``channelsync.service.web``) with uvicorn on a thread.

Each listener runs uvicorn with an event loop of its own on a background thread, started
and stopped by the daemon; ``Server.stop()`` returns within about ``SHUTDOWN_GRACE``
seconds even if a client hangs on. uvicorn has no deadline for a request's head, so
the protocol here adds one: a client that stalls before its request is complete is cut
off after the request timeout (the app enforces the same for the body).

Any host may be given, but metrics and health should stay on loopback (scrape them
locally or through a proxy): they are unauthenticated. The webhook endpoint faces the
shops and belongs behind a TLS-terminating reverse proxy that forwards to loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from starlette.routing import BaseRoute
from uvicorn.protocols.http.h11_impl import H11Protocol

from channelsync.config import is_loopback
from channelsync.errors import ConfigError
from channelsync.service.web import REQUEST_TIMEOUT, application

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 2  # seconds requests in flight get to finish when the server stops
STARTUP_TIMEOUT = 10.0  # seconds uvicorn may take to accept connections
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open


class Server:
    """uvicorn serving one app on one bound socket, on its own thread, until ``stop()``."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self._host, self._port = sock.getsockname()[:2]
        self._uvicorn = uvicorn.Server(config)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._uvicorn.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError([f"{name}: the HTTP server did not start"])
            time.sleep(0.01)
        if not self._uvicorn.started:
            self.stop()
            raise ConfigError([f"{name}: the HTTP server did not start: {self._failed!r}"])

    def _run(self) -> None:
        try:
            self._uvicorn.run(sockets=[self._sock])
        except BaseException as exc:  # kept for the caller of __init__
            self._failed = exc
            log.exception("%s: the HTTP server failed", self._thread.name)

    @property
    def host(self) -> str:
        return str(self._host)

    @property
    def port(self) -> int:
        return int(self._port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop listening, let requests in flight finish (``SHUTDOWN_GRACE``), then return."""
        if self._stopped:
            return
        self._stopped = True
        self._uvicorn.should_exit = True
        self._thread.join(SHUTDOWN_GRACE + 2.0)
        if self._thread.is_alive():
            self._uvicorn.force_exit = True
            self._thread.join(2.0)
        self._sock.close()  # uvicorn closes it too; this covers a server that never started

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def parse_listen(listen: str, setting: str = "listen") -> tuple[str, int]:
    """``"127.0.0.1:9464"`` or ``"[::1]:9464"`` -> (host, port); port 0 picks a free one."""
    value = listen.strip()
    example = "expected host:port such as 127.0.0.1:9464"
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep or not host:
            raise ConfigError([f"{setting}: {listen!r} is not [ipv6]:port ({example})"])
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ConfigError([f"{setting}: {listen!r} has no host and port ({example})"])
        if ":" in host:
            raise ConfigError([f"{setting}: write an IPv6 address in brackets, as [::1]:9464"])
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError([f"{setting}: {port!r} is not a port number (0 to 65535)"])
    return host, int(port)


def serve(
    listen: str, routes: Sequence[BaseRoute], *, setting: str = "listen",
    request_timeout: float = REQUEST_TIMEOUT,
) -> Server:
    """Listen on ``listen`` and serve ``routes`` on a background thread.

    ``setting`` names the config key in error messages (``daemon.metrics_listen``).
    An address that cannot be used raises ``ConfigError``.
    """
    host, port = parse_listen(listen, setting)
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError([f"{setting}: cannot listen on {listen}: {exc.strerror or exc}"]) \
            from exc
    protocol = type("Protocol", (_Protocol,), {"head_timeout": request_timeout})
    config = uvicorn.Config(
        application(routes, request_timeout=request_timeout), http=protocol, loop="asyncio",
        lifespan="off", log_config=None, log_level="warning", access_log=False,
        server_header=False, headers=[("server", "channelsync")],
        timeout_keep_alive=KEEP_ALIVE, timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    server = Server(config, sock, name=f"httpd:{setting}")
    if not is_loopback(host):
        log.warning("%s: listening on %s, which is not loopback: keep it behind a firewall "
                    "or a TLS proxy", setting, server.url)
    log.info("%s: listening on %s", setting, server.url)
    return server


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (uvicorn sets none)."""

    head_timeout: float = REQUEST_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        # A new request head replaces self.cycle; if it has not by then, the client stalled.
        self.loop.call_later(self.head_timeout, self._head_deadline, self.cycle)

    def _head_deadline(self, cycle: object) -> None:
        if self.cycle is cycle and not self.transport.is_closing():
            log.debug("%s: no complete request within %.0f s; closing", self.client,
                      self.head_timeout)
            self.transport.close()
