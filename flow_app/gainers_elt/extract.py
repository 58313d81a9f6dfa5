"""Extract: fetch the gainers page and parse the gainers table, located by its header texts.

CoinMarketCap's page is a Next.js app whose CSS class names are generated hashes that change with
every front-end release, so nothing here looks at them. The page is read with BeautifulSoup on the
``lxml`` parser (libxml2), keeping only tables and headings. The parser finds ``<table>`` elements
whose header cells read like rank / name / price / 24h change (/ volume), maps columns by those
headers (a reordered or extra column still parses) and tells the gainers table from the losers table
by the heading above it, or failing that by the sign of the 24h changes.

Anything unexpected raises :class:`PageFormatError` naming what was expected and what was found, and
no partial result is ever returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import urljoin

import requests
from bs4 import BeautifulSoup, SoupStrainer, Tag

from gainers_elt.numbers import (
    SUBSCRIPT_DIGITS,
    NumberFormatError,
    is_missing,
    parse_amount,
    parse_percent,
    parse_rank,
)

DEFAULT_SOURCE_URL = "https://coinmarketcap.com/gainers-losers/"
BS4_PARSER = "lxml"  # BeautifulSoup's libxml2 backend: lenient like a browser, and its fastest one
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Everything the parser reads lives in a table or a heading, so bs4 builds no Tag or string objects
# for the rest of the page (navigation, footer, the __NEXT_DATA__ JSON). libxml2 still reads it all.
_TABLES_AND_HEADINGS = SoupStrainer(["table", *sorted(_HEADINGS)])
_ASCII_TO_SUBSCRIPT = str.maketrans("0123456789", SUBSCRIPT_DIGITS)
# Icon-font classes (stable names, not generated hashes) that carry the sign of an unsigned change.
_DOWN_ICON = re.compile(r"(caret|arrow|triangle)[-_]?down|down[-_]?(caret|arrow)", re.IGNORECASE)
_WORDS = re.compile(r"[^a-z0-9#%]+")
_SYMBOL_CLASS = "coin-item-symbol"  # a semantic class name, not a generated one
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


def _text(node: Tag) -> str:
    """Cell text, whitespace collapsed, with ``<sub>n</sub>`` rendered as the subscript ``ₙ`` (tiny prices).

    ``Tag.strings`` yields text only (no comments, doctype or script bodies), as the browser shows it.
    """
    parts = [s.translate(_ASCII_TO_SUBSCRIPT) if s.parent.name == "sub" else s for s in node.strings]
    return " ".join("".join(parts).split())


def _child_tags(node: Tag, names: tuple[str, ...]) -> list[Tag]:
    """Direct children of ``node`` named one of ``names`` (rows of a section, cells of a row)."""
    return [child for child in node.children if isinstance(child, Tag) and child.name in names]


def _header_row(table: Tag) -> Tag | None:
    """The first ``<thead>`` row, else the first row (at any depth) that has a ``<th>`` cell."""
    for thead in _child_tags(table, ("thead",)):
        rows = _child_tags(thead, ("tr",))
        if rows:
            return rows[0]
    for row in table.find_all("tr"):
        if _child_tags(row, ("th",)):
            return row
    return None


def _header_cells(table: Tag) -> list[str]:
    """Texts of the header row's cells, in column order (empty if the table has no header row)."""
    row = _header_row(table)
    return [] if row is None else [_text(cell) for cell in _child_tags(row, ("th", "td"))]


def _body_rows(table: Tag) -> list[Tag]:
    """The ``<tbody>`` rows if there is a ``<tbody>``, else every row (at any depth) with a ``<td>``."""
    bodies = _child_tags(table, ("tbody",))
    if bodies:
        return [row for body in bodies for row in _child_tags(body, ("tr",))]
    return [row for row in table.find_all("tr") if _child_tags(row, ("td",))]


def _column_map(headers: list[str]) -> dict[str, int]:
    """Column name -> cell index; the first header of each kind wins."""
    columns: dict[str, int] = {}
    for index, header in enumerate(headers):
        column = classify_header(header)
        if column is not None and column not in columns:
            columns[column] = index
    return columns


def _heading_before(table: Tag) -> str:
    """Text of the nearest heading before ``table`` (empty if another table comes first).

    "Before" is document order with ancestors excluded (XPath's ``preceding`` axis), so a table nested
    in another table's cell still sees the heading above the outer table.
    """
    ancestors = {id(parent) for parent in table.parents}
    for element in table.previous_elements:
        if isinstance(element, Tag) and (element.name == "table" or element.name in _HEADINGS):
            if id(element) in ancestors:
                continue
            return "" if element.name == "table" else _text(element).lower()
    return ""


def _tags_in(node: Tag) -> Iterator[Tag]:
    """Every element inside ``node``, in document order (the node itself excluded)."""
    # A plain walk: per row this is ~2x cheaper than find()/find_all() and their filter objects.
    return (element for element in node.descendants if isinstance(element, Tag))


