"""Extract: fetch the gainers page and parse the gainers table, located by its header texts.

CoinMarketCap's page is a Next.js app whose CSS class names are generated hashes that change with
every front-end release, so nothing here looks at them. The parser finds ``<table>`` elements whose
header cells read like rank / name / price / 24h change (/ volume), maps columns by those headers (a
reordered or extra column still parses) and tells the gainers table from the losers table by the
heading above it, or failing that by the sign of the 24h changes.

Anything unexpected raises :class:`PageFormatError` naming what was expected and what was found, and
no partial result is ever returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import urljoin

import requests
from lxml import etree
from lxml.etree import _Element as Element

from gainers_elt.numbers import (
    SUBSCRIPT_DIGITS,
    NumberFormatError,
    is_missing,
    parse_amount,
    parse_percent,
    parse_rank,
)

DEFAULT_SOURCE_URL = "https://coinmarketcap.com/gainers-losers/"
_NEAREST_HEADING_OR_TABLE = (
    "preceding::*[self::table or self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6][1]"
)
_ASCII_TO_SUBSCRIPT = str.maketrans("0123456789", SUBSCRIPT_DIGITS)
# Icon-font classes (stable names, not generated hashes) that carry the sign of an unsigned change.
_DOWN_ICON = re.compile(r"(caret|arrow|triangle)[-_]?down|down[-_]?(caret|arrow)", re.IGNORECASE)
_WORDS = re.compile(r"[^a-z0-9#%]+")
_SYMBOL_XPATH = etree.XPath(".//*[contains(concat(' ', normalize-space(@class), ' '), ' coin-item-symbol ')]")
REQUIRED_COLUMNS = ("rank", "name", "price", "change_24h")
OPTIONAL_COLUMNS = ("volume_24h",)


class PageFormatError(ValueError):
    """The page does not contain a gainers table this parser understands. Not worth retrying."""


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched page: the final URL (after redirects), the raw body and when it was fetched."""

    url: str
    content: bytes
    encoding: str | None
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class Gainer:
    """One row of the gainers table, in USD as printed by the source."""

    rank: int
    name: str
    symbol: str
    url: str
    price_usd: Decimal
    change_24h_pct: Decimal
    volume_24h_usd: Decimal | None


def fetch_page(session: requests.Session, url: str, timeout: tuple[float, float] = (5.0, 30.0)) -> Page:
    """GET ``url`` with the session's retry policy; raise ``requests.HTTPError`` on a final 4xx/5xx."""
    response = session.get(url, timeout=timeout)
    response.raise_for_status()
    return Page(
        url=response.url,
        content=response.content,
        # Only trust an explicit charset; otherwise let the parser read <meta charset>.
        encoding=response.encoding if "charset" in response.headers.get("Content-Type", "").lower() else None,
        fetched_at=datetime.now(timezone.utc),
    )


def classify_header(text: str) -> str | None:
    """Map a header cell's text to a column name (``rank``, ``name``, ...) or None."""
    words = _WORDS.sub(" ", text.lower()).strip()
    compact = words.replace(" ", "")
    if compact in {"#", "rank", "no", "cmcrank"}:
        return "rank"
    if compact in {"name", "coin", "asset", "cryptocurrency", "token"}:
        return "name"
    if "volume" in words or compact.startswith("vol"):
        return "volume_24h"
    if compact.startswith("price") and "change" not in words and "%" not in compact:
        return "price"
    if "24h" in compact or "change" in words or compact in {"%", "1d%", "1d"}:
        return "change_24h"
    return None


def _text(node: Element) -> str:
    """Cell text with ``<sub>n</sub>`` rendered as the unicode subscript ``ₙ`` (tiny-price notation)."""
    if node.find(".//sub") is None:
        return " ".join("".join(node.itertext()).split())
    parts: list[str] = []

    def walk(element: Element) -> None:
        if isinstance(element.tag, str) and element.text:  # skip comments / processing instructions
            parts.append(element.text.translate(_ASCII_TO_SUBSCRIPT) if element.tag == "sub" else element.text)
        for child in element:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(node)
    return " ".join("".join(parts).split())


def _header_cells(table: Element) -> list[str]:
    rows = table.xpath("./thead/tr[1]") or table.xpath("(.//tr[th])[1]")
    if not rows:
        return []
    return [_text(cell) for cell in rows[0] if cell.tag in ("th", "td")]


def _body_rows(table: Element) -> list[Element]:
    return table.xpath("./tbody/tr") if table.find("tbody") is not None else table.xpath(".//tr[td]")


