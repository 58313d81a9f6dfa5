"""The Prefect 3 flow: top gainers from CoinMarketCap, converted to a target currency, as CSV in S3.

Entrypoint for deployments: ``gainers_elt/flow.py:top_gainers_elt``.
Locally: ``python -m gainers_elt --results-bucket my-bucket`` (run from ``flow_app/``).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import boto3
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.context import FlowRunContext

from flow_common import retry_on_io
from gainers_elt.extract import Gainer, Page, fetch_page, parse_gainers
from gainers_elt.http import build_session
from gainers_elt.load import put_csv, render_csv, result_key
from gainers_elt.transform import (
    FxRate,
    fetch_fx_rate,
    output_columns,
    override_rate,
    to_rows,
    validate_currency,
)

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IO_RETRY_DELAYS = [10, 60]  # task-level retries, on top of the HTTP session's own quick retries
ARTIFACT_ROWS = 100


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # a task's .fn called outside a run (unit tests)
        return logging.getLogger("gainers_elt")


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def fetch_source_page(source_url: str, http_retries: int = 4, timeout_seconds: float = 30.0) -> Page:
    """Download the gainers page (session retries + task retries on I/O errors only)."""
    logger = _logger()
    with build_session(retries=http_retries) as session:
        page = fetch_page(session, source_url, timeout=(min(10.0, timeout_seconds), timeout_seconds))
    logger.info("Fetched %s (%d bytes)", page.url, len(page.content))
    return page


@task(cache_policy=NO_CACHE)
def parse_page(page: Page) -> list[Gainer]:
    """Parse every row of the gainers table; a malformed page fails here (no retry: it will not improve)."""
    gainers = parse_gainers(page.content, page.url, page.encoding)
    _logger().info("Parsed %d gainers; top: %s %s%%", len(gainers), gainers[0].symbol, gainers[0].change_24h_pct)
    return gainers


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def get_fx_rate(fx_api_url: str, currency: str, http_retries: int = 4, timeout_seconds: float = 30.0) -> FxRate:
    """Look up the USD→``currency`` rate from a Frankfurter-compatible API."""
    with build_session(retries=http_retries) as session:
        fx = fetch_fx_rate(session, fx_api_url, currency, timeout=(min(10.0, timeout_seconds), timeout_seconds))
    _logger().info("FX USD→%s = %s as of %s (%s)", currency, fx.rate, fx.date, fx.source)
    return fx


@task(cache_policy=NO_CACHE)
def transform(gainers: list[Gainer], fx: FxRate, scraped_at: datetime) -> list[dict[str, str]]:
    """Convert every gainer to the target currency and record the rate, its date and source."""
    return to_rows(gainers, fx, scraped_at)


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def load_to_s3(body: bytes, bucket: str, key: str, metadata: dict[str, str], kms_key_id: str | None = None) -> str:
    """Put the CSV (SSE, content type set) through boto3's default credential chain; returns the ETag."""
    response = put_csv(boto3.client("s3"), bucket, key, body, metadata, kms_key_id)
    _logger().info("Wrote s3://%s/%s (%d bytes)", bucket, key, len(body))
    return response.get("ETag", "")


@task(cache_policy=NO_CACHE)
def publish_artifacts(rows: list[dict[str, str]], currency: str, uri: str, fx: FxRate) -> None:
    """A table artifact with the top gainers and a markdown summary, for the Prefect UI."""
    ccy = currency.lower()
    create_table_artifact(
        table=rows[:ARTIFACT_ROWS],
        key=f"top-gainers-{ccy}",
        description=f"Top {len(rows)} CoinMarketCap gainers in USD and {currency} ({uri})",
    )
    top = "\n".join(
        f"| {r['rank']} | {r['name']} | {r['symbol']} | {r['change_24h_pct']}% | {r[f'price_{ccy}']} |"
        for r in rows[:10]
    )
    create_markdown_artifact(
        key=f"top-gainers-{ccy}-summary",
        markdown=(
            f"# Top gainers ({len(rows)} coins)\n\n"
            f"- Results: `{uri}`\n- FX: 1 USD = {fx.rate} {currency} as of {fx.date} ({fx.source})\n"
            f"- Scraped at: {rows[0]['scraped_at']}\n\n"
            f"| # | Name | Symbol | 24h | Price ({currency}) |\n|---|---|---|---|---|\n{top}\n"
        ),
        description=f"Summary of the top gainers in {currency}",
    )


