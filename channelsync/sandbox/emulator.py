"""Base for channel emulators: a loopback HTTP server with the shared `/_sandbox/` control API.

A subclass speaks one channel's wire protocol: it declares its routes with `@route(...)` and
implements the state hooks at the bottom of `Emulator`. This module owns the server, routing,
fault injection (429s, 5xx and latency, on the channel API only) and request statistics.
Every handler runs under one re-entrant lock, so subclasses keep plain dicts as state.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from channelsync.sandbox.faults import DROP, Drop, Faults, page_faults
from channelsync.sandbox.faults import parse as parse_faults
from channelsync.sandbox.webhooks import Subscription, WebhookSender

__all__ = ["BadRequest", "Conflict", "Emulator", "NotFound", "Raw", "Request", "Response",
           "Route", "SandboxError", "Subscription", "route", "sandbox_buyer",
           "sku_quantity"]

logger = logging.getLogger(__name__)


class SandboxError(Exception):
    """A refused request; `code` and `data` let a channel shape its own error body."""

    status = 400

    def __init__(self, message: str, *, status: int = 0, code: str = "", data: Any = None) -> None:
        super().__init__(message)
        self.message, self.code, self.data = message, code, data
        self.status = status or type(self).status


class BadRequest(SandboxError):
    status = 400


class NotFound(SandboxError):
    status = 404


class Conflict(SandboxError):
    status = 409


@dataclass(frozen=True)
class Raw:
    """A non-JSON response body (an HTML error page from a proxy, say)."""

    content: bytes
    content_type: str = "text/html; charset=UTF-8"


Response = tuple[int, Any, Mapping[str, str]]
"""(status, JSON-able body or Raw, extra headers)"""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route's regex
    query_string: str = ""  # raw, as sent (for signature checks)
    operation: str = ""  # the channel API operation it was (set once routed)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"Invalid JSON body passed: {exc}.", code="rest_invalid_json") from exc


Handler = Callable[[Any, Request], Response]
_H = TypeVar("_H", bound=Handler)
T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    operation: str  # the key under which /_sandbox/stats counts its requests


def route(method: str, pattern: str, operation: str) -> Callable[[_H], _H]:
    """Declare a channel API route on an Emulator method; `pattern` must match the whole path.

    Stack several `@route` lines to serve one handler on several methods or paths.
    """

    def mark(handler: _H) -> _H:
        marks: list[tuple[str, str, str]] = handler.__dict__.setdefault("_sandbox_routes", [])
        marks.append((method.upper(), pattern, operation))
        return handler

    return mark


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a timeout, a killed process) is a client's
        everyday; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("client %s went away: %s", client_address, error)
            return
        logger.exception("emulator connection from %s failed", client_address)


class Emulator:
    """Base class of every channel emulator.

    A subclass sets `channel_type`, declares its API with `@route`, implements the state hooks
    (`set_listing`, `listings`, `place_order`, `cancel_order`, `ship_order`, `reset`; called
    under `self.lock`) and reshapes the response hooks into its channel's wire format.
    """

    channel_type: ClassVar[str] = ""
    routes: ClassVar[tuple[Route, ...]] = ()
    # The operations that change the channel (a lost answer is only a lost answer to those).
    write_operations: ClassVar[frozenset[str]] = frozenset()
    # A channel that sends order webhooks names the header its signature goes in, and the
    # delays after which it sends a failed delivery again (none: it gives up at once).
    webhook_signature_header: ClassVar[str] = ""
    webhook_retry_delays: ClassVar[tuple[float, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = list(cls.routes)
        for member in vars(cls).values():
            for method, pattern, op in getattr(member, "_sandbox_routes", ()):
                found.append(Route(method, re.compile(pattern), member, op))
        cls.routes = tuple(found)

    def __init__(
        self, *, seed: int | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)  # draws faults only, so a seed replays the same faults
        self.fault_rng = random.Random(seed)  # the faults added later draw from their own
        self._base_clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.clock: Callable[[], datetime] = self._base_clock
        self._seed = seed
        self._faults = Faults()
        self._requests: Counter[str] = Counter()  # per operation name
        self._counters: Counter[str] = Counter()  # throttled, errors, items_updated
        self._server: _Server | None = None
        self._host = "127.0.0.1"
        # Told of every channel API request once its answer went out (a simulation kills
        # channelsync at chosen moments from here): (request, status) -> None.
        self.observers: list[Callable[[Request, int], None]] = []
        self._thread: threading.Thread | None = None
        self.webhooks: WebhookSender | None = None
        if self.webhook_signature_header:
            self.webhooks = WebhookSender(signature_header=self.webhook_signature_header,
                                          retry_delays=self.webhook_retry_delays)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve in a daemon thread; returns the bound port (0 asks for any free port)."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = _Server((host, port), _Handler)
        self._host = host
        self._server.emulator = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=f"sandbox-{self.channel_type}")
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Block until `stop()` or Ctrl-C (for the CLI), starting the server if needed."""
        if self._server is None:
            self.start(host, port)
        thread = self._thread
        try:
            while thread is not None and thread.is_alive():
                thread.join(0.5)  # short waits, so that Ctrl-C gets through
        finally:
            self.stop()

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (an unexpected failure becomes a 500)."""
        try:
            if request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
                return self._control(request)
            return self._channel(request)
        except Exception as exc:  # a bug in a handler must not take the server down
            logger.exception("emulator failed on %s %s", request.method, request.path)
            return 500, {"error": f"emulator error: {exc!r}"}, {}

    def _match(self, request: Request) -> Route | None:
        for candidate in self.routes:
            match = candidate.pattern.fullmatch(request.path)
            if match and candidate.method == request.method:
                request.params = match.groupdict()
                return candidate
        return None

    def _channel(self, request: Request) -> Response:
        matched = self._match(request)
        request.operation = matched.operation if matched else ""
        with self.lock:
            self._requests[matched.operation if matched else "<unmatched>"] += 1
            faults, draw, kind = self._faults, self.rng.random(), self.rng.random()
            throttled = matched is not None and draw < faults.throttle_rate
            failed = matched is not None and not throttled and (
                draw < faults.throttle_rate + faults.error_rate)
            hung = matched is not None and not (throttled or failed) and self._drawn(
                faults.hang_rate)
            lost = matched is not None and matched.operation in self.write_operations and \
                self._drawn(faults.lost_answer_rate)
            self._counters.update(throttled=int(throttled), errors=int(failed), hung=int(hung))
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if throttled:
            status, body, headers = self.throttle_response()
            return status, body, {**headers, "Retry-After": str(faults.retry_after)}
        if failed:
            return self.server_error_response(kind)
        if hung:  # silent until the client gave up; nothing was done
            time.sleep(faults.hang_seconds)
            return 0, DROP, {}
        with self.lock:
            try:
                if matched is None:
                    return self.no_route_response(request)
                denied = self.authenticate(request)
                answer = denied if denied is not None else matched.handler(self, request)
            except SandboxError as err:
                return self.channel_error_response(err)
            if not (lost and denied is None and answer[0] < 400):
                return answer
            self._counters["lost_answers"] += 1
        # Applied, and the answer never arrives: a dropped connection or a gateway's 5xx.
        return (0, DROP, {}) if self.fault_rng.random() < 0.5 else \
            self.server_error_response(kind)

    def _drawn(self, rate: float) -> bool:
        """One draw from the later faults' own stream (only when the fault is on)."""
        return rate > 0 and self.fault_rng.random() < rate

    def page_faults(
        self, items: Sequence[T], previous: Callable[[T], T | None] = lambda _: None,
    ) -> list[T]:
        """A page of orders as the configured faults serve it (duplicates, stale versions,
        a shuffle). Call it where a channel has cut one page of orders."""
        return page_faults(self.fault_rng, self._faults, items, previous)

    def answered(self, request: Request, status: int) -> None:
        """Tell the observers; one that fails is logged and never breaks the server."""
        for observer in list(self.observers):
            try:
                observer(request, status)
            except Exception:
                logger.exception("an emulator observer failed")

    def count_items_updated(self, n: int = 1) -> None:
        with self.lock:
            self._counters["items_updated"] += n

    # -- control API (/_sandbox/) ----------------------------------------------------------

    _ORDER_ACTION = re.compile(r"/_sandbox/orders/(?P<id>[^/]+)/(?P<action>cancel|ship)")
    _ORDER = re.compile(r"/_sandbox/orders/(?P<id>[^/]+)")

    def _control(self, request: Request) -> Response:
        key = (request.method, request.path.rstrip("/"))
        action = self._ORDER_ACTION.fullmatch(key[1])
        try:
            with self.lock:
                extra = self.control_route(request)
                if extra is not None:
                    return extra
                if key == ("POST", "/_sandbox/listings"):
                    self._post_listing(request.json())
                    return 200, {"listings": self.listings()}, {}
                if key == ("GET", "/_sandbox/listings"):
                    return 200, {"listings": self.listings()}, {}
                if key == ("POST", "/_sandbox/orders"):
                    body = request.json()
                    lines = body.get("lines") if isinstance(body, dict) else None
                    if not isinstance(lines, list) or not lines:
                        raise BadRequest('an order needs "lines": [{"sku": "MUG", "quantity": 1}]')
                    order = [sku_quantity(line, minimum=1) for line in lines]
                    return 201, {"order_id": str(self.place_order(order))}, {}
                if action and request.method == "POST":
                    hook = self.cancel_order if action["action"] == "cancel" else self.ship_order
                    return 200, {"order_id": action["id"], **hook(action["id"])}, {}
                if key == ("GET", "/_sandbox/orders"):
                    return 200, {"orders": self.order_rows()}, {}
                one = self._ORDER.fullmatch(key[1])
                if one and request.method == "GET":
                    found = [o for o in self.order_rows() if o["order_id"] == one["id"]]
                    if not found:
                        raise NotFound(f"no order {one['id']!r}")
                    return 200, found[0], {}
                if key == ("POST", "/_sandbox/faults"):
                    return 200, self._set_faults(request.json()), {}
                if key == ("GET", "/_sandbox/stats"):
                    return 200, self.stats(), {}
                if key[1] == "/_sandbox/webhooks" and key[0] in ("GET", "POST"):
                    return self._webhooks_route(request)
                if key == ("POST", "/_sandbox/reset"):
                    self.reset_all()
                    return 200, {"reset": True}, {}
            raise NotFound(f"no sandbox route {request.method} {request.path}")
        except SandboxError as err:
            return err.status, {"error": err.message, "status": err.status}, {}

    def _webhooks_route(self, request: Request) -> Response:
        """``POST {"url": ..., "secret": ..., "topics": [...]}`` subscribes (topics omitted:
        all of them); ``GET`` lists the subscriptions (never their secrets) and counts."""
        if self.webhooks is None:
            raise NotFound(f"{self.channel_type} sends no webhooks in the sandbox")
        if request.method == "POST":
            body = request.json()
            body = body if isinstance(body, dict) else {}
            url, secret, topics = body.get("url"), body.get("secret"), body.get("topics")
            if not (isinstance(url, str) and url.startswith(("http://", "https://"))
                    and isinstance(secret, str) and secret
                    and (topics is None or isinstance(topics, list)
                         and all(isinstance(t, str) for t in topics))):
                raise BadRequest('a webhook takes "url": "http://...", "secret": "..." and '
                                 'optionally "topics": ["..."]')
            return 201, self.webhooks.subscribe(url, secret, topics).row(), {}
        return 200, self.webhooks.state(), {}

    def notify(self, topic: str, order_id: str) -> None:
        """An order changed (``topic`` in the channel's words): queue a delivery to every
        subscription that wants it. Called by a subclass under the lock, after the change."""
        if self.webhooks is None:
            return
        for sub in self.webhooks.wanted(topic):
            body, headers = self.webhook_delivery(sub, topic, order_id)
            self.webhooks.send(sub, topic, body, headers)

    def _post_listing(self, body: Any) -> None:
        sku, quantity = sku_quantity(body, minimum=0)
        extra = {k: v for k, v in body.items() if k not in ("sku", "quantity")}
        self.set_listing(sku, quantity, extra)

    def _set_faults(self, body: Any) -> dict[str, Any]:
        """The body replaces the whole fault configuration: omitted fields go back to 0."""
        try:
            faults = parse_faults(body)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        seed = body.get("seed")
        if seed is not None:
            self.rng.seed(_integer(seed, '"seed"'))
            self.fault_rng.seed(seed)
        self._faults = faults
        skew = timedelta(seconds=faults.clock_skew)
        base = self._base_clock
        self.clock = base if not skew else (lambda: base() + skew)
        return {**faults.as_dict(), "seed": seed}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            names = ("throttled", "errors", "items_updated", "hung", "lost_answers")
            return {"requests": dict(self._requests), **{n: self._counters[n] for n in names}}

    def reset_all(self) -> None:
        """Empty the channel state, the statistics and the faults."""
        with self.lock:
            self.reset()
            if self.webhooks is not None:
                self.webhooks.clear()
            self._faults = Faults()
            self.clock = self._base_clock
            self._requests.clear()
            self._counters.clear()
            self.rng.seed(self._seed)
            self.fault_rng.seed(self._seed)

    # -- hooks: responses a channel reshapes into its own wire format ----------------------

    def authenticate(self, request: Request) -> Response | None:
        """An error response to refuse the request, or None to let it through."""
        return None

    def throttle_response(self) -> Response:
        return 429, {"error": "too many requests"}, {}

    def server_error_response(self, draw: float) -> Response:
        """A 5xx; `draw` in [0, 1) lets a channel vary the kind (an HTML proxy page, JSON...)."""
        return 503, {"error": "service unavailable"}, {}

    def channel_error_response(self, err: SandboxError) -> Response:
        return err.status, {"error": err.message, "code": err.code, "data": err.data}, {}

    def no_route_response(self, request: Request) -> Response:
        return 404, {"error": f"no route {request.method} {request.path}"}, {}

    # -- hooks: channel state --------------------------------------------------------------

    def control_route(self, request: Request) -> Response | None:
        """A channel's own ``/_sandbox/`` routes, or its richer version of a shared one
        (None: the shared routes answer). Runs under the lock; SandboxError -> its status."""
        return None

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any]) -> None:
        """Create or overwrite a listing; `extra` holds the channel-specific fields."""
        raise NotImplementedError

    def listings(self) -> list[dict[str, Any]]:
        """Every listing as {"sku": ..., "quantity": ...} (more keys allowed)."""
        raise NotImplementedError

    def place_order(self, lines: list[tuple[str, int]]) -> str:
        """All (sku, quantity) lines or none; NotFound for an unknown SKU, Conflict if short."""
        raise NotImplementedError

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Fields for the response (e.g. the new status); NotFound for an unknown order."""
        raise NotImplementedError

    def ship_order(self, order_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def webhook_delivery(self, sub: Subscription, topic: str, order_id: str
                         ) -> tuple[bytes, dict[str, str]]:
        """The body and headers (the signature is added) of one order event, for a channel
        that sets ``webhook_signature_header``."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def order_rows(self) -> list[dict[str, Any]]:
        """Every order as the channel holds it: ``{"order_id", "status" (the channel's word),
        "lines": [{"sku", "quantity", "shipped", "cancelled", "restocked"}], "shipments":
        [...], "buyer": ...}``, units per line. ``GET /_sandbox/orders[/{id}]`` serve it."""
        raise NotFound(f"the {self.channel_type} emulator does not list its orders")


