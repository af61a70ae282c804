"""eBay's XML for the emulator's orders and listings (Order, Item elements)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from connectors.ebay.emulator.state import Listing, Order
from connectors.ebay.emulator.xmlwire import element, text

__all__ = ["item_xml", "order_xml"]


def order_xml(node: ET.Element, order: Order) -> None:
    text(node, "OrderID", order.order_id)
    text(node, "OrderStatus", order.status)
    checkout = element(node, "CheckoutStatus")
    text(checkout, "LastModifiedTime", order.modified)
    text(checkout, "Status", "Complete" if order.paid else "Incomplete")
    text(node, "CreatedTime", order.created)
    text(node, "CancelStatus", order.cancel_status)
    if order.paid:
        text(node, "PaidTime", order.paid)
    if order.shipped:
        text(node, "ShippedTime", order.shipped)
    text(node, "Total", "0.0", currencyID="USD")
    transactions = element(node, "TransactionArray")
    for line in order.lines:
        tx = element(transactions, "Transaction")
        text(tx, "CreatedDate", order.created)
        item = element(tx, "Item")
        text(item, "ItemID", line.item_id)
        text(item, "SKU", line.item_sku)
        text(tx, "QuantityPurchased", line.quantity)
        text(tx, "TransactionID", line.transaction_id)
        if line.variation_sku is not None:
            variation = element(tx, "Variation")
            text(variation, "SKU", line.variation_sku)
        text(tx, "OrderLineItemID", line.line_item_id)
    text(node, "LastModifiedTime", order.modified)


def item_xml(node: ET.Element, listing: Listing, now: datetime) -> None:
    text(node, "ItemID", listing.item_id)
    details = element(node, "ListingDetails")
    text(details, "StartTime", listing.started)
    text(details, "EndTime", listing.end_time(now))
    text(node, "ListingType", "FixedPriceItem")
    text(node, "Quantity", listing.total_quantity)
    text(node, "QuantityAvailable", listing.available)
    selling = element(node, "SellingStatus")
    text(selling, "QuantitySold", listing.total_sold)
    text(selling, "ListingStatus", listing.status)
    text(node, "SKU", listing.sku)
    if listing.variations is not None:
        variations = element(node, "Variations")
        for v in listing.variations.values():
            shown = element(variations, "Variation")
            text(shown, "SKU", v.sku)
            text(shown, "Quantity", v.quantity)
            sold = element(shown, "SellingStatus")
            text(sold, "QuantitySold", v.sold)
