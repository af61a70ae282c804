"""Order webhooks the emulators send, as WooCommerce and Shopify do.

A subscription (``POST /_sandbox/webhooks``, the sandbox's stand-in for the seller adding a
webhook in the shop's admin) names a delivery URL, a secret and optionally the topics it
wants. Every order event of those topics is POSTed there with the channel's own headers,
signed with the base64 HMAC-SHA256 of the raw body. The signature is computed here, apart
from channelsync's receiver, so a mistake in either shows.

Deliveries go out from a thread of their own, in the order the events happened, never
under the emulator's lock. A channel that retries (Shopify) sends a failed delivery again
after each of its ``retry_delays``; one that does not (WooCommerce) gives up at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

TIMEOUT = 5.0  # seconds a receiver has to answer (Shopify allows 5)


def sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    secret: str = field(repr=False)
    topics: frozenset[str] | None  # None: every topic

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url,
                "topics": None if self.topics is None else sorted(self.topics)}


@dataclass
class _Delivery:
    subscription: Subscription
    topic: str
    body: bytes
    headers: dict[str, str]
    attempt: int = 0


class WebhookSender:
    """Subscriptions and a delivery thread, started with the first delivery."""

    def __init__(self, *, signature_header: str, retry_delays: Sequence[float] = ()) -> None:
        self.signature_header = signature_header
        self.retry_delays = tuple(retry_delays)
        self._subscriptions: list[Subscription] = []
        self._ids = itertools.count(1)
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._timers: set[threading.Timer] = set()

    def subscribe(self, url: str, secret: str, topics: Iterable[str] | None = None
                  ) -> Subscription:
        with self._lock:
            sub = Subscription(next(self._ids), url, secret,
                               None if topics is None else frozenset(topics))
            self._subscriptions.append(sub)
            return sub

    def clear(self) -> None:
        """Forget every subscription; deliveries already queued still go out."""
        with self._lock:
            self._subscriptions.clear()
            self._counts.clear()

    def wanted(self, topic: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subscriptions if s.wants(topic)]

    def send(self, sub: Subscription, topic: str, body: bytes,
             headers: Mapping[str, str]) -> None:
        """Queue one signed delivery; returns at once."""
        signed = {"Content-Type": "application/json", **headers,
                  self.signature_header: sign(sub.secret, body)}
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
                self._thread.start()
            self._queue.put(_Delivery(sub, topic, body, signed))

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"subscriptions": [s.row() for s in self._subscriptions],
                    "delivered": self._counts["delivered"], "failed": self._counts["failed"],
                    "retried": self._counts["retried"], "pending": self._queue.qsize()}

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=TIMEOUT + 1)

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
            while (delivery := self._queue.get()) is not None:
                self._deliver(client, delivery)

    def _deliver(self, client: httpx.Client, delivery: _Delivery) -> None:
        try:
            answer = client.post(delivery.subscription.url, content=delivery.body,
                                 headers=delivery.headers)
            ok, why = answer.is_success, f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            ok, why = False, type(exc).__name__
        with self._lock:
            if ok:
                self._counts["delivered"] += 1
                return
            if delivery.attempt >= len(self.retry_delays) or self._thread is None:
                self._counts["failed"] += 1
                log.info("webhook %s to %s failed (%s); given up", delivery.topic,
                         delivery.subscription.url, why)
                return
            self._counts["retried"] += 1
            delay = self.retry_delays[delivery.attempt]
            delivery.attempt += 1
            timer = threading.Timer(delay, self._again, args=[delivery])
            timer.daemon = True
            self._timers.add(timer)
            timer.start()

    def _again(self, delivery: _Delivery) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive()}
        self._queue.put(delivery)

