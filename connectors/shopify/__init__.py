"""The Shopify connector (Admin GraphQL API, version 2026-10).

Orders are pulled by update time with cursor pagination; quantities are set on ``available``
at one location with ``inventorySetQuantities``, compare-and-set (``changeFromQuantity``) and
an idempotency key; throttling follows the query-cost bucket Shopify reports. The GraphQL
schema both the connector and the emulator use is ``schema.graphql`` in this package.
"""

from __future__ import annotations

from connectors.shopify.connector import ShopifyConnector, ShopifySettings

__all__ = ["ShopifyConnector", "ShopifySettings"]
