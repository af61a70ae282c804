"""Alerts through apprise to a real local HTTP receiver (``json://127.0.0.1``), on real ledgers."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app
from channelsync.config import Config, parse_config
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.schema import conflict_t, kit_t, state_t
from channelsync.ledger.stock import StockRow, set_stock
from channelsync.service.alerts import AlertDispatcher, AlertRun, AppriseSender, mask_url
from tests.alert_receiver import SECRET, Receiver
from tests.ledger_helpers import T0, apply, count, snap
from tests.ledger_helpers import open_conflicts as list_open

CHANNELS = """
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
[[channel]]
name = "outlet"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
"""
HOUR = 3600.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_config(engine: Engine, urls: list[str], alerts: str = "") -> Config:
    url = engine.url.render_as_string(hide_password=False)
    text = (f'[database]\nurl = "{url}"\n[alerts]\nurls = {json.dumps(urls)}\n'
            f"repeat_interval = {HOUR}\nchannel_down_after = 600\n{alerts}\n{CHANNELS}")
    return parse_config(text, env={})


def dispatcher(engine: Engine, urls: list[str], alerts: str = "",
               clock: Clock | None = None) -> AlertDispatcher:
    return AlertDispatcher(make_config(engine, urls, alerts), engine, clock=clock or Clock())


def oversell(engine: Engine) -> None:
    """The last MUG sold on both channels."""
    count(engine, MUG=1)
    apply(engine, "shop", snap("1001", sku="MUG"))
    apply(engine, "outlet", snap("2002", sku="MUG"))


def conflict(engine: Engine, kind: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(conflict_t).where(conflict_t.c.kind == kind))
                    .mappings().one())


# -- once, again after the interval, and resolved -------------------------------------------


def test_an_oversell_is_alerted_once_naming_the_competing_orders(
    engine: Engine, receiver: Receiver
) -> None:
    oversell(engine)
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    assert alerts.run_once() == AlertRun(sent=1)
    for _ in range(3):
        clock.tick(60)
        assert alerts.run_once() == AlertRun()
    (post,) = receiver.posts
    assert post["title"] == "channelsync: oversell MUG"
    assert post["path"] == f"/hook/{SECRET}"
    body = post["message"]
    assert "MUG is oversold: 2 reserved but 1 on hand" in body
    assert "- shop order 1001 (1 unit reserved)" in body
    assert "- outlet order 2002 (1 unit reserved)" in body
    assert conflict(engine, "oversell")["notified_at"] == clock.now - timedelta(seconds=180)


def test_a_conflict_still_open_is_alerted_again_after_the_repeat_interval(
    engine: Engine, receiver: Receiver
) -> None:
    oversell(engine)
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    alerts.run_once()
    clock.tick(HOUR - 1)
    assert alerts.run_once().sent == 0
    clock.tick(1)
    assert alerts.run_once().sent == 1
    assert alerts.run_once().sent == 0
    assert receiver.titles() == ["channelsync: oversell MUG"] * 2
    assert "Reminder: still open" in receiver.posts[1]["message"]
    with engine.begin() as conn:  # acknowledged: no more reminders
        conn.execute(conflict_t.update().values(acked_at=clock.now))
    clock.tick(2 * HOUR)
    assert alerts.run_once().sent == 0


def test_a_resolved_conflict_sends_one_resolved_notice(engine: Engine, receiver: Receiver) -> None:
    oversell(engine)
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    alerts.run_once()
    count(engine, MUG=5)  # a recount: the oversell clears
    assert list_open(engine, "oversell") == []
    clock.tick(60)
    assert alerts.run_once() == AlertRun(resolved_notices=1)
    clock.tick(2 * HOUR)
    assert alerts.run_once() == AlertRun()
    assert receiver.titles() == ["channelsync: oversell MUG", "channelsync: resolved oversell MUG"]
    assert "It was: MUG is oversold" in receiver.posts[1]["message"]


def test_a_conflict_resolved_before_it_was_alerted_sends_nothing(
    engine: Engine, receiver: Receiver
) -> None:
    with engine.begin() as conn:
        open_conflicts(conn, [ConflictRecord(kind="drift", subject="shop:MUG", channel="shop",
                                             message="shows 4, 3 pushed")], T0)
        resolve_conflicts(conn, "drift", ["shop:MUG"], T0)
    assert dispatcher(engine, [receiver.url()]).run_once() == AlertRun()
    assert receiver.posts == []


def test_an_oversell_that_cleared_before_the_first_alert_run_is_still_told_once(
    engine: Engine, receiver: Receiver
) -> None:
    """Two buyers paid for one unit: that the ledger balanced a second later (a delivery, a
    cancellation) does not undo it. One alert says so; no resolved notice follows."""
    oversell(engine)
    with engine.begin() as conn:
        resolve_conflicts(conn, "oversell", ["MUG"], T0 + timedelta(seconds=1))
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    assert alerts.run_once() == AlertRun(sent=1)
    clock.tick(HOUR * 3)
    assert alerts.run_once() == AlertRun()
    (post,) = receiver.posts
    assert post["title"] == "channelsync: oversell MUG"
    assert "- shop order 1001" in post["message"] and "until" in post["message"]


def test_each_kind_says_what_happened(engine: Engine, receiver: Receiver) -> None:
    apply(engine, "shop", snap("1001", sku="NOPE"), snap("1002", sku="NOPE"))
    with engine.begin() as conn:
        open_conflicts(conn, [
            ConflictRecord(kind="push_failed", subject="shop:MUG", channel="shop",
                           message="shop: pushing 4 to MUG failed 5 times: HTTP 503",
                           detail={"target": 4, "attempts": 5, "error": "HTTP 503"}),
            ConflictRecord(kind="drift", subject="outlet:CUP", channel="outlet", sku="CUP",
                           message="outlet: CUP shows 7 but 5 was pushed",
                           detail={"observed": 7, "expected": 5}),
            ConflictRecord(kind="bad_record", subject="shop:o9", channel="shop",
                           message="shop: a record could not be used (no SKU)"),
        ], T0)
    assert dispatcher(engine, [receiver.url()]).run_once().sent == 4
    bodies = {p["title"]: p["message"] for p in receiver.posts}
    unknown = bodies["channelsync: unknown SKU shop:NOPE"]
    assert "shop: orders for SKU 'NOPE'" in unknown and "Orders: 1001, 1002" in unknown
    failed = bodies["channelsync: push failed shop:MUG"]
    assert "Listing shop:MUG: pushing quantity 4 failed (5 attempts)" in failed
    assert "Error: HTTP 503" in failed
    drift = bodies["channelsync: drift outlet:CUP"]
    assert "the channel shows 7 (observed) but 5 was pushed (expected)" in drift
    assert bodies["channelsync: bad record shop:o9"].startswith(
        "shop: a record could not be used (no SKU)\n\nConflict ")


# -- channel_down and low_stock ---------------------------------------------------------------


def write_state(engine: Engine, name: str, **values: Any) -> None:
    with engine.begin() as conn:
        if not conn.execute(state_t.update().where(state_t.c.name == name).values(**values))\
                .rowcount:
            conn.execute(state_t.insert().values(name=name, **values))


def test_a_channel_unreachable_past_the_threshold_is_alerted_and_cleared(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    error = "RetriableChannelError: connection refused"
    write_state(engine, "shop", pulled_at=clock.now - timedelta(seconds=300), last_error=error,
                last_error_at=clock.now)
    write_state(engine, "outlet", pulled_at=clock.now - timedelta(days=2))  # idle, not failing
    write_state(engine, "gone", pulled_at=T0 - timedelta(days=9), last_error=error,
                last_error_at=T0)  # no longer configured
    assert alerts.run_once() == AlertRun()
    clock.tick(299)
    assert alerts.run_once() == AlertRun()
    clock.tick(1)  # 600 s since the last good pull
    run = alerts.run_once()
    assert run.sent == 1 and len(run.opened) == 1
    assert receiver.titles() == ["channelsync: channel down shop"]
    body = receiver.posts[0]["message"]
    assert "Channel shop has had no successful pull since 2026-11-01 12:55:00 UTC" in body
    assert "connection refused" in body
    clock.tick(60)
    write_state(engine, "shop", pulled_at=clock.now, last_error="")
    assert alerts.run_once() == AlertRun(resolved_notices=1)
    assert receiver.titles()[-1] == "channelsync: resolved channel down shop"
    assert list_open(engine, "channel_down") == []


def test_a_channel_that_never_pulled_counts_from_its_first_failure(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url()], clock=clock)
    write_state(engine, "outlet", last_error="PermanentChannelError: 401 Unauthorized",
                last_error_at=clock.now)
    assert alerts.run_once().opened == []
    clock.tick(600)
    write_state(engine, "outlet", last_error_at=clock.now)  # still failing, every cycle
    assert len(alerts.run_once().opened) == 1
    assert "Channel outlet has never pulled successfully" in receiver.posts[0]["message"]


def test_low_stock_uses_the_per_sku_threshold_else_the_default(
    engine: Engine, receiver: Receiver
) -> None:
    with engine.begin() as conn:
        set_stock(conn, [StockRow("MUG", 2), StockRow("CUP", 10, safety_stock=8),
                         StockRow("LID", 3), StockRow("RARE", 4), StockRow("SPARE", 1)],
                  now=T0, reason="count")
        conn.execute(kit_t.insert().values(kit_sku="PAIR", component_sku="LID", quantity=2))
    clock = Clock()
    thresholds = "low_stock = 2\nlow_stock_sku = {RARE = 5, SPARE = 0, PAIR = 1}"
    alerts = dispatcher(engine, [receiver.url()], thresholds, clock)
    run = alerts.run_once()
    assert run.sent == 4 and len(run.opened) == 4
    assert sorted(receiver.titles()) == [f"channelsync: low stock {s}"
                                         for s in ("CUP", "MUG", "PAIR", "RARE")]
    bodies = {p["title"]: p["message"] for p in receiver.posts}
    assert bodies["channelsync: low stock CUP"].startswith(
        "CUP: 2 units available (on hand 10 - reserved 0 - safety 8), "
        "at or below the low-stock threshold of 2.")
    assert "RARE: 4 units available" in bodies["channelsync: low stock RARE"]
    assert "threshold of 5" in bodies["channelsync: low stock RARE"]
    count(engine, MUG=3)
    clock.tick(60)
    assert alerts.run_once() == AlertRun(resolved_notices=1)
    assert receiver.titles()[-1] == "channelsync: resolved low stock MUG"
    unwatched = dispatcher(engine, [receiver.url()], clock=clock)  # thresholds removed
    assert unwatched.run_once().resolved_notices == 3
    assert list_open(engine, "low_stock") == []


def test_without_urls_conflicts_are_raised_but_nothing_is_sent_or_marked(engine: Engine) -> None:
    oversell(engine)
    run = dispatcher(engine, [], "low_stock = 0").run_once()
    assert run.sent == 0 and len(run.opened) == 1  # MUG: 1 on hand - 2 reserved
    assert conflict(engine, "oversell")["notified_at"] is None
    assert conflict(engine, "low_stock")["notified_at"] is None


# -- failing destinations ---------------------------------------------------------------------


def test_a_failing_destination_is_logged_without_secrets_and_retried(
    engine: Engine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    oversell(engine)
    closed = f"json://alerts:{SECRET}@127.0.0.1:{closed_port()}/hook/{SECRET}"
    clock = Clock()
    alerts = dispatcher(engine, [receiver.url(), closed], clock=clock)
    receiver.status = 500
    assert alerts.run_once() == AlertRun(failed=1)
    assert conflict(engine, "oversell")["notified_at"] is None  # the claim was undone
    assert "urls[0] json://127.0.0.1" in caplog.text and "urls[1] json://127.0.0.1" in caplog.text
    assert SECRET not in caplog.text
    receiver.status = 200
    clock.tick(60)
    assert alerts.run_once() == AlertRun(sent=1)  # one destination took it: sent
    clock.tick(60)
    assert alerts.run_once() == AlertRun()  # not re-sent while the other stays broken
    assert receiver.titles() == ["channelsync: oversell MUG"]
    assert SECRET not in caplog.text


def test_a_sender_that_raises_counts_as_a_failed_send(engine: Engine) -> None:
    class Broken:
        def send(self, title: str, body: str) -> bool:
            raise RuntimeError("boom")

    oversell(engine)
    alerts = AlertDispatcher(make_config(engine, []), engine, clock=Clock(), sender=Broken())
    assert alerts.run_once() == AlertRun(failed=1)


def test_destinations_are_named_without_their_secrets(caplog: pytest.LogCaptureFixture) -> None:
    assert mask_url(f"json://user:{SECRET}@127.0.0.1:8080/{SECRET}") == "json://127.0.0.1"
    assert mask_url(f"mailtos://me:{SECRET}@smtp.example.com?to=a@b.c") == \
        "mailtos://smtp.example.com"
    assert mask_url("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ") == "slack://***"
    assert mask_url("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345") == \
        "tgram://***"
    assert mask_url("json://[::1]:9000/x") == "json://[::1]"
    assert mask_url(SECRET) == "***"
    sender = AppriseSender([])
    assert sender.send("t", "b") is False and sender.send_each("t", "b") == []
    caplog.set_level(logging.DEBUG, logger="apprise")
    pasted = AppriseSender([SecretStr(SECRET)])  # a token without its scheme
    assert pasted.send_each("t", "b") == [("urls[0] ***", False)]
    assert "urls[0] ***" in caplog.text and SECRET not in caplog.text


# -- replicas ---------------------------------------------------------------------------------


def test_two_replicas_send_each_alert_once(
    engine: Engine, ledger_url: str, receiver: Receiver
) -> None:
    with engine.begin() as conn:
        open_conflicts(conn, [ConflictRecord(kind="drift", subject=f"shop:SKU{i}", channel="shop",
                                             message="drift", detail={"observed": i})
                              for i in range(12)], T0)
    receiver.delay = 0.02
    other = open_ledger_engine(ledger_url)
    replicas = [dispatcher(engine, [receiver.url()]), dispatcher(other, [receiver.url()])]
    runs: list[AlertRun] = []
    barrier = threading.Barrier(len(replicas))

    def work(replica: AlertDispatcher) -> None:
        barrier.wait()
        runs.append(replica.run_once())

    threads = [threading.Thread(target=work, args=(r,)) for r in replicas]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.dispose()
    assert sum(r.sent for r in runs) == 12 and sum(r.failed for r in runs) == 0
    assert sorted(receiver.titles()) == sorted(f"channelsync: drift shop:SKU{i}"
                                               for i in range(12))


def test_a_claim_on_a_stale_read_fails(engine: Engine) -> None:
    oversell(engine)
    alerts = dispatcher(engine, [])
    conflict_id = conflict(engine, "oversell")["id"]
    first, second = T0, T0 + timedelta(seconds=1)
    assert alerts._claim(conflict_id, "notified_at", None, first)
    assert not alerts._claim(conflict_id, "notified_at", None, second)  # the other replica
    assert alerts._claim(conflict_id, "notified_at", first, second)
    assert not alerts._claim(conflict_id, "notified_at", first, second)


# -- channelsync alerts test ------------------------------------------------------------------


def write_config(tmp_path: Path, sqlite_url: str, urls: list[str]) -> Path:
    path = tmp_path / "channels.toml"
    path.write_text(f'[database]\nurl = "{sqlite_url}"\n[alerts]\nurls = {json.dumps(urls)}\n')
    return path


def alerts_test(path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(path), "alerts", "test", *args])


def test_alerts_test_reaches_every_destination(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    result = alerts_test(write_config(tmp_path, sqlite_url, [receiver.url()]))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "urls[0] json://127.0.0.1: OK"
    assert receiver.titles() == ["channelsync: test alert"]
    assert SECRET not in result.stdout + result.stderr


def test_alerts_test_fails_when_a_destination_fails(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    closed = f"json://127.0.0.1:{closed_port()}/{SECRET}"
    path = write_config(tmp_path, sqlite_url, [receiver.url(), closed])
    result = alerts_test(path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"ok": False, "destinations": [
        {"destination": "urls[0] json://127.0.0.1", "ok": True},
        {"destination": "urls[1] json://127.0.0.1", "ok": False}]}
    assert SECRET not in result.stdout + result.stderr
    receiver.status = 500
    result = alerts_test(path)
    assert result.exit_code == 1
    assert "urls[0] json://127.0.0.1: FAILED" in result.stdout


def test_alerts_test_without_urls_is_a_configuration_error(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = alerts_test(write_config(tmp_path, sqlite_url, []))
    assert result.exit_code == 2
    assert "no alert destinations" in result.stderr
