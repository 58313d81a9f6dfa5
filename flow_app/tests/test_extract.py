"""Parsing the recorded pages: the gainers table is found by header text, every row or nothing."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from gainers_elt.extract import PageFormatError, classify_header, parse_gainers

URL = "https://coinmarketcap.com/gainers-losers/"
FIXTURES = Path(__file__).parent / "fixtures" / "coinmarketcap"


def expected_rows(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())


def as_dicts(gainers) -> list[dict]:
    return [{"rank": g.rank, "name": g.name, "symbol": g.symbol, "url": g.url, "price_usd": str(g.price_usd),
             "change_24h_pct": str(g.change_24h_pct),
             "volume_24h_usd": None if g.volume_24h_usd is None else format(g.volume_24h_usd, "f")} for g in gainers]


def test_main_page_gainers_match_the_recording(cmc_page):
    gainers = parse_gainers(cmc_page("gainers_losers.html"), URL)
    assert as_dicts(gainers) == expected_rows("gainers_losers.expected.json")
    assert len(gainers) == 30
    assert all(g.change_24h_pct > 0 for g in gainers), "picked the losers table"


def test_main_page_special_values(cmc_page):
    by_symbol = {g.symbol: g for g in parse_gainers(cmc_page("gainers_losers.html"), URL)}
    pepe = by_symbol["PEPEM"]
    assert (pepe.rank, pepe.name, pepe.url) == (1, "Pepe Moon", "https://coinmarketcap.com/currencies/pepe-moon/")
    assert pepe.price_usd == Decimal("0.00005123")                      # printed as $0.0₄5123
    assert by_symbol["SHIBN"].price_usd == Decimal("0.0000000000001234")  # $0.0₁₂1234
    assert by_symbol["TSUB"].price_usd == Decimal("0.000004567")          # $0.0<sub>5</sub>4567 markup
    assert by_symbol["WGB"].price_usd == Decimal("98765.43")              # $98,765.43
    assert by_symbol["WGB"].volume_24h_usd == Decimal("12340000000")      # $12.34B
    assert by_symbol["MEGA"].volume_24h_usd == Decimal("1200000000000")   # $1.2T
    assert by_symbol["TSUB"].volume_24h_usd == Decimal("567800")          # $567.8K
    assert by_symbol["CENT"].volume_24h_usd == Decimal("3400000")         # $3.4M


def test_relative_links_resolve_against_the_page_url(cmc_page):
    gainers = parse_gainers(cmc_page("gainers_losers.html"), "http://127.0.0.1:5002/gainers-losers/")
    assert gainers[0].url == "http://127.0.0.1:5002/currencies/pepe-moon/"


def test_reordered_renamed_and_extra_columns_parse_the_same(cmc_page):
    reference = parse_gainers(cmc_page("gainers_losers.html"), URL)
    assert parse_gainers(cmc_page("reordered_columns.html"), URL) == reference


def test_missing_volume_column_leaves_volume_empty(cmc_page):
    gainers = parse_gainers(cmc_page("missing_volume.html"), URL)
    assert len(gainers) == 30
    assert {g.volume_24h_usd for g in gainers} == {None}
    assert gainers[0].price_usd == Decimal("0.00005123")


def test_tables_without_headings_are_told_apart_by_sign(cmc_page):
    assert parse_gainers(cmc_page("no_headings.html"), URL) == parse_gainers(cmc_page("gainers_losers.html"), URL)


def test_benchmark_page_has_100_rows(cmc_page):
    gainers = parse_gainers(cmc_page("gainers_losers_100.html"), URL)
    assert as_dicts(gainers) == expected_rows("gainers_losers_100.expected.json")
    assert [g.rank for g in gainers] == list(range(1, 101))


def test_empty_table_fails(cmc_page):
    with pytest.raises(PageFormatError, match="has the expected headers but no data rows"):
        parse_gainers(cmc_page("empty_table.html"), URL)


def test_captcha_page_fails_saying_what_was_found(cmc_page):
    with pytest.raises(PageFormatError) as info:
        parse_gainers(cmc_page("captcha.html"), URL)
    message = str(info.value)
    assert "expected a table with headers like '#', 'Name', 'Price'" in message
    assert "found 0 table(s)" in message
    assert "'Just a moment...'" in message       # the title
    assert "text starts with 'coinmarketcap.com Checking if the site connection is secure coinmarketcap.com needs" in message
    assert "page starts with '<!DOCTYPE html>" in message


def test_unparseable_rows_fail_the_whole_page(cmc_page):
    with pytest.raises(PageFormatError, match=r"2 of 30 rows did not parse: row 8: not an amount: "
                                               r"'Price unavailable'; row 13: not an amount: '\$1.2.3'"):
        parse_gainers(cmc_page("unparseable_rows.html"), URL)


def table(rows: str, headers: str = "<th>#</th><th>Name</th><th>Price</th><th>24h %</th><th>Volume(24h)</th>",
          heading: str = "") -> str:
    return f"<html><body>{heading}<table><thead><tr>{headers}</tr></thead><tbody>{rows}</tbody></table></body></html>"


ROW = ('<tr><td>{rank}</td><td><a href="/currencies/{slug}/"><p>{name}</p>'
       '<p class="coin-item-symbol">{sym}</p></a></td><td>{price}</td><td>{change}</td><td>{volume}</td></tr>')


def row(rank=1, slug="x", name="Xcoin", sym="XC", price="$1.00", change="5%", volume="$100"):
    return ROW.format(rank=rank, slug=slug, name=name, sym=sym, price=price, change=change, volume=volume)


def test_duplicate_ranks_fail():
    with pytest.raises(PageFormatError, match=r"duplicate ranks \[1\]"):
        parse_gainers(table(row(rank=1) + row(rank=1, slug="y", sym="Y")), URL)


def test_rows_are_returned_in_rank_order():
    gainers = parse_gainers(table(row(rank=2, sym="B") + row(rank=1, sym="A")), URL)
    assert [(g.rank, g.symbol) for g in gainers] == [(1, "A"), (2, "B")]


def test_placeholder_volume_is_missing_not_an_error():
    assert parse_gainers(table(row(volume="--")), URL)[0].volume_24h_usd is None


def test_caret_down_icon_makes_an_unsigned_change_negative():
    cell = '<span class="sc-1a2b3c-0 XyZ"><span class="icon-Caret-down"></span>4.20%</span>'
    assert parse_gainers(table(row(change=cell)), URL)[0].change_24h_pct == Decimal("-4.20")


def test_row_without_link_fails():
    bad = "<tr><td>1</td><td><p>Xcoin</p><p>XC</p></td><td>$1</td><td>5%</td><td>$1</td></tr>"
    with pytest.raises(PageFormatError, match="no link to the coin page for 'Xcoin'"):
        parse_gainers(table(bad), URL)


def test_name_cell_without_symbol_fails():
    bad = '<tr><td>1</td><td><a href="/c/x/">Xcoin</a></td><td>$1</td><td>5%</td><td>$1</td></tr>'
    with pytest.raises(PageFormatError, match="name cell needs a name and a symbol"):
        parse_gainers(table(bad), URL)


def test_short_row_fails():
    with pytest.raises(PageFormatError, match="expected at least 5 cells, found 2"):
        parse_gainers(table("<tr><td>1</td><td>x</td></tr>"), URL)


def test_table_missing_a_required_header_is_not_used():
    headers = "<th>#</th><th>Name</th><th>24h %</th>"  # no price column
    with pytest.raises(PageFormatError, match=r"found 1 table\(s\) with headers \[\['#', 'Name', '24h %'\]\]"):
        parse_gainers(table("", headers=headers), URL)


def test_two_unlabelled_tables_of_losers_are_ambiguous():
    losers = table(row(change="-5%"))
    page = losers.replace("</body></html>", "") + losers.split("<body>")[1]
    with pytest.raises(PageFormatError, match="cannot tell which one lists the gainers"):
        parse_gainers(page, URL)


def test_heading_mentioning_gainers_and_losers_is_not_a_label():
    gain = table(row(change="5%"), heading="<h1>Gainers and Losers</h1>").split("<body>")[1].split("</body>")[0]
    lose = table(row(change="-5%", sym="L")).split("<body>")[1].split("</body>")[0]
    page = f"<html><body>{lose}{gain}</body></html>"
    assert parse_gainers(page, URL)[0].change_24h_pct == Decimal("5")


def test_not_html_at_all_fails():
    with pytest.raises(PageFormatError):
        parse_gainers(b"", URL)


@pytest.mark.parametrize(("header", "column"), [
    ("#", "rank"), ("Rank", "rank"), ("Name", "name"), ("Coin", "name"), ("Price", "price"),
    ("Price (USD)", "price"), ("24h %", "change_24h"), ("24h", "change_24h"), ("Change (24h)", "change_24h"),
    ("Volume(24h)", "volume_24h"), ("24h Volume", "volume_24h"), ("Market Cap", None), ("Last 7 Days", None),
])
def test_header_classification(header, column):
    assert classify_header(header) == column
