"""Barcodes: the GS1 check digit, one product under its UPC-A and EAN-13, finding the SKU a
scan means, and the catalog rules through the CLI on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app
from channelsync.errors import LedgerError
from channelsync.ledger import stock
from channelsync.ledger.barcodes import (
    BarcodeError,
    check_digit,
    find_sku,
    is_gtin,
    normalise,
    split,
)
from channelsync.ledger.schema import sku_t
from tests.ledger_helpers import at, sku_row

# Real codes: Faber-Castell's EAN-13, a UPC-A and the same product as EAN-13, GTIN-8s from
# GS1 and Wikipedia, GS1's own GTIN-14 example.
VALID = {
    "4006381333931": "04006381333931",
    "5901234123457": "05901234123457",
    "036000291452": "00036000291452",
    "0036000291452": "00036000291452",
    "96385074": "00000096385074",
    "73513537": "00000073513537",
    "10614141000415": "10614141000415",
}


@pytest.mark.parametrize("code", sorted(VALID))
def test_real_codes_have_right_check_digits(code: str) -> None:
    assert check_digit(code[:-1]) == int(code[-1])
    assert normalise(code) == VALID[code]
    assert is_gtin(code)


def test_a_upc_a_and_its_ean_13_are_one_product() -> None:
    assert normalise("036000291452") == normalise("0036000291452") == normalise(
        "00036000291452")
    assert normalise("036000291452") != normalise("4006381333931")


def test_what_a_scanner_or_a_person_types_is_cleaned() -> None:
    assert normalise("4006381333931\r\n") == "04006381333931"  # a scanner's return
    assert normalise("\t0 36000 29145 2 ") == "00036000291452"  # as printed under the bars


@pytest.mark.parametrize(("code", "message"), [
    ("4006381333932", "barcode 4006381333932 (EAN-13): wrong check digit 2, expected 1"),
    ("036000291453", "barcode 036000291453 (UPC-A): wrong check digit 3, expected 2"),
    ("96385075", "barcode 96385075 (GTIN-8): wrong check digit 5, expected 4"),
    ("10614141000416", "(GTIN-14): wrong check digit 6, expected 5"),
    ("12345", "barcode 12345 has 5 digits; a GTIN/EAN/UPC has 8 (GTIN-8), 12 (UPC-A)"),
    ("400638133393", "wrong check digit"),  # an EAN-13 with its last digit lost is 12 long
    ("40063813339311", "wrong check digit"),
    ("123456789012345", "has 15 digits"),
    ("MUG-1", "'MUG-1' is not a GTIN/EAN/UPC (digits only)"),
    ("4006381333931A", "not a GTIN/EAN/UPC"),
    ("٤٠٠٦٣٨١٣٣٣٩٣١", "not a GTIN/EAN/UPC"),  # Arabic-Indic digits are not a scan
    ("   ", "empty barcode"),
    ("00000000", "all zeros"),
])
def test_bad_codes_say_what_is_wrong(code: str, message: str) -> None:
    with pytest.raises(BarcodeError, match=re.escape(message)):
        normalise(code)
    assert not is_gtin(code)
    assert issubclass(BarcodeError, ValueError)


def test_split_reads_the_stored_list() -> None:
    assert split("036000291452, 4006381333931,,") == ["036000291452", "4006381333931"]
    assert split("") == [] and split([" 96385074 "]) == ["96385074"]


CATALOG: dict[str, Any] = {
    "MUG": "036000291452,96385074",
    "LAMP": ["4006381333931"],
    "BOWL": "",
    "10045": "",  # a numeric SKU that is no GTIN
    "LEGACY": "4006381333932",  # stored before check digits were checked
}


def test_a_scan_finds_its_sku_by_barcode_or_by_the_sku_itself() -> None:
    assert find_sku("0036000291452", CATALOG) == "MUG"  # the EAN-13 of MUG's UPC-A
    assert find_sku("036000291452\n", CATALOG) == "MUG"
    assert find_sku("00000096385074", CATALOG) == "MUG"
    assert find_sku("4006381333931", CATALOG) == "LAMP"
    assert find_sku("BOWL", CATALOG) == "BOWL"
    assert find_sku(" 10045 ", CATALOG) == "10045"
    assert find_sku("bowl", CATALOG) is None  # SKUs match exactly, case and all
    assert find_sku("5901234123457", CATALOG) is None  # a valid code nobody has
    assert find_sku("CUP", CATALOG) is None


def test_a_misread_scan_or_one_meaning_two_skus_is_an_error() -> None:
    with pytest.raises(BarcodeError, match="wrong check digit 2, expected 1"):
        find_sku("4006381333932", CATALOG)  # even though LEGACY stores it: no scan matches
    with pytest.raises(BarcodeError, match="has 5 digits"):
        find_sku("10046", CATALOG)
    with pytest.raises(BarcodeError, match="empty"):
        find_sku(" \r\n", CATALOG)
    with pytest.raises(BarcodeError, match="96385074 means more than one SKU: CUP, MUG"):
        find_sku("96385074", {**CATALOG, "CUP": "96385074"})
    with pytest.raises(BarcodeError, match="more than one SKU: 4006381333931, LAMP"):
        find_sku("4006381333931", {**CATALOG, "4006381333931": ""})
    assert find_sku("4006381333931", {"4006381333931": "4006381333931"}) == "4006381333931"


# -- the catalog, through the CLI ---------------------------------------------------------------


class Cli:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def run(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, ["--config", str(self.config), *args])
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.stderr
        return result

    def error(self, *args: str, code: int = 1) -> str:
        """The one-line message of a command that fails."""
        lines = self.run(*args, code=code).stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return str(lines[0])

    def barcodes(self, sku: str) -> list[str]:
        listed = json.loads(self.run("stock", "barcode", sku, "--json").stdout)
        return [b["code"] for b in listed["barcodes"]]


@pytest.fixture
def cli(ledger_url: str, tmp_path: Path) -> Cli:
    config = tmp_path / "channels.toml"
    config.write_text(f'[database]\nurl = "{ledger_url}"\n')
    return Cli(config)


def test_barcode_commands_add_list_and_remove(cli: Cli) -> None:
    cli.run("stock", "set", "MUG", "5")
    cli.run("stock", "set", "CUP", "2")
    assert cli.run("stock", "barcode", "MUG").stdout == ""
    added = cli.run("stock", "barcode", "MUG", "036000291452").stdout
    assert added.strip() == "MUG: barcode 036000291452 added (barcodes: 036000291452)"
    again = cli.run("stock", "barcode", "MUG", "0036000291452").stdout  # the same product
    assert "already has barcode 0036000291452" in again
    cli.run("stock", "barcode", "MUG", " 4006381333931\r\n")
    assert cli.barcodes("MUG") == ["036000291452", "4006381333931"]
    assert cli.run("stock", "barcode", "MUG").stdout.split() == ["036000291452",
                                                                 "4006381333931"]
    listed = json.loads(cli.run("stock", "barcode", "MUG", "--json").stdout)
    assert listed["barcodes"][0] == {"code": "036000291452", "gtin": "00036000291452",
                                     "problem": None}

    assert "already belongs to SKU 'MUG' (as 036000291452, the same product)" in \
        cli.error("stock", "barcode", "CUP", "0036000291452")
    assert "wrong check digit 2, expected 1" in cli.error("stock", "barcode", "CUP",
                                                          "4006381333932")
    assert "has 5 digits" in cli.error("stock", "barcode", "CUP", "12345")
    assert "not a GTIN" in cli.error("stock", "barcode", "CUP", "96385074,73513537")
    assert "unknown SKU 'NOPE'" in cli.error("stock", "barcode", "NOPE", "96385074")
    assert "not both" in cli.error("stock", "barcode", "CUP", "96385074", "--remove",
                                   "96385074", code=2)
    assert cli.barcodes("CUP") == []

    removed = cli.run("stock", "barcode", "MUG", "--remove", "0036000291452").stdout
    assert "MUG: barcode 036000291452 removed (barcodes: 4006381333931)" in removed
    assert "has no barcode 036000291452 (its barcodes: 4006381333931)" in \
        cli.error("stock", "barcode", "MUG", "--remove", "036000291452")
    assert "unknown SKU 'NOPE'" in cli.error("stock", "barcode", "NOPE", "--remove", "1")
    assert "unknown SKU 'NOPE'" in cli.error("stock", "barcode", "NOPE")
    cli.run("stock", "barcode", "CUP", "0036000291452")  # freed, so CUP may have it now
    assert cli.barcodes("CUP") == ["0036000291452"]
    assert [s["on_hand"] for s in json.loads(cli.run("stock", "list", "--json").stdout)[
        "stock"]] == [2, 5]  # barcodes move no stock


def test_stock_set_adds_a_barcode_and_export_imports_again(cli: Cli, tmp_path: Path) -> None:
    cli.run("stock", "set", "MUG", "5", "--barcode", "036000291452")
    cli.run("stock", "set", "MUG", "6", "--barcode", "4006381333931")
    cli.run("stock", "set", "MUG", "7", "--barcode", "0036000291452")  # has it already
    cli.run("stock", "set", "MUG", "8")
    assert cli.barcodes("MUG") == ["036000291452", "4006381333931"]
    assert "MUG: barcode 5901234123458 (EAN-13): wrong check digit 8, expected 7" in \
        cli.error("stock", "set", "MUG", "9", "--barcode", "5901234123458")
    cli.run("stock", "set", "CUP", "1")
    assert "CUP: barcode 4006381333931 already belongs to SKU 'MUG'" in \
        cli.error("stock", "set", "CUP", "3", "--barcode", "4006381333931")
    exported = tmp_path / "export.csv"
    cli.run("stock", "export", str(exported))
    assert exported.read_text().splitlines() == [
        "sku,on_hand,safety_stock,title,barcode", "CUP,1,0,,",
        'MUG,8,0,,"036000291452,4006381333931"']
    cli.run("stock", "import", str(exported))
    assert cli.barcodes("MUG") == ["036000291452", "4006381333931"]


def test_an_import_lists_bad_barcodes_as_bad_rows(cli: Cli, tmp_path: Path) -> None:
    cli.run("stock", "set", "LAMP", "1", "--barcode", "4006381333931")
    csv = tmp_path / "stock.csv"
    csv.write_text("sku,on_hand,safety_stock,title,barcode\n"
                   "MUG,5,,Blue mug,036000291452\n"          # 2: fine
                   "CUP,3,,,4006381333932\n"                 # 3: wrong check digit
                   "BOWL,2,,,0036000291452\n"                # 4: MUG's, as EAN-13
                   "PLATE,4,,,4006381333931\n"               # 5: LAMP's, in the ledger
                   "JUG,1,,,\"96385074, 5901234123457\"\n"   # 6: fine, two codes
                   "LID,1,,,123456789\n")                    # 7: wrong length
    result = cli.run("stock", "import", str(csv), code=1)
    problems = [line.split(": ", 1)[1] for line in result.stderr.splitlines()
                if line.startswith(str(csv))]
    assert problems == [
        "line 3: barcode 4006381333932 (EAN-13): wrong check digit 2, expected 1",
        "line 4: barcode 0036000291452 already given for SKU 'MUG' on line 2 "
        "(as 036000291452, the same product)",
        "line 5: barcode 4006381333931 already belongs to SKU 'LAMP'; "
        "'channelsync stock barcode LAMP --remove 4006381333931' frees it",
        "line 7: barcode 123456789 has 9 digits; a GTIN/EAN/UPC has 8 (GTIN-8), 12 (UPC-A), "
        "13 (EAN-13) or 14 (GTIN-14)",
    ]
    assert "4 bad row(s); nothing imported" in result.stderr
    assert cli.error("stock", "barcode", "MUG") == "error: unknown SKU 'MUG'"

    as_json = json.loads(cli.run("stock", "import", str(csv), "--json", code=1).stdout)
    assert as_json["imported"] == 0 and len(as_json["problems"]) == 4
    imported = json.loads(cli.run("stock", "import", str(csv), "--skip-bad", "--json").stdout)
    assert imported["imported"] == 2
    stock_list = json.loads(cli.run("stock", "list", "--json").stdout)["stock"]
    assert {s["sku"]: s["barcodes"] for s in stock_list} == {
        "JUG": "96385074,5901234123457", "LAMP": "4006381333931", "MUG": "036000291452"}


# -- the ledger's rules, below the CLI ----------------------------------------------------------


def test_a_barcode_belongs_to_one_sku_even_within_one_count(engine: Engine) -> None:
    rows = [stock.StockRow("MUG", 1, barcode="036000291452"),
            stock.StockRow("CUP", 1, barcode="0036000291452")]
    with pytest.raises(LedgerError, match="CUP: barcode 0036000291452 already belongs to SKU "
                                          "'MUG'"), engine.begin() as conn:
        stock.set_stock(conn, rows, now=at(0), reason="count")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sku_t)).scalar() == 0


def test_codes_stored_before_check_digits_were_checked_can_be_listed_and_removed(
    engine: Engine, cli: Cli
) -> None:
    with engine.begin() as conn:
        stock.set_stock(conn, [stock.StockRow("MUG", 1)], now=at(0), reason="count")
        conn.execute(sku_t.update().values(barcodes="4006381333932,036000291452"))
    listed = cli.run("stock", "barcode", "MUG").stdout.splitlines()
    assert listed[0].startswith("4006381333932  (not valid, no scan matches it: barcode "
                                "4006381333932 (EAN-13): wrong check digit 2, expected 1)")
    assert listed[1] == "036000291452"
    with engine.begin() as conn:  # a count keeps them, and adds a new code after them
        stock.set_stock(conn, [stock.StockRow("MUG", 2, barcode="96385074")], now=at(1),
                        reason="count")
    assert sku_row(engine, "MUG")["barcodes"] == "4006381333932,036000291452,96385074"
    cli.run("stock", "barcode", "MUG", "--remove", "4006381333932")
    assert cli.barcodes("MUG") == ["036000291452", "96385074"]


def test_two_writers_cannot_give_one_code_to_two_skus(engine: Engine) -> None:
    with engine.begin() as conn:
        stock.set_stock(conn, [stock.StockRow("MUG", 1), stock.StockRow("CUP", 1)], now=at(0),
                        reason="count")
    outcome: list[BaseException | bool] = []
    waiting = threading.Event()

    def second() -> None:
        waiting.set()
        try:
            with engine.begin() as conn:  # waits for the first writer, then sees its code
                outcome.append(stock.add_barcode(conn, "CUP", "0036000291452", now=at(2))[0])
        except LedgerError as exc:
            outcome.append(exc)

    with engine.begin() as conn:
        assert stock.add_barcode(conn, "MUG", "036000291452", now=at(1)) == \
            (True, ["036000291452"])
        thread = threading.Thread(target=second)
        thread.start()
        waiting.wait(10)
        thread.join(0.5)  # give it time to reach the lock it must wait on
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LedgerError), outcome
    assert "already belongs to SKU 'MUG'" in str(outcome[0])
    assert sku_row(engine, "CUP")["barcodes"] == ""
