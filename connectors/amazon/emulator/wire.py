"""Wire-level pieces of the Amazon emulator: error bodies, usage plans, marketplaces, dates,
query parameters and identifiers in Amazon's formats."""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channelsync.sandbox.emulator import Request, SandboxError

__all__ = ["DEFAULT_MARKETPLACE", "INTERNAL", "QUOTA_EXCEEDED", "RATES", "UNAUTHORIZED",
           "Bucket", "Marketplace", "amazon_error", "csv_param", "error_body", "int_param",
           "iso", "json_body", "marketplace", "new_asin", "new_order_id", "parse_time",
           "time_param"]

DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"

# Amazon's published usage plans (requests per second, burst), from the models' descriptions.
RATES: dict[str, tuple[float, int]] = {
    "searchOrders": (0.0056, 20),
    "getOrder": (0.5, 30),
    "getOrders": (0.0167, 20),
    "getOrderItems": (0.5, 30),
    "confirmShipment": (2.0, 10),
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "searchListingsItems": (5.0, 5),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "cancelFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
}

QUOTA_EXCEEDED = {"errors": [{"code": "QuotaExceeded", "details": "",
                              "message": "You exceeded your quota for the requested resource."}]}
UNAUTHORIZED = {"code": "Unauthorized", "message": "Access to requested resource is denied."}
INTERNAL = {"errors": [{"code": "InternalFailure", "details": "",
                        "message": "We encountered an internal error. Please try again."}]}
_DEFAULT_CODES = {400: "InvalidInput", 403: "Unauthorized", 404: "NotFound", 409: "Conflict",
                  413: "RequestTooLarge", 415: "UnsupportedMediaType", 429: "QuotaExceeded"}


def amazon_error(status: int, message: str, code: str = "", details: str = "") -> SandboxError:
    """A refused SP-API call; rendered as Amazon's ErrorList by `error_body`."""
    return SandboxError(message, status=status, code=code or _DEFAULT_CODES.get(status, ""),
                        data=details)


def error_body(err: SandboxError) -> dict[str, Any]:
    code = err.code or _DEFAULT_CODES.get(err.status, "InternalFailure")
    details = err.data if isinstance(err.data, str) else ""
    return {"errors": [{"code": code, "message": err.message, "details": details}]}


@dataclass
class Bucket:
    """A token bucket: `rate` tokens per second refill up to `burst`; a request takes one."""

    rate: float
    burst: int
    tokens: float
    stamp: float  # seconds, on the emulator's clock

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True)
class Marketplace:
    marketplace_id: str
    country: str
    name: str
    currency: str
    afn_code: str  # the fulfillment channel code of Amazon's own (FBA) stock there


_MARKETPLACES = [Marketplace(*row) for row in (
    ("ATVPDKIKX0DER", "US", "Amazon.com", "USD", "AMAZON_NA"),
    ("A2EUQ1WTGCTBG2", "CA", "Amazon.ca", "CAD", "AMAZON_NA"),
    ("A1AM78C64UM0Y8", "MX", "Amazon.com.mx", "MXN", "AMAZON_NA"),
    ("A2Q3Y263D00KWC", "BR", "Amazon.com.br", "BRL", "AMAZON_NA"),
    ("A1F83G8C2ARO7P", "UK", "Amazon.co.uk", "GBP", "AMAZON_EU"),
    ("A1PA6795UKMFR9", "DE", "Amazon.de", "EUR", "AMAZON_EU"),
    ("A13V1IB3VIYZZH", "FR", "Amazon.fr", "EUR", "AMAZON_EU"),
    ("APJ6JRA9NG5V4", "IT", "Amazon.it", "EUR", "AMAZON_EU"),
    ("A1RKKUPIHCS9HS", "ES", "Amazon.es", "EUR", "AMAZON_EU"),
    ("A1805IZSGTT6HS", "NL", "Amazon.nl", "EUR", "AMAZON_EU"),
    ("A2NODRKZP88ZB9", "SE", "Amazon.se", "SEK", "AMAZON_EU"),
    ("A1C3SOZRARQ6R3", "PL", "Amazon.pl", "PLN", "AMAZON_EU"),
    ("AMEN7PMS3EDWL", "BE", "Amazon.com.be", "EUR", "AMAZON_EU"),
    ("A21TJRUUN4KGV", "IN", "Amazon.in", "INR", "AMAZON_IN"),
    ("A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "AMAZON_JP"),
    ("A39IBJ37TRP1C6", "AU", "Amazon.com.au", "AUD", "AMAZON_AU"),
)]
_BY_KEY = {m.marketplace_id: m for m in _MARKETPLACES} | {m.country: m for m in _MARKETPLACES}
_BY_KEY["GB"] = _BY_KEY["UK"]


def marketplace(key: str) -> Marketplace:
    """A marketplace by id or country code; an unknown id is served as a North American one."""
    found = _BY_KEY.get(key) or _BY_KEY.get(key.upper())
    return found or Marketplace(key, "", "Amazon", "USD", "AMAZON_NA")


def iso(moment: datetime) -> str:
    """Amazon's timestamps: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(name: str, raw: str) -> datetime:
    text = raw.strip()
    if " " in text:  # str(datetime) or an unencoded "+01:00" both arrive with a space
        raise amazon_error(400, f"Invalid {name}: {raw!r} is not an ISO 8601 date-time "
                                "(expected e.g. 2026-01-01T00:00:00Z).")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise amazon_error(400, f"Invalid {name}: {raw!r} is not an ISO 8601 date-time.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    return None if raw is None else parse_time(name, raw)


def csv_param(request: Request, name: str) -> list[str] | None:
    """An array parameter, sent comma-delimited (as the library does) or as repeated keys."""
    values = request.query.get(name)
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise amazon_error(400, f"Invalid {name}: must be an integer between {low} and {high}.")
    return int(raw)


def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise amazon_error(400, f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise amazon_error(400, "The request body must be a JSON object.")
    return body


def new_order_id(rng: random.Random) -> str:
    """Amazon's 3-7-7 order id."""
    first, second = rng.randint(0, 9_999_999), rng.randint(0, 9_999_999)
    return f"{rng.randint(111, 114)}-{first:07d}-{second:07d}"


def new_asin(rng: random.Random) -> str:
    return "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
