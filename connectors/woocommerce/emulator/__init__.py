"""The WooCommerce REST v3 emulator: a test double for the connector, not part of what a
seller runs."""

from connectors.woocommerce.emulator.server import WooCommerceEmulator, signature_base_string

__all__ = ["WooCommerceEmulator", "signature_base_string"]
