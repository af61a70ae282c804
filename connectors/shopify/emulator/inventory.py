"""`inventorySetQuantities` in the Shopify emulator: checks, atomic apply, idempotency.

Checks per quantity, in this order, the first failing one reported: unknown item, unknown
location, item not stocked there (or the location deactivated), negative, too high, the same
item and location twice, a stale `changeFromQuantity`. Any user error and nothing is applied.
COMPARE_QUANTITY_REQUIRED and COMPARE_QUANTITY_STALE belong to `compareQuantity`, which
versions from 2026-04 no longer have, so they are never produced. A key is remembered for
24 hours of the emulator's clock with a digest of the input and the outcome: the same key and
input answer the remembered outcome again (applied once); the same key with another input is
IDEMPOTENCY_KEY_PARAMETER_MISMATCH. IDEMPOTENCY_CONCURRENT_REQUEST cannot happen here (requests
run one at a time) and IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED is never produced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from graphql import GraphQLError

from connectors.shopify.emulator.state import Listing, Store, parse_gid

__all__ = ["MAX_QUANTITIES", "REASONS", "Change", "Group", "Inventory", "Outcome"]

MAX_QUANTITIES = 250
MAX_QUANTITY = 1_000_000_000
KEY_LIFETIME = timedelta(hours=24)
NAMES = ("available", "on_hand")
REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
    "movement_received", "movement_canceled", "other", "promotion", "quality_control",
    "received", "reservation_created", "reservation_deleted", "reservation_updated", "restock",
    "safety_stock", "shrinkage"})
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
STALE = "The changeFromQuantity value does not match persisted value."


@dataclass
class Change:
    listing: Listing
    location_id: int
    name: str
    delta: int
    after: int


@dataclass
class Group:
    id: int
    created: datetime
    reason: str
    reference: str | None
    changes: list[Change] = field(default_factory=list)


@dataclass
class Outcome:
    group: Group | None
    errors: list[dict[str, Any]]


def bad_request(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_REQUEST"})


def user_error(code: str, where: list[str], message: str) -> dict[str, Any]:
    return {"code": code, "field": ["input", *where], "message": message}


class Inventory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._keys: dict[str, tuple[str, datetime, Outcome]] = {}  # key -> digest, expiry

    def set_quantities(self, given: dict[str, Any], key: str | None, now: datetime,
                       hook: Callable[[], None] | None = None) -> tuple[Outcome, int]:
        """The outcome and how many quantities changed."""
        if key is None:
            # guessed: wording (Shopify documents the requirement, not the message)
            raise bad_request("The @idempotent directive is required for this mutation.")
        if not key.strip():
            # guessed: wording
            raise bad_request("The @idempotent directive needs a non-empty key.")
        quantities = given["quantities"]
        if len(quantities) > MAX_QUANTITIES:
            raise bad_request(f"The input array size of {len(quantities)} is greater than the "
                              f"maximum allowed of {MAX_QUANTITIES}.")  # guessed: wording
        if any("changeFromQuantity" not in q for q in quantities):
            # guessed: wording; since 2026-04 the field must be given, null to skip the check
            raise bad_request("changeFromQuantity is required (pass null to skip the check)")
        if hook is not None:
            hook()
        digest = hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()
        self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
        if key in self._keys:
            if self._keys[key][0] == digest:
                return self._keys[key][2], 0
            return Outcome(None, [user_error(
                "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", [],  # guessed: field and wording
                "The same idempotency key was already used with different parameters.")]), 0
        errors = self._check(given)
        outcome = Outcome(None, errors) if errors else self._apply(given, now)
        self._keys[key] = (digest, now + KEY_LIFETIME, outcome)
        return outcome, len(outcome.group.changes) if outcome.group else 0

    def _check(self, given: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        if given["name"] not in NAMES:
            errors.append(user_error("INVALID_NAME", ["name"],  # guessed: wording
                                     "The quantity name must be available or on_hand."))
        if given["reason"] not in REASONS:
            errors.append(user_error("INVALID_REASON", ["reason"],
                                     "The reason is not valid."))  # guessed: wording
        uri = given.get("referenceDocumentUri")
        if uri is not None and not _URI.fullmatch(uri):  # guessed: what counts as a URI
            errors.append(user_error("INVALID_REFERENCE_DOCUMENT", ["referenceDocumentUri"],
                                     "The reference document URI is not valid."))
        seen: set[tuple[int, int]] = set()
        for i, quantity in enumerate(given["quantities"]):
            found = self._check_one(given["name"], quantity, seen)
            if found is not None:
                code, name, message = found
                errors.append(user_error(code, ["quantities", str(i), name], message))
        return errors

    def _check_one(self, name: str, q: dict[str, Any], seen: set[tuple[int, int]]
                   ) -> tuple[str, str, str] | None:
        """(code, field, message) of the first problem of one quantity."""
        # guessed: every message but the stale one (Shopify documents codes, not wording)
        item = parse_gid(q["inventoryItemId"], "InventoryItem")
        listing = self.store.by_item.get(item) if item is not None else None
        location = parse_gid(q["locationId"], "Location")
        if listing is None:
            return ("INVALID_INVENTORY_ITEM", "inventoryItemId",
                    "The specified inventory item could not be found.")
        if location is None or location not in self.store.locations:
            return "INVALID_LOCATION", "locationId", "The specified location could not be found."
        level = listing.levels.get(location)
        if level is None or not self.store.locations[location].active:
            # guessed: a deactivated location stocks nothing (Shopify makes the seller move
            # its inventory away first)
            return ("ITEM_NOT_STOCKED_AT_LOCATION", "locationId",  # guessed: the field
                    "The specified inventory item is not stocked at the location.")
        if q["quantity"] < 0:
            return "INVALID_QUANTITY_NEGATIVE", "quantity", "The quantity can't be negative."
        if q["quantity"] > MAX_QUANTITY:
            return ("INVALID_QUANTITY_TOO_HIGH", "quantity",
                    f"The quantity can't be higher than {MAX_QUANTITY:,}.")
        if (listing.item_id, location) in seen:
            # guessed: the field
            return ("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", "inventoryItemId",
                    "The combination of inventoryItemId and locationId must be unique.")
        seen.add((listing.item_id, location))
        expected = q["changeFromQuantity"]
        if name in NAMES and expected is not None and expected != level.quantity(name):
            return "CHANGE_FROM_QUANTITY_STALE", "changeFromQuantity", STALE
        return None

    def _apply(self, given: dict[str, Any], now: datetime) -> Outcome:
        moment, name = self.store.tick(now), given["name"]
        group = Group(self.store.next_id(), moment, given["reason"],
                      given.get("referenceDocumentUri"))
        for q in given["quantities"]:
            listing = self.store.by_item[parse_gid(q["inventoryItemId"], "InventoryItem") or 0]
            location = parse_gid(q["locationId"], "Location") or 0
            level = listing.levels[location]
            delta = q["quantity"] - level.quantity(name)
            if delta:  # guessed: one change per quantity, under the name that was set
                level.available += delta  # on_hand = available + committed moves with it
                level.updated = moment
                group.changes.append(Change(listing, location, name, delta, q["quantity"]))
        return Outcome(group, [])
