"""Load: render the CSV and put it in the results bucket under a key that is fixed per flow run."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

CONTENT_TYPE = "text/csv; charset=utf-8"
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")


def result_key(prefix: str, currency: str, run_id: str, scheduled_start: datetime) -> str:
    """``<prefix>/dt=YYYY-MM-DD/top_gainers_<ccy>_<YYYYmmddTHHMMSSZ>_<run id>.csv``.

    Everything comes from the flow run (its id and scheduled start), never from the wall clock, so a
    retried task or flow run writes the very same key and overwrites its own object.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"results_prefix may only hold S3-safe characters (letters, digits, !_.*'()/-), got {prefix!r}"
        )
    if not re.fullmatch(r"[A-Za-z0-9-]+", run_id):
        raise ValueError(f"flow run id must be a UUID-like token, got {run_id!r}")
    when = scheduled_start.astimezone(timezone.utc) if scheduled_start.tzinfo else scheduled_start
    parts = [p for p in prefix.strip("/").split("/") if p]
    name = f"top_gainers_{currency.lower()}_{when:%Y%m%dT%H%M%SZ}_{run_id}.csv"
    return "/".join([*parts, f"dt={when:%Y-%m-%d}", name])


def render_csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    """CSV (RFC 4180, ``\\r\\n`` line ends) with exactly ``columns`` as header, UTF-8."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def put_csv(s3_client, bucket: str, key: str, body: bytes, metadata: dict[str, str],
            kms_key_id: str | None = None) -> dict:
    """PutObject with content type; encrypted as the bucket's default encryption says (SSE-S3 or
    SSE-KMS with the bucket's key), or with SSE-KMS under ``kms_key_id`` when one is given.

    No encryption header is forced: an ``AES256`` header on a bucket whose default is SSE-KMS would
    silently store the object under the weaker setting the bucket owner chose against.
    """
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    return s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE,
                                Metadata=metadata, **extra)
