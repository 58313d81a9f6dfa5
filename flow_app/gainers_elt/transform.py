"""Transform: look up the USD→<currency> rate and convert the gainers, exactly, with Decimal."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from gainers_elt.extract import Gainer

DEFAULT_FX_API_URL = "https://api.frankfurter.app/latest"
CURRENCY = re.compile(r"^[A-Z]{3}$")
MIN_PLACES = 2  # never fewer decimals than cents


class FxError(ValueError):
    """The FX answer is unusable (wrong base, missing currency, non-positive rate). Not retried."""


@dataclass(frozen=True, slots=True)
class FxRate:
    """How many units of ``currency`` one US dollar buys, as of ``date``, according to ``source``."""

    currency: str
    rate: Decimal
    date: date
    source: str


def validate_currency(code: str) -> str:
    """Upper-case ISO-4217 code, not USD (the output has both ``price_usd`` and ``price_<ccy>``)."""
    normalised = code.strip().upper()
    if not CURRENCY.match(normalised):
        raise ValueError(f"target_currency must be a 3-letter ISO 4217 code such as 'AUD', got {code!r}")
    if normalised == "USD":
        raise ValueError("target_currency must differ from USD: prices are already in USD")
    return normalised


def fx_request_url(api_url: str, currency: str) -> str:
    """``<api_url>?base=USD&symbols=<currency>`` (keeping any query the URL already has)."""
    parts = urlsplit(api_url)
    query = "&".join(q for q in (parts.query, urlencode({"base": "USD", "symbols": currency})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def parse_fx_answer(body: str | bytes, currency: str, source: str) -> FxRate:
    """Read a Frankfurter answer: ``{"amount":1.0,"base":"USD","date":"2024-05-10","rates":{"AUD":1.5123}}``."""
    try:
        data = json.loads(body, parse_float=Decimal, parse_int=Decimal)
    except ValueError as exc:
        raise FxError(f"{source}: answer is not JSON: {body[:200]!r}") from exc
    if not isinstance(data, dict):
        raise FxError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("base") != "USD":
        raise FxError(f"{source}: expected base 'USD', got {data.get('base')!r}")
    rates = data.get("rates")
    if not isinstance(rates, dict) or currency not in rates:
        raise FxError(f"{source}: no rate for {currency} in {rates!r}")
    amount = data.get("amount", Decimal(1))
    try:
        rate = Decimal(rates[currency]) / Decimal(amount)
        rate_date = date.fromisoformat(str(data.get("date")))
    except (InvalidOperation, ValueError, TypeError, ZeroDivisionError) as exc:
        raise FxError(f"{source}: unusable rate {rates[currency]!r} / date {data.get('date')!r}: {exc}") from exc
    if not rate.is_finite() or rate <= 0:
        raise FxError(f"{source}: rate must be a positive number, got {rate}")
    return FxRate(currency=currency, rate=rate, date=rate_date, source=source)


def fetch_fx_rate(
    session: requests.Session, api_url: str, currency: str, timeout: tuple[float, float] = (5.0, 20.0)
) -> FxRate:
    """Ask a Frankfurter-compatible API for the USD→``currency`` rate (HTTP errors raise)."""
    url = fx_request_url(api_url, currency)
    response = session.get(url, timeout=timeout, headers={"Accept": "application/json"})
    response.raise_for_status()
    return parse_fx_answer(response.content, currency, source=url)


def override_rate(rate: Decimal | str | float | int, currency: str, as_of: date) -> FxRate:
    """An FX rate given as a parameter: recorded with source ``parameter:fx_rate`` and the run's date."""
    try:
        value = Decimal(str(rate))
    except InvalidOperation as exc:
        raise ValueError(f"fx_rate must be a positive decimal number, got {rate!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError(f"fx_rate must be a positive decimal number, got {rate!r}")
    return FxRate(currency=currency, rate=value, date=as_of, source="parameter:fx_rate")


def _places(value: Decimal) -> int:
    return max(MIN_PLACES, -value.as_tuple().exponent) if value.is_finite() else MIN_PLACES


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount * rate`` rounded half-even to the precision the amount was quoted with (at least cents).

    $0.00005123 keeps 8 decimals, $1,234.56 keeps 2, a whole-dollar volume gets cents.
    """
    return (amount * rate).quantize(Decimal(1).scaleb(-_places(amount)), rounding=ROUND_HALF_EVEN)


def decimal_text(value: Decimal | None) -> str:
    """Plain notation (never ``1.2E+10``), empty for a missing value."""
    return "" if value is None else format(value, "f")


def output_columns(currency: str) -> list[str]:
    ccy = currency.lower()
    return ["rank", "name", "symbol", "url", "price_usd", f"price_{ccy}", "change_24h_pct", "volume_24h_usd",
            f"volume_24h_{ccy}", "fx_rate", "fx_date", "fx_source", "scraped_at"]


def to_rows(gainers: list[Gainer], fx: FxRate, scraped_at: datetime) -> list[dict[str, str]]:
    """One output row per gainer, every value as the text written to the CSV."""
    ccy = fx.currency.lower()
    stamp = scraped_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    rows = []
    for gainer in gainers:
        volume = gainer.volume_24h_usd
        rows.append({
            "rank": str(gainer.rank),
            "name": gainer.name,
            "symbol": gainer.symbol,
            "url": gainer.url,
            "price_usd": decimal_text(gainer.price_usd),
            f"price_{ccy}": decimal_text(convert(gainer.price_usd, fx.rate)),
            "change_24h_pct": decimal_text(gainer.change_24h_pct),
            "volume_24h_usd": decimal_text(volume),
            f"volume_24h_{ccy}": decimal_text(None if volume is None else convert(volume, fx.rate)),
            "fx_rate": decimal_text(fx.rate),
            "fx_date": fx.date.isoformat(),
            "fx_source": fx.source,
            "scraped_at": stamp,
        })
    return rows
