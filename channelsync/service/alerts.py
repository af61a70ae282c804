"""Alerts: each open conflict goes to the ``[alerts] urls`` (apprise) once, again after
``repeat_interval`` while it stays open and unacknowledged, and once more when resolved.

The ``conflict`` table drives it all (``notified_at``, ``resolved_notified_at``), so alerts
work the same with several daemon replicas on one PostgreSQL database and survive restarts.
A replica *claims* an alert with a guarded UPDATE naming the old value (``WHERE id = :id AND
notified_at IS NULL`` or ``= :old``), committed on its own; only the replica whose UPDATE hit
the row sends. If no destination took the alert the claim is undone, so the next run retries.
A replica that dies between claim and send loses that alert until the repeat interval: an
alert goes out at most once per interval.

Kinds: the engine raises those listed in ``channelsync.ledger.conflicts`` (oversell, unknown_sku,
push_failed, drift, bad_record); the dispatcher raises and clears two more:

- ``channel_down`` (subject: channel name): the channel's latest cycle failed
  (``channel_state.last_error``) and its last good pull (``pulled_at``) is older than
  ``channel_down_after``; a channel that never pulled counts from the first failure this
  process saw. Cleared by a good pull, or when the channel is disabled or removed.
- ``low_stock`` (subject: SKU): available (``on_hand - reserved - safety_stock``) at or below
  ``low_stock_sku[sku]``, else ``low_stock`` (SKUs that hold stock; a kit only when
  ``low_stock_sku`` names it); no threshold, no alert. Cleared when above it.
- ``order_late`` (subject: channel:order): paid (or first seen, where the channel gives no
  paid time) longer ago than the channel's ``ship_within`` (else ``[alerts] ship_within``,
  two days) and not shipped yet. Cleared when it ships or is cancelled.

A failing destination is logged as ``urls[i] scheme://host`` (apprise URLs carry tokens) and
never raises. Time is bounded: all destinations of one alert are notified in parallel within
``SEND_TIMEOUT`` (apprise's per-call and per-service deadline; its HTTP plugins also take
``?cto=`` and ``?rto=`` socket timeouts, 4 s each by default), and a run sends at most
``MAX_ALERTS_PER_RUN`` alerts within ``RUN_BUDGET`` seconds; the rest wait for the next run.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import apprise
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Connection, Engine

from channelsync.config import Config
from channelsync.ledger.apply import chunks
from channelsync.ledger.availability import availability
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.schema import conflict_t, sku_t, state_t, utcnow
from channelsync.orders.book import stage_label
from channelsync.orders.queries import overdue

log = logging.getLogger(__name__)

SEND_TIMEOUT = 30.0  # seconds one alert may take, all destinations together
RUN_BUDGET = 120.0  # seconds of sending in one run
MAX_ALERTS_PER_RUN = 50  # alerts plus resolved notices
CHANNEL_DOWN, LOW_STOCK, ORDER_LATE = "channel_down", "low_stock", "order_late"
_TAG = "channelsync-dest-"
_HOST = re.compile(r"^(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_LABELS = {"unknown_sku": "unknown SKU", "push_failed": "push failed", "bad_record": "bad record",
           CHANNEL_DOWN: "channel down", LOW_STOCK: "low stock",
           "followup_failed": "follow-up failed"}


# -- destinations ------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``scheme://host`` of an apprise URL; ``scheme://***`` where the host is really a token
    (``slack://TOKEN/...``, ``tgram://BOT_TOKEN/...``). Paths, users and passwords never show."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return "***"
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    host = netloc[: netloc.find("]") + 1] if netloc.startswith("[") else netloc.partition(":")[0]
    return f"{scheme}://{host if _HOST.match(host) else '***'}"


class Sender(Protocol):
    def send(self, title: str, body: str) -> bool:
        """True when the alert was delivered; never raises."""
        ...


class AppriseSender:
    """Every configured apprise URL in one ``apprise.Apprise``, each tagged with its index so
    that each destination's outcome can be logged on its own."""

    def __init__(self, urls: Sequence[SecretStr], *, timeout: float = SEND_TIMEOUT) -> None:
        self.timeout = timeout
        self.destinations = [f"urls[{i}] {mask_url(u.get_secret_value())}"
                             for i, u in enumerate(urls)]
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=timeout))
        self._usable = 0
        for i, url in enumerate(urls):
            if self._add(url.get_secret_value(), f"{_TAG}{i}"):
                self._usable += 1
            else:
                log.warning("alert destination %s is not a URL apprise understands; skipped",
                            self.destinations[i])

    def _add(self, url: str, tag: str) -> bool:
        if mask_url(url) == "***":  # no scheme: apprise would log the whole string
            return False
        try:
            return bool(self._apprise.add(url, tag=tag))
        except Exception:  # apprise raises on some malformed URLs; the URL is not logged
            return False

    def send(self, title: str, body: str) -> bool:
        """True when at least one destination accepted the alert.

        Requiring all of them would re-send it to the working destinations on every run
        for as long as one destination is broken; each failing one is logged instead.
        """
        return any(ok for _, ok in self.send_each(title, body))

    def send_each(self, title: str, body: str) -> list[tuple[str, bool]]:
        """Send to every destination: ``[(masked destination, delivered)]``, in config order."""
        delivered = self._notify(title, body)
        outcomes = [(name, i in delivered) for i, name in enumerate(self.destinations)]
        for name, ok in outcomes:
            if not ok:
                log.warning("alert %r was not delivered to %s", title, name)
        return outcomes

    def _notify(self, title: str, body: str) -> set[int]:
        """Indexes of the destinations that accepted the alert."""
        if not self._usable:
            return set()
        try:
            result = self._apprise.notify(body=body, title=title, timeout=self.timeout)
            return {int(tag[len(_TAG):]) for service in result if service
                    for tag in service.tag if tag.startswith(_TAG)}
        except Exception as exc:  # apprise must never break a sync; its message may hold a URL
            log.warning("sending alert %r failed: %s", title, type(exc).__name__)
            return set()


