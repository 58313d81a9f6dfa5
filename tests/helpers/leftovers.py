"""List every AWS resource site.yml can create that still exists (the default VPC aside).

Used after teardown against the emulator: `python -m tests.helpers.leftovers` prints one line per
leftover and exits 1 when there is any. Endpoint and credentials come from the standard AWS
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]


def _client(service: str):
    return boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def find_leftovers() -> list[str]:
    ec2 = _client("ec2")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]}
    found: list[str] = []

    def add(kind: str, ident: str, detail: str = "") -> None:
        found.append(f"{kind:<22} {ident} {detail}".rstrip())

    for vpc in ec2.describe_vpcs()["Vpcs"]:
        if vpc["VpcId"] not in default_vpcs:
            add("vpc", vpc["VpcId"], vpc.get("CidrBlock", ""))
    for subnet in ec2.describe_subnets()["Subnets"]:
        if subnet["VpcId"] not in default_vpcs:
            add("subnet", subnet["SubnetId"], subnet["CidrBlock"])
    for table in ec2.describe_route_tables()["RouteTables"]:
        if table["VpcId"] not in default_vpcs:
            add("route table", table["RouteTableId"])
    for igw in ec2.describe_internet_gateways()["InternetGateways"]:
        if not {a["VpcId"] for a in igw.get("Attachments", [])} & default_vpcs:
            add("internet gateway", igw["InternetGatewayId"])
    for nat in ec2.describe_nat_gateways()["NatGateways"]:
        if nat["State"] != "deleted":
            add("nat gateway", nat["NatGatewayId"], nat["State"])
    for address in ec2.describe_addresses()["Addresses"]:
        add("elastic ip", address.get("AllocationId", address.get("PublicIp", "?")))
    for endpoint in ec2.describe_vpc_endpoints()["VpcEndpoints"]:
        if endpoint["State"].lower() != "deleted":
            add("vpc endpoint", endpoint["VpcEndpointId"], endpoint["ServiceName"])
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if group["VpcId"] not in default_vpcs and group["GroupName"] != "default":
            add("security group", group["GroupId"], group["GroupName"])
        elif group["VpcId"] not in default_vpcs:
            add("security group", group["GroupId"], "default group of a non-default VPC")

    elbv2 = _client("elbv2")
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        add("load balancer", lb["LoadBalancerName"])
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        add("target group", tg["TargetGroupName"])

    for repo in _client("ecr").describe_repositories()["repositories"]:
        add("ecr repository", repo["repositoryName"])
    for bucket in _client("s3").list_buckets().get("Buckets", []):
        add("s3 bucket", bucket["Name"])

    ecs = _client("ecs")
    cluster_arns = ecs.list_clusters()["clusterArns"]
    for cluster in ecs.describe_clusters(clusters=cluster_arns)["clusters"] if cluster_arns else []:
        if cluster["status"] != "INACTIVE":
            add("ecs cluster", cluster["clusterName"], cluster["status"])
        service_arns = ecs.list_services(cluster=cluster["clusterArn"])["serviceArns"]
        for service in ecs.describe_services(cluster=cluster["clusterArn"], services=service_arns)["services"] if service_arns else []:
            if service["status"] != "INACTIVE":
                add("ecs service", service["serviceName"], service["status"])
    for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        add("task definition", arn.rsplit("/", 1)[-1], "ACTIVE")

    sqs = _client("sqs")
    for url in sqs.list_queues().get("QueueUrls", []):
        add("sqs queue", url.rsplit("/", 1)[-1])
    events = _client("events")
    for rule in events.list_rules().get("Rules", []):
        if not rule["Name"].startswith("AutoScalingManagedRule"):
            add("eventbridge rule", rule["Name"])

    iam = _client("iam")
    for role in iam.list_roles()["Roles"]:
        if not role["Path"].startswith("/aws-service-role/"):
            add("iam role", role["RoleName"])
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        add("iam policy", policy["PolicyName"])
    for group in _client("logs").describe_log_groups()["logGroups"]:
        add("log group", group["logGroupName"])
    for secret in _client("secretsmanager").list_secrets()["SecretList"]:
        add("secret", secret["Name"])
    for parameter in _client("ssm").describe_parameters()["Parameters"]:  # the stack lock
        add("ssm parameter", parameter["Name"])
    autoscaling = _client("application-autoscaling")  # worker_autoscaling
    for target in autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]:
        add("scalable target", target["ResourceId"])
    for policy in autoscaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]:
        add("scaling policy", policy["PolicyName"], policy["ResourceId"])
    for alarm in _client("cloudwatch").describe_alarms()["MetricAlarms"]:  # a target-tracking policy's
        add("cloudwatch alarm", alarm["AlarmName"])
    rds = _client("rds")  # prefect_server (prefect_server_mode: hosted): the database, its subnet group, snapshots
    for database in rds.describe_db_instances()["DBInstances"]:
        add("rds instance", database["DBInstanceIdentifier"], database["DBInstanceStatus"])
    for group in rds.describe_db_subnet_groups()["DBSubnetGroups"]:
        add("db subnet group", group["DBSubnetGroupName"])
    for snapshot in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]:
        add("db snapshot", snapshot["DBSnapshotIdentifier"])
    return found


def local_postgres_leftovers() -> list[str]:
    """The roles and databases moto's RDS patch made on the local stack's PostgreSQL (scripts/moto_patches_rds.py)
    that still exist: deleting an RDS postgres instance drops them. The instance (ports, state folder) is the
    one the LOCAL_STACK_* / *_PORT variables name, as for scripts/local_stack.py."""
    spec = importlib.util.spec_from_file_location("local_stack", REPO / "scripts" / "local_stack.py")
    stack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = stack  # its dataclasses look their module up there
    spec.loader.exec_module(stack)
    sys.path.insert(0, str(REPO))
    from scripts import moto_patches_rds

    catalog = moto_patches_rds.LocalPostgres.from_env(stack.postgres_env()).catalog()
    return [f"{'postgres ' + kind[:-1]:<22} {name} {owner}" for kind, names in catalog.items()
            for name, owner in sorted(names.items()) if owner]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--local-postgres", action="store_true",
                        help="also list what RDS instances left on the local stack's PostgreSQL server")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="list only the leftovers whose line contains TEXT (repeatable: any of them)")
    args = parser.parse_args()
    leftovers = find_leftovers() + (local_postgres_leftovers() if args.local_postgres else [])
    if args.only:
        leftovers = [line for line in leftovers if any(text in line for text in args.only)]
    for line in leftovers:
        print(line)
    print(f"{len(leftovers)} leftover resource(s)")
    return 1 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
