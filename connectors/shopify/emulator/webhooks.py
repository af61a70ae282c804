"""The order webhooks the Shopify emulator sends: Shopify's REST order resource (the
fields channelsync's receiver and a seller's own tools look at) and the delivery headers.

Topics sent here: ``orders/create`` when an order is placed, ``orders/cancelled``,
``orders/fulfilled`` or ``orders/partially_fulfilled`` when the sandbox ships, and
``orders/edited``, ``refunds/create``; each change after the order was placed also sends
``orders/updated``, as Shopify does. Orders changed through the GraphQL API (channelsync's
own fulfilments) send nothing here.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from channelsync.sandbox.emulator import Subscription
from connectors.shopify.emulator.orders import Order
from connectors.shopify.emulator.state import gid, stamp

REST_FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial",
                    "UNFULFILLED": None}


def order_json(order: Order) -> dict[str, Any]:
    """Part of Shopify's REST ``Order``, as a webhook body carries it."""
    return {
        "id": order.id, "admin_graphql_api_id": gid("Order", order.id),
        "name": f"#{order.number}", "order_number": order.number, "test": order.test,
        "created_at": stamp(order.created), "updated_at": stamp(order.updated),
        "processed_at": stamp(order.processed), "cancelled_at": stamp(order.cancelled),
        "cancel_reason": order.cancel_reason, "currency": order.currency,
        "total_price": str(order.total), "financial_status": order.financial.lower(),
        "fulfillment_status": REST_FULFILLMENT[order.fulfillment_status],
        "line_items": [{"id": x.id, "admin_graphql_api_id": gid("LineItem", x.id),
                        "sku": x.listing.sku, "quantity": x.quantity,
                        "current_quantity": x.current,
                        "fulfillable_quantity": order.remaining(x), "price": str(x.price)}
                       for x in order.lines]}


def delivery(shop: str, api_version: str, sub: Subscription, topic: str, order: Order
             ) -> tuple[bytes, dict[str, str]]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(order_json(order)).encode(), {
        "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": api_version, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()), "X-Shopify-Triggered-At": now,
        "X-Shopify-Subscription-Id": str(sub.id)}
