#!/usr/bin/env python3
"""Time parse + transform of the 100-row gainers page: the flow's parser vs the original approach.

    .venv/bin/python bench/bench_parse.py [--iterations 50] [--baseline-iterations 5]

Prints the median milliseconds per page for
  * the flow (BeautifulSoup on the lxml parser, tables and headings only, tables located by header
    text, Decimal conversion to AUD),
  * of that, BeautifulSoup building the flow's tree alone (same parser and strainer, no row parsing),
  * the original way: BeautifulSoup with html5lib, rows into a pandas DataFrame, float conversion,
and the ratio baseline / flow. Target: the flow no slower than the original. This measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "flow_app"))

from gainers_elt import extract  # noqa: E402
from gainers_elt.extract import parse_gainers  # noqa: E402
from gainers_elt.transform import FxRate, to_rows  # noqa: E402

PAGE = REPO / "flow_app" / "tests" / "fixtures" / "coinmarketcap" / "gainers_losers_100.html"
URL = "https://coinmarketcap.com/gainers-losers/"
FX = FxRate("AUD", Decimal("1.5123"), date(2024, 5, 10), "https://api.frankfurter.app/latest?base=USD&symbols=AUD")


def flow_parse_transform(content: bytes) -> list[dict[str, str]]:
    """The flow's extract + transform steps on one page (no fetch, no upload)."""
    return to_rows(parse_gainers(content, URL), FX, datetime.now(timezone.utc))


def flow_tree_only(content: bytes) -> object:
    """The soup parse_gainers builds, and nothing else: how much of the flow's time is bs4's tree."""
    # The module's own helper and strainer, so this line cannot drift from what the flow does.
    return extract._soup(content, None, extract._TABLES_AND_HEADINGS)


def original_baseline(content: bytes):
    """The seed project's approach: html5lib soup, cell texts into a DataFrame, floats for money."""
    import pandas as pd
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(content, "html5lib")
    table = soup.find_all("table")[0]  # the original located it by generated class names
    records = []
    for tr in table.find("tbody").find_all("tr"):
        cells = tr.find_all("td")
        ps = cells[1].find_all("p")
        records.append({
            "rank": cells[0].get_text(strip=True), "name": ps[0].get_text(strip=True),
            "symbol": ps[1].get_text(strip=True), "price": cells[2].get_text(strip=True),
            "change": cells[3].get_text(strip=True), "volume": cells[4].get_text(strip=True),
        })
    df = pd.DataFrame(records)
    df["price_usd"] = df["price"].str.replace(r"[$,]", "", regex=True).apply(_float_or_nan)
    df["volume_usd"] = df["volume"].str.replace(r"[$,]", "", regex=True).apply(_float_or_nan)
    df["change_pct"] = df["change"].str.rstrip("%").astype(float)
    df["price_aud"] = df["price_usd"] * float(FX.rate)
    df["volume_aud"] = df["volume_usd"] * float(FX.rate)
    return df


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # subscript-zero prices and K/M/B suffixes: the original could not read them
        return float("nan")


def median_ms(func: Callable[[bytes], object], content: bytes, iterations: int) -> float:
    """Median wall time of ``func(content)`` in milliseconds, after one warm-up call."""
    func(content)  # warm-up (imports, caches)
    timings = []
    for _ in range(iterations):
        gc.collect()
        started = time.perf_counter()
        func(content)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--baseline-iterations", type=int, default=5)
    args = parser.parse_args()
    content = PAGE.read_bytes()
    rows = flow_parse_transform(content)
    unreadable = int(original_baseline(content)["price_usd"].isna().sum())
    print(f"page: {PAGE.relative_to(REPO)} ({len(content) / 1024:.0f} KiB, {len(rows)} gainer rows)")
    ours = median_ms(flow_parse_transform, content, args.iterations)
    tree = median_ms(flow_tree_only, content, args.iterations)
    base = median_ms(original_baseline, content, args.baseline_iterations)
    verdict = "meets" if ours <= base else "MISSES"
    print(f"flow    BeautifulSoup+lxml + Decimal            {ours:8.1f} ms/page  (median of {args.iterations}; "
          f"{verdict} the target: no slower than orig)")
    print(f"  of which bs4 tree build (tables+headings)     {tree:8.1f} ms/page  (median of {args.iterations})")
    print(f"orig    BeautifulSoup+html5lib + pandas         {base:8.1f} ms/page  "
          f"(median of {args.baseline_iterations}; "
          f"{unreadable} of {len(rows)} prices unreadable as float)")
    print(f"ratio   original / flow                         {base / ours:8.1f}x")


if __name__ == "__main__":
    main()
