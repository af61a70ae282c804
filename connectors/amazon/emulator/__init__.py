"""The Amazon SP-API emulator (and LWA, presigned storage): a test double for the connector,
not part of what a seller runs. ``server`` speaks the wire protocol; the other modules hold
its state, orders, listings, feeds and auth."""

from connectors.amazon.emulator.server import UNLIMITED_RATE, AmazonEmulator

__all__ = ["UNLIMITED_RATE", "AmazonEmulator"]
