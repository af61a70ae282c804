"""JSON_LISTINGS_FEED in the Amazon emulator: feed documents, feeds, the checks of Amazon's
listings feed schema (v2) and the processing report (v2).

The checks are written out by hand rather than run through jsonschema: the emulator also runs
under `channelsync sandbox serve`, where jsonschema (a dev dependency) may be missing, and a
25,000-message feed is checked in milliseconds. `tests/test_amazon_emulator.py` checks that
they agree with `listings-feed-schema-v2.json`. A document whose structure (JSON, header,
message list) is broken makes the feed FATAL; a message that breaks the message schema is
reported as that message's error while the others are applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.amazon.emulator.listings import LISTING_DATA

__all__ = ["FEED_TYPE", "ISSUE_FATAL", "ISSUE_SCHEMA", "Document", "Feed", "ReportBuilder",
           "message_errors", "parse_feed"]

FEED_TYPE = "JSON_LISTINGS_FEED"
OPERATION_TYPES = ("UPDATE", "PARTIAL_UPDATE", "PATCH", "DELETE")
REQUIREMENTS = ("LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY")
PATCH_OPS = ("add", "replace", "merge", "delete")
MAX_MESSAGES = 25_000
MAX_MESSAGE_ID = 2_147_483_647
ISSUE_SCHEMA, ISSUE_FATAL = "4000005", "4000006"
# per operation type: fields it requires, fields it must not have (the schema's oneOf)
_SHAPES = {
    "UPDATE": (("productType", "attributes"), ("patches",)),
    "DELETE": ((), ("requirements", "attributes", "productType", "patches")),
    "PARTIAL_UPDATE": (("productType", "attributes"), ("requirements", "patches")),
    "PATCH": (("productType", "patches"), ("requirements", "attributes")),
}


@dataclass
class Document:
    document_id: str
    content_type: str
    created: datetime
    content: bytes | None = None  # None until uploaded
    compressed: bool = False  # a gzip result document


@dataclass
class Feed:
    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    input_document: str
    created: datetime
    due: datetime  # processing starts once the clock passes this
    status: str = "IN_QUEUE"
    started: datetime | None = None
    ended: datetime | None = None
    result_document: str | None = None

    def json(self) -> dict[str, Any]:
        """A `Feed` of the Feeds 2021-06-30 model."""
        out: dict[str, Any] = {"feedId": self.feed_id, "feedType": self.feed_type,
                               "marketplaceIds": list(self.marketplace_ids),
                               "createdTime": _iso_ms(self.created),
                               "processingStatus": self.status}
        if self.started:
            out["processingStartTime"] = _iso_ms(self.started)
        if self.ended:
            out["processingEndTime"] = _iso_ms(self.ended)
        if self.result_document:
            out["resultFeedDocumentId"] = self.result_document
        return out


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _integer(value: Any) -> bool:
    """JSON Schema's integer: 3 and 3.0, never true."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _text(value: Any, min_length: int = 0) -> bool:
    return isinstance(value, str) and len(value) >= min_length


def parse_feed(content: bytes) -> tuple[dict[str, Any], list[str]]:
    """The document and the problems that make the whole feed FATAL."""
    try:
        document = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, ["The feed document is not UTF-8 text."]
    except json.JSONDecodeError as exc:
        return {}, [f"The feed document is not valid JSON: {exc}."]
    if not isinstance(document, dict):
        return {}, ["The feed document must be a JSON object with 'header' and 'messages'."]
    return document, _header_errors(document.get("header")) + _messages_errors(
        document.get("messages"))


def _header_errors(header: Any) -> list[str]:
    if not isinstance(header, dict):
        return ["'header' is required and must be an object."]
    errors = []
    if not _text(header.get("sellerId")):
        errors.append("header.sellerId is required and must be a string.")
    if header.get("version") != "2.0":
        errors.append("header.version is required and must be \"2.0\".")
    if "issueLocale" in header and not _text(header["issueLocale"]):
        errors.append("header.issueLocale must be a string.")
    if "report" in header:
        report = header["report"]
        data = report.get("includedData") if isinstance(report, dict) else None
        if not isinstance(report, dict) or report.get("apiVersion") != "2021-08-01":
            errors.append("header.report needs apiVersion \"2021-08-01\".")
        if not isinstance(data, list) or not data or any(d not in LISTING_DATA for d in data):
            errors.append("header.report.includedData needs one or more of "
                          f"{', '.join(LISTING_DATA)}.")
    return errors


