"""Every CoinMarketCap number format, parsed exactly."""

from decimal import Decimal

import pytest

from gainers_elt.numbers import NumberFormatError, is_missing, parse_amount, parse_percent, parse_rank


@pytest.mark.parametrize(("text", "expected"), [
    ("$1,234.56", "1234.56"),
    ("$0.000123", "0.000123"),
    ("$0.0₄5123", "0.00005123"),           # subscript-zero: the 0 is repeated 4 times
    ("$0.0₁₂1234", "0.0000000000001234"),  # two-digit subscript
    ("$0.0₁5", "0.05"),
    ("$98,765.43", "98765.43"),
    ("$1,234,567,890.12", "1234567890.12"),
    ("$567.8K", "567800"),
    ("$3.4M", "3400000"),
    ("$12.34B", "12340000000"),
    ("$12.34bn", "12340000000"),
    ("$1.2T", "1200000000000"),
    ("  $ 42 ", "42"),
    ("1\u00a0234.5", "1234.5"),            # no-break space as thousands separator
    ("US$7.00", "7.00"),
    (".5", "0.5"),
])
def test_amounts(text, expected):
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "$", "abc", "$1.2.3", "$12X", "1,2,3.4.5", "--", "$1e5", "Price unavailable"])
def test_amounts_rejected(text):
    with pytest.raises(NumberFormatError, match="not an amount"):
        parse_amount(text)


@pytest.mark.parametrize(("text", "hint", "expected"), [
    ("12.34%", False, "12.34"),
    ("+1.2%", False, "1.2"),
    ("-3%", False, "-3"),
    ("\u22123.4%", False, "-3.4"),   # unicode minus
    ("\u20133.4%", False, "-3.4"),   # en dash used as minus
    ("▲ 5.5%", False, "5.5"),
    ("▼ 5.5%", False, "-5.5"),
    ("↓0.25%", False, "-0.25"),
    ("7.89%", True, "-7.89"),       # unsigned text next to a caret-down icon
    ("▲7.89%", True, "7.89"),       # an arrow in the text wins over the icon hint
    ("1,234.5%", False, "1234.5"),
    ("0.00%", True, "0.00"),
])
def test_percentages(text, hint, expected):
    assert parse_percent(text, negative_hint=hint) == Decimal(expected)


@pytest.mark.parametrize("text", ["12.34", "%", "abc%", "1.2.3%", ""])
def test_percentages_rejected(text):
    with pytest.raises(NumberFormatError, match="not a percentage"):
        parse_percent(text)


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("#7", 7), ("12.", 12), (" 100 ", 100)])
def test_ranks(text, expected):
    assert parse_rank(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "one", "", "1.5"])
def test_ranks_rejected(text):
    with pytest.raises(NumberFormatError):
        parse_rank(text)


@pytest.mark.parametrize(("text", "missing"), [("--", True), ("N/A", True), ("", True), ("—", True), ("$0", False)])
def test_missing_markers(text, missing):
    assert is_missing(text) is missing


def test_no_float_rounding():
    # 0.1 + 0.2 style drift would show up here if any float were involved
    assert parse_amount("$0.30000000000000004") == Decimal("0.30000000000000004")
