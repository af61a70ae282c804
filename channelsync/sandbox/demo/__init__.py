"""``channelsync demo``: a homeware shop on five channels (two WooCommerce stores, Amazon,
eBay, Shopify), each an emulator on loopback, one temporary SQLite ledger, buyers at a human
pace, the last unit bought on two channels at once, a delivery midway, and a verdict in a
seller's words. See ``scenario`` for the story, ``measure`` for what is measured and
``view`` for what is shown."""

from channelsync.sandbox.demo.run import run_demo

__all__ = ["run_demo"]
