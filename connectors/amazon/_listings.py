"""Listings Items API 2021-08-01: reading listings, and the quantity patch.

A listing's ``ref`` is ``MFN:<sku>`` or ``AFN:<sku>``: who fulfils it, as last read. An AFN
(FBA) listing's stock is Amazon's: it is read with ``managed=False`` and never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from channelsync.connector import ChannelListing, PushItem, PushResult
from channelsync.errors import PermanentChannelError, RetriableChannelError
from connectors._http import redact

MERCHANT_CHANNEL = "DEFAULT"  # fulfillment_channel_code of a merchant-fulfilled offer
QUANTITY_PATH = "/attributes/fulfillment_availability"
SEARCH_PAGE_SIZE = 20  # searchListingsItems' maximum
SEARCH_CAP = 1000  # "the maximum number of items (SKUs) that can be returned and paged through"
SEARCH_QUERY: dict[str, Any] = {
    "includedData": ["summaries", "fulfillmentAvailability"],
    "pageSize": SEARCH_PAGE_SIZE,
    "sortBy": "sku",  # stable while we page: the default (last update) moves with every sale
    "sortOrder": "ASC",
}
# The created-date range split in halves when one search finds more than it can page through.
EARLIEST = datetime(1994, 7, 5, tzinfo=UTC)
AFN, MFN = "AFN", "MFN"
SNIPPET_CHARS = 200


def quantity_patch(product_type: str, quantity: int) -> dict[str, Any]:
    """A ``ListingsItemPatchRequest``: ``merge`` keeps sibling fields such as handling time."""
    return {"productType": product_type, "patches": [quantity_operation(quantity)]}


def quantity_operation(quantity: int) -> dict[str, Any]:
    value = [{"fulfillment_channel_code": MERCHANT_CHANNEL, "quantity": quantity}]
    return {"op": "merge", "path": QUANTITY_PATH, "value": value}


def listing_ref(sku: str, by_amazon: bool) -> str:
    return f"{AFN if by_amazon else MFN}:{sku}"


def is_afn_ref(ref: str) -> bool:
    return ref.startswith(f"{AFN}:")


def parse_listing(raw: Any) -> ChannelListing | None:
    """A searchListingsItems item as a listing (None without a SKU)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("sku"), str) or not raw["sku"]:
        return None
    sku = raw["sku"]
    offers = [a for a in raw.get("fulfillmentAvailability") or () if isinstance(a, dict)]
    codes = [a.get("fulfillmentChannelCode") for a in offers]
    by_amazon = any(isinstance(c, str) and c != MERCHANT_CHANNEL for c in codes)
    chosen = [a for a in offers if (a.get("fulfillmentChannelCode") == MERCHANT_CHANNEL)
              != by_amazon]
    quantity = chosen[0].get("quantity") if chosen else None
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        quantity = None
    return ChannelListing(sku, quantity, ref=listing_ref(sku, by_amazon), managed=not by_amazon)


def patch_result(channel: str, item: PushItem, payload: Any) -> PushResult:
    """A patchListingsItem answer: ``INVALID`` comes as HTTP 200, its issues say why."""
    sku = item.channel_sku
    status = payload.get("status") if isinstance(payload, dict) else None
    if status == "ACCEPTED":
        return PushResult(sku, ok=True)
    if status == "INVALID":
        message = f"{sku!r} rejected by Amazon: {issue_text(payload.get('issues'))}"
        return PushResult(sku, ok=False, error=PermanentChannelError(message, channel=channel))
    snippet = redact(repr(payload)[:SNIPPET_CHARS])
    error = RetriableChannelError(f"{sku!r}: patch answered without a status: {snippet}",
                                  channel=channel)
    return PushResult(sku, ok=False, error=error)


def issue_text(issues: Any) -> str:
    """The ERROR issues (else all), as ``code: message; ...``, shortened and masked."""
    found = [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
    errors = [i for i in found if i.get("severity") == "ERROR"] or found
    text = "; ".join(f"{i.get('code', '')}: {i.get('message', '')}".strip(": ") for i in errors)
    return redact(" ".join(text.split())[:SNIPPET_CHARS]) or "no reason given"


# -- searching ------------------------------------------------------------------------------

Search = Callable[[dict[str, Any]], tuple[list[Any], int | None, str | None]]


@dataclass
class ListingSearch:
    """Every listing, through searchListingsItems pages of 20.

    One search pages through at most 1000 listings. When it finds more, the created-date
    range is split in halves until each part fits; parts are walked oldest first.
    ``search(params)`` returns a page's items, ``numberOfResults`` and next token.
    """

    search: Search
    now: datetime
    found: int | None = None  # numberOfResults of the whole search

    def all(self) -> Iterator[Any]:
        items, self.found, token = self.search({})
        if self.found is not None and self.found > SEARCH_CAP:
            end = self.now + timedelta(days=1)
            yield from self._split(_ms(EARLIEST), _ms(end), self.found)
        else:
            yield from self._rest({}, items, token)

    def _rest(self, window: dict[str, Any], items: list[Any], token: str | None) -> Iterator[Any]:
        yield from items
        while token:
            items, _, token = self.search({**window, "pageToken": token})
            yield from items

    def _split(self, start: int, end: int, total: int) -> Iterator[Any]:
        """Listings created in [start, end] (milliseconds, both included), in two halves."""
        middle = (start + end) // 2
        halves = [(start, middle), (middle + 1, end)]
        firsts = [self.search(_window(*half)) for half in halves]
        if sum(found or 0 for _, found, _ in firsts) > total:
            items, _, token = firsts[0]  # the created-date filter is ignored: read what we can
            yield from self._rest(_window(*halves[0]), items, token)
            return
        for (low, high), (items, found, token) in zip(halves, firsts, strict=True):
            if (found or 0) > SEARCH_CAP and high > low:
                yield from self._split(low, high, found or 0)
            else:
                yield from self._rest(_window(low, high), items, token)


def _window(start: int, end: int) -> dict[str, Any]:
    return {"createdAfter": _iso(start), "createdBefore": _iso(end)}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(millis: int) -> str:
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
