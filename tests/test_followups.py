"""Follow-ups: due by rule after delivery or shipping, recorded before they are sent and sent
once, across a process killed between the two and a daemon killed there; retries, then one
conflict that the alerts send; dry runs; template errors; Amazon's policy; the CLI. On real
SQLite and PostgreSQL, with a real apprise ``json://`` receiver on loopback and a real
outbox file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app as cli
from channelsync.config import Config, parse_config
from channelsync.errors import ConfigError
from channelsync.followups.queries import requeue
from channelsync.followups.rules import LATE_LIMIT
from channelsync.followups.run import ATTEMPTS, LEASE, FollowupSender, retry_delay
from channelsync.followups.schema import followup_t
from channelsync.ledger.schema import conflict_t, line_t, sku_t
from channelsync.orders.schema import order_t
from channelsync.service.alerts import AlertDispatcher
from tests.alert_receiver import SECRET, Receiver
from tests.test_engine import Clock

pytestmark = pytest.mark.usefixtures("fake_registry")  # tests.conftest

ROOT = Path(__file__).resolve().parent.parent
HEADER = """
[database]
url = "@URL@"
[loyalty]
salt = "followup-test-salt-0123456789abcdef"
[[channel]]
name = "a"
type = "fake"
[[channel]]
name = "b"
type = "fake"
[[channel]]
name = "amz"
type = "amazon"
marketplace = "DE"
seller_id = "A1EXAMPLE"
refresh_token = "Atzr|test-refresh"
lwa_app_id = "amzn1.application-oa2-client.test"
lwa_client_secret = "lwa-secret"
endpoint = "http://127.0.0.1:9"
@AMAZON@
"""
THANKS = """
[[followup]]
name = "thanks"
after = "14d"
subject = "Thank you for order {{ order_id }}"
template = '''
Hello {{ buyer }},
your {% for i in items %}{{ i.quantity }} x {{ i.title or i.sku }}{% endfor %} arrived on
{{ delivered_at.strftime('%d %B') }}. Total {{ total }} {{ currency }}.
'''
urls = ["@RECEIVER@"]
outbox = "@OUTBOX@"
"""


def config_text(url: str, rules: str, *, receiver: Receiver | None = None,
                outbox: Path | None = None, amazon: str = "") -> str:
    text = HEADER.replace("@URL@", url).replace("@AMAZON@", amazon) + rules
    return (text.replace("@RECEIVER@", receiver.url() if receiver else "json://127.0.0.1:9/x")
            .replace("@OUTBOX@", str(outbox or "")))


def make_config(engine: Engine, rules: str, **kwargs: Any) -> Config:
    url = engine.url.render_as_string(hide_password=False)
    return parse_config(config_text(url, rules, **kwargs), env={})


def add(engine: Engine, channel: str, order_id: str, now: datetime, *,
        delivered: float | None = None, shipped: float | None = None, placed: float = 20,
        total: str = "24.50", buyer: str = "Jane D.", buyer_key: str = "",
        stage: str | None = None) -> None:
    """An order in the book, its times in days before ``now``, with one line of 2 mugs."""
    def ago(days: float | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    stage = stage or ("delivered" if delivered is not None else
                      "shipped" if shipped is not None else "paid")
    with engine.begin() as conn:
        if conn.execute(sa.select(sku_t.c.sku).where(sku_t.c.sku == "MUG")).first() is None:
            conn.execute(sku_t.insert().values(sku="MUG", title="Blue mug"))
        conn.execute(order_t.insert().values(
            channel=channel, order_id=order_id, stage=stage, buyer=buyer, total=total,
            currency="EUR", placed_at=ago(placed), first_seen_at=ago(placed),
            shipped_at=ago(shipped if shipped is not None else delivered),
            delivered_at=ago(delivered), buyer_key=buyer_key))
        conn.execute(line_t.insert().values(channel=channel, order_id=order_id, line_id="1",
                                            channel_sku="MUG", sku="MUG", ordered=2,
                                            state="applied"))


def followups(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(followup_t).order_by(followup_t.c.id))
                .mappings()]


def open_conflicts(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(conflict_t).where(
            conflict_t.c.kind == "followup_failed", conflict_t.c.resolved_at.is_(None)))
            .mappings()]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
        else []


# -- which orders, and when ----------------------------------------------------------------------


RULES = """
[[followup]]
name = "thanks"
after = "14d"
template = "Thank you, {{ buyer }}"
outbox = "@OUTBOX@"
[[followup]]
name = "tracking"
after = "36h"
since = "shipped"
channel = "b"
min_total = 50
template = "Did it arrive?"
outbox = "@OUTBOX@"
[[followup]]
name = "welcome"
after = "1d"
only_first_order = true
template = "Welcome"
outbox = "@OUTBOX@"
"""


def test_due_after_delivery_or_shipping_by_channel_total_and_first_order(
    engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    now = clock()
    config = make_config(engine, RULES, outbox=tmp_path / "outbox.jsonl")
    add(engine, "a", "1", now, delivered=15, buyer_key="x")  # thanks; welcome too late
    add(engine, "a", "2", now, delivered=13)  # thanks tomorrow
    add(engine, "a", "3", now, delivered=30)  # thanks was due 16 days ago: too late
    add(engine, "a", "4", now, delivered=15, stage="returned")
    add(engine, "b", "5", now, shipped=2, total="60.00")  # tracking
    add(engine, "b", "6", now, shipped=2, total="40.00")  # below min_total
    add(engine, "a", "7", now, shipped=2, total="100.00")  # not channel b
    add(engine, "b", "8", now, shipped=1, total="80.00")  # 36 hours not passed
    add(engine, "b", "14", now, shipped=2, total="")  # no total: not above anything
    add(engine, "a", "9", now, delivered=2, placed=4, buyer_key="x")  # x's second order
    add(engine, "b", "10", now, delivered=2, placed=4, buyer_key="y")  # y's first...
    add(engine, "b", "11", now, placed=10, buyer_key="y", stage="cancelled")  # ...this one off
    add(engine, "b", "12", now, delivered=2, placed=4)  # buyer unknown: no first order
    add(engine, "amz", "13", now, delivered=15, buyer_key="z")  # Amazon: no contact
    sender = FollowupSender(config, engine, clock=clock)
    due = {(d.rule, d.channel, d.order_id): d.due_at for d in sender.due_now()}
    assert due == {("thanks", "a", "1"): now - timedelta(days=1),
                   ("tracking", "b", "5"): now - timedelta(hours=12),
                   ("welcome", "b", "10"): now - timedelta(days=1)}
    assert timedelta(days=7) == LATE_LIMIT
    run = sender.run_once()
    assert (run.sent, run.retrying, run.failed) == (3, 0, 0)
    assert sender.due_now() == []
    clock.tick(86400)  # a day later a/2 and b/8 are due
    assert {(d.rule, d.order_id) for d in sender.due_now()} == {("thanks", "2"),
                                                               ("tracking", "8")}


# -- sent once -----------------------------------------------------------------------------------


def test_each_due_followup_is_sent_once_with_the_orders_fields(
    engine: Engine, tmp_path: Path, receiver: Receiver
) -> None:
    clock = Clock()
    outbox = tmp_path / "mail" / "outbox.jsonl"
    config = make_config(engine, THANKS, receiver=receiver, outbox=outbox)
    add(engine, "a", "1042", clock(), delivered=15)
    assert FollowupSender(config, engine, clock=clock).run_once().sent == 1
    for _ in range(3):  # later runs, and a restarted daemon's
        clock.tick(3600)
        assert FollowupSender(config, engine, clock=clock).run_once().sent == 0
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["title"] == "Thank you for order 1042"
    assert post["message"] == "Hello Jane D.,\nyour 2 x Blue mug arrived on\n17 October. " \
        "Total 24.50 EUR."
    (line,) = lines_of(outbox)
    (row,) = followups(engine)
    assert line["key"] == "thanks:a:1042" and line["id"] == row["id"]
    assert (line["subject"], line["body"]) == (post["title"], post["message"])
    assert row["state"] == "sent" and row["sent_at"] == Clock()() and row["attempts"] == 0


CRASH = """
import os, signal, sys
from datetime import datetime
from channelsync import registry
from channelsync.config import load_config
from channelsync.followups import run, send
from channelsync.ledger.migrate import open_ledger_engine

