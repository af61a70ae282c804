"""A tiny threaded HTTP server for the daemon's own endpoints: metrics, health and webhooks.

Routes are ``(method, path)`` pairs; a path ending in ``/*`` matches one more path
segment, handed to the handler as ``Request.rest``. Bodies are bounded (413 past the
limit) and never logged; each request is logged at debug level as method, path and status.

Any host may be given, but metrics and health should stay on loopback (scrape them
locally or through a proxy): they are unauthenticated. The webhook endpoint faces the
shops and belongs behind a TLS-terminating reverse proxy that forwards to loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import cast

from channelsync.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # bytes; larger requests get 413
DRAIN_LIMIT = 8 * MAX_BODY  # an oversized body up to this is read and dropped: the client sees 413
REQUEST_TIMEOUT = 15.0  # seconds a client may take to send its request
POLL_INTERVAL = 0.1  # how soon stop() is noticed; idle wake-ups cost next to nothing
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    client: str = ""  # the peer, "host:port"
    rest: str = ""  # the segment a "/prefix/*" route matched

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


Response = tuple[int, str, bytes]  # status, content type, body
Handler = Callable[[Request], Response]
Routes = Mapping[tuple[str, str], Handler]


def text(status: int, message: str) -> Response:
    return status, TEXT, (message + "\n").encode()


class Server:
    """A server running on its own thread until ``stop()``."""

    def __init__(self, httpd: _HTTPServer, name: str) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name=name, daemon=True)
        self._stopped = False
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    listen: str, routes: Routes, *, setting: str = "listen", max_body: int = MAX_BODY
) -> Server:
    """Listen on ``listen`` and serve ``routes`` on a background thread.

    ``setting`` names the config key in error messages (``daemon.metrics_listen``).
    An address that cannot be used raises ``ConfigError``.
    """
    host, port = parse_listen(listen, setting)
    server_class = _HTTPServer6 if _is_ipv6(host) else _HTTPServer
    try:
        httpd = server_class((host, port), _RequestHandler)
    except OSError as exc:
        raise ConfigError([f"{setting}: cannot listen on {listen}: {exc.strerror or exc}"]) \
            from exc
    httpd.routes = dict(routes)
    httpd.max_body = max_body
    server = Server(httpd, name=f"httpd:{setting}")
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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[tuple[str, str], Handler] = {}
    max_body: int = MAX_BODY


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def _route(routes: Routes, method: str, path: str) -> tuple[Handler | None, str, list[str]]:
    """The handler for this request, what its wildcard matched, and the methods the path allows."""
    prefix, _, last = path.rpartition("/")
    candidates = [(path, "")]
    if prefix and last:
        candidates.append((prefix + "/*", last))
    for pattern, rest in candidates:
        allowed = sorted(m for m, p in routes if p == pattern)
        if allowed:
            return routes.get((method, pattern)), rest, allowed
    return None, "", []


class _RequestHandler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT
    server_version = "channelsync"
    sys_version = ""

    def do_GET(self) -> None:  # the name http.server dispatches to
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        server = cast(_HTTPServer, self.server)
        path = self.path.split("?", 1)[0]
        handler, rest, allowed = _route(server.routes, self.command, path)
        if handler is None:
            status = HTTPStatus.METHOD_NOT_ALLOWED if allowed else HTTPStatus.NOT_FOUND
            extra = {"Allow": ", ".join(allowed)} if allowed else {}
            self._discard_body()
            self._send(text(status, status.phrase), path, extra)
            return
        body = self._read_body(server.max_body, path)
        if body is None:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, path, headers, body, _peer(self.client_address), rest)
        try:
            response = handler(request)
        except Exception:  # a failing endpoint answers 500 and leaves the daemon alone
            log.exception("%s %s failed", self.command, path)
            response = text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        self._send(response, path)

    def _read_body(self, max_body: int, path: str) -> bytes | None:
        """The request body, or None once an error response has been sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(text(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length"), path)
            return None
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            self._send(text(HTTPStatus.BAD_REQUEST, "bad Content-Length"), path)
            return None
        length = int(raw)
        if length > max_body:
            self._drain(length)
            self._send(text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the body is larger than {max_body} bytes"), path)
            return None
        try:
            return self.rfile.read(length)
        except OSError:  # the client went away or was too slow
            self.close_connection = True
            return None

    def _discard_body(self) -> None:
        raw = self.headers.get("Content-Length", "0").strip()
        if raw.isdigit():
            self._drain(int(raw))

    def _drain(self, length: int) -> None:
        # Closing with unread data makes the kernel send a reset, which can reach the
        # client before it reads our answer; so read what is sent, up to a limit.
        self.close_connection = True
        if length > DRAIN_LIMIT:
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    return
                length -= len(chunk)
        except OSError:
            return

    def _send(self, response: Response, path: str, extra: Mapping[str, str] | None = None) -> None:
        status, content_type, body = response
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        log.debug("%s %s -> %d", self.command, path, status)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by ``_send``, without the query string."""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s: " + format, self.address_string(), *args)


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
