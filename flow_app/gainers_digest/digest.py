"""Pure digest logic: which keys to read, how to read one top-gainers CSV, and the summary of many.

No Prefect and no AWS here, so every rule is unit-tested with plain CSV text.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

REQUIRED_COLUMNS = ("symbol", "name", "change_24h_pct")
SOURCE_NAME = re.compile(r"(^|/)top_gainers_[a-z]{3}_\d{8}T\d{6}Z_[A-Za-z0-9-]+\.csv$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")
CONTENT_TYPE = "text/csv; charset=utf-8"
OUTPUT_COLUMNS = ["rank", "symbol", "name", "appearances", "days_seen", "avg_change_24h_pct",
                  "max_change_24h_pct", "best_rank", "first_seen", "last_seen", "window_start", "window_end",
                  "files_read"]
TWO_PLACES = Decimal("0.01")


class DigestInputError(ValueError):
    """A source CSV is not a top-gainers CSV (missing columns, unparseable change). Not retried."""


def _clean_prefix(prefix: str, what: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(f"{what} may only hold S3-safe characters (letters, digits, !_.*'()/-), got {prefix!r}")
    return "/".join(p for p in prefix.strip("/").split("/") if p)


def window(end: date, days: int) -> list[date]:
    """The ``days`` calendar days ending with ``end`` (inclusive), oldest first."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    return [end - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def day_prefixes(source_prefix: str, days: list[date]) -> list[str]:
    """``<source_prefix>/dt=YYYY-MM-DD/`` for each day: the ELT's date partitions (gainers_elt/load.py)."""
    base = _clean_prefix(source_prefix, "source_prefix")
    return [f"{base}/dt={day:%Y-%m-%d}/" if base else f"dt={day:%Y-%m-%d}/" for day in days]


def is_source_csv(key: str) -> bool:
    """True for the ELT's own objects (``top_gainers_<ccy>_<ts>_<run id>.csv``), nothing else in the prefix."""
    return bool(SOURCE_NAME.search(key))


def digest_key(results_prefix: str, end: date, run_id: str, scheduled: datetime) -> str:
    """``<prefix>/dt=<end>/gainers_digest_<YYYYmmddTHHMMSSZ>_<run id>.csv``: fixed per flow run, so a retry overwrites."""
    if not re.fullmatch(r"[A-Za-z0-9-]+", run_id):
        raise ValueError(f"flow run id must be a UUID-like token, got {run_id!r}")
    when = scheduled.astimezone(timezone.utc) if scheduled.tzinfo else scheduled
    parts = [p for p in _clean_prefix(results_prefix, "results_prefix").split("/") if p]
    return "/".join([*parts, f"dt={end:%Y-%m-%d}", f"gainers_digest_{when:%Y%m%dT%H%M%SZ}_{run_id}.csv"])


@dataclass
class CoinStats:
    symbol: str
    name: str
    changes: list[Decimal] = field(default_factory=list)
    days: set[str] = field(default_factory=set)
    ranks: list[int] = field(default_factory=list)

    @property
    def appearances(self) -> int:
        return len(self.changes)

    @property
    def average(self) -> Decimal:
        return (sum(self.changes, Decimal(0)) / len(self.changes)).quantize(TWO_PLACES, ROUND_HALF_EVEN)


def read_gainers_csv(key: str, body: bytes | str) -> list[dict[str, str]]:
    """Rows of one ELT CSV; a file without the needed columns fails naming the key and what is missing."""
    text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DigestInputError(f"{key}: not a top-gainers CSV, missing column(s) {', '.join(missing)} "
                               f"(header: {reader.fieldnames})")
    return list(reader)


def day_of(key: str) -> str:
    match = re.search(r"dt=(\d{4}-\d{2}-\d{2})/", key)
    return match.group(1) if match else ""


def summarise(files: dict[str, list[dict[str, str]]]) -> list[CoinStats]:
    """Per coin (symbol + name): every appearance's 24h change, the days it was seen, its ranks.

    Ordered by appearances (most first), then average change (best first), then symbol.
    """
    coins: dict[tuple[str, str], CoinStats] = {}
    for key in sorted(files):
        for line, row in enumerate(files[key], start=2):
            symbol, name = row["symbol"].strip(), row["name"].strip()
            try:
                change = Decimal(row["change_24h_pct"].strip())
            except (InvalidOperation, AttributeError) as exc:
                raise DigestInputError(f"{key} line {line}: change_24h_pct {row['change_24h_pct']!r} "
                                       "is not a number") from exc
            stats = coins.setdefault((symbol, name), CoinStats(symbol, name))
            stats.changes.append(change)
            stats.days.add(day_of(key))
            if (row.get("rank") or "").strip().isdigit():
                stats.ranks.append(int(row["rank"]))
    return sorted(coins.values(), key=lambda c: (-c.appearances, -c.average, c.symbol))


def digest_rows(coins: list[CoinStats], days: list[date], files_read: int) -> list[dict[str, str]]:
    start, end = (f"{days[0]:%Y-%m-%d}", f"{days[-1]:%Y-%m-%d}") if days else ("", "")
    rows = []
    for rank, coin in enumerate(coins, start=1):
        seen = sorted(d for d in coin.days if d)
        rows.append({
            "rank": str(rank), "symbol": coin.symbol, "name": coin.name,
            "appearances": str(coin.appearances), "days_seen": str(len(seen)),
            "avg_change_24h_pct": f"{coin.average:f}", "max_change_24h_pct": f"{max(coin.changes):f}",
            "best_rank": str(min(coin.ranks)) if coin.ranks else "",
            "first_seen": seen[0] if seen else "", "last_seen": seen[-1] if seen else "",
            "window_start": start, "window_end": end, "files_read": str(files_read),
        })
    return rows


def best_average(coins: list[CoinStats], count: int = 10) -> list[CoinStats]:
    """The coins with the best average 24h change (ties: more appearances first)."""
    return sorted(coins, key=lambda c: (-c.average, -c.appearances, c.symbol))[:count]


def render_csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OUTPUT_COLUMNS, extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def markdown(coins: list[CoinStats], days: list[date], files_read: int, uri: str, top: int = 10) -> str:
    head = (f"# Gainers digest {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}\n\n"
            f"- Source: {files_read} top-gainers CSV(s) over {len(days)} day(s)\n- Digest: `{uri}`\n")
    if not coins:
        return head + "\nNo top-gainers results in this window: the ELT has not written any yet.\n"
    often = "\n".join(f"| {c.symbol} | {c.name} | {c.appearances} | {len(c.days)} | {c.average:f}% |"
                      for c in coins[:top])
    best = "\n".join(f"| {c.symbol} | {c.name} | {c.average:f}% | {c.appearances} |"
                     for c in best_average(coins, top))
    return (head + "\n## Seen most often\n\n| Symbol | Name | Appearances | Days | Avg 24h |\n|---|---|---|---|---|\n"
            + often + "\n\n## Best average 24h change\n\n| Symbol | Name | Avg 24h | Appearances |\n|---|---|---|---|\n"
            + best + "\n")