registry.BUILTIN["fake"] = "tests.fakes:FakeConnector"
path, now, where = sys.argv[1], datetime.fromisoformat(sys.argv[2]), sys.argv[3]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if where == "before_send":
    send.Destinations.deliver = die
else:  # sent, not marked
    run.FollowupSender._mark_sent = die
config = load_config(path, env={})
run.FollowupSender(config, open_ledger_engine(config.database_url), clock=lambda: now).run_once()
sys.exit(3)
"""


def crash(config_path: Path, now: datetime, where: str) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(config_path), now.isoformat(),
                           where], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.parametrize("where", ["before_send", "after_send"])
def test_a_process_killed_between_record_and_send_sends_once_after(
    engine: Engine, tmp_path: Path, receiver: Receiver, where: str
) -> None:
    clock = Clock()
    outbox = tmp_path / "outbox.jsonl"
    url = engine.url.render_as_string(hide_password=False)
    path = tmp_path / "channels.toml"
    path.write_text(config_text(url, THANKS, receiver=receiver, outbox=outbox))
    config = make_config(engine, THANKS, receiver=receiver, outbox=outbox)
    add(engine, "a", "1042", clock(), delivered=15)
    crash(path, clock(), where)
    (row,) = followups(engine)
    assert row["state"] == "sending"  # recorded before the send
    delivered = where == "after_send"
    assert (len(receiver.posts), len(lines_of(outbox))) == ((1, 1) if delivered else (0, 0))
    sender = FollowupSender(config, engine, clock=clock)
    assert sender.run_once().sent == 0  # the dead process's lease holds it a while
    clock.tick(LEASE + 1)
    assert sender.run_once().sent == 1
    clock.tick(3600)
    assert sender.run_once().sent == 0
    assert followups(engine)[0]["state"] == "sent"
    assert len(lines_of(outbox)) == 1  # the file was read for it first
    # Apprise cannot be asked what it sent: a crash after it took the message, before
    # the ledger recorded that, sends it again (at least once in that window only).
    assert len(receiver.posts) == (2 if delivered else 1)


DAEMON = """
import os, signal, sys
from channelsync import registry
from channelsync.followups import run, send

