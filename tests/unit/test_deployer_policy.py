"""scripts/deployer_policy.py: recorded requests -> IAM actions, and the check of a policy file."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "deployer_policy.py"
SAMPLE = REPO / "tests" / "unit" / "data" / "deployer_recording_sample.jsonl"
POLICY = REPO / "docs" / "deployer-policy.json"

spec = importlib.util.spec_from_file_location("deployer_policy", SCRIPT)
dp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dp)

ANSIBLE_UA = "APN/1.0 Ansible/2.21.5 amazon.aws/11.4.0"


def request(service: str, method: str = "POST", url: str = "http://127.0.0.1:5000/", target: str = "",
            body: str = "", agent: str = ANSIBLE_UA, headers: dict | None = None) -> dict:
    h = {"User-Agent": agent,
         "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/{service}/aws4_request, "
                          "SignedHeaders=host, Signature=0"}
    if target:
        h["X-Amz-Target"] = target
    return {"headers": {**h, **(headers or {})}, "method": method, "url": url, "body": body, "body_encoded": False}


def test_sample_recording_gives_the_deployer_actions_only():
    actions, unmapped = dp.derive(dp.read_recording(SAMPLE))
    assert unmapped == []
    assert set(actions) == {
        "ec2:CreateVpc", "ec2:DescribeVpcs", "ecs:CreateCluster", "elasticloadbalancing:CreateLoadBalancer",
        "events:PutRule", "iam:CreateRole", "logs:CreateLogGroup", "s3:GetEncryptionConfiguration",
        "s3:GetObjectTagging", "s3:ListAllMyBuckets", "s3:ListBucket", "s3:PutBucketVersioning", "s3:PutObject",
        "sqs:CreateQueue",
    }  # no sts:GetCallerIdentity (needs no permission), no ecs:RunTask (the worker's, not Ansible's)
    everyone, _ = dp.derive(dp.read_recording(SAMPLE), all_agents=True)
    assert "ecs:RunTask" in everyone


@pytest.mark.parametrize("entry, expected", [
    (request("ecs", target="AmazonEC2ContainerServiceV20141113.UpdateService"), ["ecs:UpdateService"]),
    (request("sqs", target="AmazonSQS.GetQueueAttributes"), ["sqs:GetQueueAttributes"]),
    (request("events", target="AWSEvents.PutTargets"), ["events:PutTargets"]),
    (request("logs", target="Logs_20140328.PutRetentionPolicy"), ["logs:PutRetentionPolicy"]),
    (request("application-autoscaling", target="AnyScaleFrontendService.RegisterScalableTarget"),
     ["application-autoscaling:RegisterScalableTarget"]),
    (request("ec2", body="Action=DeleteNatGateway&Version=2016-11-15"), ["ec2:DeleteNatGateway"]),
    (request("elasticloadbalancing", body="Action=DescribeTargetHealth&Version=2015-12-01"),
     ["elasticloadbalancing:DescribeTargetHealth"]),
    (request("iam", method="GET", url="http://127.0.0.1:5000/?Action=GetRole&RoleName=x"), ["iam:GetRole"]),
    (request("monitoring", body="Action=PutMetricAlarm"), ["cloudwatch:PutMetricAlarm"]),
    (request("sts", body="Action=GetCallerIdentity"), ["sts:GetCallerIdentity"]),
])
def test_json_and_query_protocols(entry, expected):
    assert dp.actions_of(entry) == expected


BUCKET = "http://127.0.0.1:5000/prefect-elt-dev-results"


@pytest.mark.parametrize("method, url, headers, body, expected", [
    ("GET", "http://127.0.0.1:5000/", {}, "", ["ListAllMyBuckets"]),
    ("PUT", BUCKET, {}, "", ["CreateBucket"]),
    ("HEAD", BUCKET, {}, "", ["ListBucket"]),
    ("GET", BUCKET + "?list-type=2&prefix=flows", {}, "", ["ListBucket"]),
    ("DELETE", BUCKET, {}, "", ["DeleteBucket"]),
    ("GET", BUCKET + "?policy", {}, "", ["GetBucketPolicy"]),
    ("PUT", BUCKET + "?policy", {}, "", ["PutBucketPolicy"]),
    ("DELETE", BUCKET + "?policy", {}, "", ["DeleteBucketPolicy"]),
    ("PUT", BUCKET + "?versioning", {}, "", ["PutBucketVersioning"]),
    ("DELETE", BUCKET + "?encryption", {}, "", ["PutEncryptionConfiguration"]),
    ("GET", BUCKET + "?publicAccessBlock", {}, "", ["GetBucketPublicAccessBlock"]),
    ("DELETE", BUCKET + "?lifecycle", {}, "", ["PutLifecycleConfiguration"]),
    ("DELETE", BUCKET + "?tagging", {}, "", ["PutBucketTagging"]),
    ("GET", BUCKET + "?versions&prefix=a", {}, "", ["ListBucketVersions"]),
    ("POST", BUCKET + "?delete", {}, "<Delete><Object><Key>a</Key></Object></Delete>", ["DeleteObject"]),
    ("POST", BUCKET + "?delete", {}, "<Object><Key>a</Key><VersionId>v1</VersionId></Object>",
     ["DeleteObject", "DeleteObjectVersion"]),
    ("GET", BUCKET + "/flows/abc/flow.py", {}, "", ["GetObject"]),
    ("HEAD", BUCKET + "/flows/abc/flow.py?versionId=v1", {}, "", ["GetObjectVersion"]),
    ("PUT", BUCKET + "/flows/abc/flow.py", {}, "", ["PutObject"]),
    ("PUT", BUCKET + "/a", {"x-amz-copy-source": "b/c"}, "", ["PutObject", "GetObject"]),
    ("DELETE", BUCKET + "/a?versionId=v1", {}, "", ["DeleteObjectVersion"]),
    ("GET", BUCKET + "/a?tagging", {}, "", ["GetObjectTagging"]),
    ("PUT", BUCKET + "/a?tagging", {}, "", ["PutObjectTagging"]),
    ("POST", BUCKET + "/a?uploads", {}, "", ["PutObject"]),
    ("DELETE", BUCKET + "/a?uploadId=1", {}, "", ["AbortMultipartUpload"]),
    ("GET", "https://prefect-elt-dev-results.s3.us-east-1.amazonaws.com/?versioning", {}, "",
     ["GetBucketVersioning"]),
    ("GET", "https://prefect-elt-dev-results.s3.us-east-1.amazonaws.com/k/e/y", {}, "", ["GetObject"]),
])
def test_s3_rest_requests(method, url, headers, body, expected):
    entry = request("s3", method=method, url=url, body=body, headers=headers)
    assert dp.actions_of(entry) == ["s3:" + a for a in expected]


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/v2/", "GetAuthorizationToken"),
    ("HEAD", "/v2/prefect-elt-dev/flow/blobs/sha256:abc", "BatchCheckLayerAvailability"),
    ("POST", "/v2/prefect-elt-dev/flow/blobs/uploads/", "InitiateLayerUpload"),
    ("PATCH", "/v2/prefect-elt-dev/flow/blobs/uploads/uuid", "UploadLayerPart"),
    ("PUT", "/v2/prefect-elt-dev/flow/blobs/uploads/uuid?digest=sha256:abc", "CompleteLayerUpload"),
    ("PUT", "/v2/prefect-elt-dev/flow/manifests/0123abcd", "PutImage"),
    ("HEAD", "/v2/prefect-elt-dev/flow/manifests/0123abcd", "BatchGetImage"),
])
def test_ecr_registry_requests(method, path, expected):
    entry = {"headers": {"User-Agent": ANSIBLE_UA}, "method": method, "url": "https://registry" + path}
    assert dp.actions_of(entry) == ["ecr:" + expected]


def test_unknown_requests_are_reported_not_dropped():
    actions, unmapped = dp.derive([request("s3", method="PATCH", url=BUCKET)])
    assert not actions and unmapped == [f"S3 PATCH bucket {BUCKET}"]


def test_missing_actions_honours_wildcards_case_and_allow_only():
    policy = {"Statement": [
        {"Effect": "Allow", "Action": ["ec2:Describe*", "S3:getobject"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecs:*", "Resource": "*"},
    ]}
    assert dp.missing_actions(["ec2:DescribeVpcs", "s3:GetObject", "iam:PassRole", "ecs:CreateCluster",
                               "ec2:CreateVpc"], policy) == ["ec2:CreateVpc", "ecs:CreateCluster"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_check_passes_on_the_shipped_policy():
    proc = run(str(SAMPLE), "--check", str(POLICY))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_fails_naming_the_missing_action(tmp_path):
    policy = json.loads(POLICY.read_text())
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != "sqs:CreateQueue"]
    trimmed = tmp_path / "policy.json"
    trimmed.write_text(json.dumps(policy))
    proc = run(str(SAMPLE), "--check", str(trimmed))
    assert proc.returncode == 1
    assert "sqs:CreateQueue" in proc.stdout


SHIPPED_ELSEWHERE = {  # actions roles being written now call (not in every recording yet)
    "sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:GetQueueUrl", "sqs:TagQueue",
    "sqs:UntagQueue", "sqs:ListQueueTags", "sqs:DeleteQueue", "events:PutRule", "events:DescribeRule",
    "events:PutTargets", "events:ListTargetsByRule", "events:RemoveTargets", "events:DeleteRule",
    "events:TagResource", "events:UntagResource", "events:ListTagsForResource", "iam:CreateServiceLinkedRole",
    "ecs:DeregisterTaskDefinition", "ecs:ListTaskDefinitions", "ecs:ListTaskDefinitionFamilies",
    "ecs:UpdateService",
    # worker_autoscaling (the default molecule scenario keeps it off: only the reads are recorded there)
    "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget", "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
}


def test_policy_grants_the_actions_being_added_and_scopes_passrole():
    policy = json.loads(POLICY.read_text())
    assert dp.missing_actions(SHIPPED_ELSEWHERE, policy) == []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in a for a in actions), statement["Sid"]  # every action named
        if "iam:PassRole" in actions:
            assert statement["Resource"] == "arn:aws:iam::*:role/prefect-elt-*"
            assert "iam:PassedToService" in statement["Condition"]["StringEquals"]
        if "iam:CreateServiceLinkedRole" in actions:
            # only the service-linked role of the service named in the condition (its path: aws-service-role/<service>/)
            service = statement["Condition"]["StringEquals"]["iam:AWSServiceName"]
            assert service in {"ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com"}, service
            assert statement["Resource"].startswith(f"arn:aws:iam::*:role/aws-service-role/{service}/"), statement["Resource"]
        if statement["Resource"] == "*":  # only what AWS offers no resource-level permission for
            assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) or a.startswith("ec2:")
                       or a in {"ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition"} for a in actions), actions
