"""The IAM part of the local stack's moto patch layer (scripts/moto_patches_iam.py): one test per gap.

Each test shows the gap with moto as installed, with IAM enforcement on, then applies the patch (and the
ones it builds on, named in the test) and shows moto answering as AWS does. moto runs in-process
(`mock_aws`), no server; enforcement is moto's own `enable_iam_authentication()`.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.authorization import enable_iam_authentication

from scripts import moto_patches_iam
from tests.helpers.moto_testing import fake_aws_env

REGION = "us-east-1"
ACCOUNT = "123456789012"
ECS_TASKS_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    fake_aws_env(monkeypatch, REGION)


def client(service: str, key: dict[str, str] | None = None):
    return boto3.client(service, region_name=REGION, **(key or {}))


def user(name: str, *statements: dict) -> dict[str, str]:
    """An IAM user whose only policy has these statements; its key as boto3 arguments."""
    iam = client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": list(statements)}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def allow(actions, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def denied(call) -> ClientError:
    with pytest.raises(ClientError) as err:
        call()
    return err.value


def role(name: str, trust: dict) -> str:
    return client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


# --- policy evaluation -------------------------------------------------------------------------------


@mock_aws
def test_resource_scoped_allow_applies_where_moto_does_not_know_the_resource(patched):
    key = user("deployer", allow(["ecs:CreateCluster"], "arn:aws:ecs:*:*:cluster/prefect-elt-*"),
               allow("iam:GetRole", "arn:aws:iam::*:role/prefect-elt-*"))
    role("prefect-elt-task", ECS_TASKS_TRUST)
    role("other-task", ECS_TASKS_TRUST)
    with enable_iam_authentication():
        ecs, iam = client("ecs", key), client("iam", key)
        assert "ecs:CreateCluster" in str(denied(lambda: ecs.create_cluster(clusterName="prefect-elt-a")))  # the gap

        patched("iam_unknown_resource_matches")
        ecs.create_cluster(clusterName="prefect-elt-a")
        # Still enforced: actions outside the policy, and the resource where moto knows it (an IAM role).
        assert "ecs:DeleteCluster" in str(denied(lambda: ecs.delete_cluster(cluster="prefect-elt-a")))
        iam.get_role(RoleName="prefect-elt-task")
        assert "iam:GetRole" in str(denied(lambda: iam.get_role(RoleName="other-task")))


PASS_ROLE_TWICE = {"Version": "2012-10-17", "Statement": [
    allow("iam:PassRole", "arn:aws:iam::*:role/prefect-elt-*",
          Condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
    allow("iam:PassRole", "arn:aws:iam::*:role/prefect-elt-*",
          Condition={"StringEquals": {"iam:PassedToService": "vpc-flow-logs.amazonaws.com"}}),
]}


def test_a_statement_whose_condition_does_not_hold_does_not_apply(patched):
    from moto.iam.access_control import IAMPolicy, PermissionResult

    def decide(policy, context, resource="arn:aws:iam::123456789012:role/prefect-elt-task"):
        return IAMPolicy(json.dumps(policy)).is_action_permitted("iam:PassRole", resource, None, context)

    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert decide(PASS_ROLE_TWICE, to_ecs) == PermissionResult.DENIED  # the gap: the 2nd statement denies

    patched("iam_condition_not_met_is_neutral")
    assert decide(PASS_ROLE_TWICE, to_ecs) == PermissionResult.PERMITTED
    assert decide(PASS_ROLE_TWICE, {"iam:PassedToService": "lambda.amazonaws.com"}) == PermissionResult.NEUTRAL
    assert decide(PASS_ROLE_TWICE, {"IAM:passedtoservice": "ecs-tasks.amazonaws.com"}) == PermissionResult.PERMITTED
    # A key the emulator does not populate counts as satisfied (documented: conditions are not enforced then).
    assert decide(PASS_ROLE_TWICE, {}) == PermissionResult.PERMITTED
    like = {"Statement": [allow("iam:PassRole", "*", Condition={"StringLike": {"iam:PassedToService": "ecs*"}})]}
    assert decide(like, to_ecs) == PermissionResult.PERMITTED
    assert decide(like, {"iam:PassedToService": "lambda.amazonaws.com"}) == PermissionResult.NEUTRAL
    not_to_ecs = {"StringNotEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    deny = {"Statement": [allow("iam:PassRole", "*"),
                          {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*", "Condition": not_to_ecs}]}
    assert decide(deny, to_ecs) == PermissionResult.PERMITTED
    assert decide(deny, {"iam:PassedToService": "lambda.amazonaws.com"}) == PermissionResult.DENIED


@mock_aws
def test_action_names_match_case_insensitively(patched):
    key = user("deployer", allow(["ecs:createcluster"]))
    with enable_iam_authentication():
        ecs = client("ecs", key)
        denied(lambda: ecs.create_cluster(clusterName="c"))  # the gap

        patched("iam_action_names_ignore_case")
        ecs.create_cluster(clusterName="c")
        denied(lambda: ecs.delete_cluster(cluster="c"))


@mock_aws
def test_trust_policy_principals(patched):
    key = user("caller", allow("sts:AssumeRole"))
    caller = f"arn:aws:iam::{ACCOUNT}:user/caller"
    service_role = role("prefect-elt-task", ECS_TASKS_TRUST)
    account_role = role("by-account", {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                      "Action": "sts:AssumeRole"}]})
    two_statements = role("two", {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:user/someone"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": caller}, "Action": "sts:AssumeRole"}]})
    with enable_iam_authentication():
        sts = client("sts", key)
        with pytest.raises(TypeError):  # the gap: a Service principal crashes moto (HTTP 500 in the server)
            sts.assume_role(RoleArn=service_role, RoleSessionName="session")
        denied(lambda: sts.assume_role(RoleArn=account_role, RoleSessionName="session"))
        denied(lambda: sts.assume_role(RoleArn=two_statements, RoleSessionName="session"))

        patched("iam_trust_policy_principals")
        error = denied(lambda: sts.assume_role(RoleArn=service_role, RoleSessionName="session"))
        assert error.response["Error"]["Code"] == "AccessDenied"  # only ECS itself may assume a task role
        sts.assume_role(RoleArn=account_role, RoleSessionName="session")
        assumed = sts.assume_role(RoleArn=two_statements, RoleSessionName="session")["AssumedRoleUser"]["Arn"]
        assert assumed.endswith(":assumed-role/two/session")


@mock_aws
def test_pass_role_is_checked_where_aws_checks_it(patched):
    policy = json.loads(json.dumps(PASS_ROLE_TWICE))["Statement"]
    key = user("deployer", allow(["ecs:RegisterTaskDefinition", "ecs:CreateCluster", "ecs:CreateService",
                                  "ec2:CreateFlowLogs", "ec2:CreateVpc"]), *policy)
    ours = role("prefect-elt-task", ECS_TASKS_TRUST)
    theirs = role("someone-elses", ECS_TASKS_TRUST)
    container = [{"name": "app", "image": "app:1", "memory": 128}]
    client("ecs").register_task_definition(family="theirs", taskRoleArn=theirs, containerDefinitions=container)
    with enable_iam_authentication():
        ecs, ec2 = client("ecs", key), client("ec2", key)
        ecs.register_task_definition(family="f", taskRoleArn=theirs, containerDefinitions=container)  # the gap

        patched("iam_condition_not_met_is_neutral", "iam_pass_role_checked")
        ecs.register_task_definition(family="f", taskRoleArn=ours, executionRoleArn=ours, containerDefinitions=container)
        error = denied(lambda: ecs.register_task_definition(family="f", taskRoleArn=theirs, containerDefinitions=container))
        assert error.response["Error"]["Message"] == (
            f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: iam:PassRole on resource: {theirs}")
        # CreateService passes the roles of its task definition.
        ecs.create_cluster(clusterName="c")
        assert "iam:PassRole" in str(denied(lambda: ecs.create_service(cluster="c", serviceName="s", taskDefinition="theirs")))
        # Flow logs pass their role to vpc-flow-logs.amazonaws.com: the second statement applies.
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogGroupName="g",
                             DeliverLogsPermissionArn=ours)
        assert "iam:PassRole" in str(denied(lambda: ec2.create_flow_logs(
            ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogGroupName="h", DeliverLogsPermissionArn=theirs)))


# --- S3 ----------------------------------------------------------------------------------------------


@mock_aws
def test_s3_requests_are_authorised_with_iam_action_names(patched):
    client("s3").create_bucket(Bucket="prefect-elt-data")
    client("s3").create_bucket(Bucket="other-bucket")
    client("s3").put_object(Bucket="other-bucket", Key="k", Body=b"x")
    key = user("deployer",
               allow(["s3:ListBucket", "s3:CreateBucket"], "arn:aws:s3:::prefect-elt-*"),
               allow(["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], "arn:aws:s3:::prefect-elt-*/*"))
    encryption = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    with enable_iam_authentication():
        s3 = client("s3", key)
        s3.put_object(Bucket="prefect-elt-data", Key="a/b", Body=b"x")
        # The gaps: HeadBucket is checked as s3:HeadBucket (no such IAM action), PutBucketEncryption as
        # s3:CreateBucket, DeleteObjects as s3:DeleteObject on the bucket instead of its objects.
        denied(lambda: s3.head_bucket(Bucket="prefect-elt-data"))
        s3.put_bucket_encryption(Bucket="prefect-elt-data", ServerSideEncryptionConfiguration=encryption)
        assert s3.delete_objects(Bucket="prefect-elt-data", Delete={"Objects": [{"Key": "a/b"}]})["Errors"]

        patched("s3_iam_action_names")
        s3.head_bucket(Bucket="prefect-elt-data")
        error = denied(lambda: s3.put_bucket_encryption(Bucket="prefect-elt-data",
                                                        ServerSideEncryptionConfiguration=encryption))
        assert error.response["Error"]["Code"] == "AccessDenied"
        assert s3.delete_objects(Bucket="prefect-elt-data", Delete={"Objects": [{"Key": "a/b"}]})["Deleted"] == [{"Key": "a/b"}]
        # CopyObject reads its source: allowed into our bucket only from a source the policy may read.
        s3.put_object(Bucket="prefect-elt-data", Key="src", Body=b"y")
        s3.copy_object(Bucket="prefect-elt-data", Key="copy", CopySource={"Bucket": "prefect-elt-data", "Key": "src"})
        denied(lambda: s3.copy_object(Bucket="prefect-elt-data", Key="stolen",
                                      CopySource={"Bucket": "other-bucket", "Key": "k"}))


@mock_aws
def test_s3_access_denied_names_principal_and_action(patched):
    key = user("deployer", allow("s3:ListAllMyBuckets"))
    with enable_iam_authentication():
        s3 = client("s3", key)
        assert denied(lambda: s3.create_bucket(Bucket="b")).response["Error"]["Message"] == "Access Denied"  # the gap

        patched("s3_access_denied_names_principal")
        error = denied(lambda: s3.create_bucket(Bucket="b"))
        assert error.response["Error"]["Code"] == "AccessDenied"
        assert error.response["Error"]["Message"] == (
            f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: s3:CreateBucket")


@mock_aws
def test_json_protocol_services_answer_access_denied_exception(patched):
    key = user("deployer", allow("ecs:ListClusters"))
    with enable_iam_authentication():
        ecs = client("ecs", key)
        before = denied(lambda: ecs.create_cluster(clusterName="c")).response["Error"]
        assert before["Code"] == "403" and before["Message"].startswith("<?xml")  # the gap

        patched("json_access_denied_exception")
        after = denied(lambda: ecs.create_cluster(clusterName="c")).response["Error"]
        assert after["Code"] == "AccessDeniedException"
        assert after["Message"] == f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: ecs:CreateCluster"
        assert denied(lambda: client("iam", key).create_user(UserName="x")).response["Error"]["Code"] == "AccessDenied"
        # SQS speaks JSON but keeps its query-protocol codes (awsQueryCompatible).
        assert denied(lambda: client("sqs", key).create_queue(QueueName="q")).response["Error"]["Code"] == "AccessDenied"


# --- the module --------------------------------------------------------------------------------------


def test_every_patch_applies_and_undoes():
    from moto.iam.access_control import IAMPolicyStatement, IAMRequest, IAMRequestBase, S3IAMRequest
    from moto.s3.responses import S3Response

    def state():
        return (IAMPolicyStatement.is_action_permitted, IAMPolicyStatement._check_conditions,
                IAMPolicyStatement._check_principal, IAMPolicyStatement._check_element_matches,
                IAMRequestBase.check_action_permitted, IAMRequest._raise_access_denied,
                S3IAMRequest._raise_access_denied, "_authenticate_and_authorize_s3_action" in S3Response.__dict__)

    before = state()
    undo = [patch() for patch in moto_patches_iam.PATCHES.values()]
    assert all(a != b for a, b in zip(state(), before))
    for step in reversed(undo):
        step()
    assert state() == before


def test_every_patch_is_in_the_module_docstring():
    for name, patch in moto_patches_iam.PATCHES.items():
        assert name in moto_patches_iam.__doc__, name
        doc = patch.__doc__ or ""
        assert "AWS:" in doc and "moto 5.2:" in doc and "Patch:" in doc, name
