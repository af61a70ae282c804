"""Barcodes: GTIN-8, UPC-A (GTIN-12), EAN-13 and GTIN-14, as a scanner or a person gives them.

Pure functions, no database. A code is cleaned of whitespace (a USB scanner ends it with a
return or a tab; a person copies the spaces printed under the bars), its GS1 check digit is
checked, and it is compared in its canonical form, GTIN-14 (zeros on the left): the UPC-A
``036000291452`` and the EAN-13 ``0036000291452`` are one product. What is not made of
digits is not a GTIN at all, and a caller may take it for a SKU (``find_sku`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

GTIN_LENGTH = 14
_KINDS = {8: "GTIN-8", 12: "UPC-A", 13: "EAN-13", 14: "GTIN-14"}

__all__ = ["BarcodeError", "check_digit", "clean", "find_sku", "is_gtin", "normalise", "split"]


class BarcodeError(ValueError):
    """A code that is not a valid GTIN/EAN/UPC, or a scan that means more than one SKU."""


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body`` (a GTIN without its last digit): weights 3
    and 1 alternate from the right, and the check digit brings the sum to a multiple of 10."""
    if not _digits(body):
        raise BarcodeError(f"{body!r}: a check digit is computed over digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return -total % 10


def clean(code: str) -> str:
    """The code without whitespace: the seller's own spelling (a UPC-A stays 12 digits), what
    the catalog stores and labels are printed from."""
    return "".join(code.split())


def normalise(code: str) -> str:
    """The canonical GTIN-14 of a GTIN-8, UPC-A, EAN-13 or GTIN-14; raises ``BarcodeError``
    (saying what is wrong: the expected check digit, the length) for anything else."""
    digits = clean(code)
    if not digits:
        raise BarcodeError("empty barcode")
    if not _digits(digits):
        raise BarcodeError(f"barcode {code.strip()!r} is not a GTIN/EAN/UPC (digits only)")
    kind = _KINDS.get(len(digits))
    if kind is None:
        count = f"{len(digits)} digit" + ("s" if len(digits) > 1 else "")
        raise BarcodeError(f"barcode {digits} has {count}; a GTIN/EAN/UPC has 8 (GTIN-8), "
                           "12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14)")
    expected = check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        raise BarcodeError(f"barcode {digits} ({kind}): wrong check digit {digits[-1]}, "
                           f"expected {expected}")
    if not digits.strip("0"):
        raise BarcodeError(f"barcode {digits} is all zeros, a placeholder and not a GTIN")
    return digits.zfill(GTIN_LENGTH)


def is_gtin(code: str) -> bool:
    """Whether ``normalise`` accepts the code. Never raises."""
    try:
        normalise(code)
    except BarcodeError:
        return False
    return True


def split(barcodes: str | Iterable[str]) -> list[str]:
    """The codes of a list as stored (``sku.barcodes``: comma separated) or given, cleaned of
    surrounding whitespace, empty entries left out, in their order."""
    items = barcodes.split(",") if isinstance(barcodes, str) else barcodes
    return [item.strip() for item in items if item.strip()]


def find_sku(code: str, catalog: Mapping[str, str | Iterable[str]]) -> str | None:
    """The SKU a scanned or typed code means: the one with that barcode (compared as GTIN-14)
    or that is that SKU (exactly, case and all). ``catalog`` maps SKU to its barcodes, a
    comma-separated string as stored or a list. None when nothing matches.

    Raises ``BarcodeError`` for a code that looks like a GTIN but is not a valid one (a
    misread or mistyped code) and is no SKU either, and for a code that means two SKUs.
    A barcode in the catalog that is not a valid GTIN never matches.
    """
    wanted = code.strip()
    if not wanted:
        raise BarcodeError("empty code")
    found = {wanted} if wanted in catalog else set()
    try:
        canonical = normalise(wanted)
    except BarcodeError:
        if not found and _digits(clean(wanted)):
            raise
        canonical = None
    if canonical is not None:
        found |= {sku for sku, codes in catalog.items()
                  if canonical in _canonical_set(split(codes))}
    if len(found) > 1:
        raise BarcodeError(f"{wanted} means more than one SKU: {', '.join(sorted(found))}")
    return found.pop() if found else None


def _canonical_set(codes: Iterable[str]) -> set[str]:
    return {normalise(c) for c in codes if is_gtin(c)}


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
