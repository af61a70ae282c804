"""The seeded order workload: orders of 1-3 lines over a catalog, cut into pages."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from channelsync.connector import OrderLineSnapshot

CHANNEL = "bench"
SEED = 20261126
PAGE_ORDERS = 100  # orders per page, as a connector pages them
SHIPPED_SHARE = 0.25  # orders already shipped when first seen: a commit, no reservation
STOCK_PER_SKU = 10_000_000  # plenty: no oversell conflict muddies the figures
COUNTED_AT = datetime(2026, 11, 1, tzinfo=UTC)  # the stock count, before every order
FIRST_ORDER_AT = COUNTED_AT + timedelta(hours=1)


@dataclass(frozen=True)
class Workload:
    skus: list[str]
    pages: list[list[OrderLineSnapshot]]

    @property
    def lines(self) -> int:
        return sum(len(page) for page in self.pages)


def sku_name(i: int) -> str:
    return f"SKU-{i:06d}"


def make_workload(orders: int, skus: int, seed: int = SEED) -> Workload:
    rng = random.Random(seed)
    catalog = [sku_name(i) for i in range(skus)]
    pages: list[list[OrderLineSnapshot]] = []
    for first in range(0, orders, PAGE_ORDERS):
        page: list[OrderLineSnapshot] = []
        for n in range(first, min(first + PAGE_ORDERS, orders)):
            page += _order(rng, catalog, n)
        pages.append(page)
    return Workload(catalog, pages)


def _order(rng: random.Random, catalog: Sequence[str], n: int) -> list[OrderLineSnapshot]:
    shipped = rng.random() < SHIPPED_SHARE
    status = "completed" if shipped else "processing"
    changed_at = FIRST_ORDER_AT + timedelta(seconds=n)
    lines = []
    for i, sku in enumerate(rng.sample(catalog, rng.randint(1, 3))):
        qty = rng.randint(1, 5)
        lines.append(OrderLineSnapshot(
            f"O{n:07d}", str(i), sku, qty, status, changed_at, shipped=qty if shipped else 0,
        ))
    return lines


def identity(channel_sku: str) -> str:
    return channel_sku
