"""Cross-cutting concerns as observers: metrics, logs and alerts subscribe to events.

The engine emits plain events (a name and keyword fields). An observer that fails is
logged and never breaks a sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Observer = Callable[[str, dict[str, Any]], None]

# The events the engine emits, with their fields:
#   pull_done      channel, lines, applied, pending, bad_records, seconds
#   push_done      channel, pushed, failed, held, stale, awaiting
#   api_call       channel, operation, outcome ("ok" | "throttled" | "error"), seconds
#   cycle_done     channel, seconds, error ("" when it worked), busy
#   conflicts      ids (newly opened conflict ids)
EVENTS = ("pull_done", "push_done", "api_call", "cycle_done", "conflicts")


class EventBus:
    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._lock = threading.Lock()

    def subscribe(self, observer: Observer) -> None:
        with self._lock:
            self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        with self._lock:
            self._observers = [o for o in self._observers if o is not observer]

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                observer(event, fields)
            except Exception:  # an observer never breaks a sync
                log.exception("observer %r failed on %s", observer, event)
