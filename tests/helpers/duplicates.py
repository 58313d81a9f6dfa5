"""Find duplicated and orphaned resources of a deployed stack (issue 15: interrupted and concurrent runs).

A run that is interrupted and resumed, or two runs at once, must converge to ONE stack: one VPC per
name, one NAT gateway and one elastic IP per NAT subnet, no subnet, route table, internet gateway or
target group outside that stack, one ACTIVE revision per task-definition family, one secret, SQS
queue, ECS service and Prefect deployment per name. `find_duplicates()` returns one line per
problem ([] when the account holds exactly one stack). Endpoint and credentials come from the
standard AWS environment, as in tests/helpers/leftovers.py.
"""

from __future__ import annotations

import collections
import os
import sys

import boto3


def _client(service: str):
    return boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def _name(tags: list[dict] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


def _dupes(kind: str, keys: list) -> list[str]:
    return [f"{kind}: {count} x {key}" for key, count in collections.Counter(keys).items() if count > 1]


def find_duplicates(prefect_deployments: list[dict] | None = None) -> list[str]:
    ec2 = _client("ec2")
    problems: list[str] = []
    vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    stack_vpcs = {v["VpcId"] for v in vpcs}
    problems += _dupes("vpc per Name", [_name(v.get("Tags")) for v in vpcs])
    problems += [f"vpc without a Name tag: {v['VpcId']}" for v in vpcs if not _name(v.get("Tags"))]

    subnets = [s for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] in stack_vpcs]
    problems += _dupes("subnet per Name", [_name(s.get("Tags")) for s in subnets])
    problems += [f"orphan subnet (no Name tag): {s['SubnetId']} {s['CidrBlock']}" for s in subnets if not _name(s.get("Tags"))]

    tables = [t for t in ec2.describe_route_tables()["RouteTables"] if t["VpcId"] in stack_vpcs]
    named = [t for t in tables if not any(a.get("Main") for a in t.get("Associations", []))]
    problems += _dupes("route table per (vpc, Name)", [(t["VpcId"], _name(t.get("Tags"))) for t in named])
    problems += [f"orphan route table (not main, no Name): {t['RouteTableId']}" for t in named if not _name(t.get("Tags"))]
    problems += [f"orphan route table (no subnet): {t['RouteTableId']} {_name(t.get('Tags'))}" for t in named
                 if not any(a.get("SubnetId") for a in t.get("Associations", []))]

    igws = ec2.describe_internet_gateways()["InternetGateways"]
    attached = [a["VpcId"] for g in igws for a in g.get("Attachments", [])]
    problems += _dupes("internet gateway per vpc", [v for v in attached if v in stack_vpcs])
    problems += [f"orphan internet gateway: {g['InternetGatewayId']}" for g in igws if not g.get("Attachments")]

    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] not in ("deleted", "deleting", "failed")]
    problems += _dupes("nat gateway per subnet (AZ)", [n["SubnetId"] for n in nats])
    nat_allocations = {a["AllocationId"] for n in nats for a in n.get("NatGatewayAddresses", []) if a.get("AllocationId")}
    addresses = ec2.describe_addresses()["Addresses"]
    problems += _dupes("elastic ip per Name", [_name(a.get("Tags")) for a in addresses])
    problems += [f"orphan elastic ip (no NAT gateway): {a['AllocationId']} {_name(a.get('Tags'))}" for a in addresses
                 if a["AllocationId"] not in nat_allocations]

    endpoints = [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"].lower() not in ("deleted", "deleting")]
    problems += _dupes("vpc endpoint per (vpc, service)", [(e["VpcId"], e["ServiceName"]) for e in endpoints])

    elbv2 = _client("elbv2")
    problems += [f"orphan target group (no load balancer): {tg['TargetGroupName']}"
                 for tg in elbv2.describe_target_groups()["TargetGroups"] if not tg.get("LoadBalancerArns")]

    ecs = _client("ecs")
    families = collections.Counter(arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
                                   for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"])
    problems += [f"task definition family {family}: {count} ACTIVE revisions" for family, count in families.items() if count > 1]
    for cluster_arn in ecs.list_clusters()["clusterArns"]:
        arns = ecs.list_services(cluster=cluster_arn)["serviceArns"]
        services = ecs.describe_services(cluster=cluster_arn, services=arns)["services"] if arns else []
        problems += _dupes("ecs service per name", [s["serviceName"] for s in services if s["status"] == "ACTIVE"])

    secrets = _client("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"]
    problems += _dupes("secret per name", [s["Name"] for s in secrets])
    problems += [f"secret pending deletion: {s['Name']}" for s in secrets if s.get("DeletedDate")]
    queues = _client("sqs").list_queues().get("QueueUrls", [])
    problems += _dupes("sqs queue per name", [q.rsplit("/", 1)[-1] for q in queues])

    if prefect_deployments is not None:
        problems += _dupes("prefect deployment per (flow, name)", [(d["flow_id"], d["name"]) for d in prefect_deployments])
    return problems


def census() -> dict[str, int]:
    """How many of each resource kind exist (printed next to a duplicate check, for the report)."""
    ec2 = _client("ec2")
    return {
        "vpc": sum(not v.get("IsDefault") for v in ec2.describe_vpcs()["Vpcs"]),
        "nat": sum(n["State"] not in ("deleted", "deleting", "failed") for n in ec2.describe_nat_gateways()["NatGateways"]),
        "eip": len(ec2.describe_addresses()["Addresses"]),
        "target_group": len(_client("elbv2").describe_target_groups()["TargetGroups"]),
        "task_definition": len(_client("ecs").list_task_definitions(status="ACTIVE")["taskDefinitionArns"]),
        "secret": len(_client("secretsmanager").list_secrets()["SecretList"]),
        "sqs_queue": len(_client("sqs").list_queues().get("QueueUrls", [])),
    }


def main() -> int:
    problems = find_duplicates()
    for line in problems:
        print(line)
    print(f"{len(problems)} duplicate or orphan resource(s); census {census()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
