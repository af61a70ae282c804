"""eBay's XML for the emulator's orders and listings (Order, Item elements)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from decimal import Decimal

from connectors.ebay.emulator.state import Listing, Order, money
from connectors.ebay.emulator.xmlwire import element, text

__all__ = ["EMAIL_SHOWN", "item_xml", "order_xml"]

# How long after the sale eBay shows the buyer's email to the seller; later "Invalid Request"
# takes its place. The Trading API leaves the time unspecified ("varies by site"); the
# Fulfillment API documents 14 days for the same address.
EMAIL_SHOWN = timedelta(days=14)
INVALID_EMAIL = "Invalid Request"
# guessed: the delivery window eBay estimates at checkout, from the order's creation
DELIVERY_ESTIMATE = (timedelta(days=2), timedelta(days=7))


def order_xml(node: ET.Element, order: Order, now: datetime) -> None:
    """An Order of GetOrders as a seller gets it, without a ShippingAddress. Each transaction
    has its buyer's email (Buyer/Email) when the sandbox named one: for EMAIL_SHOWN after the
    sale, then "Invalid Request". A transaction marked shipped has its ShippedTime, and the
    tracking numbers given for it in ShippingDetails/ShipmentTrackingDetails. The order's one
    package (ShippingServiceSelected/ShippingPackageInfo) has eBay's estimated delivery window
    and, once delivered, its ActualDeliveryTime."""
    currency = {"currencyID": order.currency}
    text(node, "OrderID", order.order_id)
    text(node, "OrderStatus", order.status)
    text(node, "AdjustmentAmount", money(Decimal(0)), **currency)
    text(node, "AmountPaid", money(order.total if order.paid else Decimal(0)), **currency)
    text(node, "AmountSaved", money(Decimal(0)), **currency)
    checkout = element(node, "CheckoutStatus")
    text(checkout, "eBayPaymentStatus", "NoPaymentFailure")
    text(checkout, "LastModifiedTime", order.modified)
    text(checkout, "PaymentMethod", "CreditCard" if order.paid else "None")
    text(checkout, "Status", "Complete" if order.paid else "Incomplete")
    text(node, "CreatingUserRole", "Buyer")
    text(node, "CreatedTime", order.created)
    text(node, "PaymentMethods", "CreditCard")
    selected = element(node, "ShippingServiceSelected")
    text(selected, "ShippingService", "USPSPriority")
    text(selected, "ShippingServiceCost", money(Decimal(0)), **currency)
    package = element(selected, "ShippingPackageInfo")
    text(package, "EstimatedDeliveryTimeMin", order.created + DELIVERY_ESTIMATE[0])
    text(package, "EstimatedDeliveryTimeMax", order.created + DELIVERY_ESTIMATE[1])
    if order.delivered is not None:
        text(package, "ActualDeliveryTime", order.delivered)
    text(node, "Subtotal", money(order.total), **currency)
    text(node, "Total", money(order.total), **currency)
    transactions = element(node, "TransactionArray")
    for line in order.lines:
        tx = element(transactions, "Transaction")
        if order.buyer_email:
            buyer = element(tx, "Buyer")
            shown = now - order.created <= EMAIL_SHOWN
            text(buyer, "Email", order.buyer_email if shown else INVALID_EMAIL)
        text(tx, "CreatedDate", order.created)
        item = element(tx, "Item")
        text(item, "ItemID", line.item_id)
        text(item, "SKU", line.item_sku)
        text(tx, "QuantityPurchased", line.quantity)
        text(tx, "TransactionID", line.transaction_id)
        text(tx, "TransactionPrice", money(line.price), **currency)
        if line.variation_sku is not None:
            variation = element(tx, "Variation")
            text(variation, "SKU", line.variation_sku)
        text(tx, "OrderLineItemID", line.line_item_id)
        shipped = order.line_shipped_at(line)
        if shipped is not None:
            text(tx, "ShippedTime", shipped)
        numbers = [t for t in order.tracking if t.line_item_id == line.line_item_id]
        if numbers:
            details = element(tx, "ShippingDetails")
            for given in numbers:
                tracking = element(details, "ShipmentTrackingDetails")
                text(tracking, "ShippingCarrierUsed", given.carrier)
                text(tracking, "ShipmentTrackingNumber", given.number)
    text(node, "BuyerUserID", order.buyer)
    if order.paid:
        text(node, "PaidTime", order.paid)
    if order.shipped:
        text(node, "ShippedTime", order.shipped)
    text(node, "CancelStatus", order.cancel_status)
    text(node, "LastModifiedTime", order.modified)


def item_xml(node: ET.Element, listing: Listing, now: datetime, currency: str = "USD") -> None:
    text(node, "ItemID", listing.item_id)
    details = element(node, "ListingDetails")
    text(details, "StartTime", listing.started)
    text(details, "EndTime", listing.end_time(now))
    text(node, "ListingType", "FixedPriceItem")
    if listing.variations is None:
        text(node, "StartPrice", money(listing.price), currencyID=currency)
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
            text(shown, "StartPrice", money(v.price), currencyID=currency)
            text(shown, "Quantity", v.quantity)
            sold = element(shown, "SellingStatus")
            text(sold, "QuantitySold", v.sold)