# -- the dispatcher ----------------------------------------------------------------------------


@dataclass
class AlertRun:
    sent: int = 0  # alerts delivered (first ones and reminders)
    failed: int = 0  # alerts and resolved notices no destination accepted (retried next run)
    resolved_notices: int = 0  # 'resolved' notices delivered
    opened: list[int] = field(default_factory=list)  # channel_down / low_stock conflicts opened


class AlertDispatcher:
    """Raises and clears channel_down and low_stock, then sends what is due (``run_once``)."""

    def __init__(self, config: Config, db: Engine, *, clock: Callable[[], datetime] = utcnow,
                 sender: Sender | None = None) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        urls = config.alerts.urls
        self.sender: Sender | None = sender if sender is not None else (
            AppriseSender(urls) if urls else None)
        self._first_error: dict[str, datetime] = {}  # never-pulled channels: failing since

    def run_once(self) -> AlertRun:
        now = self.clock()
        run = AlertRun()
        run.opened += self.check_channels(now)
        run.opened += self.check_low_stock(now)
        run.opened += self.check_late_orders(now)
        if self.sender is None:
            return run
        deadline = time.monotonic() + RUN_BUDGET
        run.sent, failed = self._send(self.sender, self._rows(_due(self.config, now)),
                                      "notified_at", alert_message, now, deadline)
        run.resolved_notices, failed_notices = self._send(
            self.sender, self._rows(_RESOLVED_UNNOTIFIED), "resolved_notified_at",
            resolved_message, now, deadline)
        run.failed = failed + failed_notices
        return run

    # -- channel_down and low_stock ----------------------------------------------------------

    def check_channels(self, now: datetime) -> list[int]:
        enabled = sorted(c.name for c in self.config.channels if c.enabled)
        with self.db.begin() as conn:
            rows = conn.execute(sa.select(state_t).where(state_t.c.name.in_(enabled))).mappings()
            records = [r for r in (self._channel_down(dict(row), now) for row in rows) if r]
            _resolve_others(conn, CHANNEL_DOWN, {r.subject for r in records}, now)
            return open_conflicts(conn, records, now)

    def _channel_down(self, row: Mapping[str, Any], now: datetime) -> ConflictRecord | None:
        name = row["name"]
        if not row["last_error"]:
            self._first_error.pop(name, None)
            return None
        pulled = row["pulled_at"]
        since = pulled or self._first_error.setdefault(name, row["last_error_at"] or now)
        if now - since < timedelta(seconds=self.config.alerts.channel_down_after):
            return None
        what = f"no successful pull since {_when(since)}" if pulled else \
            f"never pulled successfully; failing since {_when(since)}"
        return ConflictRecord(
            kind=CHANNEL_DOWN, subject=name, channel=name,
            message=f"{name}: {what}; last error: {row['last_error']}",
            detail={"since": since.isoformat(), "never_pulled": pulled is None,
                    "last_error": row["last_error"],
                    "last_error_at": _iso(row["last_error_at"])},
        )

    def check_low_stock(self, now: datetime) -> list[int]:
        with self.db.begin() as conn:
            low = self._low_stock(conn)
            current: dict[str, str] = dict(conn.execute(
                sa.select(conflict_t.c.subject, conflict_t.c.detail)
                .where(conflict_t.c.kind == LOW_STOCK, conflict_t.c.resolved_at.is_(None))).all())
            _resolve_others(conn, LOW_STOCK, set(low), now)
            # Open the new ones; refresh an open one only when its numbers changed.
            records = [_low_stock_record(sku, detail) for sku, detail in sorted(low.items())
                       if current.get(sku) != json.dumps(detail, sort_keys=True, default=str)]
            return open_conflicts(conn, records, now)

    def _low_stock(self, conn: Connection) -> dict[str, dict[str, Any]]:
        """SKUs at or below their threshold: one query for the default, one for overrides."""
        default, per_sku = self.config.alerts.low_stock, self.config.alerts.low_stock_sku
        found: dict[str, dict[str, Any]] = {}
        if default is not None:
            cols = (sku_t.c.on_hand, sku_t.c.reserved, sku_t.c.safety_stock)
            query = sa.select(sku_t.c.sku, *cols).where(cols[0] - cols[1] - cols[2] <= default)
            for sku, on_hand, reserved, safety in conn.execute(query):
                if sku not in per_sku:
                    found[sku] = _low(on_hand - reserved - safety, default,
                                      f"on hand {on_hand} - reserved {reserved} - safety {safety}")
        for sku, avail in availability(conn, per_sku).items():  # also has kits' components
            if sku in per_sku and avail.available <= per_sku[sku]:
                found[sku] = _low(avail.available, per_sku[sku], avail.detail)
        return found

    def check_late_orders(self, now: datetime) -> list[int]:
        """Orders paid longer ago than their channel's ``ship_within`` and not shipped."""
        limits = {c.name: c.ship_within or self.config.alerts.ship_within
                  for c in self.config.channels if c.enabled}
        with self.db.begin() as conn:
            late = {f"{o.channel}:{o.order_id}": o for o in overdue(conn, limits, now)}
            _resolve_others(conn, ORDER_LATE, set(late), now)
            open_now = set(conn.execute(sa.select(conflict_t.c.subject).where(
                conflict_t.c.kind == ORDER_LATE, conflict_t.c.resolved_at.is_(None))).scalars())
            records = [ConflictRecord(
                kind=ORDER_LATE, subject=subject, channel=o.channel,
                message=f"{o.channel} order {o.order_id} was paid {_when(o.since)} and is still "
                        f"{stage_label(o.stage)} (ship within {_hours(limits[o.channel])})",
                detail={"order_id": o.order_id, "stage": o.stage, "since": o.since.isoformat()})
                for subject, o in sorted(late.items()) if subject not in open_now]
            return open_conflicts(conn, records, now)

    # -- sending -----------------------------------------------------------------------------

    def _send(self, sender: Sender, rows: list[dict[str, Any]], column: str,
              message: Callable[[Mapping[str, Any]], tuple[str, str]], now: datetime,
              deadline: float) -> tuple[int, int]:
        """Claim (``column``: old value -> now), send, and undo the claim if nothing took it."""
        sent = failed = 0
        for row in rows:
            if time.monotonic() > deadline:
                break  # the rest wait for the next run
            old = row[column]
            if not self._claim(row["id"], column, old, now):
                continue  # another replica has it
            if _deliver(sender, *message(row)):
                sent += 1
                if column == "notified_at" and row["resolved_at"] is not None:
                    # An oversell alerted after it cleared says so: no notice follows.
                    self._claim(row["id"], "resolved_notified_at", None, now)
            else:
                failed += 1
                self._claim(row["id"], column, now, old)
        return sent, failed

    def _rows(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _claim(self, conflict_id: int, column: str, old: datetime | None,
               new: datetime | None) -> bool:
        """Set ``column`` from ``old`` to ``new``; True when this call changed it (committed)."""
        col = conflict_t.c[column]
        with self.db.begin() as conn:
            result = conn.execute(
                conflict_t.update()
                .where(conflict_t.c.id == conflict_id, col.is_(None) if old is None else col == old)
                .values({column: new}))
            return result.rowcount == 1


def _due(config: Config, now: datetime) -> sa.Select[Any]:
    """Open, unacknowledged conflicts never alerted or last alerted a repeat interval ago;
    and every oversell never alerted, even one that cleared before the first alert run
    (two buyers paid for one unit: the seller must hear of it, once)."""
    c, cutoff = conflict_t.c, now - timedelta(seconds=config.alerts.repeat_interval)
    never_told_oversell = sa.and_(c.kind == "oversell", c.notified_at.is_(None))
    return (sa.select(conflict_t)
            .where(sa.or_(c.resolved_at.is_(None), never_told_oversell), c.acked_at.is_(None),
                   sa.or_(c.notified_at.is_(None), c.notified_at <= cutoff))
            .order_by(c.notified_at.asc().nulls_first(), c.id).limit(MAX_ALERTS_PER_RUN))


_RESOLVED_UNNOTIFIED = (
    sa.select(conflict_t)
    .where(conflict_t.c.resolved_at.is_not(None), conflict_t.c.notified_at.is_not(None),
           conflict_t.c.resolved_notified_at.is_(None))
    .order_by(conflict_t.c.id).limit(MAX_ALERTS_PER_RUN))


def _deliver(sender: Sender, title: str, body: str) -> bool:
    try:
        return bool(sender.send(title, body))
    except Exception as exc:  # a Sender must not raise; if it does, the send failed
        log.warning("alert sender failed on %r: %s", title, type(exc).__name__)
        return False


def _resolve_others(conn: Connection, kind: str, keep: set[str], now: datetime) -> None:
    """Resolve the open conflicts of this kind whose subject is not in ``keep``."""
    subjects = conn.execute(sa.select(conflict_t.c.subject).where(
        conflict_t.c.kind == kind, conflict_t.c.resolved_at.is_(None))).scalars()
    for chunk in chunks(sorted(set(subjects) - keep)):
        resolve_conflicts(conn, kind, chunk, now)


def _low(available: int, threshold: int, computed: str) -> dict[str, Any]:
    return {"available": available, "threshold": threshold, "computed": computed}


def _low_stock_record(sku: str, detail: dict[str, Any]) -> ConflictRecord:
    return ConflictRecord(
        kind=LOW_STOCK, subject=sku, sku=sku, detail=detail,
        message=(f"{sku}: {detail['available']} available, at or below the low-stock "
                 f"threshold of {detail['threshold']}"))


# -- messages ----------------------------------------------------------------------------------


def alert_message(row: Mapping[str, Any]) -> tuple[str, str]:
    """Title and body of the alert for an open conflict (a reminder if it was sent before)."""
    kind = row["kind"]
    describe = _DESCRIBE.get(kind)
    text = describe(row, _detail(row)) if describe else row["message"]
    footer = f"Conflict {row['id']}, open since {_when(row['opened_at'])}"
    if row["resolved_at"] is not None:
        footer = (f"Conflict {row['id']}, open from {_when(row['opened_at'])} until "
                  f"{_when(row['resolved_at'])}, when the ledger no longer held more than it "
                  "had; the orders above still compete for the same units")
    elif row["notified_at"] is not None:
        footer = f"Reminder: still open (last alerted {_when(row['notified_at'])}). {footer}"
    return _title(row), f"{text}\n\n{footer}. See 'channelsync conflicts'."


def resolved_message(row: Mapping[str, Any]) -> tuple[str, str]:
    body = (f"Resolved at {_when(row['resolved_at'])} (conflict {row['id']}, open since "
            f"{_when(row['opened_at'])}).\nIt was: {row['message']}")
    return _title(row, "resolved "), body


def _title(row: Mapping[str, Any], prefix: str = "") -> str:
    kind = row["kind"]
    if kind == "loyalty_tier":  # the subject is the tier and a hash: name the order instead
        detail = _detail(row)
        return (f"channelsync: {prefix}{detail.get('tier', 'a')} tier reached with order "
                f"{detail.get('order', row['subject'])}")
    return f"channelsync: {prefix}{_LABELS.get(kind, kind)} {row['subject']}"


def _oversell(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    orders = [f"- {o.get('channel')} order {o.get('order_id')} ({_units(o.get('quantity'))}"
              f"{' ' + o['held'] if o.get('held') else ''})" for o in d.get("orders", [])]
    return (f"{row['subject']} is oversold: {d.get('reserved')} reserved but "
            f"{d.get('on_hand')} on hand.\nCompeting orders:\n"
            + ("\n".join(orders) or "- (none recorded)"))


def _unknown_sku(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    orders = ", ".join(str(o) for o in d.get("orders", [])) or "(none recorded)"
    return (f"{row['channel']}: orders for SKU {row['sku']!r}, which the ledger does not know.\n"
            f"Orders: {orders}\nThey are kept and applied once the SKU exists in the ledger "
            "or is mapped in the channel's sku_map.")


def _push_failed(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    return (f"Listing {row['subject']}: pushing quantity {d.get('target')} failed "
            f"({_plural(d.get('attempts'), 'attempt')}).\nError: {d.get('error')}")


def _drift(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    return (f"Listing {row['subject']}: the channel shows {d.get('observed')} (observed) "
            f"but {d.get('expected')} was pushed (expected).\nA manual edit on the channel, "
            "a missed order or a lost push; channelsync corrects it.")


def _channel_down(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    since = _when(_parse(d.get("since")))
    what = f"has never pulled successfully (failing since {since})" if d.get("never_pulled") \
        else f"has had no successful pull since {since}"
    return (f"Channel {row['subject']} {what}.\nLast error at "
            f"{_when(_parse(d.get('last_error_at')))}: {d.get('last_error')}")


def _low_stock(row: Mapping[str, Any], d: dict[str, Any]) -> str:
    return (f"{row['subject']}: {_units(d.get('available'))} available ({d.get('computed')}), "
            f"at or below the low-stock threshold of {d.get('threshold')}.")


_DESCRIBE: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], str]] = {
    "oversell": _oversell, "unknown_sku": _unknown_sku, "push_failed": _push_failed,
    "drift": _drift, CHANNEL_DOWN: _channel_down, LOW_STOCK: _low_stock,
}  # other kinds (bad_record, a plugin's) are sent with their message


def sample_alert(host: str, now: datetime) -> tuple[str, str]:
    """The ``alerts test`` message."""
    return "channelsync: test alert", (
        f"A test alert from channelsync on {host} at {_when(now)}. If you can read this, "
        "alerts reach this destination.")


def _detail(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        detail = json.loads(row["detail"] or "{}")
    except (TypeError, ValueError):
        return {}
    return detail if isinstance(detail, dict) else {}


def _units(n: Any) -> str:
    return _plural(n, "unit")


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _hours(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds / 3600:g} hours"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "?"
