"""The `query:` search syntax and keyset cursors of the Shopify emulator.

Orders take `updated_at:` / `created_at:` comparisons (`>`, `>=`, `<`, `<=`, or none for the
same second) and `test:true|false`, joined by ` AND `; productVariants take `sku:VALUE` terms
joined by ` OR `. Values may be single- or double-quoted. Deliberately stricter than Shopify,
which ignores a filter it does not know (and says so in `extensions.search`): here an unknown
filter is an error, so a typo in a client fails its tests instead of reading everything.

A cursor is base64 of JSON naming the connection, sort key, direction and query it belongs to
and the sort key values of the node it stands for; the next page starts strictly after those
values. So a node that changes between two pages moves (and may show again later) but never
makes another node be skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from graphql import GraphQLError

__all__ = ["MAX_PAGE", "Page", "order_filter", "page", "sku_filter"]

MAX_PAGE = 250
T = TypeVar("T")
_TERM = re.compile(r"""(?P<field>\w+):(?P<op>>=|<=|>|<)?(?P<value>'[^']*'|"[^"]*"|\S+)""")
_DATE_FIELDS = ("updated_at", "created_at")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _terms(query: str, joiner: str) -> list[re.Match[str]]:
    found = []
    for part in query.strip().split(f" {joiner} "):
        match = _TERM.fullmatch(part.strip())
        if match is None:
            # guessed: Shopify would run a free-text search; the emulator refuses it
            raise GraphQLError(f"Invalid search query term {part.strip()!r} (the emulator "
                               f"understands field:value terms joined by {joiner})")
        found.append(match)
    return found


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise GraphQLError(f"Invalid date in search query: {raw!r}") from None  # guessed: wording
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_COMPARE: dict[str, Callable[[datetime, datetime], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "": lambda a, b: a == b,
}


def order_filter(query: str | None) -> Callable[[Any], bool]:
    """A predicate on orders (`updated`, `created`, `test` attributes)."""
    if not query or not query.strip():
        return lambda order: True
    checks: list[Callable[[Any], bool]] = []
    for term in _terms(query, "AND"):
        name, op, value = term["field"], term["op"] or "", _unquote(term["value"])
        if name in _DATE_FIELDS:
            checks.append(_date_check(name, op, _moment(value)))
        elif name == "test" and not op and value in ("true", "false"):
            checks.append(_test_check(value == "true"))
        else:
            # guessed: wording
            raise GraphQLError(f"Unsupported search filter {term[0]!r} on orders")
    return lambda order: all(check(order) for check in checks)


def _test_check(want: bool) -> Callable[[Any], bool]:
    return lambda order: bool(order.test == want)


def _date_check(name: str, op: str, bound: datetime) -> Callable[[Any], bool]:
    attribute, compare = name.split("_")[0], _COMPARE[op]

    def check(order: Any) -> bool:
        # the API compares whole seconds, as it shows them: `>` is strict on the second
        whole: datetime = getattr(order, attribute).replace(microsecond=0)
        return compare(whole, bound)

    return check


def sku_filter(query: str | None) -> Callable[[str], bool]:
    """A predicate on SKUs: exact match with any `sku:` term."""
    if not query or not query.strip():
        return lambda sku: True
    wanted = set()
    for term in _terms(query, "OR"):
        if term["field"] != "sku" or term["op"]:
            raise GraphQLError(  # guessed: wording
                f"Unsupported search filter {term[0]!r} on productVariants")
        wanted.add(_unquote(term["value"]))
    return lambda sku: sku in wanted


@dataclass
class Page(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next: bool
    has_previous: bool
    # pageInfo's start and end cursors when they are not the first and last rows' (a page
    # served shuffled or with duplicates still ends where it really ends)
    ends: tuple[str | None, str | None] | None = None

    def render(self, node: Callable[[T], Any]) -> dict[str, Any]:
        nodes = [node(row) for row in self.rows]
        start, end = self.ends or self._ends()
        return {
            "edges": [{"cursor": c, "node": n} for c, n in zip(self.cursors, nodes, strict=True)],
            "nodes": nodes,
            "pageInfo": {"hasNextPage": self.has_next, "hasPreviousPage": self.has_previous,
                         "startCursor": start, "endCursor": end},
        }

    def served(self, rows: Sequence[tuple[T, str]]) -> Page[T]:
        """This page showing other (row, cursor) pairs, as a faulty channel serves it; the
        next page is still the one after this page's real end."""
        return Page([row for row, _ in rows], [cursor for _, cursor in rows], self.has_next,
                    self.has_previous, self.ends or self._ends())

    def _ends(self) -> tuple[str | None, str | None]:
        return (self.cursors[0], self.cursors[-1]) if self.cursors else (None, None)


def page(items: Sequence[T], key: Callable[[T], list[Any]], first: int | None,
         after: str | None, scope: list[Any], reverse: bool = False) -> Page[T]:
    """One page of `items` sorted by `key` (a list of JSON values ending with a unique id);
    `scope` names what the cursor is valid for (connection, sort key, query)."""
    if first is None:
        raise GraphQLError("you must provide one of first or last")
    if not 0 <= first <= MAX_PAGE:
        # guessed: wording (Shopify refuses more than 250 nodes per page)
        raise GraphQLError(f"The first argument must be between 0 and {MAX_PAGE}, got {first}")
    ordered = sorted(items, key=key, reverse=reverse)
    start = 0
    if after is not None:
        bound = _decode(after, [*scope, reverse])
        try:
            start = next((i for i, x in enumerate(ordered)
                          if (key(x) < bound if reverse else key(x) > bound)), len(ordered))
        except TypeError:  # a forged cursor with values of other types
            raise GraphQLError("Invalid cursor") from None
    rows = ordered[start:start + first]
    cursors = [_encode([*scope, reverse], key(x)) for x in rows]
    return Page(rows, cursors, start + first < len(ordered), start > 0)


def _encode(scope: list[Any], values: list[Any]) -> str:
    raw = json.dumps({"s": scope, "v": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode(cursor: str, scope: list[Any]) -> list[Any]:
    try:
        found = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        found = None
    if not isinstance(found, dict) or found.get("s") != scope or not isinstance(
            found.get("v"), list):
        raise GraphQLError("Invalid cursor")  # guessed: wording
    values: list[Any] = found["v"]
    return values
