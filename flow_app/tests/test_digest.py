"""gainers_digest's pure logic with fabricated CSVs, and with a CSV made by the ELT's own code from the
recorded page (so the digest reads exactly what the ELT writes)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from gainers_digest import digest
from gainers_elt.extract import parse_gainers
from gainers_elt.load import render_csv as elt_render_csv
from gainers_elt.load import result_key
from gainers_elt.transform import FxRate, output_columns, to_rows

HEADER = "rank,name,symbol,url,price_usd,price_aud,change_24h_pct,volume_24h_usd,volume_24h_aud,fx_rate,fx_date,fx_source,scraped_at"


def csv_text(*rows: tuple[int, str, str, str]) -> str:
    lines = [HEADER]
    for rank, name, symbol, change in rows:
        lines.append(f"{rank},{name},{symbol},https://x/{symbol},1,1.5,{change},10,15,1.5,2024-05-10,fx,2024-05-10T06:00:00Z")
    return "\r\n".join(lines) + "\r\n"


def test_window_is_the_days_ending_with_the_end_date():
    days = digest.window(date(2024, 5, 13), 7)
    assert days[0] == date(2024, 5, 7) and days[-1] == date(2024, 5, 13) and len(days) == 7
    with pytest.raises(ValueError, match="days must be >= 1"):
        digest.window(date(2024, 5, 13), 0)


def test_day_prefixes_follow_the_elt_key_layout():
    """The digest must look where gainers_elt/load.py writes."""
    run_key = result_key("top-gainers", "AUD", "abc-1", datetime(2024, 5, 10, 6, 0, tzinfo=timezone.utc))
    [prefix] = digest.day_prefixes("/top-gainers/", [date(2024, 5, 10)])
    assert run_key.startswith(prefix) and prefix == "top-gainers/dt=2024-05-10/"
    assert digest.is_source_csv(run_key)
    assert not digest.is_source_csv("top-gainers/dt=2024-05-10/notes.txt")
    assert not digest.is_source_csv("gainers-digest/dt=2024-05-10/gainers_digest_20240510T060000Z_x.csv")
    with pytest.raises(ValueError, match="source_prefix"):
        digest.day_prefixes("bad prefix", [date(2024, 5, 10)])


def test_digest_key_is_fixed_per_run():
    when = datetime(2024, 5, 13, 7, 0, tzinfo=timezone.utc)
    key = digest.digest_key("gainers-digest", date(2024, 5, 13), "run-1", when)
    assert key == "gainers-digest/dt=2024-05-13/gainers_digest_20240513T070000Z_run-1.csv"
    assert digest.digest_key("gainers-digest", date(2024, 5, 13), "run-1", when) == key
    with pytest.raises(ValueError, match="UUID-like"):
        digest.digest_key("gainers-digest", date(2024, 5, 13), "../x", when)


def test_summary_orders_by_appearances_then_average_change():
    files = {
        "top-gainers/dt=2024-05-10/top_gainers_aud_20240510T060000Z_a.csv":
            digest.read_gainers_csv("a", csv_text((1, "Pepe", "PEPE", "40.5"), (2, "Doge", "DOGE", "10"))),
        "top-gainers/dt=2024-05-11/top_gainers_aud_20240511T060000Z_b.csv":
            digest.read_gainers_csv("b", csv_text((1, "Doge", "DOGE", "30"), (5, "Pepe", "PEPE", "-0.5"),
                                                  (3, "Moon", "MOON", "99"))),
        "top-gainers/dt=2024-05-11/top_gainers_aud_20240511T180000Z_c.csv":
            digest.read_gainers_csv("c", csv_text((4, "Doge", "DOGE", "5"))),
    }
    coins = digest.summarise(files)
    assert [c.symbol for c in coins] == ["DOGE", "PEPE", "MOON"]  # 3, 2 (avg 20), 1 appearance
    doge = coins[0]
    assert doge.appearances == 3 and doge.days == {"2024-05-10", "2024-05-11"}
    assert doge.average == Decimal("15.00")
    rows = digest.digest_rows(coins, digest.window(date(2024, 5, 11), 2), files_read=3)
    assert rows[0] == {"rank": "1", "symbol": "DOGE", "name": "Doge", "appearances": "3", "days_seen": "2",
                       "avg_change_24h_pct": "15.00", "max_change_24h_pct": "30", "best_rank": "1",
                       "first_seen": "2024-05-10", "last_seen": "2024-05-11", "window_start": "2024-05-10",
                       "window_end": "2024-05-11", "files_read": "3"}
    assert [c.symbol for c in digest.best_average(coins)] == ["MOON", "PEPE", "DOGE"]
    body = digest.render_csv(rows).decode()
    assert body.splitlines()[0] == ",".join(digest.OUTPUT_COLUMNS)
    text = digest.markdown(coins, digest.window(date(2024, 5, 11), 2), 3, "s3://b/k")
    assert "## Seen most often" in text and "| DOGE | Doge | 3 | 2 | 15.00% |" in text
    assert "## Best average 24h change" in text and "| MOON | Moon | 99.00% | 1 |" in text


def test_ties_on_appearances_and_average_are_ordered_by_symbol():
    files = {"k/dt=2024-05-10/x": digest.read_gainers_csv("x", csv_text((1, "B", "BBB", "5"), (2, "A", "AAA", "5")))}
    assert [c.symbol for c in digest.summarise(files)] == ["AAA", "BBB"]


def test_empty_window_gives_an_empty_digest_with_a_header():
    rows = digest.digest_rows([], digest.window(date(2024, 5, 13), 7), 0)
    assert rows == [] and digest.render_csv(rows).decode().strip() == ",".join(digest.OUTPUT_COLUMNS)
    assert "No top-gainers results" in digest.markdown([], digest.window(date(2024, 5, 13), 7), 0, "s3://b/k")


def test_a_csv_that_is_not_a_top_gainers_csv_fails_naming_the_key():
    with pytest.raises(digest.DigestInputError, match=r"some/key.csv: not a top-gainers CSV.*change_24h_pct"):
        digest.read_gainers_csv("some/key.csv", "rank,name,symbol\n1,a,b\n")
    rows = digest.read_gainers_csv("k", csv_text((1, "Pepe", "PEPE", "n/a")))
    with pytest.raises(digest.DigestInputError, match="k line 2: change_24h_pct 'n/a'"):
        digest.summarise({"k": rows})


def test_reads_what_the_elt_writes(cmc_page):
    """A CSV rendered by gainers_elt from the recorded page is read as is."""
    gainers = parse_gainers(cmc_page("gainers_losers.html"), "https://coinmarketcap.com/gainers-losers/", "utf-8")
    fx = FxRate("AUD", Decimal("1.5123"), date(2024, 5, 10), "fx")
    rows = to_rows(gainers, fx, datetime(2024, 5, 10, 6, 0, tzinfo=timezone.utc))
    body = elt_render_csv(rows, output_columns("AUD"))
    key = result_key("top-gainers", "AUD", "run-1", datetime(2024, 5, 10, 6, 0, tzinfo=timezone.utc))
    coins = digest.summarise({key: digest.read_gainers_csv(key, body)})
    assert len(coins) == len(rows) == 30
    assert all(c.appearances == 1 and c.days == {"2024-05-10"} for c in coins)
    best = digest.best_average(coins, 1)[0]
    assert best.average == max(Decimal(r["change_24h_pct"]) for r in rows).quantize(Decimal("0.01"))
