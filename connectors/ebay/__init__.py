"""eBay (Trading API)."""

from __future__ import annotations

from connectors.ebay.connector import EbayConnector, EbaySettings

__all__ = ["EbayConnector", "EbaySettings"]
