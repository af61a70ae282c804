"""The application: config + database + engine, shared by the CLI, the daemon and the demo."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from channelsync.config import Config
from channelsync.ledger import apply as ledger
from channelsync.ledger import stock
from channelsync.ledger.apply import ApplyResult
from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.schema import utcnow
from channelsync.sync import planner
from channelsync.sync.engine import ChannelReport, SyncEngine
from channelsync.sync.events import EventBus

if TYPE_CHECKING:
    from channelsync.service.alerts import AlertRun

log = logging.getLogger(__name__)


class App:
    """Opens what a command needs, lazily, and closes it."""

    def __init__(
        self, config: Config, *, migrate: bool = True, clock: Callable[[], datetime] = utcnow,
        events: EventBus | None = None,
    ) -> None:
        self.config = config
        self._migrate = migrate
        self.now = clock
        self.events = events or EventBus()

    @cached_property
    def db(self) -> Engine:
        return open_ledger_engine(self.config.database_url, migrate=self._migrate)

    @cached_property
    def engine(self) -> SyncEngine:
        return SyncEngine(self.config, self.db, clock=self.now, events=self.events)

    def sync(
        self, names: Sequence[str] | None = None, *, read_back: bool = True
    ) -> list[ChannelReport]:
        """One cycle now, then the alerts it made due (``sync`` and timers run this; the
        daemon runs cycles and sends alerts on threads of its own)."""
        try:
            return self.engine.sync(names, read_back=read_back)
        finally:
            self.send_alerts()

    def send_alerts(self) -> AlertRun | None:
        """Send what is due to ``[alerts] urls``: each conflict once while open, again after
        ``repeat_interval``, and a resolved notice; the rule lives in the ledger, so a
        command, a timer and the daemon never send one twice. Never raises."""
        if not self.config.alerts.urls:
            return None
        from channelsync.service.alerts import AlertDispatcher  # apprise is slow to import

        try:
            run = AlertDispatcher(self.config, self.db, clock=self.now).run_once()
        except Exception:  # an alert that cannot go out must not fail the command
            log.exception("sending alerts failed; the next command or the daemon retries")
            return None
        if run.failed:
            log.warning("alerts: %d could not be delivered (retried next time)", run.failed)
        return run

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.close()
        if "db" in self.__dict__:
            self.db.dispose()

    # -- stock changes: write, then let pending orders and the outbox catch up -----------------

    def set_stock(
        self, rows: Sequence[stock.StockRow], *, reason: str, kind: str = "set",
        source: str = "cli",
    ) -> Any:
        self._refuse_kits([r.sku for r in rows])
        with self.db.begin() as conn:
            opened = stock.set_stock(conn, rows, now=self.now(), reason=reason, kind=kind,
                                     source=source)
        self.settle({r.sku for r in rows})
        self.send_alerts()
        return opened

    def adjust_stock(
        self, sku: str, delta: int, reason: str, source: str = "cli"
    ) -> tuple[int, list[int]]:
        with self.db.begin() as conn:
            result = stock.adjust_stock(conn, sku, delta, now=self.now(), reason=reason,
                                        source=source)
        self.settle({sku})
        self.send_alerts()
        return result

    def set_safety_stock(self, sku: str, safety_stock: int) -> None:
        with self.db.begin() as conn:
            stock.set_safety_stock(conn, sku, safety_stock, now=self.now())
        self.settle({sku})
        self.send_alerts()

    def add_barcode(self, sku: str, code: str) -> tuple[bool, list[str]]:
        with self.db.begin() as conn:
            return stock.add_barcode(conn, sku, code, now=self.now())

    def remove_barcode(self, sku: str, code: str) -> tuple[list[str], list[str]]:
        with self.db.begin() as conn:
            return stock.remove_barcode(conn, sku, code, now=self.now())

    def settle(self, skus: Iterable[str]) -> ApplyResult:
        """Apply orders that waited for these SKUs, and plan what the channels should show."""
        total = ApplyResult()
        touched = set(skus)
        for channel in self.config.channels:
            with self.db.begin() as conn:
                pending = ledger.pending_lines(conn, channel.name)
                if pending:
                    total.merge(ledger.apply_page(conn, channel.name, pending,
                                                  master_sku=channel.master_sku, now=self.now()))
        touched |= total.touched
        self.engine  # noqa: B018 - constructing it syncs the kit table used by the plan
        names = [c.name for c in self.config.channels if c.enabled]
        with self.db.begin() as conn:
            planner.plan(conn, self.config, names, touched=touched, now=self.now())
        return total

    def _refuse_kits(self, skus: Iterable[str]) -> None:
        from channelsync.errors import LedgerError

        kits = {k.sku for k in self.config.kits}
        bad = sorted(set(skus) & kits)
        if bad:
            raise LedgerError(f"{', '.join(bad)}: a kit holds no stock of its own; "
                              "set its components instead")
