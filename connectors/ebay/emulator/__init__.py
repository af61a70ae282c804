"""The eBay Trading API emulator: a test double for the connector, not part of what a seller
runs. ``server`` speaks the XML calls; ``state``, ``render`` and ``xmlwire`` hold the store
and the XML in and out."""

from connectors.ebay.emulator.server import EbayEmulator

__all__ = ["EbayEmulator"]
