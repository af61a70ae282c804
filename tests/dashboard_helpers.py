"""Shared by the dashboard tests: a config with users, a served dashboard, a client that
logs in and sends forms with their CSRF token, and a reader of ``data-testid`` elements."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
from argon2 import PasswordHasher

from channelsync.config import Config, parse_config
from channelsync.service import httpd
from channelsync.service.app import App
from channelsync.service.web.dashboard import routes

# Cheap parameters: a test logs in often. The verifier reads them from the hash itself.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ADMIN, ADMIN_PASSWORD = "alice", "alice-password-1"
VIEWER, VIEWER_PASSWORD = "packer", "packer-password-2"
ADMIN_HASH = FAST.hash(ADMIN_PASSWORD)
VIEWER_HASH = FAST.hash(VIEWER_PASSWORD)
SESSION_SECRET = "session-secret-that-never-shows-0123456789"
SHOP_SECRET = "cs_dashboard_shop_secret_1"
WEBHOOK_SECRET = "wh_dashboard_secret_2"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

CHANNELS = f"""
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dashboard"
consumer_secret = "{SHOP_SECRET}"
webhook_secret = "{WEBHOOK_SECRET}"
[[channel]]
name = "outlet"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dashboard"
consumer_secret = "cs_outlet_dummy"
[channel.rules]
buffer = 1
"""

USERS = f"""
[[web.users]]
name = "{ADMIN}"
password_hash = "{ADMIN_HASH}"
role = "admin"
[[web.users]]
name = "{VIEWER}"
password_hash = "{VIEWER_HASH}"
"""


def make_config(db_url: str, *, users: bool = True, web: str = "", extra: str = "") -> Config:
    text = f"""
[database]
url = "{db_url}"
[web]
listen = "127.0.0.1:0"
session_secret = "{SESSION_SECRET}"
{web}
{USERS if users else ""}
{CHANNELS}
{extra}
"""
    return parse_config(text, env={})


class Clock:
    """The App's clock, moved by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Elements(HTMLParser):
    """Every element with a ``data-testid``: its attributes and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._open: list[tuple[str, dict[str, Any]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "data-testid" in values:
            item: dict[str, Any] = {**values, "tag": tag, "text": ""}
            self.found.append(item)
            if tag not in ("input", "br", "img", "polyline", "line"):
                self._open.append((tag, item))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for _, item in self._open:
            item["text"] += data + " "  # text of separate elements stays apart


def by_testid(html: str, testid: str) -> list[dict[str, Any]]:
    return [e for e in Elements(html).found if e["data-testid"] == testid]


def text_of(html: str, testid: str) -> str:
    (element,) = by_testid(html, testid)
    return " ".join(str(element["text"]).split())


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no form with a CSRF token on the page"
    return match.group(1)


@dataclass
class Site:
    server: httpd.Server
    client: httpx.Client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.get(path).text)

    def post(self, path: str, data: dict[str, str], *, token: str | None = "page",
             page: str = "/", **kwargs: Any) -> httpx.Response:
        """A form; its token read from ``page`` (``token=None``: none sent)."""
        if token == "page":
            token = self.csrf(page)
        form = dict(data) if token is None else {**data, "csrf": token}
        return self.client.post(path, data=form, **kwargs)

    def login(self, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> httpx.Response:
        return self.post("/login", {"name": name, "password": password, "next": "/"},
                         page="/login")


@contextmanager
def serve(source: Callable[[], App] | App) -> Iterator[Site]:
    """The dashboard alone on a free loopback port, as ``channelsync web`` serves it."""
    get = source if callable(source) and not isinstance(source, App) else (lambda: source)
    app = get()
    with (httpd.serve("127.0.0.1:0", routes(get, app.config.web), setting="web.listen")
          as server, httpx.Client(base_url=server.url, timeout=30) as client):
        yield Site(server, client)
