"""Many quantities at once: one ``JSON_LISTINGS_FEED`` (Feeds API 2021-06-30).

createFeedDocument -> upload the document's bytes to the presigned URL -> createFeed ->
getFeed until DONE, FATAL or CANCELLED -> getFeedDocument -> download (gunzip) the
processing report -> one outcome per message, matched by ``messageId``.

Amazon takes minutes to process a feed. A push waits for it only a few seconds
(``wait``); a feed still processing then comes back ``pending`` (its feed id), and later
cycles ask once each (``collect``) until it is done or ``timeout`` has passed: a channel's
cycle never sits for minutes on a feed.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from channelsync.connector import PushItem, PushResult
from channelsync.errors import ChannelError, PermanentChannelError, RetriableChannelError
from connectors.amazon._client import Http, SpApi
from connectors.amazon._listings import issue_text, quantity_operation

log = logging.getLogger(__name__)

FEED_TYPE = "JSON_LISTINGS_FEED"
CONTENT_TYPE = "application/json; charset=UTF-8"
FEED_VERSION = "2.0"
MAX_MESSAGES = 25_000  # per feed document (listings-feed-schema-v2)
FINISHED = frozenset({"DONE", "FATAL", "CANCELLED"})
WORKING = frozenset({"IN_QUEUE", "IN_PROGRESS"})


def feed_document(seller_id: str, product_type: str, items: Sequence[PushItem]) -> dict[str, Any]:
    """The feed: one PATCH message per item, ``messageId`` = its position from 1."""
    messages = [
        {
            "messageId": number,
            "sku": item.channel_sku,
            "operationType": "PATCH",
            "productType": product_type,
            "patches": [quantity_operation(item.quantity)],
        }
        for number, item in enumerate(items, start=1)
    ]
    header = {"sellerId": seller_id, "version": FEED_VERSION, "issueLocale": "en_US"}
    return {"header": header, "messages": messages}


def encode(document: dict[str, Any]) -> bytes:
    """UTF-8 bytes: the library would encode a str as Latin-1, which fails on other SKUs."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class FeedRun:
    """Submits one feed, waits a little for its outcome, and collects it later if need be."""

    api: SpApi
    http: Http
    feeds: Any  # _client.FeedsClient
    marketplace_id: str
    poll_interval: float  # between checks while a push waits
    timeout: float  # a feed still processing after this long has failed
    wait_seconds: float = 5.0  # how long a push waits before leaving the feed to later cycles
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    channel: str = field(init=False)

    def __post_init__(self) -> None:
        self.channel = self.api.channel

    def push(
        self, seller_id: str, product_type: str, items: Sequence[PushItem]
    ) -> list[PushResult]:
        feed_id = self.submit(encode(feed_document(seller_id, product_type, items)))
        feed = self.wait(feed_id)
        if feed.get("processingStatus") in WORKING:
            log.info("%s: feed %s of %d messages is %s; its outcome is collected in a later "
                     "cycle", self.channel, feed_id, len(items), feed.get("processingStatus"))
            return [PushResult(item.channel_sku, ok=False, pending=feed_id) for item in items]
        return self.outcome(feed_id, feed, items)

    def collect(
        self, feed_id: str, items: Sequence[PushItem], age: float
    ) -> list[PushResult] | None:
        """The outcome of a feed submitted ``age`` seconds ago; None while Amazon is still
        processing it (and ``timeout`` has not passed)."""
        feed = self.check(feed_id)
        status = feed.get("processingStatus")
        if status in WORKING:
            if age <= self.timeout:
                return None
            return failed(items, RetriableChannelError(
                f"feed {feed_id} is still {status} after {age:.0f} s; it may yet apply",
                channel=self.channel))
        return self.outcome(feed_id, feed, items)

    def outcome(
        self, feed_id: str, feed: dict[str, Any], items: Sequence[PushItem]
    ) -> list[PushResult]:
        status = feed.get("processingStatus")
        log.info("%s: feed %s of %d messages: %s", self.channel, feed_id, len(items), status)
        if status == "DONE":
            return report_results(self.channel, feed_id, items, self.report(feed))
        if status == "FATAL":
            report = self.report(feed) if feed.get("resultFeedDocumentId") else {}
            why = issue_text(report.get("issues"))
            return failed(items, PermanentChannelError(
                f"feed {feed_id} failed (FATAL): {why}", channel=self.channel))
        return failed(items, RetriableChannelError(f"feed {feed_id} was cancelled",
                                                   channel=self.channel))

    def submit(self, content: bytes) -> str:
        document = self.api.payload("createFeedDocument", self.api.call(
            "createFeedDocument", lambda: self.feeds.create_feed_document(None, CONTENT_TYPE)))
        document_id, url = document.get("feedDocumentId"), document.get("url")
        if not isinstance(document_id, str) or not isinstance(url, str):
            raise self.api.malformed("createFeedDocument", sorted(document))
        self.api.transfer("PUT feed document", lambda: self.http.put(url, content, CONTENT_TYPE))
        created = self.api.payload("createFeed", self.api.call("createFeed", lambda: (
            self.feeds.create_feed(FEED_TYPE, document_id, marketplaceIds=[self.marketplace_id]))))
        if not isinstance(created.get("feedId"), str):
            raise self.api.malformed("createFeed", created)
        feed_id: str = created["feedId"]
        return feed_id

    def wait(self, feed_id: str) -> dict[str, Any]:
        """The feed once finished, or as it stands after ``wait_seconds``."""
        deadline = self.clock() + self.wait_seconds
        feed: dict[str, Any] = {"feedId": feed_id, "processingStatus": "IN_QUEUE"}
        while True:
            try:
                feed = self.check(feed_id)
            except RetriableChannelError as exc:  # the feed goes on: ask again, or later
                log.info("%s: feed %s: %s", self.channel, feed_id, exc)
            if feed.get("processingStatus") in FINISHED:
                return feed
            if self.clock() + self.poll_interval > deadline:
                return feed
            self.sleep(self.poll_interval)

    def check(self, feed_id: str) -> dict[str, Any]:
        """The feed as Amazon has it now (one getFeed)."""
        feed = self.api.payload("getFeed", self.api.call(
            "getFeed", lambda: self.feeds.get_feed(feed_id)))
        if feed.get("processingStatus") not in FINISHED | WORKING:
            raise self.api.malformed("getFeed", feed)
        return feed

    def report(self, feed: dict[str, Any]) -> dict[str, Any]:
        document_id = feed.get("resultFeedDocumentId")
        if not isinstance(document_id, str):
            raise self.api.malformed("getFeed", feed)
        document = self.api.payload("getFeedDocument", self.api.call(
            "getFeedDocument", lambda: self.feeds.feed_document(document_id)))
        url = document.get("url")
        if not isinstance(url, str):
            raise self.api.malformed("getFeedDocument", sorted(document))
        content = self.api.transfer("GET feed report", lambda: self.http.get(url))
        return self._parse(content, gzipped=document.get("compressionAlgorithm") == "GZIP")

    def _parse(self, content: bytes, *, gzipped: bool) -> dict[str, Any]:
        try:
            if gzipped or content[:2] == b"\x1f\x8b":
                content = gzip.decompress(content)
            report = json.loads(content)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise self.api.malformed("feed report", content[:80]) from exc
        if not isinstance(report, dict) or not isinstance(report.get("issues"), list) \
                or not isinstance(report.get("summary"), dict):
            raise self.api.malformed("feed report", content[:80])
        return report


