"""The Shopify Admin GraphQL emulator: a test double for the connector, not part of what a
seller runs. ``server`` serves the endpoint; ``execute`` runs queries with graphql-core
against ``connectors/shopify/schema.graphql``; ``resolvers``, ``state``, ``orders``,
``inventory``, ``search`` and ``cost`` are the shop behind it."""

from connectors.shopify.emulator.server import ShopifyEmulator

__all__ = ["ShopifyEmulator"]
