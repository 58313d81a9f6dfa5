"""Role `vpc` with vpc_flow_logs on, against the local stack: check mode on an empty account, create,
no-op converge, read-only check mode, replacement on a traffic-type change, delete, bad input."""

from __future__ import annotations

import json
import time
import urllib.parse
from types import SimpleNamespace

import boto3
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = "tests/integration/playbooks/vpc.yml"
NAME = "prefect-elt-vpc-flow"
GROUP = f"/vpc/{NAME}/flow-logs"
ROLE = f"{NAME}-flow-logs"
TAGS = {"Project": "prefect-elt", "Environment": "local", "ManagedBy": "ansible"}
# The public layout keeps the runs short (no NAT); flow logs do not depend on the layout.
EXTRA = {"vpc_name": NAME, "vpc_cidr": "10.50.0.0/16", "vpc_layout": "public", "vpc_nat_gateways": "none",
         "vpc_flow_logs": True}


def client(service: str):
    from tests.helpers.stack import moto_url

    return boto3.client(service, endpoint_url=moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def tags(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def run(stack, extra=None, check=False):
    """Run the playbook while recording moto; return the run, every call and the write calls."""
    recorder = stack.MotoRecorder().start()
    started = time.monotonic()
    result = stack.run_playbook(PLAYBOOK, extra_vars={**EXTRA, **(extra or {})}, check=check)
    calls = recorder.calls()
    return SimpleNamespace(run=result, calls=calls, writes=[c for c in calls if c.deployer_write],
                           seconds=round(time.monotonic() - started, 1))


def flow_logs_of(vpc_id: str) -> list[dict]:
    return client("ec2").describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]


def role_exists() -> bool:
    return any(r["RoleName"] == ROLE for r in client("iam").list_roles()["Roles"])


def log_group_exists() -> bool:
    groups = client("logs").describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]
    return any(g["logGroupName"] == GROUP for g in groups)


def short(names: list[str]) -> list[str]:
    return [name.split(" : ")[-1] for name in names]


@pytest.fixture(scope="module")
def runs(local_stack):
    """check (empty) -> create -> converge -> check (deployed); the tests below read these runs."""
    local_stack.reset_moto()
    out = SimpleNamespace()
    out.check_empty = run(local_stack, check=True)
    out.create = run(local_stack)
    out.converge = run(local_stack)
    out.check_deployed = run(local_stack, check=True)
    yield out
    run(local_stack, {"vpc_state": "absent"})  # whatever the tests left


def test_check_mode_on_empty_account_predicts_and_writes_nothing(runs):
    r = runs.check_empty
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    assert r.writes == [], [c.action for c in r.writes]
    changed = short(r.run.changed_tasks)
    assert "Create the VPC" in changed
    assert "Create the flow log group" in changed
    assert "Create the flow log delivery role" in changed


def test_create_delivers_the_vpc_flow_log_to_the_log_group(runs):
    r = runs.create
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    vpc_id = r.run.facts("vpc__vpc_id")
    account = client("sts").get_caller_identity()["Account"]
    role_arn = f"arn:aws:iam::{account}:role/{ROLE}"

    [fl] = flow_logs_of(vpc_id)
    assert r.run.facts("vpc__flow_log_id") == fl["FlowLogId"]
    assert fl["LogDestinationType"] == "cloud-watch-logs"
    assert fl["LogGroupName"] == GROUP
    assert fl["DeliverLogsPermissionArn"] == role_arn
    assert fl["TrafficType"] == "ALL"
    assert fl["MaxAggregationInterval"] == 600
    assert tags(fl) == {**TAGS, "Name": f"{NAME}-flow-logs"}

    [group] = [g for g in client("logs").describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]
               if g["logGroupName"] == GROUP]
    assert group["retentionInDays"] == 30
    assert client("logs").list_tags_log_group(logGroupName=GROUP)["tags"] == {**TAGS, "Name": f"{NAME}-flow-logs"}

    iam = client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(urllib.parse.unquote(trust)) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "vpc-flow-logs.amazonaws.com"}]
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    assert tags(role) == {**TAGS, "Name": f"{NAME}-flow-logs"}
    assert iam.list_instance_profiles_for_role(RoleName=ROLE)["InstanceProfiles"] == []
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    [policy_name] = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=ROLE, PolicyName=policy_name)["PolicyDocument"]
    [statement] = policy["Statement"]
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogGroups",
                                           "logs:DescribeLogStreams", "logs:PutLogEvents"]
    group_arn = f"arn:aws:logs:us-east-1:{account}:log-group:{GROUP}"
    assert sorted(statement["Resource"]) == [group_arn, f"{group_arn}:*"]


