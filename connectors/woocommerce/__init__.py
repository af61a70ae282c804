"""The WooCommerce connector (REST API v3)."""

from __future__ import annotations

from connectors.woocommerce.connector import WooCommerceConnector, WooCommerceSettings

__all__ = ["WooCommerceConnector", "WooCommerceSettings"]
