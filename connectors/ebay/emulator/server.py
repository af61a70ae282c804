"""An eBay seller account on loopback: enough of the Trading API (XML) for the real ebaysdk.

Served at `POST /ws/api.dll`, dispatched on `X-EBAY-API-CALL-NAME`: GetOrders,
ReviseInventoryStatus, CompleteSale, GetMyeBaySelling (ActiveList), GetSellerList, GetItem,
GetUserPreferences and GeteBayOfficialTime. Answers are
`<{Call}Response xmlns="urn:ebay:apis:eBLBaseComponents">` with Timestamp, Ack, Errors, Version
and Build, HTTP 200 even for `Failure`, as eBay does.
Behaviour copied from eBay (see the eBay section of channels.md in the shared notes):
- the token is `RequesterCredentials/eBayAuthToken` or the `X-EBAY-API-IAF-TOKEN` header
  (OAuth); a missing or wrong one is a Failure with error 931;
- GetOrders by ModTimeFrom/ModTimeTo: at most 30 days wide, not older than 90 days; pages of
  at most 100 (larger EntriesPerPage is clamped); orders show at once; or by OrderIDArray
  (no time filter then; an unknown id is left out of the answer);
- CompleteSale marks an order or one line shipped with its tracking number (see
  completesale.py); a transaction shows its ShippedTime and ShipmentTrackingDetails, the
  order its ShippedTime once shipped as a whole;
- ReviseInventoryStatus: at most 4 InventoryStatus per call; each item succeeds or fails on
  its own (Ack PartialFailure, or Failure when all fail; each error names its ItemID in
  ErrorParameters); `Quantity` is the available quantity (Quantity - QuantitySold); 250
  revisions per listing per eBay day (US Pacific time), counted on successful items; 0 ends
  the listing unless the seller has out-of-stock control (then it stays active, hidden);
- throttling is an HTTP 200 Failure with error 518; injected 5xx are an HTML 503 from the
  front end (ebaysdk then raises AttributeError) or an XML 500 with error 10007.
GetSellerList needs a StartTime or EndTime range of at most 120 days; an active listing is
Good 'Til Cancelled, its EndTime the next 30-day renewal.
Orders carry what a seller sees of them: BuyerUserID (a made-up user ID, see state.py; no
ShippingAddress or phone), each transaction's Buyer/Email for a buyer the sandbox named (for 14
days after the sale, then "Invalid Request", as eBay does), CreatedTime, PaidTime once paid,
ShippedTime once shipped, the package's ShippingServiceSelected/ShippingPackageInfo with eBay's
estimated delivery window and, once delivered, its ActualDeliveryTime,
each line's TransactionPrice, and Subtotal, Total and AmountPaid in the site's currency
(`currencyID`): the sum of the lines, as no shipping costs or taxes are emulated. A listing's
`"price"` (a number >= 0) sets its StartPrice; without one it has a price fixed by its SKU.
Beyond the shared control API: `POST /_sandbox/orders {"lines": [...], "paid": false}` places
an order awaiting payment (`"buyer": {"email", "name"}` names its buyer: the same email is the
same user ID), `POST /_sandbox/orders/{id}/pay` pays it,
`POST /_sandbox/orders/{id}/deliver` delivers an order shipped as a whole, and
`POST /_sandbox/orders/{id}/cancel-request` is a buyer's cancellation request (OrderStatus
CancelPending, CancelStatus CancelRequested; the units stay sold until `/cancel`).
Injected page faults (duplicates, shuffles, stale versions) hit GetOrders pages by time (not
the lookups by OrderID); ReviseInventoryStatus and CompleteSale, the writes, lose their
answers. `GET /_sandbox/orders/{id}` lists an order's `shipments`: one per tracking number,
with the lines it is on. `GET /_sandbox/orders` lists every order as held.
Left out: listings ending when a sale (rather than a revision) sells them out,
ReviseInventoryStatus StartPrice, order filters other than the modification time.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from channelsync.sandbox.emulator import (
    BadRequest,
    Emulator,
    Raw,
    Request,
    Response,
    Route,
    SandboxError,
    route,
    sandbox_buyer,
    sku_quantity,
)
from connectors.ebay.emulator.completesale import complete_sale
from connectors.ebay.emulator.render import item_xml, order_xml
from connectors.ebay.emulator.state import Listing, Store, Variation, earlier
from connectors.ebay.emulator.xmlwire import (
    INTERNAL,
    INVALID_TOKEN,
    ITEM_ENDED,
    ITEM_NOT_FOUND,
    REVISION_CAP,
    SKU_MISMATCH,
    TOO_MANY_ITEMS,
    UNSUPPORTED_CALL,
    USAGE_LIMIT,
    EbayError,
    Fault,
    child,
    child_text,
    element,
    envelope,
    flag,
    invalid,
    parse_request,
    parse_time,
    text,
)

__all__ = ["EbayEmulator"]

API = "/ws/api.dll"
MAX_ITEMS_PER_REVISE = 4
REVISIONS_PER_DAY = 250
MAX_WINDOW = timedelta(days=30)
MAX_AGE = timedelta(days=90)
SELLER_LIST_RANGE = timedelta(days=120)
EBAY_DAY = ZoneInfo("America/Los_Angeles")
XML = "text/xml;charset=utf-8"
HTML_503 = (b"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
            b"<title>503 Service Unavailable</title>\n</head><body>\n"
            b"<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service "
            b"your request. Please try again later.</p>\n</body></html>\n")
BAD_TOKEN = Fault(INVALID_TOKEN, "Auth token is invalid.",
                  "Validation of the authentication token in API request failed.")
_ORDER_STEP = re.compile(
    r"/_sandbox/orders/(?P<id>[^/]+)/(?P<step>pay|cancel-request|deliver)")


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    found = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return found or None


def _int(node: ET.Element | None, path: str, default: int, low: int = 1) -> int:
    raw = child_text(node, path)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or int(raw) < low:
        raise invalid(f"Input data for tag <{path.split('/')[-1]}> is invalid or missing.")
    return int(raw)


def _pages(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


class EbayEmulator(Emulator):
    """eBay's Trading API on loopback plus the shared /_sandbox/ control API."""

    channel_type = "ebay"
    write_operations: ClassVar[frozenset[str]] = frozenset({"ReviseInventoryStatus",
                                                            "CompleteSale"})

    def __init__(self, *, token: str | None = None, out_of_stock_control: bool = True,
                 revision_limit: int = REVISIONS_PER_DAY, seed: int | None = None,
                 clock: Callable[[], datetime] | None = None, currency: str = "USD") -> None:
        super().__init__(seed=seed, clock=clock)
        self.token = token  # None: any non-empty token is accepted
        self.currency = currency  # the site's (site 0, eBay US: USD)
        self.out_of_stock_control = out_of_stock_control
        self.revision_limit = revision_limit
        self._call = threading.local()  # the call name of the request being answered
        self.reset()

    @classmethod
    def for_settings(cls, settings: Any) -> EbayEmulator:
        """An emulator that accepts exactly a configured channel's token."""
        token = _secret(getattr(settings, "token", None)) or _secret(
            getattr(settings, "oauth_token", None))
        return cls(token=token)

    def reset(self) -> None:
        with self.lock:
            self.store = Store(self._seed, self.currency)

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    # -- dispatch: one URL, the call named in a header --------------------------------------

    def handle(self, request: Request) -> Response:
        self._call.name = (request.headers.get("X-EBAY-API-CALL-NAME") or "").strip()
        return super().handle(request)

    def _match(self, request: Request) -> Route | None:
        found = super()._match(request)
        if found is None or found.operation != "trading":
            return found
        return Route(found.method, found.pattern, found.handler, self._call.name or "<none>")

    def _xml(self, ack: str, faults: list[Fault], body: ET.Element | None = None,
             status: int = 200) -> Response:
        payload = envelope(getattr(self._call, "name", ""), self._now(), ack, faults, body)
        return status, Raw(payload, XML), {}

    def authenticate(self, request: Request) -> Response | None:
        if request.path != API or self._call.name not in self._CALLS:
            return None  # an unknown call is refused as such, before the token
        header = (request.headers.get("X-EBAY-API-IAF-TOKEN") or "").strip()
        try:
            root = parse_request(request.body, self._call.name) if self._call.name else None
        except EbayError:
            root = None  # the handler reports the XML error
        given = header or child_text(root, "RequesterCredentials/eBayAuthToken") or ""
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        if not given or (self.token is not None and given != self.token):
            return self._xml("Failure", [BAD_TOKEN])
        return None

    def throttle_response(self) -> Response:
        fault = Fault(USAGE_LIMIT, "Call usage limit has been reached.",
                      "Your application has exceeded usage limit on this call, please make "
                      "call to Developer Analytics API to check your call usage.",
                      classification="RequestError")
        return self._xml("Failure", [fault])

    def server_error_response(self, draw: float) -> Response:
        if draw < 0.5:
            return 503, Raw(HTML_503), {}
        fault = Fault(INTERNAL, "Internal error to the application.",
                      "General error has occurred.", classification="SystemError")
        return self._xml("Failure", [fault], status=500)

    def channel_error_response(self, err: SandboxError) -> Response:
        fault = err.data if isinstance(err.data, Fault) else Fault(
            INTERNAL, err.message, err.message, classification="SystemError")
        return self._xml("Failure", [fault])

    def no_route_response(self, request: Request) -> Response:
        page = (b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
                b"</body></html>")
        return 404, Raw(page), {}

    @route("POST", API, "trading")
    def trading(self, request: Request) -> Response:
        call = self._call.name
        handler = self._CALLS.get(call)
        if handler is None:
            raise EbayError(Fault(UNSUPPORTED_CALL, "Unsupported API call.",
                                  f'The API call "{call}" is invalid or not supported in this '
                                  "release."))
        return handler(self, parse_request(request.body, call))

    # -- sandbox hooks ----------------------------------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any]) -> None:
        self.store.set_listing(sku, quantity, extra, self._now())

    def listings(self) -> list[dict[str, Any]]:
        return self.store.rows()

    def place_order(self, lines: list[tuple[str, int]]) -> str:
        return self.store.place_order(lines, self._now()).order_id

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        return self.store.cancel(order_id, self._now())

    def ship_order(self, order_id: str) -> dict[str, Any]:
        return self.store.ship(order_id, self._now())

    def order_rows(self) -> list[dict[str, Any]]:
        return [order.row() for order in self.store.orders.values()]

    def control_route(self, request: Request) -> Response | None:
        if request.method != "POST":
            return None
        path = request.path.rstrip("/")
        step = _ORDER_STEP.fullmatch(path)
        if step is not None:
            order_id, now = step["id"], self._now()
            steps = {"pay": self.store.pay, "cancel-request": self.store.request_cancel,
                     "deliver": self.store.deliver}
            return 200, {"order_id": order_id, **steps[step["step"]](order_id, now)}, {}
        if path == "/_sandbox/orders":
            body = request.json()
            if not isinstance(body, dict) or not {"paid", "buyer"} & set(body):
                return None  # the shared route places it, paid
            lines, paid = body.get("lines"), body.get("paid", True)
            if not isinstance(lines, list) or not lines or not isinstance(paid, bool):
                raise BadRequest('an order needs "lines": [{"sku": "MUG", "quantity": 1}] and '
                                 '"paid" is true or false')
            wanted = [sku_quantity(line, minimum=1) for line in lines]
            buyer = sandbox_buyer(body["buyer"]) if "buyer" in body else None
            return 201, {"order_id": self.store.place_order(wanted, self._now(), paid=paid,
                                                            buyer=buyer).order_id}, {}
        return None

    # -- GetOrders ---------------------------------------------------------------------------

    def get_orders(self, root: ET.Element) -> Response:
        ids = [node.text.strip() for node in root.findall("OrderIDArray/OrderID")
               if node.text and node.text.strip()]
        if ids:
            return self._orders_by_id(root, ids)
        now = self._now()
        start = parse_time("ModTimeFrom", child_text(root, "ModTimeFrom"))
        end = parse_time("ModTimeTo", child_text(root, "ModTimeTo"))
        if start is None:
            raise invalid("Input data for tag <ModTimeFrom> is invalid or missing. "
                          "A time filter is required.")
        end = end or now
        if end < start:
            raise invalid("ModTimeTo must be later than ModTimeFrom.")
        if end - start > MAX_WINDOW:
            raise invalid("The time range between ModTimeFrom and ModTimeTo must not exceed "
                          "30 days.")
        if start < now - MAX_AGE:
            raise invalid("ModTimeFrom must not be more than 90 days in the past.")
        role = child_text(root, "OrderRole") or "Seller"
        if role not in ("Seller", "Buyer"):
            raise invalid("Input data for tag <OrderRole> is invalid or missing.")
        per_page = min(_int(root, "Pagination/EntriesPerPage", 100), 100)
        page = _int(root, "Pagination/PageNumber", 1)
        found = [] if role == "Buyer" else sorted(
            (o for o in self.store.orders.values() if start <= o.modified <= end),
            key=lambda o: (o.modified, o.order_id))
        body = ET.Element("body")
        # The fault plan serves the page; the pagination figures stay true.
        chunk = self.page_faults(_paginate(body, found, page, per_page, "HasMoreOrders"),
                                 previous=earlier)
        orders = element(body, "OrderArray")
        for order in chunk:
            order_xml(element(orders, "Order"), order, now)
        text(body, "OrdersPerPage", per_page)
        text(body, "PageNumber", page)
        text(body, "ReturnedOrderCountActual", len(chunk))
        return self._xml("Success", [], body)

    def _orders_by_id(self, root: ET.Element, ids: list[str]) -> Response:
        """GetOrders by OrderIDArray: those orders as they are, whatever their time."""
        now = self._now()
        role = child_text(root, "OrderRole") or "Seller"
        found = [] if role == "Buyer" else [self.store.orders[order_id] for order_id in
                                            dict.fromkeys(ids) if order_id in self.store.orders]
        body = ET.Element("body")
        per_page = max(len(found), 1)
        chunk = _paginate(body, found, 1, per_page, "HasMoreOrders")
        orders = element(body, "OrderArray")
        for order in chunk:
            order_xml(element(orders, "Order"), order, now)
        text(body, "OrdersPerPage", per_page)
        text(body, "PageNumber", 1)
        text(body, "ReturnedOrderCountActual", len(chunk))
        return self._xml("Success", [], body)

    # -- CompleteSale ------------------------------------------------------------------------

    def complete_sale(self, root: ET.Element) -> Response:
        complete_sale(self.store, root, self._now())
        return self._xml("Success", [])

    # -- ReviseInventoryStatus ---------------------------------------------------------------

    def revise_inventory_status(self, root: ET.Element) -> Response:
        items = root.findall("InventoryStatus")
        if not items:
            raise invalid("Input data for tag <InventoryStatus> is invalid or missing.")
        if len(items) > MAX_ITEMS_PER_REVISE:
            raise EbayError(Fault(TOO_MANY_ITEMS, "Too many InventoryStatus containers.",
                                  f"You can revise up to {MAX_ITEMS_PER_REVISE} items per "
                                  f"call; this request has {len(items)}."))
        body, faults, done = ET.Element("body"), [], 0
        for node in items:
            try:
                item_id, sku, quantity = self._revise(node)
            except EbayError as err:
                faults.append(err.fault)
                continue
            done += 1
            status = element(body, "InventoryStatus")
            text(status, "ItemID", item_id)
            if sku is not None:
                text(status, "SKU", sku)
            text(status, "Quantity", quantity)
        self.count_items_updated(done)
        ack = "Success" if not faults else "PartialFailure" if done else "Failure"
        return self._xml(ack, faults, body)

    def _revise(self, node: ET.Element) -> tuple[str, str | None, int]:
        item_id, sku = child_text(node, "ItemID"), child_text(node, "SKU")
        raw = child_text(node, "Quantity")
        ref = item_id or sku or "?"
        if item_id is None:
            if sku is None:
                raise self._item_error(invalid("ItemID or SKU is required.").fault, ref)
            found = self.store.find_sku(sku)
            item_id = found[0].item_id if found else None
        listing = self.store.listings.get(item_id or "")
        if listing is None:
            raise self._item_error(Fault(
                ITEM_NOT_FOUND, "Item not found.", f"The item ID {ref} is invalid, has been "
                "removed, or you are not the seller."), ref)
        if listing.status != "Active":
            raise self._item_error(Fault(ITEM_ENDED, "Auction ended.",
                                         "You are not allowed to revise ended listings."), ref)
        target: Listing | Variation = listing
        if listing.variations is not None:
            variation = listing.variations.get(sku or "")
            if variation is None:
                raise self._item_error(Fault(
                    SKU_MISMATCH, "SKU does not match the listing.", f"Item {listing.item_id} "
                    f"has variations; SKU {sku!r} is not one of them."), listing.item_id)
            target = variation
        elif sku is not None and sku != listing.sku:
            raise self._item_error(Fault(
                SKU_MISMATCH, "SKU does not match the listing.",
                f"SKU {sku!r} does not match the SKU of item {listing.item_id}."),
                listing.item_id)
        if raw is None or not raw.isdigit():
            raise self._item_error(invalid(
                "Input data for tag <InventoryStatus.Quantity> is invalid or missing.").fault,
                listing.item_id)
        day = self._now().astimezone(EBAY_DAY).date().isoformat()
        if listing.revisions.get(day, 0) >= self.revision_limit:
            raise self._item_error(Fault(
                REVISION_CAP, "Revision limit reached.", f"Item {listing.item_id} has been "
                f"revised {self.revision_limit} times today, the most allowed per day."),
                listing.item_id)
        listing.revisions = {day: listing.revisions.get(day, 0) + 1}
        target.quantity = target.sold + int(raw)
        if listing.available == 0 and not self.out_of_stock_control:
            listing.status, listing.ended = "Ended", self._now()
        return listing.item_id, sku, int(raw)

    @staticmethod
    def _item_error(fault: Fault, item_id: str) -> EbayError:
        return EbayError(Fault(fault.code, fault.short, fault.long, (item_id,)))

    # -- GetMyeBaySelling, GetItem -----------------------------------------------------------

    def get_my_ebay_selling(self, root: ET.Element) -> Response:
        asked = child(root, "ActiveList")
        body = ET.Element("body")
        others = {"BidList", "DeletedFromSoldList", "DeletedFromUnsoldList", "ScheduledList",
                  "SellingSummary", "SoldList", "UnsoldList"}
        if asked is None and any(node.tag in others for node in root):  # not served
            return self._xml("Success", [], body)
        if flag(asked, "Include") is False:
            return self._xml("Success", [], body)
        per_page = min(_int(asked, "Pagination/EntriesPerPage", 200), 200)
        page = _int(asked, "Pagination/PageNumber", 1)
        active = [x for x in self.store.listings.values() if x.status == "Active"]
        chunk = active[(page - 1) * per_page:page * per_page]
        out = element(body, "ActiveList")
        items = element(out, "ItemArray")
        for listing in chunk:
            item_xml(element(items, "Item"), listing, self._now(), self.currency)
        result = element(out, "PaginationResult")
        text(result, "TotalNumberOfPages", _pages(len(active), per_page))
        text(result, "TotalNumberOfEntries", len(active))
        return self._xml("Success", [], body)

    def get_item(self, root: ET.Element) -> Response:
        item_id = child_text(root, "ItemID") or ""
        listing = self.store.listings.get(item_id)
        if listing is None:
            raise EbayError(Fault(ITEM_NOT_FOUND, "Item not found.",
                                  f"The item ID {item_id} is invalid, has been removed, or you "
                                  "are not the seller."))
        body = ET.Element("body")
        item_xml(element(body, "Item"), listing, self._now(), self.currency)
        return self._xml("Success", [], body)

    def get_seller_list(self, root: ET.Element) -> Response:
        now, bounds = self._now(), {}
        for name in ("StartTimeFrom", "StartTimeTo", "EndTimeFrom", "EndTimeTo"):
            bounds[name] = parse_time(name, child_text(root, name))
        pairs = [(kind, bounds[f"{kind}TimeFrom"], bounds[f"{kind}TimeTo"])
                 for kind in ("Start", "End")]
        used = [(kind, low, high) for kind, low, high in pairs if low or high]
        if not used:
            raise invalid("A StartTime or EndTime range (From and To) is required.")
        for kind, low, high in used:
            if low is None or high is None or high < low or high - low > SELLER_LIST_RANGE:
                raise invalid(f"{kind}TimeFrom and {kind}TimeTo must both be given, in order, "
                              "at most 120 days apart.")
        sku_filter = {s.text.strip() for s in root.findall("SKUArray/SKU") if s.text}
        per_page = min(_int(root, "Pagination/EntriesPerPage", 25), 200)
        page = _int(root, "Pagination/PageNumber", 1)

        def wanted(listing: Listing) -> bool:
            moments = {"Start": listing.started, "End": listing.end_time(now)}
            return (not sku_filter or listing.sku in sku_filter) and all(
                low <= moments[kind] <= high for kind, low, high in used if low and high)

        found = [x for x in self.store.listings.values() if wanted(x)]
        body = ET.Element("body")
        chunk = _paginate(body, found, page, per_page, "HasMoreItems")
        items = element(body, "ItemArray")
        for listing in chunk:
            item_xml(element(items, "Item"), listing, now, self.currency)
        text(body, "ItemsPerPage", per_page)
        text(body, "PageNumber", page)
        text(body, "ReturnedItemCountActual", len(chunk))
        return self._xml("Success", [], body)

    # -- GetUserPreferences, GeteBayOfficialTime ---------------------------------------------

    def get_user_preferences(self, root: ET.Element) -> Response:
        body = ET.Element("body")
        if flag(root, "ShowOutOfStockControlPreference"):
            text(body, "OutOfStockControlPreference", self.out_of_stock_control)
        return self._xml("Success", [], body)

    def get_official_time(self, root: ET.Element) -> Response:
        return self._xml("Success", [])

    _CALLS: dict[str, Callable[[EbayEmulator, ET.Element], Response]] = {
        "GetOrders": get_orders,
        "ReviseInventoryStatus": revise_inventory_status,
        "CompleteSale": complete_sale,
        "GetMyeBaySelling": get_my_ebay_selling,
        "GetItem": get_item,
        "GetSellerList": get_seller_list,
        "GetUserPreferences": get_user_preferences,
        "GeteBayOfficialTime": get_official_time,
    }


def _paginate(body: ET.Element, found: list[Any], page: int, per_page: int,
              more: str) -> list[Any]:
    """Write eBay's PaginationResult and has-more flag; return this page's entries."""
    pages = _pages(len(found), per_page)
    result = element(body, "PaginationResult")
    text(result, "TotalNumberOfPages", pages)
    text(result, "TotalNumberOfEntries", len(found))
    text(body, more, page < pages)
    return found[(page - 1) * per_page:page * per_page]
