"""Wire-level pieces of the eBay emulator: Trading API XML in and out, eBay's error codes.

Error codes: 2, 17, 37, 291, 518, 931 and 10007 are eBay's documented codes; the
ReviseInventoryStatus-specific ones (`TOO_MANY_ITEMS`, `SKU_MISMATCH`, `REVISION_CAP`) are
plausible picks of the emulator, not verified against eBay (a connector should key on
the message class, the `ErrorParameters` and the Ack, not on these numbers). CompleteSale's:
2191111 (invalid shipment tracking number or carrier) and 21916964 (a tracking number another
buyer's order or another seller already uses) are the codes eBay's knowledge base gives for
those cases; answering 21916964 also for a number already on the same order line is the
emulator's pick, not verified.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channelsync.sandbox.emulator import SandboxError

__all__ = ["NS", "EbayError", "Fault", "bool_text", "child", "child_text", "element", "flag",
           "invalid", "ebay_time", "envelope", "error_element", "parse_request", "parse_time",
           "text"]

NS = "urn:ebay:apis:eBLBaseComponents"
VERSION = "1349"
BUILD = "E1349_CORE_APISELLING_emulator"

UNSUPPORTED_CALL = 2
ITEM_NOT_FOUND = 17
INVALID_INPUT = 37
ITEM_ENDED = 291
USAGE_LIMIT = 518
INVALID_TOKEN = 931
INTERNAL = 10007
TOO_MANY_ITEMS = 21919189  # unverified pick
SKU_MISMATCH = 21916799  # unverified pick
REVISION_CAP = 21919144  # unverified pick
INVALID_TRACKING = 2191111  # CompleteSale: invalid shipment tracking number or carrier
TRACKING_IN_USE = 21916964  # CompleteSale: the tracking number is used elsewhere already


@dataclass(frozen=True)
class Fault:
    """One `<Errors>` element."""

    code: int
    short: str
    long: str
    params: tuple[str, ...] = ()
    severity: str = "Error"
    classification: str = "RequestError"


class EbayError(SandboxError):
    """A refused call: answered with HTTP 200 and `<Ack>Failure</Ack>`, as eBay does."""

    status = 200

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.short, code=str(fault.code), data=fault)
        self.fault = fault


def invalid(long: str) -> EbayError:
    return EbayError(Fault(INVALID_INPUT, "Input data is invalid.", long))


def ebay_time(moment: datetime) -> str:
    """eBay's timestamps: UTC, milliseconds, `Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(name: str, raw: str | None) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    try:
        if "T" not in raw.strip():  # str(datetime) has a space: not an xs:dateTime
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Input data for tag <{name}> is invalid or missing. "
                      "Please check API documentation.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _strip(node: ET.Element) -> ET.Element:
    for each in node.iter():
        if isinstance(each.tag, str) and "}" in each.tag:
            each.tag = each.tag.split("}", 1)[1]
    return node


def parse_request(body: bytes, call: str) -> ET.Element:
    """The `{call}Request` root, namespaces stripped."""
    try:
        root = _strip(ET.fromstring(body or b"<missing/>"))
    except ET.ParseError as exc:
        raise EbayError(Fault(5, "XML Parse error.", f"XML Error Text: \"{exc}\".")) from None
    if root.tag != f"{call}Request":
        raise invalid(f"The request root element is <{root.tag}>, expected <{call}Request>.")
    return root


def child(node: ET.Element | None, path: str) -> ET.Element | None:
    return None if node is None else node.find(path)


def child_text(node: ET.Element | None, path: str) -> str | None:
    found = child(node, path)
    return None if found is None or found.text is None else found.text.strip()


def flag(node: ET.Element | None, path: str) -> bool | None:
    """An xs:boolean: true/false/1/0 only (Python's "True", as ebaysdk writes a bool, is refused
    loudly rather than misread)."""
    raw = child_text(node, path)
    if raw is None:
        return None
    if raw not in ("true", "false", "1", "0"):
        raise invalid(f"Input data for tag <{path.split('/')[-1]}> is invalid or missing: "
                      f"{raw!r} is not a boolean (true or false).")
    return raw in ("true", "1")


def bool_text(value: bool) -> str:
    return "true" if value else "false"


def text(parent: ET.Element, tag: str, value: Any, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, tag, attrs)
    node.text = value if isinstance(value, str) else bool_text(value) if isinstance(
        value, bool) else ebay_time(value) if isinstance(value, datetime) else str(value)
    return node


def element(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, tag)


def error_element(parent: ET.Element, fault: Fault) -> None:
    node = element(parent, "Errors")
    text(node, "ShortMessage", fault.short)
    text(node, "LongMessage", fault.long)
    text(node, "ErrorCode", fault.code)
    text(node, "SeverityCode", fault.severity)
    for index, value in enumerate(fault.params):
        param = ET.SubElement(node, "ErrorParameters", {"ParamID": str(index)})
        text(param, "Value", value)
    text(node, "ErrorClassification", fault.classification)


def envelope(call: str, now: datetime, ack: str, faults: Iterable[Fault] = (),
             body: ET.Element | None = None) -> bytes:
    """`<{call}Response>` with Timestamp, Ack, Errors, Version, Build, then `body`'s children."""
    root = ET.Element(f"{call or 'Unknown'}Response", {"xmlns": NS})
    text(root, "Timestamp", now)
    text(root, "Ack", ack)
    for fault in faults:
        error_element(root, fault)
    text(root, "Version", VERSION)
    text(root, "Build", BUILD)
    if body is not None:
        root.extend(list(body))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