registry.BUILTIN["fake"] = "tests.fakes:FakeConnector"
run.LEASE = 1.0
if sys.argv[2] == "crash":
    send.Destinations.deliver = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from channelsync.cli import main
sys.argv = ["channelsync", "--config", sys.argv[1], "--log-level", "info", "run"]
main()
"""


def test_a_daemon_killed_between_record_and_send_sends_once_when_restarted(
    engine: Engine, tmp_path: Path, receiver: Receiver
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    path = tmp_path / "channels.toml"
    url = engine.url.render_as_string(hide_password=False)
    path.write_text(config_text(url, THANKS, receiver=receiver, outbox=outbox))
    add(engine, "a", "1042", datetime.now(UTC), delivered=15)
    command = [sys.executable, "-c", DAEMON, str(path)]
    first = subprocess.run([*command, "crash"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert [r["state"] for r in followups(engine)] == ["sending"]
    assert receiver.posts == [] and not outbox.exists()
    second = subprocess.Popen([*command, "again"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while followups(engine)[0]["state"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        _, log = second.communicate(timeout=60)
    assert second.returncode == 0, log
    assert followups(engine)[0]["state"] == "sent", log
    assert len(receiver.posts) == 1 and len(lines_of(outbox)) == 1
    assert "follow-ups: 1 sent" in log and SECRET not in log


# -- failures ------------------------------------------------------------------------------------


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, title: str, body: str) -> bool:
        self.sent.append((title, body))
        return True


def test_a_send_that_keeps_failing_is_retried_then_one_conflict_is_alerted(
    engine: Engine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    config = make_config(engine, THANKS.replace('outbox = "@OUTBOX@"', ""), receiver=receiver)
    add(engine, "a", "1", clock(), delivered=15)
    add(engine, "b", "2", clock(), delivered=14.5)
    receiver.status = 500
    sender = FollowupSender(config, engine, clock=clock)
    assert sender.run_once().retrying == 2
    clock.tick(30)  # not yet
    assert sender.run_once().retrying == 0
    assert [r["attempts"] for r in followups(engine)] == [1, 1]
    for attempt in range(1, ATTEMPTS - 1):
        clock.tick(retry_delay(attempt).total_seconds())
        assert sender.run_once().retrying == 2
    clock.tick(retry_delay(ATTEMPTS - 1).total_seconds())
    run = sender.run_once()
    assert (run.failed, len(run.opened)) == (2, 1)
    assert [(r["state"], r["attempts"]) for r in followups(engine)] == [("failed", ATTEMPTS)] * 2
    (conflict,) = open_conflicts(engine)
    assert conflict["subject"] == "thanks"
    assert "2 follow-ups of rule 'thanks' not sent" in conflict["message"]
    assert "not delivered to urls[0] json://127.0.0.1" in conflict["message"]
    alerts = Alerts()
    for _ in range(2):
        AlertDispatcher(config, engine, clock=clock, sender=alerts).run_once()
    assert [title for title, _ in alerts.sent] == ["channelsync: follow-up failed thanks"]
    clock.tick(86400)
    assert sender.run_once().sent == 0  # given up: nothing is tried again by itself
    receiver.status = 200  # the destination works again: the seller retries them
    ids = [r["id"] for r in followups(engine)]
    with engine.begin() as conn:
        assert [requeue(conn, config, row_id, clock()) for row_id in ids] == ["", ""]
        assert requeue(conn, config, 1, clock()) == "it is sending, not failed"
    assert sender.run_once().sent == 2
    assert len(receiver.posts) == 2 and open_conflicts(engine) == []
    assert SECRET not in caplog.text and SECRET not in conflict["message"]


def test_a_template_failing_on_an_order_is_recorded_and_the_rest_goes_on(
    engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    outbox = tmp_path / "outbox.jsonl"
    rules = RULES.replace('"Thank you, {{ buyer }}"', "'''Hi\n{{ {}[buyer] }}'''").replace(
        '"Welcome"', '"{{ items.__class__ }}"')
    config = make_config(engine, rules, outbox=outbox)
    add(engine, "a", "1", clock(), delivered=15, buyer="Jane D.")
    add(engine, "b", "5", clock(), shipped=2, total="60.00")
    add(engine, "b", "10", clock(), delivered=2, placed=4, buyer_key="y", buyer="Jane D.")
    run = FollowupSender(config, engine, clock=clock).run_once()
    assert (run.sent, run.failed, len(run.opened)) == (1, 2, 2)
    states = {r["rule"]: (r["state"], r["last_error"]) for r in followups(engine)}
    assert states["tracking"] == ("sent", "")
    assert states["thanks"] == ("failed", "the template failed: template, line 2: "
                                "UndefinedError: 'dict object' has no attribute '<buyer>'")
    assert states["welcome"][1].startswith("the template failed: template, line 1: "
                                           "SecurityError: access to attribute '__class__'")
    assert {c["subject"] for c in open_conflicts(engine)} == {"thanks", "welcome"}
    assert not any("Jane" in c["message"] for c in open_conflicts(engine))
    assert [line["rule"] for line in lines_of(outbox)] == ["tracking"]
    run = FollowupSender(config, engine, clock=clock).run_once()  # nothing new, no new conflict
    assert (run.sent, run.failed, run.opened) == (0, 0, [])


def test_a_template_that_does_not_compile_is_a_config_error_with_its_place() -> None:
    rules = """
