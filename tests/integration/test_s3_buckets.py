"""Role `s3_buckets` against the local stack: check mode, create, idempotence, read-only check, data-safe delete."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest

from tests.helpers.stack import failure_messages

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/s3_buckets.yml"
ACCOUNT = "123456789012"  # moto's account
FLOW = f"prefect-elt-s3-test-flow-storage-{ACCOUNT}-us-east-1"
RESULTS = f"prefect-elt-s3-test-results-{ACCOUNT}-us-east-1"
TAGS = {"Project": "prefect-elt", "Environment": "local", "ManagedBy": "ansible"}


def s3():
    from tests.helpers.stack import moto_url

    return boto3.client("s3", endpoint_url=moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def bucket_names() -> set[str]:
    return {b["Name"] for b in s3().list_buckets()["Buckets"]}


def run(stack, extra=None, check=False):
    recorder = stack.MotoRecorder().start()
    result = stack.run_playbook(PLAYBOOK, extra_vars=extra, check=check)
    calls = recorder.calls()
    return SimpleNamespace(run=result, calls=calls, writes=[c for c in calls if c.deployer_write])


def short(names: list[str]) -> list[str]:
    return [n.split(" : ")[-1] for n in names]


# The TLS-only policy is the role's default in every inventory, the local one included; set here explicitly
# to prove the policy is made and converged.
DEPLOY = {"s3_buckets_require_tls": True, "s3_buckets_results_expiration_days": 365,
          "s3_buckets_results_transition_days": 30}


@pytest.fixture(scope="module")
def stack_runs(local_stack):
    """One pair of buckets shared by the module: check (empty) -> create -> converge -> check (deployed)."""
    local_stack.reset_moto()
    runs = SimpleNamespace()
    runs.check_empty = run(local_stack, DEPLOY, check=True)
    runs.create = run(local_stack, DEPLOY)
    runs.converge = run(local_stack, DEPLOY)
    runs.check_deployed = run(local_stack, DEPLOY, check=True)
    return runs


def test_check_mode_on_empty_account_reports_and_writes_nothing(stack_runs):
    r = stack_runs.check_empty
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    assert r.writes == []
    assert short(r.run.changed_tasks) == ["Report the buckets and lifecycle rules that would be created or changed (check mode)"]
    assert r.run.facts("s3_buckets__flow_storage_bucket") == FLOW


def test_create_configures_both_buckets(stack_runs):
    r = stack_runs.create
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    assert r.run.facts("s3_buckets__flow_storage_bucket") == FLOW
    assert r.run.facts("s3_buckets__results_bucket") == RESULTS
    assert r.run.facts("s3_buckets__flow_storage_bucket_arn") == f"arn:aws:s3:::{FLOW}"
    assert r.run.facts("s3_buckets__results_bucket_arn") == f"arn:aws:s3:::{RESULTS}"
    client = s3()
    for name in (FLOW, RESULTS):
        sse = client.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert client.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        assert client.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        policy = json.loads(client.get_bucket_policy(Bucket=name)["Policy"])
        [statement] = policy["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert sorted(statement["Resource"]) == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
        tags = {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=name)["TagSet"]}
        assert tags == {**TAGS, "Name": name}
        rules = {rule["ID"]: rule for rule in client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
        assert rules["noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
        assert rules["noncurrent-versions"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    results_rules = {rule["ID"]: rule for rule in client.get_bucket_lifecycle_configuration(Bucket=RESULTS)["Rules"]}
    assert results_rules["results-retention"]["Expiration"]["Days"] == 365
    assert results_rules["results-retention"]["Transitions"][0]["Days"] == 30
    assert "results-retention" not in {r["ID"] for r in client.get_bucket_lifecycle_configuration(Bucket=FLOW)["Rules"]}


def test_second_run_changes_nothing(stack_runs):
    r = stack_runs.converge
    assert r.run.rc == 0, r.run.failed_messages
    assert r.run.changed_tasks == []
    assert r.writes == [], [(c.method, c.url) for c in r.writes]


def test_check_mode_on_deployed_stack_is_read_only(stack_runs):
    r = stack_runs.check_deployed
    assert r.run.rc == 0, r.run.failed_messages
    assert r.writes == []
    assert r.run.changed_tasks == []
    assert r.run.facts("s3_buckets__results_bucket_arn") == f"arn:aws:s3:::{RESULTS}"


def test_drift_behind_the_stacks_back_is_reported_in_check_mode_and_repaired(stack_runs, local_stack):
    """The role reads both buckets in one process and writes only what differs: each drift must still
    reach its write task (reported in check mode without a write, repaired by the next run)."""
    client = s3()
    client.put_bucket_versioning(Bucket=FLOW, VersioningConfiguration={"Status": "Suspended"})
    client.delete_public_access_block(Bucket=RESULTS)
    client.put_bucket_tagging(Bucket=RESULTS, Tagging={"TagSet": [{"Key": "Project", "Value": "other"}]})
    client.delete_bucket_lifecycle(Bucket=FLOW)
    rules = client.get_bucket_lifecycle_configuration(Bucket=RESULTS)["Rules"]
    for rule in rules:
        if rule["ID"] == "results-retention":
            rule["Expiration"] = {"Days": 7}
    client.put_bucket_lifecycle_configuration(Bucket=RESULTS, LifecycleConfiguration={"Rules": rules})

    check = run(local_stack, DEPLOY, check=True)
    assert check.run.rc == 0, check.run.failed_messages
    assert check.writes == []
    # s3_bucket and s3_lifecycle do not run in check mode: the role reports what its reader found, each bucket once:
    # its settings as a diff (current -> wanted), the lifecycle rules as messages.
    assert sorted(short(check.run.changed_tasks)) == [
        "Report bucket settings that differ (s3_bucket does not run in check mode)",
        "Report the buckets and lifecycle rules that would be created or changed (check mode)"]
    report = [r for n, r in check.run.task_results() if n.endswith("would be created or changed (check mode)")][0]
    messages = sorted(item["msg"] for item in report["results"] if not item.get("skipped"))
    assert messages == [f"Would converge lifecycle rule noncurrent-versions of bucket {FLOW}: rule missing",
                        f"Would converge lifecycle rule results-retention of bucket {RESULTS}: rule differs"], messages
    settings = [r for n, r in check.run.task_results() if n.endswith("(s3_bucket does not run in check mode)")][0]
    diffs = {item["item"]["key"]: json.dumps(item["diff"]) for item in settings["results"] if item.get("changed")}
    assert sorted(diffs) == [FLOW, RESULTS], diffs
    assert '-    \\"versioning\\": \\"Suspended\\"' in diffs[FLOW], diffs[FLOW]
    assert '-    \\"public_access\\": {}' in diffs[RESULTS] and '\\"Project\\": \\"other\\"' in diffs[RESULTS], diffs[RESULTS]

    repair = run(local_stack, DEPLOY)
    assert repair.run.rc == 0, repair.run.failed_messages
    assert set(short(repair.run.changed_tasks)) == {
        "Create the buckets (SSE, versioning, public access block, TLS-only policy)",
        "Expire noncurrent versions and abort stale multipart uploads", "Set the results retention rule"}
    assert client.get_bucket_versioning(Bucket=FLOW)["Status"] == "Enabled"
    assert all(client.get_public_access_block(Bucket=RESULTS)["PublicAccessBlockConfiguration"].values())
    assert {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=RESULTS)["TagSet"]} == dict(TAGS, Name=RESULTS)
    assert [r["ID"] for r in client.get_bucket_lifecycle_configuration(Bucket=FLOW)["Rules"]] == ["noncurrent-versions"]
    retention = [r for r in client.get_bucket_lifecycle_configuration(Bucket=RESULTS)["Rules"] if r["ID"] == "results-retention"]
    assert retention[0]["Expiration"] == {"Days": 365}

    again = run(local_stack, DEPLOY)
    assert again.run.rc == 0, again.run.failed_messages
    assert again.run.changed_tasks == []
    assert again.writes == []


def test_delete_keeps_buckets_with_data_unless_opted_in(stack_runs, local_stack):
    client = s3()
    # The TLS-only policy stays: the local endpoint counts as AWS's TLS endpoint (moto patch s3_secure_transport).
    for name in (FLOW, RESULTS):
        assert json.loads(client.get_bucket_policy(Bucket=name)["Policy"])["Statement"][0]["Effect"] == "Deny"
    client.put_object(Bucket=FLOW, Key="flows/abc/flow.py", Body=b"print('x')")
    client.put_object(Bucket=RESULTS, Key="old.csv", Body=b"a,b\n")
    client.delete_object(Bucket=RESULTS, Key="old.csv")  # only an old version + delete marker remain

    kept = run(local_stack, {"s3_buckets_state": "absent"})
    assert kept.run.rc == 0, kept.run.failed_messages
    assert {FLOW, RESULTS} <= bucket_names()
    report = {k["name"]: k["reason"] for k in kept.run.facts("s3_buckets__kept")}
    assert set(report) == {FLOW, RESULTS}
    assert "holds objects" in report[FLOW] and "s3_buckets_delete_data" in report[FLOW]
    assert "old object versions" in report[RESULTS]
    assert kept.run.changed_tasks == []

    removed = run(local_stack, {"s3_buckets_state": "absent", "s3_buckets_delete_data": True})
    assert removed.run.rc == 0, removed.run.failed_messages
    assert not {FLOW, RESULTS} & bucket_names()
    assert removed.run.facts("s3_buckets__kept") == []

    again = run(local_stack, {"s3_buckets_state": "absent"})
    assert again.run.rc == 0 and again.run.changed_tasks == [] and again.writes == []


def test_empty_buckets_are_removed_without_opt_in(local_stack):
    extra = {"s3_buckets_name_prefix": "prefect-elt-empty", "s3_buckets_require_tls": False,
             "s3_buckets_encryption": "aws:kms"}
    created = run(local_stack, extra)
    assert created.run.rc == 0, created.run.failed_messages
    name = created.run.facts("s3_buckets__results_bucket")
    sse = s3().get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    with pytest.raises(s3().exceptions.ClientError):
        s3().get_bucket_policy(Bucket=name)
    s3().put_object(Bucket=name, Key="x", Body=b"1")  # no bucket policy at all
    s3().delete_objects(Bucket=name, Delete={"Objects": [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for v in s3().list_object_versions(Bucket=name).get("Versions", [])]})
    gone = run(local_stack, {**extra, "s3_buckets_state": "absent"})
    assert gone.run.rc == 0, gone.run.failed_messages
    assert gone.run.facts("s3_buckets__kept") == []
    assert not any(b.startswith("prefect-elt-empty-") for b in bucket_names())


@pytest.mark.parametrize("extra, variable", [
    ({"s3_buckets_flow_storage_name": "Bad_Bucket"}, "s3_buckets_flow_storage_name"),
    ({"s3_buckets_results_name": "ab"}, "s3_buckets_results_name"),
    ({"s3_buckets_results_name": "192.168.1.10"}, "s3_buckets_results_name"),
    ({"s3_buckets_results_name": "my..bucket"}, "s3_buckets_results_name"),
    ({"s3_buckets_results_name": "xn--bucket"}, "s3_buckets_results_name"),
    ({"s3_buckets_encryption": "rot13"}, "s3_buckets_encryption"),
    ({"s3_buckets_kms_key_id": "alias/x"}, "s3_buckets_kms_key_id"),
    ({"s3_buckets_name_prefix": "Prefect_ELT"}, "s3_buckets_name_prefix"),
    ({"s3_buckets_flow_storage_name": "same-name", "s3_buckets_results_name": "same-name"}, "s3_buckets_results_name"),
], ids=["uppercase", "too-short", "ip-address", "double-dot", "reserved-prefix", "unknown-encryption",
        "kms-key-without-kms", "bad-prefix", "same-names"])
def test_bad_input_fails_in_validation_without_aws_calls(local_stack, extra, variable):
    r = run(local_stack, extra)
    assert r.run.rc != 0
    messages = failure_messages(r.run)
    assert variable in messages, messages
    assert r.calls == [], "validation happens before any AWS call"