def _column_map(headers: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, header in enumerate(headers):
        column = classify_header(header)
        if column is not None and column not in columns:
            columns[column] = index
    return columns


def _heading_before(table: Element) -> str:
    """Text of the nearest heading before ``table`` (empty if another table comes first)."""
    nearest = table.xpath(_NEAREST_HEADING_OR_TABLE)
    if not nearest or nearest[0].tag == "table":
        return ""
    return _text(nearest[0]).lower()


def _parse_name_cell(cell: Element) -> tuple[str, str]:
    fragments = [s for s in (t.strip() for t in cell.itertext()) if s and not s.isdigit()]
    symbol_tags = _SYMBOL_XPATH(cell)  # a semantic class name, not a generated one
    if symbol_tags:
        symbol = _text(symbol_tags[0])
        names = [f for f in fragments if f != symbol]
        if names and symbol:
            return names[0], symbol
    if len(fragments) >= 2:
        return fragments[0], fragments[1]
    raise NumberFormatError(f"name cell needs a name and a symbol, found {fragments!r}")


def _has_down_icon(cell: Element) -> bool:
    return any(_DOWN_ICON.search(el.get("class") or "") for el in cell.iter() if isinstance(el.tag, str))


def _parse_row(row: Element, columns: dict[str, int], page_url: str) -> Gainer:
    cells = [cell for cell in row if cell.tag in ("td", "th")]
    needed = max(columns.values()) + 1
    if len(cells) < needed:
        raise NumberFormatError(f"expected at least {needed} cells, found {len(cells)}")
    name_cell = cells[columns["name"]]
    name, symbol = _parse_name_cell(name_cell)
    links = name_cell.xpath(".//a[@href]") or row.xpath(".//a[@href]")
    if not links:
        raise NumberFormatError(f"no link to the coin page for {name!r}")
    change_cell = cells[columns["change_24h"]]
    volume: Decimal | None = None
    if "volume_24h" in columns:
        volume_text = _text(cells[columns["volume_24h"]])
        volume = None if is_missing(volume_text) else parse_amount(volume_text)
    price = parse_amount(_text(cells[columns["price"]]))
    if price < 0 or (volume is not None and volume < 0):
        raise NumberFormatError(f"negative price or volume for {name!r}")
    return Gainer(
        rank=parse_rank(_text(cells[columns["rank"]])),
        name=name,
        symbol=symbol,
        url=urljoin(page_url, links[0].get("href").strip()),
        price_usd=price,
        change_24h_pct=parse_percent(_text(change_cell), negative_hint=_has_down_icon(change_cell)),
        volume_24h_usd=volume,
    )


def _parse_table(table: Element, columns: dict[str, int], page_url: str, label: str) -> list[Gainer]:
    rows, errors = [], []
    for number, row in enumerate(_body_rows(table), start=1):
        try:
            rows.append(_parse_row(row, columns, page_url))
        except NumberFormatError as exc:
            errors.append(f"row {number}: {exc}")
    if errors:
        shown = "; ".join(errors[:5]) + (f"; ... {len(errors) - 5} more" if len(errors) > 5 else "")
        raise PageFormatError(
            f"{page_url}: {label}: {len(errors)} of {len(rows) + len(errors)} rows did not parse: {shown}"
        )
    if not rows:
        raise PageFormatError(f"{page_url}: {label} has the expected headers but no data rows")
    ranks = [gainer.rank for gainer in rows]
    if len(set(ranks)) != len(ranks):
        duplicates = sorted(rank for rank in set(ranks) if ranks.count(rank) > 1)
        raise PageFormatError(f"{page_url}: {label}: duplicate ranks {duplicates}")
    return sorted(rows, key=lambda gainer: gainer.rank)


def _snippet(content: bytes | str, limit: int = 200) -> str:
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    return " ".join(text[: limit * 4].split())[:limit]


def parse_gainers(content: bytes | str, page_url: str, encoding: str | None = None) -> list[Gainer]:
    """Parse the top-gainers table out of a CoinMarketCap gainers/losers page.

    Raises :class:`PageFormatError` unless every row of the gainers table parses.
    """
    # libxml2's HTML parser straight through lxml.etree: plain elements, no per-element Python classes.
    parser = etree.HTMLParser(encoding=encoding, remove_comments=True, no_network=True)
    document = etree.fromstring(content, parser) if content else None
    if document is None:
        raise PageFormatError(f"{page_url}: not an HTML document; starts with {_snippet(content)!r}")
    tables = list(document.iter("table"))
    candidates, seen = [], []
    for table in tables:
        headers = _header_cells(table)
        columns = _column_map(headers)
        seen.append(headers)
        if all(column in columns for column in REQUIRED_COLUMNS):
            candidates.append((table, columns))
    if not candidates:
        title = " ".join((document.findtext(".//title") or "").split())
        etree.strip_elements(document, "script", "style", "noscript", with_tail=False)  # error path only
        text = " ".join(" ".join(document.itertext()).split()).removeprefix(title).strip()[:200]
        raise PageFormatError(
            f"{page_url}: expected a table with headers like '#', 'Name', 'Price', '24h %', 'Volume(24h)'; "
            f"found {len(tables)} table(s) with headers {seen}; page title {title!r}; "
            f"text starts with {text!r}; page starts with {_snippet(content)!r}"
        )
    if len(candidates) == 1:
        table, columns = candidates[0]
        return _parse_table(table, columns, page_url, "gainers table")
    labelled = [(t, c) for t, c in candidates if "gainer" in (h := _heading_before(t)) and "loser" not in h]
    if labelled:
        table, columns = labelled[0]
        return _parse_table(table, columns, page_url, "gainers table")
    # No usable headings: the gainers table is the one whose 24h changes are (mostly) positive.
    parsed = [_parse_table(t, c, page_url, f"table {i + 1}") for i, (t, c) in enumerate(candidates)]
    scores = [sum(1 if g.change_24h_pct > 0 else -1 for g in rows) for rows in parsed]
    best = max(range(len(parsed)), key=scores.__getitem__)
    if scores[best] <= 0 or scores.count(scores[best]) > 1:
        raise PageFormatError(
            f"{page_url}: found {len(candidates)} tables with gainers-like headers but cannot tell which one "
            f"lists the gainers (no 'Top Gainers' heading, 24h-change scores {scores})"
        )
    return parsed[best]