def _integer(value: Any, what: str, minimum: int | None = None) -> int:
    bound = "" if minimum is None else f" >= {minimum}"
    too_low = minimum is not None and isinstance(value, int) and value < minimum
    if isinstance(value, bool) or not isinstance(value, int) or too_low:
        raise BadRequest(f"{what} must be an integer{bound}")
    return value


def sandbox_buyer(raw: Any) -> tuple[str, str]:
    """(email, name) of a ``"buyer": {"email": ..., "name": ...}`` in ``POST /_sandbox/orders``
    (either may be left out, not both)."""
    fields = raw if isinstance(raw, dict) else {}
    email, name = fields.get("email", ""), fields.get("name", "")
    if not fields or set(fields) - {"email", "name"} or not isinstance(email, str) \
            or not isinstance(name, str) or not (email.strip() or name.strip()) \
            or (email.strip() and "@" not in email):
        raise BadRequest('"buyer" takes {"email": "ada@example.com", "name": "Ada Lovelace"}')
    return email.strip(), " ".join(name.split())


def sku_quantity(item: Any, minimum: int) -> tuple[str, int]:
    """``{"sku": "MUG", "quantity": 2}`` as ("MUG", 2); a clear BadRequest otherwise."""
    sku = item.get("sku") if isinstance(item, dict) else None
    if not isinstance(sku, str) or not sku:
        raise BadRequest(f'expected an object like {{"sku": "MUG", "quantity": 1}}, got {item!r}')
    return sku, _integer(item.get("quantity"), f'"quantity" of {sku!r}', minimum)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs; every response has a length
    timeout = 60  # an idle keep-alive connection is dropped after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # clients here send a Content-Length; keep it simple
            return self._send(411, {"error": "send a Content-Length, not a chunked body"}, {})
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.close_connection = True
            return self._send(400, {"error": "bad Content-Length"}, {})
        request = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                          self.headers, body, query_string=split.query)
        emulator = self.server.emulator
        status, answer, headers = emulator.handle(request)
        self._send(status, answer, headers)
        if request.operation:
            emulator.answered(request, status)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: the channel's own clock (a server whose clock is off says so)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = self.server.emulator.clock()
        return format_datetime((now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC),
                               usegmt=True)

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        if isinstance(body, Drop):  # nothing is sent: the client sees the connection close
            self.close_connection = True
            return
        if isinstance(body, Raw):
            payload, content_type = body.content, body.content_type
        else:
            payload, content_type = json.dumps(body).encode(), "application/json; charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
