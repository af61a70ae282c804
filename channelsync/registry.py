"""The explicit connector registry: ``type`` -> one importable name, loaded lazily.

Built-in channel types are listed here. Third-party packages register a
connector class under the entry-point group ``channelsync.connectors``; the
entry point's name is the ``type`` used in ``channels.toml``. No directory scanning.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from channelsync.errors import ChannelSyncError

ENTRY_POINT_GROUP = "channelsync.connectors"

BUILTIN: dict[str, str] = {
    "amazon": "connectors.amazon:AmazonConnector",
    "ebay": "connectors.ebay:EbayConnector",
    "shopify": "connectors.shopify:ShopifyConnector",
    "woocommerce": "connectors.woocommerce:WooCommerceConnector",
}


def _import(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def known_types() -> list[str]:
    plugins = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(BUILTIN) | plugins)


@cache
def load_connector(type_name: str) -> Any:
    """The connector class for a channel type (a ``ConnectorFactory``)."""
    if type_name in BUILTIN:
        return _import(BUILTIN[type_name])
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_name):
        try:
            return ep.load()
        except Exception as exc:  # a broken plugin must not take the daemon down
            message = f"the connector plugin {type_name!r} failed to load: {exc}"
            raise ChannelSyncError(message) from exc
    raise ChannelSyncError(
        f"unknown channel type {type_name!r} (known: {', '.join(known_types())})"
    )


def load_emulator(type_name: str) -> Any:
    """The emulator class for a channel type; connectors name it in ``emulator``."""
    connector = load_connector(type_name)
    path = getattr(connector, "emulator", None)
    if not path:
        raise ChannelSyncError(f"the channel type {type_name!r} has no sandbox emulator")
    return _import(path)
