"""Every GraphQL document the Shopify connector sends, with the cost Shopify will ask for it.

Shopify charges a query's *requested* cost up front from its selection set (a scalar 0, an
object 1 plus its fields, a connection 2 + ``first`` x one node's cost with ``pageInfo`` free,
``refunds(first:)`` ``first`` x one refund's cost, ``nodes(ids:)`` and ``quantities(names:)``
the list's length x one item's cost, a mutation 10) and refuses one above 1000
(MAX_COST_EXCEEDED). Page sizes are written into the documents as literals, chosen so each
stays under that limit, and ``Query.cost`` is the requested cost, used to wait for the bucket
before sending. tests/test_shopify_connector.py recomputes every cost from the schema and
validates every document against schema.graphql; tests/test_shopify_schema.py validates them
against Shopify's real schema, with deprecated fields refused.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_QUERY_COST = 1000  # Shopify's single-query limit
MAX_FIRST = 250  # the largest page any connection gives

ORDER_PAGE_SIZE = 20
LINE_PAGE_SIZE = 10
NESTED_REFUNDS = 2  # refunds read with each order; an order with more is read again alone
NESTED_REFUND_LINES = 4  # a refund with more is read on from its cursor (RefundLines)
ALL_REFUNDS = 250  # Order.refunds is a plain list: this is all Shopify gives
LINE_PAGE = 250  # line items per page when an order has more than the nested page
REFUND_LINE_PAGE = 100
VARIANT_PAGE = 100  # read_listings
LOOKUP_PAGE = 100  # SKU lookups
LOOKUP_SKUS = 50  # SKUs per lookup query (terms joined by OR)
LOCATION_PAGE = 50
NODES_PER_QUERY = 250  # ids per nodes(ids:) query
MUTATION_COST = 10
# Confirming a shipment: an order's fulfillments (oldest first) with their tracking numbers,
# and its fulfillment orders with their line items. One fulfillment order per location is
# the rule, so the first page almost always holds them all (more are read page by page);
# a fulfillment order with more lines than a page cannot be fulfilled past them (said so).
FULFILLMENTS_READ = 25
TRACKING_PER_FULFILLMENT = 2  # ours carry one number; a seller's may carry more
FULFILLMENT_ORDER_PAGE = 2
FULFILLMENT_ORDER_LINES = 100

_PAGE_INFO = "pageInfo { hasNextPage endCursor }"
# The order as a whole, for the order book: the buyer's names (never displayName, which falls
# back to the email address or the phone number), the order's email and the customer's id (to
# recognise the buyer again), the total in the shop's currency, and the oldest fulfillment
# (its creation is when the order first shipped; its delivery, when it is the order's only
# one, is the order's). A page of orders keeps the requested cost it had before the header
# was read (782 for 20 orders of 10 lines, so page sizes that were valid stay valid): the
# nested refund lines down from 5 to 4 paid for the header, and the fulfillment's one point
# is the one an unused presentmentMoney took before. Scalars cost nothing.
_HEADER_FIELDS = (
    "createdAt processedAt email customer { id firstName lastName } "
    "fulfillments(first: 1) { status createdAt deliveredAt displayStatus totalQuantity } "
    "totalPriceSet { shopMoney { amount currencyCode } }"
)
HEADER_COST = 1 + 1 + (1 + 1)  # customer; one fulfillment; the MoneyBag and its MoneyV2
_LINE_FIELDS = "id sku quantity currentQuantity unfulfilledQuantity nonFulfillableQuantity"
_REFUND_LINE_FIELDS = "quantity restockType restocked lineItem { id }"
_AVAILABLE = (
    'inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }'
)


@dataclass(frozen=True)
class Query:
    """One GraphQL document: its operation name, text and requested cost (an upper bound)."""

    name: str
    text: str
    cost: int


# -- orders ------------------------------------------------------------------------------------


def _refund_cost(lines: int) -> int:
    return 1 + 2 + lines * 2  # the refund, its refundLineItems connection, lineItem { id }


def order_page_cost(orders: int, lines: int) -> int:
    """The requested cost of ``orders_query(orders, lines)``."""
    order = 1 + HEADER_COST + (2 + lines) + NESTED_REFUNDS * _refund_cost(NESTED_REFUND_LINES)
    return 2 + orders * order


def orders_query(orders: int, lines: int) -> Query:
    text = f"""query Orders($query: String!, $after: String) {{
  orders(first: {orders}, after: $after, query: $query, sortKey: UPDATED_AT) {{
    {_PAGE_INFO}
    nodes {{
      id updatedAt cancelledAt test displayFinancialStatus displayFulfillmentStatus
      {_HEADER_FIELDS}
      lineItems(first: {lines}) {{ {_PAGE_INFO} nodes {{ {_LINE_FIELDS} }} }}
      refunds(first: {NESTED_REFUNDS}) {{
        id
        refundLineItems(first: {NESTED_REFUND_LINES}) {{
          {_PAGE_INFO} nodes {{ {_REFUND_LINE_FIELDS} }}
        }}
      }}
    }}
  }}
}}"""
    return Query("Orders", text, order_page_cost(orders, lines))


ORDER_LINES = Query("OrderLines", f"""query OrderLines($id: ID!, $after: String) {{
  order(id: $id) {{
    id updatedAt
    lineItems(first: {LINE_PAGE}, after: $after) {{ {_PAGE_INFO} nodes {{ {_LINE_FIELDS} }} }}
  }}
}}""", 1 + 2 + LINE_PAGE)

ORDER_REFUNDS = Query("OrderRefunds", f"""query OrderRefunds($id: ID!) {{
  order(id: $id) {{ id updatedAt refunds(first: {ALL_REFUNDS}) {{ id }} }}
}}""", 1 + ALL_REFUNDS)

# A refund is immutable once made, so its lines can be paged on their own.
REFUND_LINES = Query("RefundLines", f"""query RefundLines($ids: [ID!]!, $after: String) {{
  nodes(ids: $ids) {{
    ... on Refund {{
      id
      refundLineItems(first: {REFUND_LINE_PAGE}, after: $after) {{
        {_PAGE_INFO} nodes {{ {_REFUND_LINE_FIELDS} }}
      }}
    }}
  }}
}}""", _refund_cost(REFUND_LINE_PAGE))

# -- locations, variants and inventory -----------------------------------------------------------

# Deactivated locations too, so that a configured one can be reported as such (_locations).
LOCATIONS = Query("Locations", f"""query Locations($after: String) {{
  locations(first: {LOCATION_PAGE}, after: $after, includeInactive: true) {{
    {_PAGE_INFO}
    nodes {{ id name isActive fulfillsOnlineOrders isFulfillmentService shipsInventory }}
  }}
}}""", 2 + LOCATION_PAGE)

LISTINGS = Query("Listings", f"""query Listings($location: ID!, $after: String) {{
  productVariants(first: {VARIANT_PAGE}, after: $after, sortKey: ID) {{
    {_PAGE_INFO}
    nodes {{ id sku inventoryItem {{ id tracked {_AVAILABLE} }} }}
  }}
}}""", 2 + VARIANT_PAGE * 4)

VARIANTS_BY_SKU = Query("VariantsBySku", f"""query VariantsBySku($query: String!, $after: String) {{
  productVariants(first: {LOOKUP_PAGE}, after: $after, query: $query, sortKey: ID) {{
    {_PAGE_INFO} nodes {{ id sku inventoryItem {{ id }} }}
  }}
}}""", 2 + LOOKUP_PAGE * 2)

AVAILABLE = Query("Available", f"""query Available($ids: [ID!]!, $location: ID!) {{
  nodes(ids: $ids) {{ ... on InventoryItem {{ id {_AVAILABLE} }} }}
}}""", NODES_PER_QUERY * 3)
AVAILABLE_PER_ID = 3

SET_QUANTITIES = Query("SetQuantities", """mutation SetQuantities(
  $input: InventorySetQuantitiesInput!, $key: String!
) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}""", MUTATION_COST)

# -- fulfilment ----------------------------------------------------------------------------------

_FULFILLMENT_ORDER_COST = 1 + 2 + FULFILLMENT_ORDER_LINES * (1 + 1)  # its line items, lineItem

FULFILLMENT_STATE = Query("FulfillmentState", f"""query FulfillmentState(
  $id: ID!, $after: String
) {{
  order(id: $id) {{
    id cancelledAt
    fulfillments(first: {FULFILLMENTS_READ}) {{
      id status trackingInfo(first: {TRACKING_PER_FULFILLMENT}) {{ company number }}
    }}
    fulfillmentOrders(first: {FULFILLMENT_ORDER_PAGE}, after: $after) {{
      {_PAGE_INFO}
      nodes {{
        id status
        lineItems(first: {FULFILLMENT_ORDER_LINES}) {{
          {_PAGE_INFO} nodes {{ id remainingQuantity lineItem {{ id }} }}
        }}
      }}
    }}
  }}
}}""", 1 + FULFILLMENTS_READ * (1 + TRACKING_PER_FULFILLMENT)
    + 2 + FULFILLMENT_ORDER_PAGE * _FULFILLMENT_ORDER_COST)

# fulfillmentCreate (fulfillmentCreateV2 is deprecated since 2024-10). No @idempotent: the
# directive works only on mutations whose documentation says they support it, and this one's
# does not; a retry finds an earlier try's fulfillment by its tracking number instead.
CREATE_FULFILLMENT = Query("CreateFulfillment", """mutation CreateFulfillment(
  $fulfillment: FulfillmentInput!
) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}""", MUTATION_COST)

FIXED_QUERIES = (ORDER_LINES, ORDER_REFUNDS, REFUND_LINES, LOCATIONS, LISTINGS, VARIANTS_BY_SKU,
                 AVAILABLE, SET_QUANTITIES, FULFILLMENT_STATE, CREATE_FULFILLMENT)
