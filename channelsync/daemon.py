"""``channelsync run``: every channel on its own schedule until SIGTERM or SIGINT.

Each channel has a cycle job (pull, plan, push) and a less frequent read-back job.
Jobs never overlap themselves and a late job coalesces. A pull that changed stock
brings the other channels' cycles forward, so they push the new quantities soon
(each pulls its own orders first: echo-safe).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from channelsync.app import App
from channelsync.config import ChannelConfig

log = logging.getLogger(__name__)
JITTER_FRACTION = 0.1
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = threading.Event()
        channels = app.engine.channels()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(2, len(channels)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        for channel in channels:
            self._schedule(channel)

    def _schedule(self, channel: ChannelConfig) -> None:
        daemon = self.app.config.daemon
        pull = channel.pull_interval or daemon.pull_interval
        read_back = channel.reconcile_interval or daemon.reconcile_interval
        self.scheduler.add_job(
            self.cycle, "interval", seconds=pull, jitter=pull * JITTER_FRACTION,
            args=[channel.name], id=f"cycle:{channel.name}", next_run_time=_now(),
        )
        self.scheduler.add_job(
            self.read_back, "interval", seconds=read_back, jitter=read_back * JITTER_FRACTION,
            args=[channel.name], id=f"read_back:{channel.name}",
        )

    def cycle(self, name: str) -> None:
        if self.stopping.is_set():
            return
        (report,) = self.app.engine.sync([name], read_back=False)
        if report.apply.touched and not self.stopping.is_set():
            for other in self.app.engine.channels():
                if other.name != name:
                    self.scheduler.modify_job(f"cycle:{other.name}", next_run_time=_now())

    def read_back(self, name: str) -> None:
        if not self.stopping.is_set():
            self.app.engine.sync([name], read_back=True)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SHUTDOWN_SIGNALS}
        try:
            self.scheduler.start()
            log.info("running %d channel(s)", len(self.app.engine.channels()))
            self.stopping.wait()
            log.info("stopping: letting running cycles finish")
            self.scheduler.shutdown(wait=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.app.close()
        log.info("stopped")
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.stopping.set()


def _now() -> datetime:
    from channelsync.models import utcnow

    return utcnow()
