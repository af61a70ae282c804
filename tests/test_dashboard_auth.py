"""The dashboard's doors: login and logout, roles, CSRF, the session cookie, no secrets shown.

Served by the real stack (uvicorn on a loopback port, as ``channelsync web`` serves it),
so the cookie, the proxy headers and the client address are what a browser gets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from channelsync.ledger.conflicts import ConflictRecord, open_conflicts
from channelsync.ledger.schema import mov_t, sku_t
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from channelsync.service.web.dashboard import _auth
from tests.dashboard_helpers import (
    ADMIN,
    ADMIN_HASH,
    SESSION_SECRET,
    SHOP_SECRET,
    VIEWER,
    VIEWER_HASH,
    VIEWER_PASSWORD,
    WEBHOOK_SECRET,
    Site,
    by_testid,
    make_config,
    serve,
    text_of,
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = App(make_config(f"sqlite:///{tmp_path}/ledger.db"))
    application.set_stock([StockRow("MUG", 5)], reason="count")
    yield application
    application.close()


@pytest.fixture
def site(app: App) -> Iterator[Site]:
    with serve(app) as served:
        yield served


def on_hand(app: App, sku: str = "MUG") -> int:
    with app.db.connect() as conn:
        return int(conn.execute(sa.select(sku_t.c.on_hand).where(sku_t.c.sku == sku)).scalar())


def movements(app: App) -> int:
    with app.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(mov_t)).scalar())


def test_pages_ask_for_a_login_and_log_out_ends_the_session(site: Site) -> None:
    first = site.get("/stock?q=MUG")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fstock%3Fq%3DMUG"
    login_page = site.get("/login?next=%2Fstock")
    assert by_testid(login_page.text, "login-form")
    answer = site.post("/login", {"name": ADMIN, "password": "alice-password-1",
                                  "next": "/stock?q=MUG"}, page="/login")
    assert answer.status_code == 303 and answer.headers["location"] == "/stock?q=MUG"
    page = site.get("/")
    assert page.status_code == 200
    assert text_of(page.text, "user-name") == ADMIN
    assert site.get("/login").status_code == 303  # logged in already
    out = site.post("/logout", {})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert site.get("/").status_code == 303


def test_a_wrong_password_and_an_unknown_name_are_refused_alike(site: Site) -> None:
    wrong = site.login(ADMIN, "not-the-password")
    unknown = site.login("mallory", "alice-password-1")
    for answer in (wrong, unknown):
        assert answer.status_code == 400
        assert "Wrong name or password." in answer.text
    assert site.get("/").status_code == 303


def test_repeated_failures_are_throttled(site: Site) -> None:
    for _ in range(_auth.MAX_FAILURES):
        assert site.login(ADMIN, "guess").status_code == 400
    blocked = site.login()  # even the right password waits now
    assert blocked.status_code == 429
    assert site.get("/").status_code == 303


def test_the_login_form_needs_its_csrf_token(site: Site) -> None:
    answer = site.post("/login", {"name": ADMIN, "password": "alice-password-1"}, token=None)
    assert answer.status_code == 403
    assert site.get("/").status_code == 303


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(site: Site) -> None:
    answer = site.login()
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Max-Age=43200" in cookie  # session_hours = 12
    assert "Secure" not in cookie  # plain HTTP on loopback: a browser would drop it
    # Through a TLS proxy on this machine (uvicorn trusts its X-Forwarded-Proto).
    proxied = site.post("/logout", {}, headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in proxied.headers["set-cookie"]


@pytest.mark.parametrize(("setting", "secure"), [("true", True), ("false", False)])
def test_secure_cookies_may_be_forced_either_way(tmp_path: Path, setting: str,
                                                  secure: bool) -> None:
    config = make_config(f"sqlite:///{tmp_path}/l.db", web=f"secure_cookies = {setting}")
    application = App(config)
    try:
        with serve(application) as site:
            plain = site.get("/login").headers["set-cookie"]
            site.client.cookies.clear()
            https = site.get("/login", headers={"X-Forwarded-Proto": "https"})
            assert ("; Secure" in plain) is secure
            assert ("; Secure" in https.headers["set-cookie"]) is secure
    finally:
        application.close()


def test_a_viewer_sees_no_forms_and_may_not_post(app: App, site: Site) -> None:
    with app.db.begin() as conn:
        (conflict,) = open_conflicts(conn, [ConflictRecord("drift", "shop:MUG", "drifted",
                                                           sku="MUG")], app.now())
    assert site.login(VIEWER, VIEWER_PASSWORD).status_code == 303
    page = site.get("/stock/MUG").text
    assert not by_testid(page, "set-form") and not by_testid(page, "adjust-form")
    assert not by_testid(site.get("/conflicts").text, f"ack-form-{conflict}")
    before = movements(app)
    for path, form in (("/stock/set", {"sku": "MUG", "quantity": "1", "reason": "x"}),
                       ("/stock/adjust", {"sku": "MUG", "delta": "-1", "reason": "x"}),
                       (f"/conflicts/{conflict}/ack", {})):
        answer = site.post(path, form)
        assert answer.status_code == 403, path
        assert "only an admin" in answer.text
    assert (movements(app), on_hand(app)) == (before, 5)
    assert "acknowledged" not in site.get("/conflicts").text


def test_a_post_without_the_right_csrf_token_is_refused(app: App, site: Site) -> None:
    site.login()
    form = {"sku": "MUG", "delta": "-1", "reason": "damaged"}
    assert site.post("/stock/adjust", form, token=None).status_code == 403
    assert site.post("/stock/adjust", form, token="forged").status_code == 403
    with serve(app) as other:  # a token of another session
        other.login()
        assert site.post("/stock/adjust", form, token=other.csrf()).status_code == 403
    assert on_hand(app) == 5
    assert site.post("/stock/adjust", form).status_code == 303
    assert on_hand(app) == 4


def test_a_post_that_is_not_a_form_is_refused(site: Site) -> None:
    site.login()
    answer = site.client.post("/stock/adjust", json={"csrf": site.csrf(), "sku": "MUG"})
    assert answer.status_code == 415


def test_a_session_ends_when_the_password_changes(tmp_path: Path, app: App) -> None:
    holder = [app]
    with serve(lambda: holder[0]) as site:
        site.login()
        assert site.get("/").status_code == 200
        # The config is reloaded with alice's hash replaced (she changed her password).
        changed = make_config(f"sqlite:///{tmp_path}/ledger.db")
        web = changed.web.model_copy(update={"users": [
            changed.web.users[0].model_copy(update={"password_hash": SecretStr(VIEWER_HASH)}),
            changed.web.users[1]]})
        holder[0] = App(type(changed)(**{**changed.__dict__, "web": web}))
        try:
            assert site.get("/").status_code == 303
        finally:
            holder[0].close()


def test_a_session_expires(tmp_path: Path) -> None:
    application = App(make_config(f"sqlite:///{tmp_path}/l.db", web="session_hours = 0.0004"))
    try:
        with serve(application) as site:
            site.login()
            assert site.get("/").status_code == 200
            time.sleep(2.0)  # 0.0004 h is 1.44 s
            assert site.get("/").status_code == 303
    finally:
        application.close()


def test_a_forged_or_foreign_cookie_is_no_session(site: Site) -> None:
    site.login()
    value = site.client.cookies["channelsync_session"]
    site.client.cookies.clear()
    site.client.cookies.set("channelsync_session", value[:-2] + "xx")
    assert site.get("/").status_code == 303


def test_login_never_redirects_to_another_site(site: Site) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "stock"):
        site.client.cookies.clear()
        answer = site.post("/login", {"name": ADMIN, "password": "alice-password-1",
                                      "next": target}, page="/login")
        assert answer.headers["location"] == "/", target


def test_without_users_loopback_is_admin_and_says_so(tmp_path: Path) -> None:
    application = App(make_config(f"sqlite:///{tmp_path}/l.db", users=False))
    application.set_stock([StockRow("MUG", 5)], reason="count")
    try:
        with serve(application) as site:
            page = site.get("/stock/MUG")
            assert page.status_code == 200
            assert by_testid(page.text, "no-login-banner")
            assert by_testid(page.text, "adjust-form")
            assert site.get("/login").headers["location"] == "/"
            answer = site.post("/stock/adjust", {"sku": "MUG", "delta": "2", "reason": "found"},
                               page="/stock/MUG")
            assert answer.status_code == 303
            assert on_hand(application) == 7
            # Through a proxy (anyone's request) or from another address: refused.
            for headers in ({"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "203.0.113.9"},
                            {"Forwarded": "for=203.0.113.9"}):
                refused = site.get("/", headers=headers)
                assert refused.status_code == 403, headers
                assert "no users configured" in refused.text
    finally:
        application.close()


def test_pages_carry_security_headers(site: Site) -> None:
    site.login()
    answer = site.get("/stock")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_no_secret_is_on_any_page(app: App, site: Site) -> None:
    with app.db.begin() as conn:  # a message that quotes a secret, as a careless error might
        open_conflicts(conn, [ConflictRecord(
            "push_failed", "shop:MUG", f"refused with key {SHOP_SECRET} and {WEBHOOK_SECRET}",
            sku="MUG", channel="shop")], app.now())
    secrets = [SESSION_SECRET, SHOP_SECRET, WEBHOOK_SECRET, ADMIN_HASH, VIEWER_HASH, "$argon2"]
    pages = [site.get("/login").text]
    site.login()
    for path in ("/", "/?fragment=live", "/stock", "/stock?q=mug&sort=available",
                 "/stock/MUG", "/conflicts", "/orders", "/orders/shop/1", "/stock/NONE"):
        pages.append(site.get(path).text)
    assert any("refused with key ***" in page for page in pages)
    for page in pages:
        for secret in secrets:
            assert secret not in page