def report_results(
    channel: str, feed_id: str, items: Sequence[PushItem], report: dict[str, Any]
) -> list[PushResult]:
    """One outcome per message: its own ERROR issues refuse it; so do feed-level ERROR issues,
    unless the summary counts every other message as accepted."""
    own, general = _errors_by_message(items, report["issues"])
    summary = report["summary"]
    accepted, processed = summary.get("messagesAccepted"), summary.get("messagesProcessed")
    clean = len(items) - len(own)
    general_refuses = bool(general) and not (_is_int(accepted) and accepted >= clean)
    unprocessed = _is_int(processed) and processed < len(items)
    results: list[PushResult] = []
    for number, item in enumerate(items, start=1):
        error: ChannelError | None = None
        if number in own:
            error = PermanentChannelError(
                f"{item.channel_sku!r} rejected by Amazon: {issue_text(own[number])}",
                channel=channel)
        elif general_refuses:
            error = PermanentChannelError(
                f"feed {feed_id} rejected: {issue_text(general)}", channel=channel)
        elif unprocessed:
            error = RetriableChannelError(
                f"feed {feed_id}: Amazon processed {processed} of {len(items)} messages",
                channel=channel)
        results.append(PushResult(item.channel_sku, ok=error is None, error=error))
    return results


def _errors_by_message(
    items: Sequence[PushItem], issues: list[Any]
) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    numbers = {item.channel_sku: n for n, item in enumerate(items, start=1)}
    own: dict[int, list[dict[str, Any]]] = defaultdict(list)
    general: list[dict[str, Any]] = []
    for issue in issues:
        if not isinstance(issue, dict) or issue.get("severity") != "ERROR":
            continue
        number = issue.get("messageId")
        if not _is_int(number) or not 1 <= number <= len(items):
            sku = issue.get("sku")
            number = numbers.get(sku) if isinstance(sku, str) else None
        if number is None:
            general.append(issue)
        else:
            own[number].append(issue)
    return dict(own), general


def failed(items: Sequence[PushItem], error: ChannelError) -> list[PushResult]:
    return [PushResult(item.channel_sku, ok=False, error=error) for item in items]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
