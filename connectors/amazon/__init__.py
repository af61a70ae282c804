"""The Amazon connector (Selling Partner API, over python-amazon-sp-api)."""

from __future__ import annotations

from connectors.amazon.connector import AmazonConnector, AmazonSettings

__all__ = ["AmazonConnector", "AmazonSettings"]