[[followup]]
name = "thanks"
after = "14d"
subject = "Order {{ order_id"
template = '''Hello {{ buyer }},
{% for i in items %}{{ i.sku }}
'''
outbox = "/tmp/x"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(config_text("sqlite://", rules), env={})
    assert info.value.problems == [
        "followup[0] (thanks).subject: not a valid template: unexpected end of template, "
        "expected 'end of print statement'. (line 1)",
        "followup[0] (thanks).template: not a valid template: Unexpected end of template. "
        "Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block "
        "that needs to be closed is 'for'. (line 2)"]


def test_config_check_shows_a_template_error_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "channels.toml"
    path.write_text(config_text("sqlite://", THANKS.replace("{{ buyer }}", "{{ buyer }")))
    result = CliRunner().invoke(cli, ["config", "check", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert "followup[0] (thanks).template: not a valid template: unexpected '}'" in \
        " ".join(result.output.split())
    assert "Traceback" not in result.output and SECRET not in result.output


def test_followups_of_a_cancelled_order_or_a_forgotten_buyer_are_skipped(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    config = make_config(engine, THANKS.replace('outbox = "@OUTBOX@"', ""), receiver=receiver)
    add(engine, "a", "1", clock(), delivered=15)
    add(engine, "a", "2", clock(), delivered=15)
    receiver.status = 500
    sender = FollowupSender(config, engine, clock=clock)
    assert sender.run_once().retrying == 2
    with engine.begin() as conn:
        conn.execute(order_t.update().where(order_t.c.order_id == "1").values(stage="returned"))
        conn.execute(followup_t.update().where(followup_t.c.order_id == "2").values(
            subject="", body=""))  # as `customers forget` leaves them
    receiver.status = 200
    clock.tick(retry_delay(1).total_seconds())
    assert sender.run_once().skipped == 2
    assert [(r["state"], r["last_error"]) for r in followups(engine)] == [
        ("skipped", "the order is returned"), ("skipped", "its buyer was forgotten")]
    assert receiver.posts == []


# -- Amazon's policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("override", [False, True])
def test_amazon_buyers_get_follow_ups_only_when_the_seller_says_so(
    engine: Engine, tmp_path: Path, override: bool
) -> None:
    clock = Clock()
    outbox = tmp_path / "outbox.jsonl"
    config = make_config(engine, THANKS.replace('urls = ["@RECEIVER@"]', ""), outbox=outbox,
                         amazon="followups = true" if override else "")
    (warning,) = [w for w in config.warnings if "amazon" in w]
    assert "forbids contacting buyers outside its own messaging" in warning
    assert ("sends them anyway" in warning) is override
    add(engine, "amz", "111-222", clock(), delivered=15)
    add(engine, "a", "1", clock(), delivered=15)
    assert FollowupSender(config, engine, clock=clock).run_once().sent == (2 if override else 1)
    assert {line["channel"] for line in lines_of(outbox)} == ({"a", "amz"} if override else {"a"})


# -- the command line ----------------------------------------------------------------------------


def cli_run(config_path: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--config", str(config_path), *args],
                                env={"COLUMNS": "80"})
    assert result.exit_code == code, result.output
    assert SECRET not in result.output
    if "--json" not in args:
        assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    return result.output


def test_the_cli_lists_due_and_recorded_follow_ups_and_dry_runs(
    engine: Engine, tmp_path: Path, receiver: Receiver
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    path = tmp_path / "channels.toml"
    url = engine.url.render_as_string(hide_password=False)
    path.write_text(config_text(url, THANKS, receiver=receiver, outbox=outbox))
    now = datetime.now(UTC)  # the CLI's clock
    add(engine, "a", "1042", now, delivered=15)
    add(engine, "amz", "111-222", now, delivered=15)
    shown = cli_run(path, "followups", "--due")
    assert "thanks" in shown and "1042" in shown and "111-222" not in shown
    assert "amz: no follow-ups" in " ".join(shown.split())
    assert json.loads(cli_run(path, "followups", "--due", "--json"))["due"][0]["order_id"] \
        == "1042"
    shown = cli_run(path, "followups", "--dry-run")
    assert "subject: Thank you for order 1042" in shown and "Hello Jane D.," in shown
    assert "to urls[0] json://127.0.0.1, outbox" in " ".join(shown.split())
    (preview,) = json.loads(cli_run(path, "followups", "--dry-run", "--json"))["dry_run"]
    assert preview["body"].startswith("Hello Jane D.,") and preview["error"] is None
    assert receiver.posts == [] and followups(engine) == [] and not outbox.exists()
    assert "no follow-ups recorded" in cli_run(path, "followups")
    assert json.loads(cli_run(path, "followups", "send", "--json"))["sent"] == 1
    shown = cli_run(path, "followups")
    assert "1042" in shown and "sent" in shown
    listed = json.loads(cli_run(path, "followups", "--json"))
    assert [(f["order_id"], f["state"]) for f in listed["followups"]] == [("1042", "sent")]
    assert listed["counts"] == {"sent": 1}
    assert json.loads(cli_run(path, "followups", "--due", "--json")) == {"due": []}
    assert "0 follow-ups sent" in cli_run(path, "followups", "send")
    assert len(receiver.posts) == 1


def test_the_cli_shows_failures_and_retries_them(
    engine: Engine, tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "channels.toml"
    url = engine.url.render_as_string(hide_password=False)
    path.write_text(config_text(url, THANKS.replace('outbox = "@OUTBOX@"', ""),
                                receiver=receiver))
    add(engine, "a", "a-very-long-order-number-1042-0001", datetime.now(UTC), delivered=15)
    receiver.status = 500
    assert "1 to retry" in cli_run(path, "followups", "send", code=1)
    shown = cli_run(path, "followups")
    assert "retry in" in shown and "not delivered to urls[0] json://127.0.0.1" in shown
    with engine.begin() as conn:
        conn.execute(followup_t.update().values(state="failed"))
    receiver.status = 200
    assert "1 follow-up queued again" in cli_run(path, "followups", "retry", "--rule", "thanks")
    assert "it is sending, not failed" in cli_run(path, "followups", "retry", "1", code=1)
    assert "no follow-up with id 7" in cli_run(path, "followups", "retry", "7", code=1)
    assert "1 follow-up sent" in cli_run(path, "followups", "send")


def test_without_rules_nothing_runs(tmp_path: Path) -> None:
    from channelsync.service.daemon import Daemon

    path = tmp_path / "channels.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path}/ledger.db", ""))
    assert "no [[followup]] rules" in cli_run(path, "followups")
    assert json.loads(cli_run(path, "followups", "--json")) == {"followups": []}
    daemon = Daemon(parse_config(path.read_text(), env={}), path, {})
    daemon._start_followups()
    assert daemon.followup_thread is None


def test_the_followups_help_imports_no_heavy_library() -> None:
    from tests.test_cli_start import HEAVY, _loaded_after

    code = ("import contextlib, io\nfrom channelsync.cli import app\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    app(['followups', '--help'], prog_name='channelsync')")
    assert _loaded_after(code) & HEAVY == set()


def test_outbox_lines_cut_short_by_a_crash_stay_apart(tmp_path: Path) -> None:
    from channelsync.followups.send import Message, OutboxFile

    path = tmp_path / "outbox.jsonl"
    path.write_bytes(b'{"key": "thanks:a:1", "bo')  # a write the power cut
    message = Message(2, "thanks:a:2", "thanks", "a", "2", "Hi", "Body", None)
    outbox = OutboxFile(path)
    assert outbox.write(message, Clock()(), check=True)
    assert not outbox.write(message, Clock()(), check=True)
    assert path.read_text().splitlines()[1].startswith('{"body": "Body"')
    assert len(path.read_text().splitlines()) == 2


def test_a_forgotten_buyers_delivered_orders_get_no_follow_up(
    engine: Engine, tmp_path: Path
) -> None:
    from channelsync.customers import queries as customers
    from channelsync.customers.schema import buyer_t

    clock = Clock()
    outbox = tmp_path / "outbox.jsonl"
    config = make_config(engine, THANKS.replace('urls = ["@RECEIVER@"]', ""), outbox=outbox)
    with engine.begin() as conn:
        conn.execute(buyer_t.insert().values(key="f" * 64, display_name="Jane D.", tier="",
                                             tier_order=""))
    add(engine, "a", "1", clock(), delivered=15, buyer_key="f" * 64)
    add(engine, "a", "2", clock(), delivered=15)
    with engine.begin() as conn:
        assert customers.forget(conn, ["f" * 64], clock()).orders == 1
    assert FollowupSender(config, engine, clock=clock).run_once().sent == 1
    assert [line["order_id"] for line in lines_of(outbox)] == ["2"]
