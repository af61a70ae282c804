"""``channelsync run``: every channel on its own schedule until SIGTERM or SIGINT.

Each channel has a cycle job (pull, plan, push) and a less frequent read-back job.
Jobs never overlap themselves and a late job coalesces. A pull that changed stock
brings the other channels' cycles forward, so they push the new quantities soon
(each pulls its own orders first: echo-safe). A failing channel backs off on its
own, without delaying the others. SIGHUP reloads the config; a broken one is
refused and the running one kept. Alerts go out on a thread of their own, and so do the
``[[followup]]`` rules' follow-ups (a thread only while the config has such rules).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from starlette.routing import BaseRoute

from channelsync.config import ChannelConfig, Config, load_config
from channelsync.errors import ConfigError
from channelsync.ledger.schema import state_t, utcnow
from channelsync.service.alerts import AlertDispatcher
from channelsync.service.app import App
from channelsync.service.httpd import Server, parse_listen, serve
from channelsync.service.observability import Metrics
from channelsync.service.observability import routes as metrics_routes
from channelsync.service.systemd import Notifier, Watchdog
from channelsync.service.web.dashboard import routes as dashboard_routes
from channelsync.service.webhooks import WebhookReceiver
from channelsync.service.webhooks import routes as webhook_routes
from channelsync.sync.events import EventBus

log = logging.getLogger(__name__)
JITTER_FRACTION = 0.1
STATUS_EVERY = 15.0  # seconds between STATUS= updates to systemd
STUCK_FACTOR = 10  # a cycle running this many pull intervals (at least 10 min) is stuck
DEFER_MARGIN = 0.5  # seconds after a deferred call is allowed before the channel runs again
OUTCOME_POLL = 15.0  # seconds between asking a channel for writes it is still processing
FOLLOWUP_INTERVAL = 60.0  # seconds between looks for due follow-ups (due after days)


class Channels:
    """The scheduler and the jobs of one configuration; replaced whole on reload.

    Jobs never change the schedule themselves (APScheduler's shutdown holds the job
    store lock while it waits for running jobs): they queue requests, and the daemon's
    main thread applies them.
    """

    def __init__(
        self, app: App, on_cycle: Callable[[str, str], None], wake: threading.Event
    ) -> None:
        self.app = app
        self.on_cycle = on_cycle
        self.wake = wake
        self.requests: queue.SimpleQueue[tuple[str, datetime]] = queue.SimpleQueue()
        self.failures: dict[str, int] = {}
        self.running: dict[str, float] = {}  # job id -> monotonic start
        self._lock = threading.Lock()
        channels = app.engine.channels()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(2, 2 * len(channels)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        for channel in channels:
            self._schedule(channel)

    def _interval(self, channel: ChannelConfig) -> float:
        return channel.pull_interval or self.app.config.daemon.pull_interval

    def _schedule(self, channel: ChannelConfig) -> None:
        pull = self._interval(channel)
        read_back = channel.reconcile_interval or self.app.config.daemon.reconcile_interval
        self.scheduler.add_job(
            self._job, "interval", seconds=pull, jitter=pull * JITTER_FRACTION,
            args=[channel.name, False], id=f"cycle:{channel.name}", next_run_time=utcnow(),
        )
        self.scheduler.add_job(
            self._job, "interval", seconds=read_back, jitter=read_back * JITTER_FRACTION,
            args=[channel.name, True], id=f"read_back:{channel.name}",
        )

    def start(self) -> None:
        self.scheduler.start()

    def run_now(self, channel: str, delay: float = 0.0) -> None:
        """Move a channel's next cycle (a webhook, another channel's sale, a back-off)."""
        self.requests.put((channel, utcnow() + timedelta(seconds=delay)))
        self.wake.set()

    def apply_requests(self) -> None:
        """On the daemon's main thread: move the jobs as the cycles asked."""
        while not self.requests.empty():
            channel, when = self.requests.get()
            if self.app.engine.stopping.is_set():
                continue
            try:
                self.scheduler.modify_job(f"cycle:{channel}", next_run_time=when)
            except JobLookupError:
                log.warning("no cycle job for channel %r", channel)

    def _job(self, name: str, read_back: bool) -> None:
        engine = self.app.engine
        if engine.stopping.is_set():
            return
        # A read-back whose own job found the channel busy (cycles back to back while
        # orders pour in) is done by the next cycle instead of being skipped for good.
        read_back = read_back or self._read_back_due(name)
        job = f"{'read_back' if read_back else 'cycle'}:{name}"
        with self._lock:
            self.running[job] = time.monotonic()
        try:
            (report,) = engine.sync([name], read_back=read_back)
        finally:
            with self._lock:
                self.running.pop(job, None)
        self._after(name, report.error, bool(report.apply.touched))
        waits = dict(report.deferred)
        if report.awaiting:  # writes the channel is processing: ask again soon
            waits["outcomes"] = OUTCOME_POLL
        self._resume_when_allowed(name, waits)

    def _read_back_due(self, name: str) -> bool:
        channel = self.app.config.channel(name)
        interval = channel.reconcile_interval or self.app.config.daemon.reconcile_interval
        with self.app.db.connect() as conn:
            last = conn.execute(sa.select(state_t.c.reconciled_at).where(
                state_t.c.name == name)).scalar()
        return last is not None and self.app.now() - last >= timedelta(seconds=interval)

    def _resume_when_allowed(self, name: str, deferred: Mapping[str, float]) -> None:
        """A call deferred for less than the channel's interval: run the channel again when
        it is allowed (a long pull goes on page by page, with the pushes in between)."""
        if not deferred or self.app.engine.stopping.is_set():
            return
        wait = min(deferred.values()) + DEFER_MARGIN
        if wait < self._interval(self.app.config.channel(name)):
            self.run_now(name, wait)

    def _after(self, name: str, error: str, touched: bool) -> None:
        if error:
            failures = self.failures.get(name, 0) + 1
            self.failures[name] = failures
            channel = self.app.config.channel(name)
            cap = self.app.config.daemon.failure_backoff_max
            delay = min(cap, self._interval(channel) * 2 ** (failures - 1))
            log.warning("%s: cycle failed (%d in a row); next try in %.0f s: %s", name,
                        failures, delay, error)
            self.run_now(name, delay)
        elif self.failures.pop(name, 0):
            log.info("%s: working again", name)
        if touched and not error and not self.app.engine.stopping.is_set():
            for other in self.app.engine.channels():
                if other.name != name and not self.failures.get(other.name):
                    self.run_now(other.name)
        self.on_cycle(name, error)

    def healthy(self) -> bool:
        """The scheduler runs and no cycle is stuck."""
        if not self.scheduler.running:
            return False
        limit = max(600.0, STUCK_FACTOR * self.app.config.daemon.pull_interval)
        with self._lock:
            oldest = min(self.running.values(), default=None)
        return oldest is None or time.monotonic() - oldest < limit

    def stop(self, timeout: float) -> bool:
        """No new jobs; let running cycles finish within the timeout. True if they did."""
        self.app.engine.stopping.set()
        done = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True},
                                daemon=True)
        done.start()
        done.join(timeout)
        return not done.is_alive()