def _class_names(element: Tag) -> str:
    """The element's ``class`` attribute as one string (bs4 splits it into a list)."""
    value = element.get("class")
    return " ".join(value) if isinstance(value, list) else (value or "")


def _is_link(element: Tag) -> bool:
    """An ``<a>`` with an ``href`` (even an empty one)."""
    return element.name == "a" and element.get("href") is not None


def _parse_name_cell(cell: Tag) -> tuple[str, str]:
    """(name, symbol) from the name cell: the symbol by its semantic class, else the second text."""
    fragments = [text for text in cell.stripped_strings if not text.isdigit()]
    symbol_tag = next((el for el in _tags_in(cell) if _SYMBOL_CLASS in _class_names(el).split()), None)
    if symbol_tag is not None:
        symbol = _text(symbol_tag)
        names = [f for f in fragments if f != symbol]
        if names and symbol:
            return names[0], symbol
    if len(fragments) >= 2:
        return fragments[0], fragments[1]
    raise NumberFormatError(f"name cell needs a name and a symbol, found {fragments!r}")


def _has_down_icon(cell: Tag) -> bool:
    """True if the cell (or anything in it) carries a caret/arrow-down icon class."""
    return any(_DOWN_ICON.search(_class_names(el)) for el in (cell, *_tags_in(cell)))


def _parse_row(row: Tag, columns: dict[str, int], page_url: str) -> Gainer:
    """One data row into a :class:`Gainer`; raises :class:`NumberFormatError` naming the bad cell."""
    cells = _child_tags(row, ("td", "th"))
    needed = max(columns.values()) + 1
    if len(cells) < needed:
        raise NumberFormatError(f"expected at least {needed} cells, found {len(cells)}")
    name_cell = cells[columns["name"]]
    name, symbol = _parse_name_cell(name_cell)
    link = next(filter(_is_link, _tags_in(name_cell)), None) or next(filter(_is_link, _tags_in(row)), None)
    if link is None:
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
        url=urljoin(page_url, str(link["href"]).strip()),
        price_usd=price,
        change_24h_pct=parse_percent(_text(change_cell), negative_hint=_has_down_icon(change_cell)),
        volume_24h_usd=volume,
    )


def _parse_table(table: Tag, columns: dict[str, int], page_url: str, label: str) -> list[Gainer]:
    """Every body row of ``table``, in rank order; any bad row, no row or a repeated rank fails it all."""
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
    """The first ``limit`` characters of the raw page, whitespace collapsed (for error messages)."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    return " ".join(text[: limit * 4].split())[:limit]


def _soup(content: bytes | str, encoding: str | None, parse_only: SoupStrainer | None = None) -> BeautifulSoup:
    """BeautifulSoup on libxml2; without an explicit charset bs4 sniffs it (BOM, ``<meta charset>``, guess)."""
    # from_encoding only means something for bytes (bs4 warns if it is given with str markup).
    from_encoding = encoding if isinstance(content, bytes) else None
    return BeautifulSoup(content, BS4_PARSER, parse_only=parse_only, from_encoding=from_encoding)


def _no_table_error(
    content: bytes | str, encoding: str | None, page_url: str, seen: list[list[str]]
) -> PageFormatError:
    """Describe a page without a gainers table: headers seen, title and first visible text."""
    # Error path only: the strained soup has neither <title> nor body text, so parse the whole page.
    document = _soup(content, encoding)
    if document.find() is None:
        return PageFormatError(f"{page_url}: not an HTML document; starts with {_snippet(content)!r}")
    title = " ".join((document.title.get_text() if document.title else "").split())
    for hidden in document.find_all(["script", "style", "noscript"]):
        hidden.decompose()
    text = " ".join(document.get_text(" ").split()).removeprefix(title).strip()[:200]
    return PageFormatError(
        f"{page_url}: expected a table with headers like '#', 'Name', 'Price', '24h %', 'Volume(24h)'; "
        f"found {len(seen)} table(s) with headers {seen}; page title {title!r}; "
        f"text starts with {text!r}; page starts with {_snippet(content)!r}"
    )


def parse_gainers(content: bytes | str, page_url: str, encoding: str | None = None) -> list[Gainer]:
    """Parse the top-gainers table out of a CoinMarketCap gainers/losers page.

    Raises :class:`PageFormatError` unless every row of the gainers table parses.
    """
    if not content.strip():  # libxml2 yields no document at all: say so rather than "no table"
        raise PageFormatError(f"{page_url}: not an HTML document; starts with {_snippet(content)!r}")
    document = _soup(content, encoding, parse_only=_TABLES_AND_HEADINGS)
    candidates, seen = [], []
    for table in document.find_all("table"):
        headers = _header_cells(table)
        columns = _column_map(headers)
        seen.append(headers)
        if all(column in columns for column in REQUIRED_COLUMNS):
            candidates.append((table, columns))
    if not candidates:
        raise _no_table_error(content, encoding, page_url, seen)
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
