"""Feeds and feed documents of the Amazon emulator: the document storage behind presigned
URLs, feeds waiting for their time, and their processing in the background (a timer thread,
or whichever request first finds a feed due) into a gzip processing report."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from channelsync.sandbox.emulator import Raw, Request, Response
from connectors.amazon.emulator.auth import Presigner
from connectors.amazon.emulator.feeds import (
    FEED_TYPE,
    ISSUE_SCHEMA,
    Document,
    Feed,
    ReportBuilder,
    message_errors,
    parse_feed,
)
from connectors.amazon.emulator.listings import issue, listing_item
from connectors.amazon.emulator.state import SellerAccount
from connectors.amazon.emulator.wire import amazon_error

__all__ = ["FeedStore"]

logger = logging.getLogger(__name__)


class FeedStore:
    """State and work of the Feeds API; `lock` is the emulator's, guarding `account` too."""

    def __init__(self, account: SellerAccount, lock: threading.RLock,
                 now: Callable[[], datetime], seller_id: str | None, delay: timedelta,
                 on_updated: Callable[[int], None]) -> None:
        self.account, self.lock, self.now = account, lock, now
        self.seller_id, self.delay, self.on_updated = seller_id, delay, on_updated
        self.presigner = Presigner()
        self.documents: dict[str, Document] = {}
        self.feeds: dict[str, Feed] = {}
        self._timers: list[threading.Timer] = []
        self._closed = False

    def close(self) -> None:
        """Stop the timers; feeds not yet processed stay as they are."""
        self._closed = True
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    # -- documents --------------------------------------------------------------------------

    def new_document(self, content_type: str) -> Document:
        suffix = self.account.ids.randrange(10**12)
        doc_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}.T{suffix:012d}"
        doc = self.documents[doc_id] = Document(doc_id, content_type, self.now())
        return doc

    def document(self, doc_id: str) -> Document:
        doc = self.documents.get(doc_id)
        if doc is None:
            raise amazon_error(404, "The feed document was not found.")
        return doc

    def url(self, base: str, method: str, doc: Document) -> str:
        return self.presigner.url(base, method, doc.document_id, self.now())

    def storage(self, request: Request, key: str) -> Response:
        """A presigned PUT (upload) or GET (download), answered as S3 would."""
        doc = self.documents.get(key)
        if doc is None:
            return self.presigner.missing()
        refusal = self.presigner.refusal(request, key, self.now())
        if refusal is not None:
            return refusal
        if request.method == "PUT":
            doc.content = request.body
            doc.content_type = request.headers.get("Content-Type") or doc.content_type
            return 200, Raw(b"", "application/xml"), {"ETag": f'"{uuid.uuid4().hex}"'}
        if doc.content is None:
            return self.presigner.missing()
        return 200, Raw(doc.content, "application/octet-stream"), {}

    # -- feeds ------------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> str:
        feed_type, markets = body.get("feedType"), body.get("marketplaceIds")
        doc = self.documents.get(str(body.get("inputFeedDocumentId")))
        if not isinstance(markets, list) or not 1 <= len(markets) <= 25:
            raise amazon_error(400, "marketplaceIds is required: 1 to 25 marketplace ids.")
        if feed_type != FEED_TYPE:
            raise amazon_error(400, f"Invalid feedType {feed_type!r}: this emulator processes "
                               f"{FEED_TYPE} (XML and flat-file inventory feeds are retired).")
        if doc is None or doc.content is None or doc.compressed:
            raise amazon_error(400, "inputFeedDocumentId must name a feed document whose "
                               "contents were uploaded.")
        now = self.now()
        feed_id = str(50_000_000_000 + 7 * len(self.feeds) + self.account.ids.randrange(7))
        self.feeds[feed_id] = Feed(feed_id, feed_type, [str(m) for m in markets],
                                   doc.document_id, now, now + self.delay)
        if not self._closed:
            timer = threading.Timer(self.delay.total_seconds() + 0.01, self.run_due)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return feed_id

    def feed(self, feed_id: str) -> Feed:
        feed = self.feeds.get(feed_id)
        if feed is None:
            raise amazon_error(404, "The feed was not found.")
        return feed

    def cancel(self, feed_id: str) -> None:
        feed = self.feed(feed_id)
        if feed.status != "IN_QUEUE":
            raise amazon_error(400, "Only IN_QUEUE feeds can be cancelled; this one is "
                               f"{feed.status}.")
        feed.status = "CANCELLED"

    def rows(self) -> list[dict[str, Any]]:
        """Every feed with its input document (parsed when it is JSON), oldest first."""
        rows = []
        for feed in self.feeds.values():
            doc = self.documents.get(feed.input_document)
            content = doc.content if doc and doc.content is not None else b""
            try:
                document: Any = json.loads(content)
            except ValueError:
                document = content.decode("utf-8", "replace")
            rows.append({"feed_id": feed.feed_id, "feed_type": feed.feed_type,
                         "status": feed.status, "input_document_id": feed.input_document,
                         "content_type": doc.content_type if doc else None,
                         "result_document_id": feed.result_document, "document": document})
        return rows

    # -- processing -------------------------------------------------------------------------

    def run_due(self) -> None:
        """Process the feeds whose time has come: checks outside the lock, changes inside."""
        with self.lock:
            now = self.now()
            due = [f for f in self.feeds.values() if f.status == "IN_QUEUE" and f.due <= now]
            for feed in due:
                feed.status, feed.started = "IN_PROGRESS", now
            work = [(feed, self.documents[feed.input_document].content or b"") for feed in due]
        for feed, content in work:
            try:
                self._process(feed, content)
            except Exception:  # a bug must not leave the feed IN_PROGRESS forever
                logger.exception("emulator failed processing feed %s", feed.feed_id)
                with self.lock:
                    feed.status, feed.ended = "FATAL", self.now()

    def _process(self, feed: Feed, content: bytes) -> None:
        document, fatal = parse_feed(content)
        raw_header = document.get("header")
        header: dict[str, Any] = raw_header if isinstance(raw_header, dict) else {}
        seller = header.get("sellerId") if isinstance(header.get("sellerId"), str) else None
        if not fatal and self.seller_id is not None and seller != self.seller_id:
            fatal.append(f"header.sellerId {seller!r} is not this seller ({self.seller_id}).")
        builder = ReportBuilder(feed.feed_id, seller or self.seller_id or "UNKNOWN",
                                None if fatal else header.get("report"))
        checked = [] if fatal else [(m, message_errors(m)) for m in document["messages"]]
        with self.lock:
            if self._closed:
                return  # the emulator was reset or stopped meanwhile
            for problem in fatal:
                builder.fatal(problem)
            self._apply(builder, checked)
            self.on_updated(builder.accepted)
            doc = self.new_document("application/json; charset=UTF-8")
            doc.content = gzip.compress(json.dumps(builder.json()).encode())
            doc.compressed = True
            feed.result_document = doc.document_id
            feed.status, feed.ended = ("FATAL" if fatal else "DONE"), self.now()

    def _apply(self, builder: ReportBuilder, checked: list[tuple[Any, list[str]]]) -> None:
        now, seen = self.now(), set()
        for message, errors in checked:
            builder.processed += 1
            message_id = message.get("messageId") if isinstance(message, dict) else None
            if not errors and message_id in seen:
                errors = [f"messageId {message_id} is not unique in this feed."]
            elif not errors:
                seen.add(message_id)
            found = [issue(ISSUE_SCHEMA, e, None) for e in errors] or (
                self.account.apply_message(message, now))
            if found:
                builder.reject(message, found)
                continue
            builder.accepted += 1
            listing = self.account.listings.get(message["sku"])
            if builder.report is not None and listing is not None:
                builder.items.append(listing_item(listing, builder.report["includedData"],
                                                  self.account.market))
