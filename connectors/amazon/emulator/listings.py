"""Listings in the Amazon emulator: offers and their attributes, JSON Patch as the Listings
Items API applies it (shared by patchListingsItem and JSON_LISTINGS_FEED messages), searches,
and the `Item` shape of the Listings Items 2021-08-01 model.

Issue codes are the emulator's own (Amazon documents few); messages say what went wrong:
4000001 unknown SKU, 4000002 invalid attribute value, 4000003 an FBA (AFN) offer or channel
code that a merchant must not write, 4000004 a path that is not a top-level attribute.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from channelsync.sandbox.emulator import Request
from connectors.amazon.emulator.wire import (
    Marketplace,
    amazon_error,
    csv_param,
    int_param,
    iso,
    time_param,
)

__all__ = ["FA", "ISSUE_NOT_FOUND", "LISTING_DATA", "Listing", "ListingPager",
           "apply_patches", "check_patches", "issue", "listing_item", "patch_request_errors",
           "search_listings"]

FA = "fulfillment_availability"
LISTING_DATA = ("summaries", "attributes", "issues", "offers", "fulfillmentAvailability",
                "procurement", "relationships", "productTypes")
PATCH_OPS = ("add", "replace", "merge", "delete")
ISSUE_NOT_FOUND, ISSUE_VALUE, ISSUE_FBA, ISSUE_PATH = "4000001", "4000002", "4000003", "4000004"
MAX_QUANTITY = 2_147_483_647
SEARCH_CAP = 1000  # "The maximum number of items (SKUs) that can be returned and paged through"
_PATH = re.compile(r"/attributes/(?P<name>[a-z][a-z0-9_]*)")
_MERGE_KEYS = {FA: ("fulfillment_channel_code",)}
_DEFAULT_MERGE_KEYS = ("marketplace_id", "language_tag")


@dataclass
class Listing:
    sku: str
    afn: bool  # fulfilled by Amazon: the quantity is Amazon's, never the merchant's
    product_type: str
    asin: str
    price: Decimal
    created: datetime
    updated: datetime
    attributes: dict[str, Any] = field(default_factory=dict)
    afn_quantity: int = 0

    @property
    def quantity(self) -> int:
        if self.afn:
            return self.afn_quantity
        entry = _entry(self.attributes.get(FA), "DEFAULT")
        value = entry.get("quantity") if entry else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def set_quantity(self, quantity: int) -> None:
        if self.afn:
            self.afn_quantity = quantity
            return
        entries = self.attributes.setdefault(FA, [])
        entry = _entry(entries, "DEFAULT")
        if entry is None:
            entries.append({"fulfillment_channel_code": "DEFAULT", "quantity": quantity})
        else:
            entry["quantity"] = quantity

    def status(self) -> list[str]:
        return ["BUYABLE", "DISCOVERABLE"] if self.quantity > 0 else ["DISCOVERABLE"]


def _entry(entries: Any, code: str) -> dict[str, Any] | None:
    if not isinstance(entries, list):
        return None
    return next((e for e in entries if isinstance(e, dict)
                 and e.get("fulfillment_channel_code") == code), None)


def issue(code: str, message: str, attribute: str | None = FA,
          category: str = "INVALID_ATTRIBUTE") -> dict[str, Any]:
    found: dict[str, Any] = {"code": code, "message": message, "severity": "ERROR",
                             "categories": [category]}
    if attribute:
        found["attributeNames"] = [attribute]
    return found


def patch_request_errors(body: dict[str, Any]) -> list[str]:
    """Violations of ListingsItemPatchRequest (answered 400, as a malformed body is)."""
    errors = []
    if not isinstance(body.get("productType"), str):
        errors.append("productType is required and must be a string.")
    patches = body.get("patches")
    if not isinstance(patches, list) or not patches:
        return [*errors, "patches is required: an array of at least one patch operation."]
    for n, patch in enumerate(patches):
        if not isinstance(patch, dict):
            errors.append(f"patches[{n}] must be an object.")
            continue
        if patch.get("op") not in PATCH_OPS:
            errors.append(f"patches[{n}].op must be one of {', '.join(PATCH_OPS)}.")
        if not isinstance(patch.get("path"), str):
            errors.append(f"patches[{n}].path is required and must be a string.")
        value = patch.get("value", [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            errors.append(f"patches[{n}].value must be an array of objects.")
    return errors


def check_patches(listing: Listing | None, sku: str, patches: list[dict[str, Any]],
                  afn_code: str) -> list[dict[str, Any]]:
    """The issues that make a (well-formed) patch INVALID; none: it may be applied."""
    if listing is None:
        return [issue(ISSUE_NOT_FOUND, f"SKU '{sku}' has no listing for this seller in this "
                      "marketplace; a patch changes existing listings only.", None)]
    found: list[dict[str, Any]] = []
    for n, patch in enumerate(patches):
        match = _PATH.fullmatch(patch["path"])
        if match is None:
            found.append(issue(ISSUE_PATH, f"patches[{n}]: '{patch['path']}' is not a "
                               "top-level attribute path such as /attributes/"
                               f"{FA}; nested attributes cannot be patched.", None))
        elif match["name"] == FA and listing.afn:
            found.append(issue(ISSUE_FBA, f"SKU '{sku}' is fulfilled by Amazon ({afn_code}): "
                               "its quantity is Amazon's. Writing fulfillment_availability "
                               "would convert the offer to merchant-fulfilled; not applied."))
        elif match["name"] == FA and patch["op"] != "delete":
            found += _check_availability(patch.get("value") or [], patch["op"], n)
    return found


def _check_availability(entries: list[dict[str, Any]], op: str, n: int
                        ) -> list[dict[str, Any]]:
    found, codes = [], [e.get("fulfillment_channel_code") for e in entries]
    for entry, code in zip(entries, codes, strict=True):
        quantity = entry.get("quantity")
        if not isinstance(code, str) or not code:
            found.append(issue(ISSUE_VALUE, f"patches[{n}]: fulfillment_channel_code is "
                               "required in every fulfillment_availability value."))
        elif code != "DEFAULT":
            found.append(issue(ISSUE_FBA, f"patches[{n}]: fulfillment_channel_code '{code}' is "
                               "Amazon's fulfillment network (FBA); merchants set only DEFAULT."))
        elif codes.count(code) > 1:
            found.append(issue(ISSUE_VALUE, f"patches[{n}]: fulfillment_channel_code DEFAULT "
                               "appears more than once."))
        elif quantity is None and op != "merge":
            found.append(issue(ISSUE_VALUE, f"patches[{n}]: 'quantity' is required for "
                               "fulfillment_channel_code DEFAULT.", category="MISSING_ATTRIBUTE"))
        elif quantity is not None and (isinstance(quantity, bool) or not isinstance(
                quantity, int) or not 0 <= quantity <= MAX_QUANTITY):
            found.append(issue(ISSUE_VALUE, f"patches[{n}]: quantity {quantity!r} is invalid: "
                               "it must be a whole number of units, 0 or more."))
    return found


def apply_patches(listing: Listing, patches: list[dict[str, Any]], now: datetime) -> None:
    """Apply patches that `check_patches` accepted."""
    for patch in patches:
        name = patch["path"].rsplit("/", 1)[1]
        value = copy.deepcopy(patch.get("value"))
        keys = _MERGE_KEYS.get(name, _DEFAULT_MERGE_KEYS)
        if patch["op"] == "delete" and value:
            listing.attributes[name] = [e for e in listing.attributes.get(name, [])
                                        if not any(_same(e, v, keys) for v in value)]
        elif patch["op"] == "delete":
            listing.attributes.pop(name, None)
        elif patch["op"] == "merge":  # matching values take the new fields, keep the others
            merged = [dict(e) for e in listing.attributes.get(name, [])]
            for new in value or []:
                old = next((e for e in merged if _same(e, new, keys)), None)
                if old is None:
                    merged.append(new)
                else:
                    old.update(new)
            listing.attributes[name] = merged
        else:  # add, replace: the whole attribute becomes the value
            listing.attributes[name] = value or []
    listing.updated = max(now, listing.updated)


def _same(entry: dict[str, Any], other: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return all(entry.get(k) == other.get(k) for k in keys)


def listing_item(listing: Listing, included: Iterable[str], market: Marketplace
                 ) -> dict[str, Any]:
    """An `Item` of the Listings Items 2021-08-01 model with the asked data sets."""
    wanted, mid = set(included), market.marketplace_id
    out: dict[str, Any] = {"sku": listing.sku}
    if "summaries" in wanted:
        names = listing.attributes.get("item_name") or [{}]
        summary = {"marketplaceId": mid, "asin": listing.asin,
                   "productType": listing.product_type, "conditionType": "new_new",
                   "status": listing.status(), "itemName": str(names[0].get("value", "")),
                   "createdDate": iso(listing.created), "lastUpdatedDate": iso(listing.updated)}
        if listing.afn:
            summary["fnSku"] = "X00" + listing.asin[-7:]
        out["summaries"] = [summary]
    if "attributes" in wanted:
        out["attributes"] = copy.deepcopy(listing.attributes)
    if "issues" in wanted:
        out["issues"] = []
    if "offers" in wanted:
        out["offers"] = [{"marketplaceId": mid, "offerType": "B2C",
                          "price": {"currencyCode": market.currency,
                                    "amount": f"{listing.price:.2f}"},
                          "audience": {"value": "ALL", "displayName": "Sell on Amazon"}}]
    if "fulfillmentAvailability" in wanted:
        code = market.afn_code if listing.afn else "DEFAULT"
        out["fulfillmentAvailability"] = [{"fulfillmentChannelCode": code,
                                           "quantity": listing.quantity}]
    if "procurement" in wanted:
        out["procurement"] = []  # vendors only
    if "relationships" in wanted:
        out["relationships"] = [{"marketplaceId": mid, "relationships": []}]
    if "productTypes" in wanted:
        out["productTypes"] = [{"marketplaceId": mid, "productType": listing.product_type}]
    return out


_SORT = {"sku": lambda row: row.sku, "createdDate": lambda row: (row.created, row.sku),
         "lastUpdatedDate": lambda row: (row.updated, row.sku)}


def search_listings(listings: Iterable[Listing], request: Request) -> list[Listing]:
    """searchListingsItems' filters and order (paging is the caller's)."""
    identifiers = csv_param(request, "identifiers")
    kind = request.arg("identifiersType")
    if (identifiers is None) != (kind is None):
        raise amazon_error(400, "identifiers and identifiersType go together.")
    if identifiers is not None and len(identifiers) > 20:
        raise amazon_error(400, "Invalid identifiers: at most 20 values.")
    sort_by = request.arg("sortBy", "lastUpdatedDate") or ""
    order = request.arg("sortOrder", "DESC")
    if sort_by not in _SORT or order not in ("ASC", "DESC"):
        raise amazon_error(400, "Invalid sortBy or sortOrder.")
    bounds = _bounds(request)
    with_status = set(csv_param(request, "withStatus") or ())
    without_status = set(csv_param(request, "withoutStatus") or ())
    found = []
    # A search runs again for every page, over every listing: each row is put only to the
    # filters the request sets.
    for row in listings:
        if identifiers is not None and \
                {"SKU": row.sku, "ASIN": row.asin}.get(kind or "") not in identifiers:
            continue
        if with_status or without_status:
            status = set(row.status())
            if with_status - status or without_status & status:
                continue
        if all((getattr(row, name) >= edge) == after for name, edge, after in bounds):
            found.append(row)
    return sorted(found, key=_SORT[sort_by], reverse=order == "DESC")


def _bounds(request: Request) -> list[tuple[str, datetime, bool]]:
    """The time filters as (attribute, edge, after): a row passes when ``row.attribute >=
    edge`` is ``after``. A listing's time counts in whole seconds: created at 10:00:00.7 it
    is created before 10:00:00.2, and not after 10:00:00.5."""
    bounds = []
    for name in ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore"):
        bound = time_param(request, name)
        if bound is None:
            continue
        attribute = "created" if name.startswith("created") else "updated"
        second = bound.replace(microsecond=0)
        if name.endswith("After"):  # its second at or after the bound
            edge = second if second == bound else second + timedelta(seconds=1)
            bounds.append((attribute, edge, True))
        else:  # its second at or before the bound's
            bounds.append((attribute, second + timedelta(seconds=1), False))
    return bounds


@dataclass(frozen=True)
class _Cursor:
    signature: tuple[Any, ...]
    offset: int
    expires: datetime


class ListingPager:
    """searchListingsItems' page tokens: an offset into the search re-run on the current state
    (so a listing that changes while a client pages by lastUpdatedDate can move between
    pages, as on Amazon: page by sku for a stable order)."""

    def __init__(self) -> None:
        self._cursors: dict[str, _Cursor] = {}

    def page(self, request: Request, rows: list[Listing], now: datetime
             ) -> tuple[list[Listing], dict[str, str]]:
        size = int_param(request, "pageSize", 10, 1, 20)
        signature = tuple(sorted((k, tuple(v)) for k, v in request.query.items()
                                 if k not in ("pageToken", "pageSize")))
        offset, token = 0, request.arg("pageToken")
        if token is not None:
            cursor = self._cursors.get(token)
            if cursor is None or cursor.expires < now or cursor.signature != signature:
                raise amazon_error(400, "Invalid pageToken: unknown, expired, or sent with "
                                        "other parameters than the request that returned it.")
            offset = cursor.offset
        end = min(offset + size, len(rows), SEARCH_CAP)
        links = {}
        if end < min(len(rows), SEARCH_CAP):
            links["nextToken"] = self._issue(signature, end, now)
        if offset > 0:
            links["previousToken"] = self._issue(signature, max(0, offset - size), now)
        return rows[offset:end], links

    def _issue(self, signature: tuple[Any, ...], offset: int, now: datetime) -> str:
        if len(self._cursors) > 1000:  # forget expired tokens now and then
            self._cursors = {t: c for t, c in self._cursors.items() if c.expires > now}
        token = secrets.token_urlsafe(18)
        self._cursors[token] = _Cursor(signature, offset, now + timedelta(hours=24))
        return token
