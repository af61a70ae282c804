"""One GraphQL request in the Shopify emulator: parse, validate, cost, throttle, execute.

graphql-core does the parsing, validation against schema.graphql and execution; this module
adds Shopify's answer shapes: error codes in `extensions`, the cost and throttle status in
`extensions.cost`, MAX_COST_EXCEEDED and THROTTLED (both HTTP 200, nothing executed).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from connectors.shopify.emulator.cost import MAX_COST, Bucket, Costing
from connectors.shopify.emulator.resolvers import Context, shopify_schema

__all__ = ["RATE_LIMITS", "answer", "root_fields"]

RATE_LIMITS = "https://shopify.dev/api/usage/rate-limits"
Body = dict[str, Any]


def _errors(errors: list[GraphQLError], code: str) -> Body:
    return {"errors": [{**e.formatted, "extensions": {"code": code, **(e.extensions or {})}}
                       for e in errors]}


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    found = get_operation_ast(document, name)
    if found is None:  # graphql-core's wording
        raise GraphQLError(f"Unknown operation named '{name}'." if name else
                           "Must provide operation name if query contains multiple operations.")
    return found


@functools.lru_cache(maxsize=64)
def root_fields(body: bytes) -> tuple[str, ...]:
    """The root field names of a request body's operation, in order (empty if unreadable)."""
    try:
        request = json.loads(body)
        operation = _operation(parse(request["query"]), request.get("operationName"))
    except (ValueError, TypeError, KeyError, GraphQLError):
        return ()
    names = [s.name.value for s in operation.selection_set.selections
             if isinstance(s, FieldNode) and not s.name.value.startswith("__")]
    return tuple(dict.fromkeys(names))


def _cost(requested: int, actual: int | None, bucket: Bucket) -> Body:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": bucket.status()}}


def _max_cost(requested: int) -> Body:
    # the wording as Shopify answers it (seen in client bug reports), not documented
    message = (f"Query cost is {requested}, which exceeds the single query max cost limit "
               f"({MAX_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for "
               "more information on how the\ncost of a query is calculated.\n\nTo query larger "
               "amounts of data with fewer limits, bulk operations should be used instead.\n"
               "See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n")
    return {"errors": [{"message": message, "extensions": {
        "code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_COST,
        "documentation": RATE_LIMITS}}]}


def answer(body: Any, bucket: Bucket, context: Context) -> tuple[int, Body]:
    """(HTTP status, JSON body) for one request body."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        # guessed: Shopify's answer to a POST without a query
        return 400, {"errors": {"query": "Required parameter missing or invalid"}}
    variables, name = body.get("variables") or {}, body.get("operationName")
    if not isinstance(variables, dict) or not isinstance(name, str | None):
        return 400, {"errors": {"variables": "Invalid variables or operationName"}}  # guessed:
    schema = shopify_schema()
    try:
        document = parse(body["query"])
    except GraphQLError as err:
        return 200, _errors([err], "GRAPHQL_PARSE_FAILED")  # guessed: the code
    invalid = validate(schema, document)
    if invalid:
        return 200, _errors(invalid, "GRAPHQL_VALIDATION_FAILED")  # guessed: the code
    try:
        operation = _operation(document, name)
    except GraphQLError as err:
        return 200, _errors([err], "BAD_REQUEST")  # guessed: the code
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
    if isinstance(coerced, list):
        return 200, _errors(coerced, "INVALID_VARIABLE")  # guessed: the code
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    costing = Costing(schema, fragments, coerced, operation)
    try:
        requested = costing.requested()
    except GraphQLError as err:
        return 200, {"errors": [err.formatted]}
    if requested > MAX_COST:
        return 200, _max_cost(requested)
    if requested > bucket.available():
        throttled = {"message": "Throttled",
                     "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS}}
        return 200, {"errors": [throttled], "extensions": _cost(requested, None, bucket)}
    bucket.take(requested)
    result = execute_sync(schema, document, context_value=context, variable_values=variables,
                          operation_name=name)
    actual = costing.actual(result.data)
    bucket.give(requested - actual)
    out: Body = {}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    return 200, {**out, "data": result.data, "extensions": _cost(requested, actual, bucket)}