def test_second_run_changes_nothing(runs):
    r = runs.converge
    assert r.run.rc == 0, r.run.failed_messages
    assert r.run.changed_tasks == []
    assert r.writes == [], [c.action for c in r.writes]
    assert r.run.facts("vpc__flow_log_id") == runs.create.run.facts("vpc__flow_log_id")


def test_check_mode_on_deployed_stack_makes_no_mutating_call(runs):
    r = runs.check_deployed
    assert r.run.rc == 0, r.run.failed_messages
    assert r.writes == [], [c.action for c in r.writes]
    assert r.run.changed_tasks == []
    assert r.run.facts("vpc__flow_log_id") == runs.create.run.facts("vpc__flow_log_id")
    assert any(c.action == "DescribeFlowLogs" for c in r.calls), "check mode reads the flow log"


def test_traffic_type_change_replaces_the_flow_log(runs, local_stack):
    vpc_id = runs.create.run.facts("vpc__vpc_id")
    old_id = runs.create.run.facts("vpc__flow_log_id")
    checked = run(local_stack, {"vpc_flow_logs_traffic_type": "REJECT"}, check=True)
    assert checked.run.rc == 0, checked.run.failed_messages
    assert short(checked.run.changed_tasks) == ["Create the flow log of the VPC"]
    assert checked.writes == []

    changed = run(local_stack, {"vpc_flow_logs_traffic_type": "REJECT"})
    assert changed.run.rc == 0, changed.run.failed_messages
    assert short(changed.run.changed_tasks) == ["Create the flow log of the VPC"]
    assert sorted(c.action for c in changed.writes) == ["CreateFlowLogs", "DeleteFlowLogs"]
    [fl] = flow_logs_of(vpc_id)
    assert fl["TrafficType"] == "REJECT"
    assert fl["FlowLogId"] == changed.run.facts("vpc__flow_log_id") != old_id


def test_delete_removes_flow_log_role_and_log_group(runs, local_stack):
    vpc_id = runs.create.run.facts("vpc__vpc_id")
    first = run(local_stack, {"vpc_state": "absent"})
    assert first.run.rc == 0, first.run.failed_messages
    assert flow_logs_of(vpc_id) == []
    assert client("ec2").describe_flow_logs()["FlowLogs"] == []
    assert not role_exists()
    assert not log_group_exists()
    assert client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"] == []

    second = run(local_stack, {"vpc_state": "absent"})
    assert second.run.rc == 0, second.run.failed_messages
    assert second.run.changed_tasks == []
    assert second.writes == []


def test_delete_without_flow_logs_only_looks_them_up(local_stack):
    """A network made with flow logs off: the delete path adds lookups, never a flow-log write."""
    extra = {"vpc_name": "prefect-elt-vpc-nofl", "vpc_cidr": "10.60.0.0/16", "vpc_flow_logs": False}
    made = run(local_stack, extra)
    assert made.run.rc == 0, made.run.failed_messages
    assert made.run.facts("vpc__flow_log_id") == ""
    assert flow_logs_of(made.run.facts("vpc__vpc_id")) == []
    gone = run(local_stack, {**extra, "vpc_state": "absent"})
    assert gone.run.rc == 0, gone.run.failed_messages
    flow_log_calls = [c.action for c in gone.calls if "FlowLog" in c.action or "Role" in c.action
                      or "LogGroup" in c.action]
    assert flow_log_calls and all(a.startswith(("Describe", "Get", "List")) for a in flow_log_calls), flow_log_calls


@pytest.mark.parametrize("extra, variable", [
    ({"vpc_flow_logs_traffic_type": "SOME"}, "vpc_flow_logs_traffic_type"),
    ({"vpc_flow_logs_max_aggregation_interval": 300}, "vpc_flow_logs_max_aggregation_interval"),
    ({"vpc_flow_logs_retention_days": 31}, "vpc_flow_logs_retention_days"),
    ({"vpc_name": "x" * 55}, "vpc_name"),
], ids=["traffic-type", "interval", "retention", "name-too-long-for-the-role"])
def test_bad_flow_log_input_fails_before_any_aws_call(local_stack, extra, variable):
    r = run(local_stack, extra)
    assert r.run.rc != 0
    assert variable in " ".join(r.run.failed_messages), r.run.failed_messages
    assert r.calls == [], [c.action for c in r.calls]
