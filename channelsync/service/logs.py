"""Logging set-up: one line per event on stderr (journald), as text or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; extra= fields are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO, and APScheduler warns of every coalesced run;
    # the connectors and the daemon log what matters.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # apprise and urllib3 log whole notification URLs (tokens in them) at debug.
    for name in ("apprise", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
