"""Running a simulation: the world, the workload, channelsync (in this process, on the
daemon's own scheduler, or as real ``channelsync run`` processes killed and restarted),
then settling and checking.

A seed fixes the catalog, each buyer's and the seller's decisions, each channel's fault
draws and the kill plan. Threads and timing decide when each lands, so two runs of one
seed interleave differently; what they must both satisfy is the checks.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channelsync.config import parse_config
from channelsync.ledger.schema import listing_t, outbox_t
from channelsync.sandbox.emulator import Request
from channelsync.sandbox.simulation import checks
from channelsync.sandbox.simulation.receiver import AlertInbox
from channelsync.sandbox.simulation.workload import Buyer, Journal, Seller
from channelsync.sandbox.simulation.world import CATALOG, LAG, World
from channelsync.service.app import App
from channelsync.service.daemon import Channels
from channelsync.sync import planner

SETTLE_TIMEOUT = 90.0  # seconds to wait for the channels to settle after the workload
# Where a kill lands: right after a channel answered a write, after it served a page of
# orders (before the daemon could commit it), when Amazon takes a feed.
KILL_POINTS = ("push_answered", "orders_page", "feed_created")
ORDER_PAGES = {"list_orders", "searchOrders", "getOrders", "GetOrders", "graphql:orders"}


@dataclass
class Plan:
    seed: int = 1
    seconds: float = 20.0
    processes: int = 0  # 0: channelsync in this process; n: n daemon replicas
    kills: int = 0  # daemon processes killed with SIGKILL during the run
    database_url: str = ""  # default: SQLite in a temporary folder (one process only)
    faults: bool = True
    skew: float = 45.0  # seconds one channel's clock is off
    edits: bool = True  # the seller sometimes edits a listing on the channel itself


@dataclass
class Run:
    plan: Plan
    world: World
    journal: Journal = field(default_factory=Journal)
    inbox: AlertInbox = field(default_factory=AlertInbox)
    log_lines: list[str] = field(default_factory=list)
    kills: int = 0


def simulate(plan: Plan) -> checks.Figures:
    world = World(plan.seed, faults=plan.faults, skew=plan.skew)
    run = Run(plan, world)
    world.start()
    run.inbox.start()
    try:
        with tempfile.TemporaryDirectory(prefix="channelsync-sim-") as tmp:
            url = plan.database_url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
            text = world.config(url, run.inbox.url)
            app = App(parse_config(text, source="simulation", env={}))
            try:
                app.set_stock([_row(sku, units) for sku, units in CATALOG.items()],
                              reason="opening count")
                driver = _Daemons(run, text, Path(tmp)) if plan.processes else _InProcess(run, app)
                with driver:
                    _trade(run, app)
                    _settle(run, app)
                return _check(run, app)
            finally:
                app.close()
    finally:
        run.inbox.stop()
        world.stop()


def _row(sku: str, units: int) -> Any:
    from channelsync.ledger.stock import StockRow

    return StockRow(sku, units, title=sku.title())


def _trade(run: Run, app: App) -> None:
    stop = threading.Event()
    actors: list[threading.Thread] = [
        Buyer(run.world, name, run.plan.seed * 1009 + i, run.journal, stop)
        for i, name in enumerate(run.world.emulators)]
    actors.append(Seller(run.world, app.adjust_stock, run.plan.seed * 7919, run.journal, stop,
                         edits=run.plan.edits))
    if run.plan.faults:
        run.world.inject()
    for actor in actors:
        actor.start()
    stop.wait(run.plan.seconds)
    stop.set()
    for actor in actors:
        actor.join(timeout=15)
    run.world.calm()


def _settle(run: Run, app: App) -> None:
    """Wait until the ledger holds what the channels' orders imply and every listing shows
    its target, twice in a row (the channels' lag, then a few cycles)."""
    time.sleep(LAG + 1.0)
    deadline, calm = time.monotonic() + SETTLE_TIMEOUT, 0
    while time.monotonic() < deadline and calm < 2:
        figures = checks.Figures()
        checks.check_stock(figures, app.db, checks.expected_stock(
            run.world.orders(), run.journal.adjustments))
        checks.check_listings(figures, _targets(app), run.world.shown())
        calm = calm + 1 if figures.ok and _outbox_quiet(app) else 0
        time.sleep(1.0)


def _outbox_quiet(app: App) -> bool:
    with app.db.connect() as conn:
        rows = conn.execute(outbox_t.select().where(outbox_t.c.channel != "ebay")).all()
    return not rows


def _targets(app: App) -> dict[tuple[str, str], int | None]:
    with app.db.connect() as conn:
        listings = [dict(r) for r in conn.execute(listing_t.select()).mappings()
                    if r["managed"]]
        return {(i.channel, i.channel_sku): i.target
                for i in planner.targets(conn, app.config, listings)}


def _check(run: Run, app: App) -> checks.Figures:
    figures = checks.Figures(orders=len(run.journal.sales), kills=run.kills)
    stats = run.world.stats()
    figures.faults = sum(s["throttled"] + s["errors"] + s["hung"] + s["lost_answers"]
                         for s in stats.values())
    orders = run.world.orders()
    truth = checks.expected_stock(orders, run.journal.adjustments)
    checks.check_stock(figures, app.db, truth)
    if figures.lost or figures.doubled:
        figures.stock_off += checks.order_differences(app.db, orders)
    checks.check_listings(figures, _targets(app), run.world.shown())
    checks.check_book(figures, app.db, orders)
    app.send_alerts()
    time.sleep(0.5)
    checks.check_oversells(figures, app.db, truth, run.inbox.alerts(), run.journal)
    checks.check_pushes(figures, app.db, run.journal)
    checks.check_drift(figures, app.db, run.journal)
    checks.check_secrets(figures, run.log_lines)
    return figures


# -- channelsync in this process, on the daemon's scheduler ------------------------------------


class _InProcess:
    def __init__(self, run: Run, app: App) -> None:
        self.run, self.app = run, app
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sim-daemon", daemon=True)

    def __enter__(self) -> _InProcess:
        root = logging.getLogger()
        self.handler, self.level = _Lines(self.run.log_lines), root.level
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)  # every line a daemon would log, for the secret check
        self.channels = Channels(self.app, lambda _n, _e: None, threading.Event())
        self.channels.start()
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stopping.wait(0.25):
            self.channels.apply_requests()
            self.app.send_alerts()

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.channels.stop(30)
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


