"""Drift (issue #15, part 3): what people change in the console behind the stack's back is reported by
`site.yml --check --diff`, repaired by `site.yml` (changed only on the tasks concerned), and the run after
that changes nothing.

One deploy, every drift at once (cost: deploy + check + repair + no-op). Each drift is one entry of DRIFTS:
how to make it (boto3 against the emulator, the Prefect REST API) and the task that must report and repair
it, with a word its diff must name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest

from tests.helpers.stack import MotoRecorder, moto_url, prefect_api, reset_account, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STACK = "prefect-elt-local"


def aws(service: str):
    return boto3.client(service, endpoint_url=moto_url(), region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def tagged(resources: list[dict], name: str) -> dict:
    return next(r for r in resources if {t["Key"]: t["Value"] for t in r.get("Tags", [])}.get("Name") == name)


def bucket(kind: str) -> str:
    return next(b["Name"] for b in aws("s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{STACK}-{kind}-"))


def deployment(name: str) -> dict:
    return next(d for d in prefect_api("POST", "/deployments/filter", {}) if d["name"] == name)


# ------------------------------------------------------------------------------------------ the drifts
def delete_private_route() -> None:
    ec2 = aws("ec2")
    table = tagged(ec2.describe_route_tables()["RouteTables"], f"{STACK}-private-us-east-1a")
    ec2.delete_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")


def open_worker_security_group() -> None:
    ec2 = aws("ec2")
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-worker"]}])
    ec2.authorize_security_group_ingress(GroupId=group["SecurityGroups"][0]["GroupId"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def open_load_balancer_security_group() -> None:
    ec2 = aws("ec2")
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-alb"]}])
    ec2.authorize_security_group_ingress(GroupId=group["SecurityGroups"][0]["GroupId"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}])


def desired_count() -> int:
    return aws("ecs").describe_services(cluster=STACK, services=[f"{STACK}-worker"])["services"][0]["desiredCount"]


def scale_service() -> None:
    aws("ecs").update_service(cluster=STACK, service=f"{STACK}-worker", desiredCount=desired_count() + 3)


CREDENTIAL = f"{STACK}/prefect-credential"


def change_credential() -> None:
    aws("secretsmanager").put_secret_value(SecretId=CREDENTIAL, SecretString="changed-behind-the-stack")


def primary_deployment() -> str:
    service = aws("ecs").describe_services(cluster=STACK, services=[f"{STACK}-worker"])["services"][0]
    return next(d["id"] for d in service["deployments"] if d["status"] == "PRIMARY")


def suspend_versioning() -> None:
    aws("s3").put_bucket_versioning(Bucket=bucket("results"), VersioningConfiguration={"Status": "Suspended"})


def drop_public_access_block() -> None:
    aws("s3").delete_public_access_block(Bucket=bucket("results"))


def remove_vpc_tag() -> None:
    ec2 = aws("ec2")
    vpc = tagged(ec2.describe_vpcs()["Vpcs"], STACK)
    ec2.delete_tags(Resources=[vpc["VpcId"]], Tags=[{"Key": "Environment"}])


def change_log_retention() -> None:
    aws("logs").put_retention_policy(logGroupName=f"/ecs/{STACK}", retentionInDays=1)


def delete_schedule() -> None:
    found = deployment("daily")
    for schedule in found["schedules"]:
        prefect_api("DELETE", f"/deployments/{found['id']}/schedules/{schedule['id']}")


def pause_deployment() -> None:
    prefect_api("PATCH", f"/deployments/{deployment('weekly')['id']}", {"paused": True})


@dataclass
class Drift:
    name: str
    make: Callable[[], None]
    task: str  # the task that repairs it ("role : Task", as the json callback names it)
    # What its diff in check mode must contain; None where the module returns no diff at all
    # (amazon.aws ec2_vpc_net, ec2_vpc_route_table, community.aws ecs_service:
    # no diff support), where the changed task alone reports it.
    names: str | None
    check_task: str = ""  # the task that reports it in check mode, when not `task`

    @property
    def reporter(self) -> str:
        return self.check_task or self.task


BUCKETS = "s3_buckets : Create the buckets (SSE, versioning, public access block, TLS-only policy)"
BUCKETS_CHECK = "s3_buckets : Report bucket settings that differ (s3_bucket does not run in check mode)"
DEPLOYMENTS = "prefect_flow : Ensure the deployments of the catalogue"

DRIFTS = [
    Drift("private route deleted", delete_private_route, "vpc : Wait for the route tables", None),
    Drift("0.0.0.0/0 ingress on the worker SG", open_worker_security_group,
          "ecs_fargate_agent : Wait for the worker security group", "0.0.0.0/0"),
    # Started by alb's `start` (before the buckets), collected by its main part: the wait reports and repairs it.
    Drift("8443 ingress on the load balancer SG", open_load_balancer_security_group,
          "alb : Wait for the load balancer security group", "192.0.2.0/24"),
    Drift("service desired count changed", scale_service, "ecs_fargate_agent : Ensure the worker service", None),
    # no_log: no diff. The repair also rolls the worker service (asserted below): tasks read the secret when they start.
    Drift("credential value changed", change_credential, "ecs_fargate_agent : Ensure the Prefect credential secret", None),
    Drift("bucket versioning suspended", suspend_versioning, BUCKETS, '-    \\"versioning\\": \\"Suspended\\"',
          BUCKETS_CHECK),
    Drift("public access block off", drop_public_access_block, BUCKETS, '-    \\"public_access\\": {}', BUCKETS_CHECK),
    Drift("VPC tag removed", remove_vpc_tag, "vpc : Create the VPC", None),
    Drift("log retention changed", change_log_retention, "ecs_fargate_agent : Ensure the log group",
          '-    \\"retention_in_days\\": 1', "ecs_fargate_agent : Report a log retention that differs "
          "(the log group module would write it in check mode)"),
    Drift("deployment schedule deleted", delete_schedule, DEPLOYMENTS, '"schedules": []'),
    Drift("deployment paused", pause_deployment, DEPLOYMENTS, '"paused": true'),
]


def diffs_of(run, task: str) -> str:
    """Everything the task reported as diff (its items' diffs too), as one string."""
    out = []
    for name, result in run.task_results():
        if name == task:
            for item in [result, *result.get("results", [])]:
                if item.get("diff"):
                    out.append(json.dumps(item["diff"], default=str))
    return "\n".join(out)


def test_drift_is_reported_then_repaired(local_stack):
    timings = {}
    reset_account()
    start = time.monotonic()
    deploy = run_playbook("site.yml")
    timings["deploy"] = time.monotonic() - start
    assert deploy.rc == 0, deploy.failed_messages or deploy.stdout[-3000:]

    wanted_count = desired_count()
    for drift in DRIFTS:
        drift.make()

    start = time.monotonic()
    recorder = MotoRecorder().start()
    check = run_playbook("site.yml", check=True, diff=True)
    # the worker service's own calls (its observer polls and deletes SQS messages) are not the playbook's
    mutating = recorder.mutating_calls()
    timings["check"] = time.monotonic() - start
    assert check.rc == 0, check.failed_messages or check.stdout[-3000:]
    # reporting drift repairs nothing (amazon.aws cloudwatchlogs_log_group wrote the retention in check mode)
    assert mutating == [], [(c.method, c.action, c.url) for c in mutating]
    reported = {d.name for d in DRIFTS
                if d.reporter in check.changed_tasks and (d.names is None or d.names in diffs_of(check, d.reporter))}
    # The secret's task is no_log: a line of its own says what differs, never a value.
    said = [r.get("msg") for name, r in check.task_results() if name == "ecs_fargate_agent : Say what differs in the Prefect credential secret"]
    assert said == [f"{CREDENTIAL}: value"], said
    assert "changed-behind-the-stack" not in check.stdout

    deployment_before = primary_deployment()
    start = time.monotonic()
    repair = run_playbook("site.yml")
    timings["repair"] = time.monotonic() - start
    assert repair.rc == 0, repair.failed_messages or repair.stdout[-3000:]

    start = time.monotonic()
    again = run_playbook("site.yml")
    timings["no-op"] = time.monotonic() - start
    print(f"drift timings (s): {', '.join(f'{k} {v:.0f}' for k, v in timings.items())}")
    print(f"drifts reported {len(reported)}/{len(DRIFTS)}; check changed {check.changed_tasks}; "
          f"repair changed {repair.changed_tasks}")

    assert reported == {d.name for d in DRIFTS}, {d.name: diffs_of(check, d.reporter)[:600] for d in DRIFTS
                                                  if d.name not in reported}
    assert set(check.changed_tasks) == {d.reporter for d in DRIFTS}, set(check.changed_tasks) ^ {d.reporter for d in DRIFTS}
    assert set(repair.changed_tasks) == {d.task for d in DRIFTS}, set(repair.changed_tasks) ^ {d.task for d in DRIFTS}
    assert again.changed_tasks == [], again.changed_tasks
    assert_repaired(wanted_count)
    # A desired count alone starts no deployment: the new one is the credential's roll.
    assert primary_deployment() != deployment_before


def assert_repaired(wanted_count: int) -> None:
    ec2, s3 = aws("ec2"), aws("s3")
    table = tagged(ec2.describe_route_tables()["RouteTables"], f"{STACK}-private-us-east-1a")
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId") for r in table["Routes"])
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-worker"]}])
    assert all(not r.get("IpRanges") for r in group["SecurityGroups"][0]["IpPermissions"])
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-alb"]}])
    assert all(r.get("FromPort") != 8443 for r in group["SecurityGroups"][0]["IpPermissions"])
    assert desired_count() == wanted_count
    assert aws("secretsmanager").get_secret_value(SecretId=CREDENTIAL)["SecretString"] != "changed-behind-the-stack"
    assert s3.get_bucket_versioning(Bucket=bucket("results"))["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket("results"))["PublicAccessBlockConfiguration"].values())
    vpc = tagged(ec2.describe_vpcs()["Vpcs"], STACK)
    assert {t["Key"]: t["Value"] for t in vpc["Tags"]}["Environment"] == "local"
    group_info = aws("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{STACK}")["logGroups"][0]
    assert group_info["retentionInDays"] == 30
    assert [s["schedule"]["cron"] for s in deployment("daily")["schedules"]] == ["0 6 * * *"]
    assert deployment("weekly")["paused"] is False
