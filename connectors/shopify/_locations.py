"""Which Shopify location channelsync reads and writes stock at.

A configured ``location`` (a name, gid or number) is that location, and it must be active:
the connector lists deactivated locations too (``includeInactive: true``) so that naming one
says so instead of "no such location".

Without one, the connector picks the default without the deprecated ``Location.isPrimary``
("the concept of a primary location is deprecated, shipsInventory can be used to get a fallback
location"). The stock channelsync syncs is what online buyers can buy, so the candidates are
the active locations that fulfil online orders and are not a fulfillment service's (an app
keeps those counts). One candidate is the default; among several, the single one Shopify still
marks ``shipsInventory`` is. Anything else is ambiguous, and writing stock to a location the
seller did not mean would sell goods that are not there: the seller is asked to set
``location``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["LocationError", "choose", "describe"]

Location = dict[str, Any]


class LocationError(Exception):
    """No location can be chosen; the message tells the seller what to set."""


def choose(locations: Sequence[Location], wanted: str | None) -> tuple[Location, str]:
    """The location to use and why (for the log); LocationError if there is none."""
    if wanted is None:
        return _default(locations)
    match = _find(locations, wanted)
    if match is None:
        raise LocationError(f"the shop has no location {wanted!r}; its locations: "
                            f"{_shown(locations)}")
    if match.get("isActive") is not True:
        raise LocationError(f"location {match.get('name')!r} ({match.get('id')}) is not active "
                            "(deactivated in Shopify): reactivate it or set location to an "
                            f"active one; the shop's locations: {_shown(locations)}")
    return match, "configured"


def describe(location: Location) -> str:
    """A location as a seller recognises it, with what rules it out as the default."""
    notes = [text for flag, value, text in (
        ("isActive", False, "inactive"),
        ("fulfillsOnlineOrders", False, "no online orders"),
        ("isFulfillmentService", True, "fulfillment service"),
    ) if location.get(flag) is value]
    extra = "".join(f", {note}" for note in notes)
    return f"{location.get('name')!r} ({location.get('id')}{extra})"


def _default(locations: Sequence[Location]) -> tuple[Location, str]:
    candidates = [loc for loc in locations if _sells_online(loc)]
    if len(candidates) == 1:
        return candidates[0], "the only active location that fulfils online orders"
    shipping = [loc for loc in candidates if loc.get("shipsInventory") is True]
    if len(shipping) == 1:
        return shipping[0], (f"of the {len(candidates)} locations that fulfil online orders, "
                             "the one Shopify marks as shipping inventory")
    if not candidates:
        raise LocationError("no active location of the shop fulfils online orders; set "
                            f"location to the one to sync; its locations: {_shown(locations)}")
    raise LocationError(f"{len(candidates)} locations fulfil online orders and none is the "
                        "obvious default: set location to the one to sync; they are "
                        f"{_shown(candidates)}")


def _sells_online(location: Location) -> bool:
    return (location.get("isActive") is True and location.get("fulfillsOnlineOrders") is True
            and location.get("isFulfillmentService") is False)


def _find(locations: Sequence[Location], wanted: str) -> Location | None:
    """The configured location: by gid, by number, by name (exactly, then ignoring case)."""
    text = wanted.strip()
    gid = f"gid://shopify/Location/{text}" if text.isdigit() else text
    for same in (lambda loc: loc.get("id") == gid,
                 lambda loc: loc.get("name") == text,
                 lambda loc: str(loc.get("name", "")).casefold() == text.casefold()):
        found = [loc for loc in locations if same(loc)]
        if len(found) == 1:
            return found[0]
    return None


def _shown(locations: Sequence[Location]) -> str:
    return ", ".join(describe(loc) for loc in locations) or "none"