# -- channelsync as daemon processes, killed and restarted --------------------------------------


@dataclass
class Kill:
    point: str  # one of KILL_POINTS
    after: int  # how many more times that moment comes round before the kill


class _Daemons:
    """``channelsync run`` replicas on one database; the kill plan fires from the
    emulators, at the moments it names."""

    def __init__(self, run: Run, config_text: str, tmp: Path) -> None:
        self.run, self.tmp = run, tmp
        self.config = tmp / "channels.toml"
        self.config.write_text(config_text)
        self.rng = random.Random(run.plan.seed * 131)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * run.plan.processes
        self.logs: list[Path] = []
        self.kill_plan = [Kill(self.rng.choice(KILL_POINTS), self.rng.randint(2, 8))
                          for _ in range(run.plan.kills)]
        self.lock = threading.Lock()
        self.quiet_until = 0.0

    def __enter__(self) -> _Daemons:
        for index in range(len(self.procs)):
            self._start(index)
        for emulator in self.run.world.emulators.values():
            emulator.observers.append(self._observe)
        time.sleep(2.0)  # the daemons open the ledger and take their first cycle
        return self

    def _start(self, index: int) -> None:
        log = self.tmp / f"daemon-{index}-{len(self.logs)}.log"
        self.logs.append(log)
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "channelsync", "--config", str(self.config),
             "--log-level", "info", "run"],
            stdout=subprocess.DEVNULL, stderr=log.open("wb"), env={**os.environ})

    def _observe(self, request: Request, status: int) -> None:
        point = _point(request, status)
        if point is None:
            return
        with self.lock:
            due = None
            for kill in self.kill_plan:
                if kill.point == point:
                    kill.after -= 1
                    due = due or (kill if kill.after <= 0 else None)
            if due is None or time.monotonic() < self.quiet_until:
                return
            self.kill_plan.remove(due)
            self.quiet_until = time.monotonic() + 1.0  # one kill at a time, restarts between
            index = self.rng.randrange(len(self.procs))
            proc = self.procs[index]
            if proc is None or proc.poll() is not None:
                return
            proc.send_signal(signal.SIGKILL)
            self.run.kills += 1
        threading.Timer(0.5, self._restart, args=[index]).start()

    def _restart(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None:
            proc.wait()
        self._start(index)

    def __exit__(self, *exc: Any) -> None:
        for emulator in self.run.world.emulators.values():
            emulator.observers.clear()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in self.logs:
            self.run.log_lines += log.read_text(errors="replace").splitlines()


def _point(request: Request, status: int) -> str | None:
    if request.operation == "createFeed":
        return "feed_created"
    if request.operation in ORDER_PAGES:
        return "orders_page"
    if request.method != "GET" and 200 <= status < 300 and request.operation in (
            "batch_products", "patchListingsItem", "ReviseInventoryStatus",
            "graphql:inventorySetQuantities"):
        return "push_answered"
    return None
