"""eBay (Trading API)."""
