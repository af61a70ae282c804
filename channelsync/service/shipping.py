"""Shipping as a command does it: record (one shipment, or a CSV of them), then confirm on
the channels right away; what a channel does not take now stays queued for the daemon."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from channelsync.orders.shipping import Recorded, ShipError, record_shipment
from channelsync.sync.engine import ChannelReport

if TYPE_CHECKING:
    from channelsync.service.app import App

CSV_COLUMNS = ("channel", "order_id", "carrier", "tracking", "sku", "quantity")


@dataclass
class ShipmentRequest:
    channel: str
    order_id: str
    carrier: str
    tracking: str
    lines: dict[str, int] | None  # SKU -> units; None: all that is not shipped yet
    source: str = "cli"
    rows: list[int] = field(default_factory=list)  # CSV line numbers


@dataclass
class BadRow:
    line: int
    message: str


def ship(app: App, requests: Sequence[ShipmentRequest], *, skip_bad: bool = False,
         check_only: bool = False) -> tuple[list[Recorded], list[BadRow]]:
    """Record these shipments in one transaction: all of them, or (``skip_bad``) those that
    can be; a refused one names its CSV lines. ``check_only``: find every bad one, record
    nothing. Nothing is confirmed here (``confirm``)."""
    recorded: list[Recorded] = []
    bad: list[BadRow] = []
    names = {c.name: c for c in app.config.channels}
    with app.db.begin() as conn:
        for request in requests:
            where = request.rows[0] if request.rows else 0
            channel = names.get(request.channel)
            if channel is None:
                bad.append(BadRow(where, f"no channel named {request.channel!r} in the config"))
                continue
            savepoint = conn.begin_nested()
            try:
                recorded.append(record_shipment(
                    conn, request.channel, request.order_id, carrier=request.carrier,
                    tracking=request.tracking, lines=request.lines,
                    master_sku=channel.master_sku, now=app.now(), source=request.source))
                savepoint.commit()
            except ShipError as exc:
                savepoint.rollback()
                bad.append(BadRow(where, str(exc)))
        if check_only or (bad and not skip_bad):
            conn.rollback()
            return [], bad
    return recorded, bad


def confirm(app: App, channels: Iterable[str]) -> list[ChannelReport]:
    """Send the queued shipments of these channels now."""
    try:
        return app.engine.confirm_shipments(sorted(set(channels)))
    finally:
        app.send_alerts()


def read_csv(path: Path) -> tuple[list[ShipmentRequest], list[BadRow]]:
    """Shipments from a CSV (``CSV_COLUMNS``): rows with the same channel, order and
    tracking number are one shipment; no sku means the whole order."""
    requests: dict[tuple[str, str, str], ShipmentRequest] = {}
    bad: list[BadRow] = []
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ShipError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS[:4] if c not in (reader.fieldnames or [])]
        if missing:
            raise ShipError(f"{path}: the header needs {', '.join(CSV_COLUMNS)} "
                            f"(missing {', '.join(missing)})")
        for record in reader:
            line = reader.line_num
            values = {k: (record.get(k) or "").strip() for k in CSV_COLUMNS}
            empty = [k for k in CSV_COLUMNS[:4] if not values[k]]
            if empty:
                bad.append(BadRow(line, f"empty {', '.join(empty)}"))
                continue
            sku, quantity = values["sku"], values["quantity"]
            units: int | None = None
            if sku:
                try:
                    units = int(quantity or "1")
                except ValueError:
                    bad.append(BadRow(line, f"quantity {quantity!r} is not a whole number"))
                    continue
                if units <= 0:
                    bad.append(BadRow(line, f"quantity {units} is not above 0"))
                    continue
            elif quantity:
                bad.append(BadRow(line, "a quantity without a sku"))
                continue
            key = (values["channel"], values["order_id"], values["tracking"])
            request = requests.get(key)
            if request is None:
                request = requests[key] = ShipmentRequest(
                    key[0], key[1], values["carrier"], key[2], {} if sku else None,
                    source=f"csv:{path.name}:{line}")
            elif (request.lines is None) != (not sku) or request.carrier != values["carrier"]:
                bad.append(BadRow(line, "the same shipment as an earlier row, but with "
                                        "another carrier, or whole order and lines mixed"))
                continue
            request.rows.append(line)
            if sku and request.lines is not None and units is not None:
                request.lines[sku] = request.lines.get(sku, 0) + units
    return list(requests.values()), bad


def parse_lines(given: Iterable[str]) -> dict[str, int] | None:
    """``--line SKU=QTY`` options; none means the whole order."""
    lines: dict[str, int] = {}
    for text in given:
        sku, sep, qty = text.partition("=")
        if not sep or not sku.strip():
            raise ShipError(f"--line {text!r}: write SKU=QTY")
        try:
            units = int(qty)
        except ValueError:
            raise ShipError(f"--line {text!r}: {qty!r} is not a whole number") from None
        lines[sku.strip()] = lines.get(sku.strip(), 0) + units
    return lines or None
