"""gainers_digest runs against the local Prefect server and emulated S3 (moto): reads a week of ELT CSVs,
writes one digest CSV and two artifacts; an empty week gives an empty digest, a foreign CSV fails it."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from gainers_digest import flow as digest_flow
from gainers_elt.load import result_key

pytestmark = pytest.mark.integration
HEADER = "rank,name,symbol,url,price_usd,price_aud,change_24h_pct,volume_24h_usd,volume_24h_aud,fx_rate,fx_date,fx_source,scraped_at"


@pytest.fixture
def prefect_api(flow_stack, monkeypatch):
    for name in ("list_source_keys", "read_sources", "write_digest"):
        monkeypatch.setattr(digest_flow, name, getattr(digest_flow, name).with_options(retry_delay_seconds=0))
    with temporary_settings(updates={PREFECT_API_URL: flow_stack.prefect_api_url}):
        yield flow_stack.prefect_api_url


def put_elt_csv(s3, bucket: str, day: date, run: str, rows: list[tuple[str, str]]) -> str:
    key = result_key("top-gainers", "AUD", run, datetime(day.year, day.month, day.day, 6, tzinfo=timezone.utc))
    lines = [HEADER] + [f"{i},{s.title()},{s},u,1,1.5,{c},1,1.5,1.5,{day},fx,{day}T06:00:00Z"
                        for i, (s, c) in enumerate(rows, start=1)]
    s3.put_object(Bucket=bucket, Key=key, Body="\r\n".join(lines).encode())
    return key


def objects(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_digest_of_a_week_writes_one_csv_and_artifacts(prefect_api, aws, results_bucket):
    put_elt_csv(aws, results_bucket, date(2024, 5, 7), "r1", [("DOGE", "10"), ("PEPE", "50")])
    put_elt_csv(aws, results_bucket, date(2024, 5, 10), "r2", [("DOGE", "20"), ("MOON", "5")])
    put_elt_csv(aws, results_bucket, date(2024, 5, 13), "r3", [("DOGE", "30")])
    put_elt_csv(aws, results_bucket, date(2024, 5, 6), "old", [("OLD", "999")])   # day before the window
    aws.put_object(Bucket=results_bucket, Key="top-gainers/dt=2024-05-10/readme.txt", Body=b"not a CSV")

    state = digest_flow.gainers_digest(results_bucket=results_bucket, end_date=date(2024, 5, 13), return_state=True)
    result = state.result(raise_on_failure=False)
    assert state.is_completed(), result
    run_id = str(state.state_details.flow_run_id)
    assert (result["files_read"], result["coins"], result["top"][0]) == (3, 3, "DOGE")
    assert (result["window_start"], result["window_end"]) == ("2024-05-07", "2024-05-13")
    assert objects(aws, results_bucket, "gainers-digest/") == [result["key"]]
    assert result["key"].startswith("gainers-digest/dt=2024-05-13/gainers_digest_") and run_id in result["key"]
    body = aws.get_object(Bucket=results_bucket, Key=result["key"])["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["symbol"], r["appearances"], r["avg_change_24h_pct"]) for r in rows] == [
        ("DOGE", "3", "20.00"), ("PEPE", "1", "50.00"), ("MOON", "1", "5.00")]
    assert "OLD" not in body

    artifacts = httpx.post(f"{prefect_api}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    by_key = {a["key"]: a for a in artifacts}
    assert by_key["gainers-digest"]["type"] == "table" and len(json.loads(by_key["gainers-digest"]["data"])) == 3
    assert result["uri"] in by_key["gainers-digest-summary"]["data"]


def test_empty_week_writes_an_empty_digest(prefect_api, aws, results_bucket):
    state = digest_flow.gainers_digest(results_bucket=results_bucket, end_date=date(2024, 1, 7), return_state=True)
    result = state.result(raise_on_failure=False)
    assert state.is_completed(), result
    assert (result["files_read"], result["coins"]) == (0, 0)
    body = aws.get_object(Bucket=results_bucket, Key=result["key"])["Body"].read().decode()
    assert body.strip().startswith("rank,symbol,name") and len(body.strip().splitlines()) == 1


def test_a_foreign_csv_in_the_window_fails_and_writes_nothing(prefect_api, aws, results_bucket):
    key = result_key("top-gainers", "AUD", "bad", datetime(2024, 5, 13, 6, tzinfo=timezone.utc))
    aws.put_object(Bucket=results_bucket, Key=key, Body=b"a,b\n1,2\n")
    state = digest_flow.gainers_digest(results_bucket=results_bucket, end_date=date(2024, 5, 13), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert state.is_failed() and "not a top-gainers CSV" in str(exc) and key in str(exc)
    assert objects(aws, results_bucket, "gainers-digest/") == []