def _messages_errors(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return ["'messages' is required and must be an array."]
    if not 1 <= len(messages) <= MAX_MESSAGES:
        return [f"'messages' must hold 1 to {MAX_MESSAGES} messages, not {len(messages)}."]
    return []


def message_errors(message: Any) -> list[str]:
    """Violations of the message schema (listings-feed-message-schema-v2)."""
    if not isinstance(message, dict):
        return ["A message must be an object."]
    errors = []
    message_id: Any = message.get("messageId")
    op = message.get("operationType")
    if not _integer(message_id) or not 1 <= message_id <= MAX_MESSAGE_ID:
        errors.append(f"messageId is required: an integer from 1 to {MAX_MESSAGE_ID}.")
    if not _text(message.get("sku"), 1):
        errors.append("sku is required: a non-empty string.")
    if op not in OPERATION_TYPES:
        errors.append(f"operationType is required: one of {', '.join(OPERATION_TYPES)}.")
    if "productType" in message and not _text(message["productType"], 1):
        errors.append("productType must be a non-empty string.")
    if "requirements" in message and message["requirements"] not in REQUIREMENTS:
        errors.append(f"requirements must be one of {', '.join(REQUIREMENTS)}.")
    if "attributes" in message and (not isinstance(message["attributes"], dict)
                                    or not message["attributes"]):
        errors.append("attributes must be an object with at least one attribute.")
    if "patches" in message:
        errors += _patches_errors(message["patches"])
    if op in _SHAPES:
        required, forbidden = _SHAPES[op]
        errors += [f"{op} messages require '{name}'." for name in required
                   if name not in message]
        errors += [f"'{name}' is not allowed in {op} messages." for name in forbidden
                   if name in message]
    return errors


def _patches_errors(patches: Any) -> list[str]:
    if not isinstance(patches, list) or not patches:
        return ["patches must be an array of at least one patch operation."]
    errors = []
    for n, patch in enumerate(patches):
        if not isinstance(patch, dict):
            errors.append(f"patches[{n}] must be an object.")
            continue
        if patch.get("op") not in PATCH_OPS:
            errors.append(f"patches[{n}].op is required: one of {', '.join(PATCH_OPS)}.")
        if not _text(patch.get("path")):
            errors.append(f"patches[{n}].path is required and must be a string.")
        value = patch.get("value", [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            errors.append(f"patches[{n}].value must be an array of objects.")
    return errors


@dataclass
class ReportBuilder:
    """A processing report (listings-feed-processing-report-schema-v2)."""

    feed_id: str
    seller_id: str
    report: dict[str, Any] | None = None  # the feed header's `report` (asks for items)
    issues: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    processed: int = 0
    accepted: int = 0
    invalid: int = 0

    def fatal(self, message: str) -> None:
        self.issues.append({"code": ISSUE_FATAL, "severity": "ERROR", "message": message})

    def reject(self, message: Any, found: list[dict[str, Any]]) -> None:
        """One message refused, with its issues (Listings Items `Issue`s)."""
        self.invalid += 1
        where: dict[str, Any] = {}
        if isinstance(message, dict):
            if _integer(message.get("messageId")) and message["messageId"] >= 1:
                where["messageId"] = int(message["messageId"])
            if _text(message.get("sku"), 1):
                where["sku"] = message["sku"]
        for one in found:
            row = {**where, "code": one["code"], "severity": one["severity"],
                   "message": one["message"]}
            if one.get("attributeNames"):
                row["attributeName"] = one["attributeNames"][0]
            self.issues.append(row)

    def json(self) -> dict[str, Any]:
        header: dict[str, Any] = {"sellerId": self.seller_id, "version": "2.0",
                                  "feedId": self.feed_id}
        summary: dict[str, Any] = {
            "errors": sum(i["severity"] == "ERROR" for i in self.issues),
            "warnings": sum(i["severity"] == "WARNING" for i in self.issues),
            "messagesProcessed": self.processed, "messagesAccepted": self.accepted,
            "messagesInvalid": self.invalid}
        out: dict[str, Any] = {"header": header, "issues": self.issues, "summary": summary}
        if self.report is not None:
            header["report"] = self.report
            summary["itemSummary"] = {"items": len(self.items), "errors": 0, "warnings": 0}
            out["items"] = self.items
        return out