def _run_identity() -> tuple[str, datetime]:
    """The flow run's id and scheduled start: what makes the result key deterministic per run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:  # pragma: no cover - flows always run in a context
        raise RuntimeError("no flow run context: call top_gainers_elt as a Prefect flow")
    run = context.flow_run
    scheduled = run.expected_start_time or run.created or datetime.now(timezone.utc)
    return str(run.id), scheduled


# Defaults are literals (not imported constants) so `parameter_schema_from_entrypoint` reads them from
# the source even where this package's imports cannot be resolved.
@flow(name="top-gainers-elt", description="Top CoinMarketCap gainers, converted from USD, written as CSV to S3.")
def top_gainers_elt(
    results_bucket: str,
    source_url: str = "https://coinmarketcap.com/gainers-losers/",
    fx_api_url: str = "https://api.frankfurter.app/latest",
    target_currency: str = "AUD",
    fx_rate: Decimal | None = None,
    results_prefix: str = "top-gainers",
    results_kms_key_id: str | None = None,
    http_retries: int = 4,
    request_timeout_seconds: float = 30.0,
) -> dict[str, Any]:
    """Scrape the top gainers, convert USD to the target currency and write one CSV per flow run to S3.

    Args:
        results_bucket: S3 bucket receiving the CSV (credentials from boto3's default chain).
        source_url: CoinMarketCap gainers/losers page (or a compatible recording).
        fx_api_url: Frankfurter-compatible endpoint; `?base=USD&symbols=<currency>` is appended.
        target_currency: ISO 4217 code to convert USD prices and volumes into.
        fx_rate: Units of target currency per USD; when set, no FX lookup is made.
        results_prefix: Key prefix in the bucket; objects go to `<prefix>/dt=YYYY-MM-DD/`.
        results_kms_key_id: KMS key for SSE-KMS; the bucket's default encryption when empty.
        http_retries: Retries per HTTP request (connection errors, 429, 5xx) with exponential backoff.
        request_timeout_seconds: Read timeout per HTTP request.
    """
    logger = get_run_logger()
    # Validate every input before any I/O: a bad parameter must not cost a scrape.
    currency = validate_currency(target_currency)
    if not BUCKET_NAME.match(results_bucket):
        raise ValueError(f"results_bucket must be an S3 bucket name (3-63 of a-z 0-9 . -), got {results_bucket!r}")
    run_id, scheduled_start = _run_identity()
    key = result_key(results_prefix, currency, run_id, scheduled_start)
    fixed_fx = override_rate(fx_rate, currency, scheduled_start.date()) if fx_rate is not None else None

    page = fetch_source_page(source_url, http_retries, request_timeout_seconds)
    gainers = parse_page(page)
    fx = fixed_fx or get_fx_rate(fx_api_url, currency, http_retries, request_timeout_seconds)
    rows = transform(gainers, fx, page.fetched_at)
    body = render_csv(rows, output_columns(currency))
    metadata = {"flow-run-id": run_id, "rows": str(len(rows)), "fx-rate": str(fx.rate),
                "fx-date": fx.date.isoformat(), "target-currency": currency}
    etag = load_to_s3(body, results_bucket, key, metadata, results_kms_key_id or None)
    uri = f"s3://{results_bucket}/{key}"
    publish_artifacts(rows, currency, uri, fx)
    logger.info("Loaded %d gainers to %s (1 USD = %s %s)", len(rows), uri, fx.rate, currency)
    return {
        "bucket": results_bucket,
        "key": key,
        "uri": uri,
        "etag": etag,
        "rows": len(rows),
        "target_currency": currency,
        "fx_rate": str(fx.rate),
        "fx_date": fx.date.isoformat(),
        "fx_source": fx.source,
        "scraped_at": rows[0]["scraped_at"],
        "flow_run_id": run_id,
    }
