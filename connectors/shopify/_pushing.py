"""Setting quantities on Shopify: ``inventorySetQuantities``, compare-and-set and idempotent.

Each quantity carries ``changeFromQuantity`` = what the engine believes Shopify shows (null:
no check), so a sale Shopify made after our last read is never overwritten: the item comes
back ``stale`` with the quantity Shopify shows now. The mutation is atomic: when some items
have user errors nothing is applied, so those items get their outcome and the rest are sent
again. Each mutation carries an ``@idempotent`` key derived from the items' own keys, so the
retry of a write whose answer was lost is answered from Shopify's memory, not applied twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import quote

from channelsync.connector import PushItem, PushResult
from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
)
from connectors.shopify import _queries as q
from connectors.shopify._graphql import GraphQLClient
from connectors.shopify._orders import gid_number

PUSH_LIMIT = 250  # quantities per mutation
QUANTITY_NAME = "available"
REASON = "correction"
STALE = "CHANGE_FROM_QUANTITY_STALE"
GONE = "INVALID_INVENTORY_ITEM"
RESEND_WITH_NEW_KEY = frozenset({"IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                                 "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"})
BUSY = "IDEMPOTENCY_CONCURRENT_REQUEST"


@dataclass(frozen=True)
class _Target:
    """A push item with its inventory item."""

    index: int
    item: PushItem
    ref: str
    relooked: bool = False


@dataclass(frozen=True)
class _UserError:
    code: str
    index: int | None  # which quantity of the mutation, if it names one
    message: str


def idempotency_key(channel: str, location: str, targets: Sequence[_Target]) -> str:
    """The same for every retry of the same logical write; random if an item has no key."""
    if not targets or not all(t.item.key for t in targets):
        return uuid.uuid4().hex
    entries = sorted(json.dumps([t.item.key, t.ref, t.item.quantity, t.item.expected])
                     for t in targets)
    return hashlib.sha256(json.dumps([channel, location, entries]).encode()).hexdigest()


def sku_term(sku: str) -> str:
    """A ``sku:`` search term for exactly this SKU, quoted (backslash-escaped only if need be)."""
    if '"' not in sku and "\\" not in sku:
        return f'sku:"{sku}"'
    if "'" not in sku and "\\" not in sku:
        return f"sku:'{sku}'"
    return 'sku:"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Pusher:
    """Pushes quantities for one channel; remembers SKU -> inventory item between calls."""

    def __init__(self, channel: str, gql: GraphQLClient, location: Callable[[], str]) -> None:
        self.channel = channel
        self._gql = gql
        self._location = location
        self._refs: dict[str, str] = {}
        self._log = logging.getLogger(f"connectors.shopify.connector.{channel}")

    def remember(self, sku: str, ref: str) -> None:
        self._refs[sku] = ref

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        targets = self._targets(items, results)
        if targets:
            self._send_all(targets, self._location(), results)
        return [results[index] for index in range(len(items))]

    # -- addresses ------------------------------------------------------------------------

    def _targets(self, items: Sequence[PushItem], results: dict[int, PushResult]) -> list[_Target]:
        wanted = [i.channel_sku for i in items if i.quantity >= 0 and not _is_ref(i.ref)]
        found = self.lookup(wanted)
        targets: list[_Target] = []
        for index, item in enumerate(items):
            ref = item.ref if _is_ref(item.ref) else found.get(item.channel_sku)
            if item.quantity < 0:
                results[index] = self._failed(item, f"negative quantity {item.quantity} not sent")
            elif ref is None:
                results[index] = self._failed(item, "no product variant with this sku")
            else:
                targets.append(_Target(index, item, ref))
        return targets

    def lookup(self, skus: Sequence[str]) -> dict[str, str]:
        """Inventory items of these SKUs (those the shop has), from memory or one query per 50."""
        missing = sorted({sku for sku in skus if sku not in self._refs})
        for start in range(0, len(missing), q.LOOKUP_SKUS):
            chunk = set(missing[start:start + q.LOOKUP_SKUS])
            for sku, ref in self._variants(" OR ".join(sku_term(s) for s in sorted(chunk))):
                if sku in chunk:
                    self._refs.setdefault(sku, ref)  # the first variant wins, as in listings
        return {sku: self._refs[sku] for sku in skus if sku in self._refs}

    def _variants(self, search: str) -> Iterator[tuple[str, str]]:
        for variant in self._gql.paged(q.VARIANTS_BY_SKU, {"query": search}, "productVariants"):
            item = variant.get("inventoryItem")
            ref = item.get("id") if isinstance(item, dict) else None
            if isinstance(variant.get("sku"), str) and _is_ref(ref):
                yield variant["sku"], str(ref)

    # -- sending --------------------------------------------------------------------------

    def _send_all(
        self, targets: list[_Target], location: str, results: dict[int, PushResult]
    ) -> None:
        pending, sent = targets, False
        stale: list[_Target] = []
        for _ in range(len(targets) + 2):  # each round settles at least one item
            again: list[_Target] = []
            for start in range(0, len(pending), PUSH_LIMIT):
                chunk = pending[start:start + PUSH_LIMIT]
                try:
                    again += self._send(chunk, location, results, stale)
                except ChannelError as exc:
                    if not sent:
                        raise  # nothing happened yet: the whole call failed
                    for target in chunk:  # keep what earlier mutations did
                        results[target.index] = _result(target, error=exc)
                sent = True
            pending = again
            if not pending:
                break
        for target in pending:
            results[target.index] = self._failed(target.item, "not settled", target.ref)
        if stale:
            self._report_stale(stale, location, results)

    def _send(
        self,
        chunk: list[_Target],
        location: str,
        results: dict[int, PushResult],
        stale: list[_Target],
        fresh_key: bool = False,
    ) -> list[_Target]:
        """One mutation; returns the items to send again (nothing was applied for them)."""
        key = uuid.uuid4().hex if fresh_key else idempotency_key(self.channel, location, chunk)
        errors = self._mutate(chunk, location, key)
        if not errors:
            for target in chunk:
                results[target.index] = _result(target)
            return []
        general = [e for e in errors if e.index is None or not 0 <= e.index < len(chunk)]
        if not general:
            return self._split(chunk, errors, results, stale)
        if {e.code for e in general} & RESEND_WITH_NEW_KEY and not fresh_key:
            self._log.warning("resending %d quantities with a new key: %s", len(chunk),
                              "; ".join(e.message for e in general))
            return self._send(chunk, location, results, stale, fresh_key=True)
        text = "; ".join(f"{e.code}: {e.message}" for e in general)
        kind = RetriableChannelError if BUSY in {e.code for e in general} else PermanentChannelError
        for target in chunk:
            error = kind(f"Shopify refused the batch: {text}", channel=self.channel)
            results[target.index] = _result(target, error=error)
        return []

    def _split(
        self,
        chunk: list[_Target],
        errors: list[_UserError],
        results: dict[int, PushResult],
        stale: list[_Target],
    ) -> list[_Target]:
        """Outcomes of the items with user errors; the others go again (the batch is atomic)."""
        by_index: dict[int | None, list[_UserError]] = {}
        for error in errors:
            by_index.setdefault(error.index, []).append(error)
        again, gone = [], []
        for position, target in enumerate(chunk):
            mine = by_index.get(position, [])
            codes = {e.code for e in mine}
            if not mine:
                again.append(target)
            elif codes == {STALE}:
                stale.append(target)
            elif GONE in codes and not target.relooked:
                gone.append(target)
            else:
                text = "; ".join(f"{e.code}: {e.message}" for e in mine)
                results[target.index] = self._failed(target.item, text, target.ref)
        return again + self._relooked(gone, results)

    def _mutate(self, chunk: list[_Target], location: str, key: str) -> list[_UserError]:
        quantities = [{"inventoryItemId": t.ref, "locationId": location,
                       "quantity": t.item.quantity, "changeFromQuantity": t.item.expected}
                      for t in chunk]
        variables = {"key": key, "input": {
            "name": QUANTITY_NAME, "reason": REASON, "quantities": quantities,
            "referenceDocumentUri": f"channelsync://{quote(self.channel, safe='')}/push"}}
        data = self._gql.run(q.SET_QUANTITIES, variables)
        payload = data.get("inventorySetQuantities")
        errors = payload.get("userErrors") if isinstance(payload, dict) else None
        if not isinstance(errors, list):
            raise self._gql.malformed("inventorySetQuantities", str(data))
        return [_user_error(error) for error in errors]

    def _relooked(self, gone: list[_Target], results: dict[int, PushResult]) -> list[_Target]:
        """Items whose inventory item is gone, with the one their SKU has now (looked up once)."""
        for target in gone:
            self._refs.pop(target.item.channel_sku, None)
        found = self.lookup([t.item.channel_sku for t in gone]) if gone else {}
        again: list[_Target] = []
        for target in gone:
            ref = found.get(target.item.channel_sku)
            if ref is None or ref == target.ref:
                message = f"inventory item {target.ref} is gone and no variant has this sku"
                results[target.index] = self._failed(target.item, message, target.ref)
            else:
                self._log.info("sku %r moved to inventory item %s", target.item.channel_sku, ref)
                again.append(_Target(target.index, target.item, ref, relooked=True))
        return again

    # -- stale compares -------------------------------------------------------------------

    def _report_stale(
        self, stale: list[_Target], location: str, results: dict[int, PushResult]
    ) -> None:
        try:
            observed = self.available([t.ref for t in stale], location)
        except ChannelError as exc:  # the outcome stands; only the hint is missing
            self._log.warning("could not read the quantities of %d stale items: %s",
                              len(stale), exc)
            observed = {}
        for target in stale:
            now = observed.get(target.ref)
            shown = "an unknown quantity" if now is None else str(now)
            message = (f"{target.item.channel_sku!r}: stale compare, Shopify shows {shown}, not "
                       f"the expected {target.item.expected}; nothing was written")
            error = PermanentChannelError(message, channel=self.channel)
            results[target.index] = _result(target, error=error, stale=True, observed=now)

    def available(self, refs: Sequence[str], location: str) -> dict[str, int | None]:
        """The ``available`` quantity of each inventory item at the location."""
        found: dict[str, int | None] = {}
        for start in range(0, len(refs), q.NODES_PER_QUERY):
            chunk = list(refs[start:start + q.NODES_PER_QUERY])
            data = self._gql.run(q.AVAILABLE, {"ids": chunk, "location": location},
                                 cost=len(chunk) * q.AVAILABLE_PER_ID)
            items = data.get("nodes")
            if not isinstance(items, list):
                raise self._gql.malformed("nodes", str(data))
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    found[item["id"]] = available(item.get("inventoryLevel"))
        return found

    def _failed(self, item: PushItem, message: str, ref: str = "") -> PushResult:
        error = PermanentChannelError(f"{item.channel_sku!r}: {message}", channel=self.channel)
        return PushResult(item.channel_sku, ok=False, error=error, ref=ref)


def _result(target: _Target, error: ChannelError | None = None, stale: bool = False,
            observed: int | None = None) -> PushResult:
    return PushResult(target.item.channel_sku, ok=error is None, error=error, ref=target.ref,
                      stale=stale, observed=observed)


def _user_error(raw: Any) -> _UserError:
    if not isinstance(raw, dict):
        return _UserError("", None, str(raw)[:200])
    field, index = raw.get("field"), None
    # ["input", "quantities", "3", "changeFromQuantity"]: the fourth quantity
    if isinstance(field, list) and len(field) >= 3 and field[:2] == ["input", "quantities"]:
        index = int(field[2]) if str(field[2]).isdigit() else None
    code = raw.get("code")
    message = str(raw.get("message", ""))[:200]
    return _UserError(code if isinstance(code, str) else "", index, message)


def available(level: Any) -> int | None:
    """The ``available`` quantity of an inventory level (None: not stocked there)."""
    if not isinstance(level, dict) or not isinstance(level.get("quantities"), list):
        return None
    for quantity in level["quantities"]:
        if isinstance(quantity, dict) and quantity.get("name") == QUANTITY_NAME:
            value = quantity.get("quantity")
            return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


def _is_ref(value: object) -> TypeGuard[str]:
    return gid_number(value, "InventoryItem") is not None
