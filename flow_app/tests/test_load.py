"""Result key determinism, CSV rendering, and the S3 put against the moto server."""

import csv
import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from gainers_elt.load import CONTENT_TYPE, put_csv, render_csv, result_key
from gainers_elt.transform import output_columns

RUN = "0b8c8f6e-2f44-4a55-9d3b-6c1f0f7b1a11"
WHEN = datetime(2024, 5, 10, 0, 0, 0, tzinfo=timezone.utc)


def test_key_is_date_partitioned_and_names_the_run():
    assert result_key("top-gainers", "AUD", RUN, WHEN) == (
        f"top-gainers/dt=2024-05-10/top_gainers_aud_20240510T000000Z_{RUN}.csv")


def test_key_is_deterministic_per_run():
    keys = {result_key("top-gainers", "AUD", RUN, WHEN) for _ in range(3)}
    assert len(keys) == 1


def test_key_differs_between_runs_and_schedules():
    other_run = result_key("top-gainers", "AUD", str(uuid.uuid4()), WHEN)
    other_time = result_key("top-gainers", "AUD", RUN, WHEN + timedelta(days=1))
    assert len({result_key("top-gainers", "AUD", RUN, WHEN), other_run, other_time}) == 3
    assert "/dt=2024-05-11/" in other_time


def test_key_uses_utc_for_the_partition():
    sydney = datetime(2024, 5, 10, 9, 30, tzinfo=timezone(timedelta(hours=10)))  # 23:30 UTC the day before
    assert result_key("p", "AUD", RUN, sydney).startswith("p/dt=2024-05-09/top_gainers_aud_20240509T233000Z_")


@pytest.mark.parametrize(("prefix", "start"), [("/a/b/", "a/b/dt="), ("", "dt="), ("a//b", "a/b/dt=")])
def test_key_prefix_slashes_are_normalised(prefix, start):
    assert result_key(prefix, "AUD", RUN, WHEN).startswith(start)


@pytest.mark.parametrize(("prefix", "run_id"), [("bad prefix", RUN), ("ok", "../etc"), ("ok", "")])
def test_key_rejects_unsafe_input(prefix, run_id):
    with pytest.raises(ValueError):
        result_key(prefix, "AUD", run_id, WHEN)


def test_csv_has_exact_header_and_quotes_commas():
    columns = output_columns("AUD")
    row = dict.fromkeys(columns, "1")
    row["name"] = 'Coin, "the" best'
    body = render_csv([row], columns)
    assert body.splitlines()[0] == b"rank,name,symbol,url,price_usd,price_aud,change_24h_pct,volume_24h_usd," \
                                   b"volume_24h_aud,fx_rate,fx_date,fx_source,scraped_at"
    assert list(csv.DictReader(io.StringIO(body.decode())))[0]["name"] == 'Coin, "the" best'


def test_csv_refuses_unknown_fields():
    with pytest.raises(ValueError):
        render_csv([{"rank": "1", "extra": "x"}], ["rank"])


def bucket_default_encryption(aws, bucket, algorithm, key_id=None):
    """The default encryption the s3_buckets role puts on the results bucket."""
    default = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": key_id} if key_id else {})}
    aws.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})


def test_put_csv_sends_no_encryption_header_without_a_key():
    """The bucket's default encryption decides (SSE-S3 or SSE-KMS), never a forced AES256."""
    class Recorder:
        def put_object(self, **kwargs):
            self.kwargs = kwargs
            return {}
    client = Recorder()
    put_csv(client, "b", "k.csv", b"x", {})
    assert "ServerSideEncryption" not in client.kwargs and "SSEKMSKeyId" not in client.kwargs


@pytest.mark.integration
def test_put_csv_follows_a_kms_bucket_default(aws, results_bucket):
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    bucket_default_encryption(aws, results_bucket, "aws:kms", key_id)
    put_csv(aws, results_bucket, "k.csv", b"x", {})
    head = aws.head_object(Bucket=results_bucket, Key="k.csv")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_id


@pytest.mark.integration
def test_put_csv_to_moto_overwrites_the_same_key(aws, results_bucket):
    bucket_default_encryption(aws, results_bucket, "AES256")
    key = result_key("top-gainers", "AUD", RUN, WHEN)
    put_csv(aws, results_bucket, key, b"a,b\r\n1,2\r\n", {"rows": "1"})
    put_csv(aws, results_bucket, key, b"a,b\r\n3,4\r\n", {"rows": "1"})  # a retried load
    objects = aws.list_objects_v2(Bucket=results_bucket)["Contents"]
    assert [o["Key"] for o in objects] == [key]
    head = aws.head_object(Bucket=results_bucket, Key=key)
    assert head["ContentType"] == CONTENT_TYPE
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"] == {"rows": "1"}
    assert aws.get_object(Bucket=results_bucket, Key=key)["Body"].read() == b"a,b\r\n3,4\r\n"


@pytest.mark.integration
def test_put_csv_with_kms_key(aws, results_bucket):
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    put_csv(aws, results_bucket, "k.csv", b"x", {}, kms_key_id=key_id)
    head = aws.head_object(Bucket=results_bucket, Key="k.csv")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id
