"""FX lookup parsing and the USD→currency arithmetic (Decimal, half-even, quoted precision kept)."""

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from gainers_elt.extract import Gainer
from gainers_elt.transform import (
    FxError,
    FxRate,
    convert,
    fx_request_url,
    output_columns,
    override_rate,
    parse_fx_answer,
    to_rows,
    validate_currency,
)
from pathlib import Path

FX_FIXTURE = Path(__file__).parent / "fixtures" / "fx" / "latest_usd_aud.json"
SRC = "https://api.frankfurter.app/latest?base=USD&symbols=AUD"


def test_frankfurter_fixture_parses_exactly():
    fx = parse_fx_answer(FX_FIXTURE.read_bytes(), "AUD", SRC)
    assert fx == FxRate("AUD", Decimal("1.5123"), date(2024, 5, 10), SRC)


def test_amount_other_than_one_is_divided_out():
    fx = parse_fx_answer('{"amount":10,"base":"USD","date":"2024-05-10","rates":{"EUR":9.2}}', "EUR", SRC)
    assert fx.rate == Decimal("0.92")


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "not JSON"),
    ("[1]", "expected a JSON object"),
    ('{"base":"EUR","date":"2024-05-10","rates":{"AUD":1.6}}', "expected base 'USD'"),
    ('{"base":"USD","date":"2024-05-10","rates":{"NZD":1.6}}', "no rate for AUD"),
    ('{"base":"USD","date":"2024-05-10","rates":{"AUD":0}}', "rate must be a positive number"),
    ('{"base":"USD","date":"2024-05-10","rates":{"AUD":-1.2}}', "rate must be a positive number"),
    ('{"base":"USD","date":"yesterday","rates":{"AUD":1.5}}', "unusable rate"),
    ('{"base":"USD","date":"2024-05-10","rates":{"AUD":"abc"}}', "unusable rate"),
])
def test_bad_fx_answers_fail(body, message):
    with pytest.raises(FxError, match=message):
        parse_fx_answer(body, "AUD", SRC)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.frankfurter.app/latest", "https://api.frankfurter.app/latest?base=USD&symbols=AUD"),
    ("http://127.0.0.1:5002/latest", "http://127.0.0.1:5002/latest?base=USD&symbols=AUD"),
    ("https://fx.example/v1/latest?key=abc", "https://fx.example/v1/latest?key=abc&base=USD&symbols=AUD"),
])
def test_fx_request_url(url, expected):
    assert fx_request_url(url, "AUD") == expected


@pytest.mark.parametrize(("code", "expected"), [("AUD", "AUD"), ("eur", "EUR"), (" nzd ", "NZD")])
def test_currency_codes(code, expected):
    assert validate_currency(code) == expected


@pytest.mark.parametrize(("code", "message"), [("USD", "must differ from USD"), ("AU", "3-letter"),
                                               ("A1D", "3-letter"), ("", "3-letter")])
def test_bad_currency_codes(code, message):
    with pytest.raises(ValueError, match=message):
        validate_currency(code)


@pytest.mark.parametrize(("rate", "expected"), [("1.5123", "1.5123"), (1.5123, "1.5123"), (2, "2"),
                                                (Decimal("0.65"), "0.65")])
def test_override_rate(rate, expected):
    fx = override_rate(rate, "AUD", date(2024, 1, 2))
    assert fx == FxRate("AUD", Decimal(expected), date(2024, 1, 2), "parameter:fx_rate")


@pytest.mark.parametrize("rate", ["0", "-1", "abc", "NaN", "Infinity"])
def test_bad_override_rate(rate):
    with pytest.raises(ValueError, match="fx_rate must be a positive decimal number"):
        override_rate(rate, "AUD", date(2024, 1, 2))


@pytest.mark.parametrize(("amount", "rate", "expected"), [
    ("1234.56", "1.5123", "1867.03"),              # 1867.025088 -> cents
    ("0.00005123", "1.5123", "0.00007748"),         # 0.000077475129 -> keeps the 8 quoted decimals
    ("0.0000000000001234", "1.5123", "0.0000000000001866"),
    ("12340000000", "1.5123", "18661782000.00"),    # whole dollars get cents
    ("0.125", "1", "0.125"),
    ("0.005", "1.5", "0.008"),                     # 0.0075 -> half-even to 0.008
    ("1.005", "1", "1.005"),
    ("0.10", "0.25", "0.02"),                       # 0.025 -> half-even to 0.02
    ("0.30", "0.25", "0.08"),                       # 0.075 -> half-even to 0.08
])
def test_convert(amount, rate, expected):
    result = convert(Decimal(amount), Decimal(rate))
    assert result == Decimal(expected)
    assert format(result, "f") == expected


def test_rows_carry_fx_provenance_and_plain_notation():
    gainers = [
        Gainer(1, "Pepe Moon", "PEPEM", "https://c/p/", Decimal("0.00005123"), Decimal("412.37"), Decimal("1.2E+10")),
        Gainer(2, "No Vol", "NV", "https://c/n/", Decimal("2"), Decimal("-1.5"), None),
    ]
    fx = FxRate("AUD", Decimal("1.5123"), date(2024, 5, 10), SRC)
    rows = to_rows(gainers, fx, datetime(2024, 5, 10, 1, 2, 3, 456, tzinfo=timezone.utc))
    assert list(rows[0]) == output_columns("AUD")
    assert rows[0] == {
        "rank": "1", "name": "Pepe Moon", "symbol": "PEPEM", "url": "https://c/p/",
        "price_usd": "0.00005123", "price_aud": "0.00007748", "change_24h_pct": "412.37",
        "volume_24h_usd": "12000000000", "volume_24h_aud": "18147600000.00",
        "fx_rate": "1.5123", "fx_date": "2024-05-10", "fx_source": SRC, "scraped_at": "2024-05-10T01:02:03Z",
    }
    assert (rows[1]["volume_24h_usd"], rows[1]["volume_24h_aud"], rows[1]["change_24h_pct"]) == ("", "", "-1.5")


def test_output_columns_exact():
    assert output_columns("EUR") == [
        "rank", "name", "symbol", "url", "price_usd", "price_eur", "change_24h_pct", "volume_24h_usd",
        "volume_24h_eur", "fx_rate", "fx_date", "fx_source", "scraped_at"]