class Daemon:
    def __init__(self, config: Config, config_path: Path, env: Mapping[str, str]) -> None:
        self.config_path = config_path
        self.env = env
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.wake = threading.Event()
        self.events = EventBus()  # outlives reloads, so the metrics' counters go on
        self.app = App(config, events=self.events)
        self.channels: Channels | None = None
        self.last_cycle: dict[str, tuple[datetime, str]] = {}
        self.notifier = Notifier.from_env(env)
        self.metrics: Metrics | None = None
        self.receiver: WebhookReceiver | None = None
        self.servers: list[Server] = []
        self.alert_wake = threading.Event()
        self.followup_wake = threading.Event()
        self.followup_thread: threading.Thread | None = None
        self.events.subscribe(self._on_event)

    def run(self) -> int:
        handlers = {signal.SIGTERM: self._on_stop, signal.SIGINT: self._on_stop,
                    signal.SIGHUP: self._on_reload}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        watchdog = Watchdog(self.notifier, self.healthy, self.notifier.watchdog_interval)
        try:
            self.app.db  # noqa: B018 - open (and migrate) the ledger before saying READY
            self._serve()
            self.channels = Channels(self.app, self._on_cycle, self.wake)
            self.channels.start()
            log.info("running %d channel(s)", len(self.app.engine.channels()))
            self.notifier.ready(self.summary())
            watchdog.start()
            alerts = threading.Thread(target=self._alerts, name="alerts", daemon=True)
            alerts.start()
            self._start_followups()
            self._loop()
            self.alert_wake.set()
            self.followup_wake.set()
            self.notifier.stopping("stopping: finishing running cycles")
            watchdog.stop()
            return self._shutdown()
        finally:
            watchdog.stop()
            for server in self.servers:
                server.stop()
            if self.metrics:
                self.metrics.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _serve(self) -> None:
        """The optional HTTP endpoints: metrics and health, webhooks, and the dashboard
        (last: it answers every path the others do not, when it shares their listener)."""
        daemon = self.app.config.daemon
        wanted: list[_Endpoints] = []
        if daemon.metrics_listen:
            self.metrics = Metrics(self.events, self.app.db, self.app.config)
            wanted.append(("daemon.metrics_listen", daemon.metrics_listen,
                           metrics_routes(self.metrics)))
        if daemon.webhook_listen:
            self.receiver = WebhookReceiver(self.app.config, self._webhook)
            wanted.append(("daemon.webhook_listen", daemon.webhook_listen,
                           webhook_routes(self.receiver)))
        web = self.app.config.web
        if web.listen:  # it reads the App the daemon has now: a reload is picked up
            wanted.append(("web.listen", web.listen, dashboard_routes(lambda: self.app, web)))
        by_setting: dict[str, Server] = {}
        for group in _by_address(wanted):
            settings = [setting for setting, _, _ in group]
            server = serve(group[0][1], [route for _, _, routes in group for route in routes],
                           setting=" and ".join(settings))
            self.servers.append(server)
            by_setting.update(dict.fromkeys(settings, server))
        if "daemon.metrics_listen" in by_setting:
            log.info("metrics and health on %s", by_setting["daemon.metrics_listen"].url)
        if "daemon.webhook_listen" in by_setting:
            log.info("webhooks on %s/webhooks/<channel>", by_setting["daemon.webhook_listen"].url)
        if "web.listen" in by_setting:
            log.info("dashboard on %s (%s)", by_setting["web.listen"].url,
                     f"{len(web.users)} user(s)" if web.users else "no login: loopback only")

    def _alerts(self) -> None:
        """Alerts on a thread of their own: a slow or failing destination never delays a sync."""
        dispatcher, config = None, None
        while not self.stopping.is_set():
            if config is not self.app.config:  # started, or the config was reloaded
                config = self.app.config
                dispatcher = AlertDispatcher(config, self.app.db)
            try:
                assert dispatcher is not None
                run = dispatcher.run_once()
                if run.sent or run.failed or run.resolved_notices:
                    log.info("alerts: %d sent, %d failed, %d resolved notices", run.sent,
                             run.failed, run.resolved_notices)
            except Exception:  # the database may be away for a moment: next run
                log.exception("alerts: run failed")
            self.alert_wake.wait(self.app.config.alerts.check_interval)
            self.alert_wake.clear()

    def _start_followups(self) -> None:
        """The follow-ups thread, when the config has rules and it is not running."""
        if not self.app.config.followups or (
                self.followup_thread is not None and self.followup_thread.is_alive()):
            return
        self.followup_thread = threading.Thread(target=self._followups, name="followups",
                                                daemon=True)
        self.followup_thread.start()

    def _followups(self) -> None:
        """Due follow-ups, recorded then sent, every minute; the thread ends when a reload
        leaves no rule. A failed run is logged and tried again at the next."""
        from channelsync.followups.run import FollowupSender  # jinja2, apprise: only if used

        sender, config = None, None
        while not self.stopping.is_set():
            if config is not self.app.config:  # started, or the config was reloaded
                config = self.app.config
                if not config.followups:
                    return
                sender = FollowupSender(config, self.app.db, clock=self.app.now,
                                        stopping=self.stopping.is_set)
            try:
                assert sender is not None
                run = sender.run_once()
                if run.sent or run.retrying or run.failed or run.skipped:
                    log.info("follow-ups: %d sent, %d to retry, %d failed, %d skipped",
                             run.sent, run.retrying, run.failed, run.skipped)
                if run.opened:
                    self.events.emit("conflicts", ids=run.opened)
            except Exception:  # the database may be away for a moment: next run
                log.exception("follow-ups: run failed")
            self.followup_wake.wait(FOLLOWUP_INTERVAL)
            self.followup_wake.clear()

    def _on_event(self, event: str, _fields: dict[str, Any]) -> None:
        if event == "conflicts":
            self.alert_wake.set()

    def _webhook(self, channel: str) -> None:
        if self.channels:
            log.info("%s: webhook: pulling now", channel)
            self.channels.run_now(channel)

    def healthy(self) -> bool:
        """For the watchdog: the scheduler runs and no cycle is stuck."""
        return self.channels is not None and self.channels.healthy()

    def summary(self) -> str:
        """A short status line for systemd (systemctl status)."""
        channels = self.app.engine.channels()
        failing = sorted(name for name, (_, error) in self.last_cycle.items() if error)
        text = f"{len(channels)} channel(s)"
        if self.last_cycle:
            last = max(when for when, _ in self.last_cycle.values())
            text += f", last cycle {last:%H:%M:%S} UTC"
        return text + (f"; failing: {', '.join(failing)}" if failing else "; all ok")

    def _loop(self) -> None:
        next_status = time.monotonic() + STATUS_EVERY
        while not self.stopping.is_set():
            self.wake.wait(1.0)
            self.wake.clear()
            if self.stopping.is_set():
                break
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if self.channels:
                self.channels.apply_requests()
            if time.monotonic() >= next_status:
                self.notifier.status(self.summary())
                next_status = time.monotonic() + STATUS_EVERY

    def _shutdown(self) -> int:
        log.info("stopping: no new cycles; letting running ones finish")
        timeout = self.app.config.daemon.shutdown_timeout
        started = time.monotonic()
        finished = self.channels.stop(timeout) if self.channels else True
        if self.followup_thread is not None:  # it stops between two follow-ups
            self.followup_thread.join(max(1.0, timeout - (time.monotonic() - started)))
        self.app.close()
        if not finished:
            log.error("cycles still running after %.0f s; exiting anyway (each page and "
                      "push is committed on its own: nothing done is lost)", timeout)
            return 1
        log.info("stopped")
        return 0

    def reload(self) -> bool:
        """Load the config again; a broken one is refused and the running one kept."""
        try:
            config = load_config(self.config_path, self.env)
        except ConfigError as exc:
            log.error("config reload refused, keeping the running config: %s",
                      "; ".join(exc.problems))
            return False
        log.info("config reloaded from %s; restarting the schedule", self.config_path)
        self.notifier.notify(RELOADING=1, STATUS="reloading the config")
        if self.channels:
            self.channels.stop(self.app.config.daemon.shutdown_timeout)
        self.app.close()
        self.app = App(config, events=self.events)
        if self.metrics:
            self.metrics.retarget(self.app.db, config)
        if self.receiver:
            self.receiver.reconfigure(config)
        self.channels = Channels(self.app, self._on_cycle, self.wake)
        self.channels.start()
        self._start_followups()
        self.followup_wake.set()  # a running follow-ups thread takes the new rules now
        self.notifier.ready(self.summary())
        return True

    def _on_cycle(self, channel: str, error: str) -> None:
        self.last_cycle[channel] = (utcnow(), error)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.stopping.set()
        self.wake.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP: reloading the config")
        self.reload_requested.set()
        self.wake.set()


_Endpoints = tuple[str, str, list[BaseRoute]]  # setting, its address, the routes it serves


def _by_address(wanted: list[_Endpoints]) -> list[list[_Endpoints]]:
    """Settings that name the same host and port share one listener; port 0 (any free
    port) is never shared."""
    groups: dict[object, list[_Endpoints]] = {}
    for setting, listen, routes in wanted:
        host, port = parse_listen(listen, setting)
        groups.setdefault((host, port) if port else setting, []).append((setting, listen, routes))
    return list(groups.values())
