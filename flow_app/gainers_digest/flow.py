"""The Prefect 3 flow: a weekly digest of the top-gainers ELT's CSVs, as CSV in S3 plus UI artifacts.

Entrypoint for deployments: ``gainers_digest/flow.py:gainers_digest``. The deployment's pull step
downloads only this package; everything else it imports is in the flow image: the standard library, boto3, Prefect
and flow_common (the retry rule shared with gainers_elt).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone
from typing import Any

import boto3
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError

from flow_common import retry_on_io
from gainers_digest.digest import (
    CONTENT_TYPE,
    day_prefixes,
    digest_key,
    digest_rows,
    is_source_csv,
    markdown,
    read_gainers_csv,
    render_csv,
    summarise,
    window,
)

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IO_RETRY_DELAYS = [10, 60]
ARTIFACT_ROWS = 50


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # a task's .fn called outside a run (unit tests)
        return logging.getLogger("gainers_digest")


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def list_source_keys(bucket: str, prefixes: list[str]) -> list[str]:
    """Every ELT CSV under the day prefixes (one paginated listing per day)."""
    s3 = boto3.client("s3")
    keys: list[str] = []
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if is_source_csv(o["Key"]))
    _logger().info("Found %d top-gainers CSV(s) under %d day prefix(es) of s3://%s", len(keys), len(prefixes), bucket)
    return sorted(keys)


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def read_sources(bucket: str, keys: list[str]) -> dict[str, list[dict[str, str]]]:
    """Rows of every CSV; a file that is not a top-gainers CSV fails the run (named), nothing is written."""
    s3 = boto3.client("s3")
    return {key: read_gainers_csv(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys}


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def write_digest(body: bytes, bucket: str, key: str, metadata: dict[str, str]) -> str:
    """PutObject (the bucket's default encryption applies); returns the ETag."""
    answer = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE,
                                           Metadata=metadata)
    _logger().info("Wrote s3://%s/%s (%d bytes)", bucket, key, len(body))
    return answer.get("ETag", "")


@task(cache_policy=NO_CACHE)
def publish_artifacts(rows: list[dict[str, str]], text: str) -> None:
    """A table of the digest and a markdown summary, for the Prefect UI."""
    create_table_artifact(table=rows[:ARTIFACT_ROWS], key="gainers-digest",
                          description=f"Top-gainers digest ({len(rows)} coins)")
    create_markdown_artifact(markdown=text, key="gainers-digest-summary", description="Top-gainers digest")


def _run_identity() -> tuple[str, datetime]:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:  # pragma: no cover - flows always run in a context
        raise RuntimeError("no flow run context: call gainers_digest as a Prefect flow")
    run = context.flow_run
    return str(run.id), run.expected_start_time or run.created or datetime.now(timezone.utc)


@flow(name="gainers-digest", description="Weekly digest of the top-gainers CSVs: coins seen most often, best average change.")
def gainers_digest(
    results_bucket: str,
    source_prefix: str = "top-gainers",
    results_prefix: str = "gainers-digest",
    days: int = 7,
    end_date: date | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Summarise the past ``days`` days of top-gainers CSVs into one digest CSV and two UI artifacts.

    Args:
        results_bucket: Bucket holding the ELT's CSVs and receiving the digest.
        source_prefix: Key prefix of the ELT's CSVs (its `results_prefix`): `<prefix>/dt=YYYY-MM-DD/`.
        results_prefix: Key prefix of the digest: `<prefix>/dt=<end date>/gainers_digest_<ts>_<run id>.csv`.
        days: Calendar days in the window, ending with `end_date` (inclusive).
        end_date: Last day of the window; the run's scheduled date (UTC) when empty.
        top: Rows in each table of the markdown summary.
    """
    logger = get_run_logger()
    if not BUCKET_NAME.match(results_bucket):
        raise ValueError(f"results_bucket must be an S3 bucket name (3-63 of a-z 0-9 . -), got {results_bucket!r}")
    run_id, scheduled = _run_identity()
    end = end_date or scheduled.astimezone(timezone.utc).date()
    span = window(end, days)
    prefixes = day_prefixes(source_prefix, span)
    key = digest_key(results_prefix, end, run_id, scheduled)

    keys = list_source_keys(results_bucket, prefixes)
    files = read_sources(results_bucket, keys) if keys else {}
    if not keys:
        logger.warning("No top-gainers CSV under %s in the window: writing an empty digest", prefixes[0])
    coins = summarise(files)
    rows = digest_rows(coins, span, len(keys))
    uri = f"s3://{results_bucket}/{key}"
    etag = write_digest(render_csv(rows), results_bucket, key,
                        {"flow-run-id": run_id, "coins": str(len(rows)), "files-read": str(len(keys)),
                         "window": f"{span[0]:%Y-%m-%d}/{span[-1]:%Y-%m-%d}"})
    publish_artifacts(rows, markdown(coins, span, len(keys), uri, top))
    logger.info("Digest of %d CSV(s), %d coin(s) -> %s", len(keys), len(rows), uri)
    return {
        "bucket": results_bucket, "key": key, "uri": uri, "etag": etag, "coins": len(rows),
        "files_read": len(keys), "window_start": span[0].isoformat(), "window_end": span[-1].isoformat(),
        "top": [r["symbol"] for r in rows[:top]], "flow_run_id": run_id,
    }
