"""Query cost and the leaky bucket of the Shopify emulator.

Requested cost, from the operation's selection set (fragments and @skip/@include applied):
- a scalar or enum field costs 0; `__typename` 0; guessed: other introspection fields 1;
- an object field costs 1 plus its children (on an interface: the dearest possible type);
- a connection (a field with a `first` argument returning a *Connection type) costs
  2 + first x (cost of one node): one node is the `node` under `edges` or an item of `nodes`,
  the dearer of the two when both are selected; `pageInfo` and `cursor` are free;
- a list field with a `first` argument (Order.refunds) costs first x (cost of one item);
  guessed: without `first`, 1 x (cost of one item);
- another list field costs len(its list argument) x (one item), or 1 x (one item) when it has
  none (`quantities(names:)`, `nodes(ids:)`, InventoryAdjustmentGroup.changes);
- a mutation field costs 10, whatever it selects.
Actual cost is the same formula on what came back: returned nodes and items instead of
`first`; an object that came back null costs 1, a list or connection that did, its base only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import get_argument_values

from connectors.shopify.emulator.search import MAX_PAGE

__all__ = ["MAX_COST", "MUTATION_COST", "Bucket", "Costing"]

MAX_COST = 1000
MUTATION_COST = 10
Fields = dict[str, list[FieldNode]]


@dataclass
class Costing:
    """The requested and actual cost of one operation."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    operation: OperationDefinitionNode
    root: GraphQLObjectType = field(init=False)

    def __post_init__(self) -> None:
        mutation = self.operation.operation == OperationType.MUTATION
        root = self.schema.mutation_type if mutation else self.schema.query_type
        assert root is not None  # the operation passed validation against this schema
        self.root = root

    def _root_fields(self) -> Fields:
        return collect_fields(self.schema, self.fragments, self.variables, self.root,
                              self.operation.selection_set)

    def requested(self) -> int:
        """Raises GraphQLError for a connection without `first` or with more than 250."""
        fields = self._root_fields()
        if self.operation.operation == OperationType.MUTATION:
            return MUTATION_COST * sum(1 for k in fields.values() if k[0].name.value[:2] != "__")
        return self._fields(self.root, fields, None)

    def actual(self, data: dict[str, Any] | None) -> int:
        fields = self._root_fields()
        if self.operation.operation == OperationType.MUTATION:
            return MUTATION_COST * sum(1 for k in fields.values() if k[0].name.value[:2] != "__")
        return self._fields(self.root, fields, data or {})

    # `data` None: the requested cost; otherwise the actual cost of that response object

    def _sub(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> Fields:
        return collect_sub_fields(self.schema, self.fragments, self.variables, type_, nodes)

    def _fields(self, parent: GraphQLObjectType, fields: Fields, data: Any) -> int:
        if data is None:
            return sum(self._field(parent, nodes, None, False) for nodes in fields.values())
        return sum(self._field(parent, nodes, data[key], True)
                   for key, nodes in fields.items() if key in data)

    def _field(self, parent: GraphQLObjectType, nodes: list[FieldNode], value: Any,
               actual: bool) -> int:
        name = nodes[0].name.value
        if name.startswith("__"):
            return 0 if name == "__typename" else 1
        definition = parent.fields[name]
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        if _is_connection(definition, named):
            assert isinstance(named, GraphQLObjectType)
            if actual:
                return 2 + (self._connection_actual(named, nodes, value) if value else 0)
            return 2 + self._first(definition, nodes[0], required=True) * self._node(
                named, nodes)
        if is_list_type(get_nullable_type(definition.type)):
            if actual:
                return sum(self._object(named, nodes, item, True) for item in value or ())
            return self._count(definition, nodes[0]) * self._object(named, nodes, None, False)
        return self._object(named, nodes, value, actual)

    def _object(self, type_: GraphQLNamedType, nodes: list[FieldNode], value: Any,
                actual: bool) -> int:
        if actual and value is None:
            return 1
        concrete: list[GraphQLObjectType] = (
            list(self.schema.get_possible_types(cast(GraphQLAbstractType, type_)))
            if is_abstract_type(type_) else [type_] if isinstance(type_, GraphQLObjectType)
            else [])
        return 1 + max((self._fields(t, self._sub(t, nodes), value if actual else None)
                        for t in concrete), default=0)

    def _node(self, connection: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        """The requested cost of one node of a connection."""
        best = 0
        for sub in self._sub(connection, nodes).values():
            name = sub[0].name.value
            if name == "nodes":
                best = max(best, self._object(_item_type(connection, "nodes"), sub, None, False))
            elif name == "edges":
                edge = _item_type(connection, "edges")
                assert isinstance(edge, GraphQLObjectType)
                for inner in self._sub(edge, sub).values():
                    if inner[0].name.value == "node":
                        best = max(best, self._object(_item_type(edge, "node"), inner, None,
                                                      False))
        return best

    def _connection_actual(self, connection: GraphQLObjectType, nodes: list[FieldNode],
                           value: dict[str, Any]) -> int:
        per_node: list[int] = []
        for key, sub in self._sub(connection, nodes).items():
            name, items = sub[0].name.value, value.get(key) or []
            if name == "nodes":
                costs = [self._object(_item_type(connection, "nodes"), sub, x, True)
                         for x in items]
            elif name == "edges":
                edge = _item_type(connection, "edges")
                assert isinstance(edge, GraphQLObjectType)
                costs = [0] * len(items)
                for inner_key, inner in self._sub(edge, sub).items():
                    if inner[0].name.value == "node":
                        costs = [max(c, self._object(_item_type(edge, "node"), inner,
                                                     (e or {}).get(inner_key), True))
                                 for c, e in zip(costs, items, strict=True)]
            else:
                continue
            per_node = [max(a, b) for a, b in zip_longest(per_node, costs, fillvalue=0)]
        return sum(per_node)

    def _first(self, definition: GraphQLField, node: FieldNode, required: bool) -> int:
        first = get_argument_values(definition, node, self.variables).get("first")
        if first is None:
            if required:
                raise GraphQLError("you must provide one of first or last", node,
                                   extensions={"code": "BAD_REQUEST"})  # guessed: the code
            return 1
        if not 0 <= first <= MAX_PAGE:
            # guessed: wording and code (Shopify refuses pages over 250)
            raise GraphQLError(f"The first argument must be between 0 and {MAX_PAGE}, got "
                               f"{first}", node, extensions={"code": "BAD_REQUEST"})
        return int(first)

    def _count(self, definition: GraphQLField, node: FieldNode) -> int:
        if "first" in definition.args:
            return self._first(definition, node, required=False)
        args = get_argument_values(definition, node, self.variables)
        return next((len(v) for v in args.values() if isinstance(v, list)), 1)


def _is_connection(definition: GraphQLField, named: GraphQLNamedType) -> bool:
    return "first" in definition.args and is_object_type(named) and named.name.endswith(
        "Connection")


def _item_type(parent: GraphQLObjectType, name: str) -> GraphQLNamedType:
    return get_named_type(parent.fields[name].type)


class Bucket:
    """Shopify's leaky bucket: `size` points, refilled at `rate` points per second of
    `monotonic` time (real time unless a test injects its own)."""

    def __init__(self, size: float, rate: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.size, self.rate, self.monotonic = size, rate, monotonic
        self.level, self._at = size, monotonic()

    def available(self) -> float:
        now = self.monotonic()
        self.level = min(self.size, self.level + max(0.0, now - self._at) * self.rate)
        self._at = now
        return self.level

    def take(self, points: float) -> None:
        self.level = self.available() - points

    def give(self, points: float) -> None:
        self.level = min(self.size, self.available() + points)

    def status(self) -> dict[str, Any]:
        return {"maximumAvailable": float(self.size),
                "currentlyAvailable": math.floor(self.available()),
                "restoreRate": float(self.rate)}
