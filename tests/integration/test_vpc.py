"""Role `vpc` against the local stack: check mode, create, idempotence, read-only check, delete, bad input."""

from __future__ import annotations

import time
from types import SimpleNamespace

import boto3
import pytest

from tests.helpers.stack import failure_messages

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/vpc.yml"
NAME = "prefect-elt-vpc-test"  # vpc_name set by the playbook
TAGS = {"Project": "prefect-elt", "Environment": "local", "ManagedBy": "ansible"}


def ec2():
    from tests.helpers.stack import moto_url

    return boto3.client("ec2", endpoint_url=moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def tags(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def run(stack, extra=None, check=False):
    """Run the playbook while recording moto; return the run, every call and the write calls."""
    recorder = stack.MotoRecorder().start()
    started = time.monotonic()
    result = stack.run_playbook(PLAYBOOK, extra_vars=extra, check=check)
    calls = recorder.calls()
    return SimpleNamespace(run=result, calls=calls, writes=[c for c in calls if c.deployer_write],
                           seconds=round(time.monotonic() - started, 1))


def leftovers(client) -> dict:
    """Every VPC-related resource outside the default VPC (moto starts with one)."""
    default_vpcs = {v["VpcId"] for v in client.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    out = {
        "vpcs": [v["VpcId"] for v in client.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs],
        "subnets": [s["SubnetId"] for s in client.describe_subnets()["Subnets"] if s["VpcId"] not in default_vpcs],
        "route_tables": [r["RouteTableId"] for r in client.describe_route_tables()["RouteTables"]
                         if r["VpcId"] not in default_vpcs],
        "igws": [i["InternetGatewayId"] for i in client.describe_internet_gateways()["InternetGateways"]
                 if not {a["VpcId"] for a in i.get("Attachments", [])} & default_vpcs],
        "nat_gateways": [n["NatGatewayId"] for n in client.describe_nat_gateways()["NatGateways"]
                         if n["State"] not in ("deleted", "deleting")],
        "eips": [a["AllocationId"] for a in client.describe_addresses()["Addresses"]],
        "endpoints": [e["VpcEndpointId"] for e in client.describe_vpc_endpoints()["VpcEndpoints"]
                      if e["State"].lower() not in ("deleted", "deleting")],
        "security_groups": [g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]
                            if g["VpcId"] not in default_vpcs],
    }
    return {k: v for k, v in out.items() if v}


@pytest.fixture(scope="module")
def stack_runs(local_stack):
    """One deployed network shared by the module: check (empty) -> create -> converge -> check (deployed)."""
    local_stack.reset_moto()
    runs = SimpleNamespace()
    runs.check_empty = run(local_stack, check=True)
    runs.create = run(local_stack)
    runs.converge = run(local_stack)
    runs.check_deployed = run(local_stack, check=True)
    return runs


def test_check_mode_on_empty_account_predicts_and_writes_nothing(stack_runs):
    r = stack_runs.check_empty
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    assert r.writes == []
    assert [name.split(" : ")[-1] for name in r.run.changed_tasks] == ["Create the VPC"]


def test_create_builds_the_private_layout(stack_runs):
    r = stack_runs.create
    assert r.run.rc == 0, r.run.failed_messages or r.run.stderr
    client = ec2()
    vpc_id = r.run.facts("vpc__vpc_id")
    vpc = client.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.20.0.0/16"
    assert tags(vpc) == {**TAGS, "Name": NAME}
    assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]
    assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]

    azs = r.run.facts("vpc__azs")
    public, private = r.run.facts("vpc__public_subnet_ids"), r.run.facts("vpc__private_subnet_ids")
    assert len(azs) == 2 and len(set(azs)) == 2
    subnets = {s["SubnetId"]: s for s in client.describe_subnets(SubnetIds=public + private)["Subnets"]}
    assert [subnets[s]["AvailabilityZone"] for s in public] == azs
    assert [subnets[s]["AvailabilityZone"] for s in private] == azs
    assert [subnets[s]["CidrBlock"] for s in public + private] == ["10.20.0.0/20", "10.20.16.0/20",
                                                                   "10.20.32.0/20", "10.20.48.0/20"]
    assert all(tags(s).items() >= TAGS.items() for s in subnets.values())
    assert r.run.facts("vpc__task_subnet_ids") == private
    assert r.run.facts("vpc__assign_public_ip") is False

    igw = client.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
    assert len(igw) == 1 and tags(igw[0])["Name"] == f"{NAME}-igw"
    igw_id = igw[0]["InternetGatewayId"]

    nats = [n for n in client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
            if n["State"] == "available"]
    assert len(nats) == 1, "vpc_nat_gateways=single makes one NAT"
    nat = nats[0]
    assert nat["SubnetId"] == public[0]
    assert tags(nat) == {**TAGS, "Name": f"{NAME}-nat-{azs[0]}"}
    eip = client.describe_addresses(AllocationIds=[nat["NatGatewayAddresses"][0]["AllocationId"]])["Addresses"][0]
    assert tags(eip) == {**TAGS, "Name": f"{NAME}-nat-{azs[0]}"}

    rts = {rt["RouteTableId"]: rt for rt in client.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}
    def default_route(rt):
        return next(r for r in rt["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
    def subnets_of(rt):
        return sorted(a["SubnetId"] for a in rt["Associations"] if a.get("SubnetId"))
    public_rt = next(rt for rt in rts.values() if tags(rt).get("Name") == f"{NAME}-public")
    assert default_route(public_rt)["GatewayId"] == igw_id
    assert subnets_of(public_rt) == sorted(public)
    private_rt_ids = r.run.facts("vpc__private_route_table_ids")
    assert len(private_rt_ids) == 2
    for rt_id, subnet_id in zip(private_rt_ids, private):
        assert default_route(rts[rt_id])["NatGatewayId"] == nat["NatGatewayId"]
        assert subnets_of(rts[rt_id]) == [subnet_id]

    endpoints = client.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    assert len(endpoints) == 1
    assert endpoints[0]["ServiceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoints[0]["VpcEndpointType"] == "Gateway"
    assert sorted(endpoints[0]["RouteTableIds"]) == sorted(private_rt_ids)
    assert r.run.facts("vpc__s3_endpoint_id") == endpoints[0]["VpcEndpointId"]


def test_second_run_changes_nothing(stack_runs):
    r = stack_runs.converge
    assert r.run.rc == 0, r.run.failed_messages
    assert r.run.changed_tasks == []
    assert r.writes == [], [c.action for c in r.writes]
    assert r.run.facts("vpc__vpc_id") == stack_runs.create.run.facts("vpc__vpc_id")


def test_check_mode_on_deployed_stack_is_read_only_and_complete(stack_runs):
    r = stack_runs.check_deployed
    assert r.run.rc == 0, r.run.failed_messages
    assert r.writes == [], [c.action for c in r.writes]
    assert r.run.changed_tasks == []
    for fact in ("vpc__vpc_id", "vpc__public_subnet_ids", "vpc__private_subnet_ids", "vpc__private_route_table_ids"):
        assert r.run.facts(fact) == stack_runs.create.run.facts(fact), fact


# The route tables are written by jobs started in parallel; their collection reports what they changed.
DRIFTED_TASKS = {"vpc : Create the VPC", "vpc : Create the subnets", "vpc : Create the internet gateway",
                 "vpc : Wait for the route tables", "vpc : Create the NAT gateways",
                 "vpc : Create the S3 gateway endpoint"}


def test_drift_behind_the_stacks_back_is_reported_in_check_mode_and_repaired(stack_runs, local_stack):
    """The role reads the network in one process and writes only what differs: every kind of drift must
    still reach its stock write task (changed in check mode without a write, repaired by the next run)."""
    client = ec2()
    vpc_id = stack_runs.create.run.facts("vpc__vpc_id")
    public_ids = stack_runs.create.run.facts("vpc__public_subnet_ids")
    private_ids = stack_runs.create.run.facts("vpc__private_subnet_ids")
    client.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    client.modify_subnet_attribute(SubnetId=public_ids[0], MapPublicIpOnLaunch={"Value": True})
    client.delete_tags(Resources=[private_ids[1]], Tags=[{"Key": "Tier"}])
    igw = client.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"][0]
    client.create_tags(Resources=[igw["InternetGatewayId"]], Tags=[{"Key": "Rogue", "Value": "1"}])
    tables = {tags(t).get("Name"): t for t in client.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}
    client.delete_route(RouteTableId=tables[f"{NAME}-public"]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    private_rt = tables[f"{NAME}-private-us-east-1b"]
    client.disassociate_route_table(AssociationId=[a for a in private_rt["Associations"] if a.get("SubnetId")][0]["RouteTableAssociationId"])
    nat = [n for n in client.describe_nat_gateways()["NatGateways"] if n["State"] == "available"][0]
    client.delete_tags(Resources=[nat["NatGatewayId"]], Tags=[{"Key": "Name"}])
    endpoint = client.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"][0]
    client.create_tags(Resources=[endpoint["VpcEndpointId"]], Tags=[{"Key": "Rogue", "Value": "1"}])

    check = run(local_stack, check=True)
    assert check.run.rc == 0, check.run.failed_messages
    assert check.writes == [], [c.action for c in check.writes]
    assert set(check.run.changed_tasks) == DRIFTED_TASKS

    repair = run(local_stack)
    assert repair.run.rc == 0, repair.run.failed_messages
    assert set(repair.run.changed_tasks) == DRIFTED_TASKS
    assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    subnets = {s["SubnetId"]: s for s in client.describe_subnets(SubnetIds=public_ids + private_ids)["Subnets"]}
    assert not subnets[public_ids[0]]["MapPublicIpOnLaunch"]
    assert tags(subnets[private_ids[1]])["Tier"] == "private"
    tables = {tags(t).get("Name"): t for t in client.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId") == igw["InternetGatewayId"]
               for r in tables[f"{NAME}-public"]["Routes"])
    assert [a["SubnetId"] for a in tables[f"{NAME}-private-us-east-1b"]["Associations"] if a.get("SubnetId")] == [private_ids[1]]
    assert repair.run.facts("vpc__vpc_id") == vpc_id
    assert repair.run.facts("vpc__private_route_table_ids") == stack_runs.create.run.facts("vpc__private_route_table_ids")

    again = run(local_stack)
    assert again.run.rc == 0, again.run.failed_messages
    assert again.run.changed_tasks == []
    assert again.writes == []


def test_delete_removes_everything_and_is_idempotent(stack_runs, local_stack):
    # Something another role might have left behind: a security group in the VPC.
    client = ec2()
    client.create_security_group(GroupName="left-behind", Description="x",
                                 VpcId=stack_runs.create.run.facts("vpc__vpc_id"))
    first = run(local_stack, {"vpc_state": "absent"})
    assert first.run.rc == 0, first.run.failed_messages
    assert leftovers(client) == {}
    second = run(local_stack, {"vpc_state": "absent"})
    assert second.run.rc == 0, second.run.failed_messages
    assert second.run.changed_tasks == []
    assert second.writes == []


def set_nat_unknown_delay(seconds: float) -> None:
    """EC2's eventual consistency, held by the emulator: a new NAT gateway's id is unknown to route writes
    for this long (scripts/moto_patches_delays.py, nat_gateway_route_consistency)."""
    import json
    import urllib.request

    from tests.helpers.stack import moto_url

    request = urllib.request.Request(moto_url() + "/_local_stack/delays", method="POST",
                                     data=json.dumps({"nat_unknown": seconds}).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["nat_unknown"] == seconds


@pytest.mark.slow
def test_per_az_nat_then_back_to_single(local_stack):
    extra = {"vpc_name": "prefect-elt-vpc-az", "vpc_cidr": "10.30.0.0/16", "vpc_nat_gateways": "per_az"}
    client = ec2()
    try:
        # Both new gateways are unknown to EC2's route writes for 3 s: the route tables started right after
        # them fail with InvalidNatGatewayID.NotFound and are written again once EC2 knows the gateways.
        set_nat_unknown_delay(3)
        created = run(local_stack, extra)
        set_nat_unknown_delay(0)
        assert created.run.rc == 0, created.run.failed_messages
        assert "vpc : Create the private route tables whose NAT gateway EC2 did not know yet" in created.run.changed_tasks
        vpc_id = created.run.facts("vpc__vpc_id")
        nats = client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                     {"Name": "state", "Values": ["available"]}])["NatGateways"]
        assert sorted(n["SubnetId"] for n in nats) == sorted(created.run.facts("vpc__public_subnet_ids"))
        rts = client.describe_route_tables(RouteTableIds=created.run.facts("vpc__private_route_table_ids"))["RouteTables"]
        targets = {next(r["NatGatewayId"] for r in rt["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
                   for rt in rts}
        assert len(targets) == 2, "each private subnet uses the NAT of its own AZ"

        single = run(local_stack, {**extra, "vpc_nat_gateways": "single"})
        assert single.run.rc == 0, single.run.failed_messages
        nats = client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                     {"Name": "state", "Values": ["available", "pending"]}])["NatGateways"]
        assert len(nats) == 1
        assert len(client.describe_addresses()["Addresses"]) == 1, "the second NAT's EIP is released"
    finally:
        set_nat_unknown_delay(0)
        gone = run(local_stack, {**extra, "vpc_state": "absent"})
        assert gone.run.rc == 0, gone.run.failed_messages
    assert leftovers(client) == {}


@pytest.mark.slow
def test_public_layout_has_no_nat_and_public_task_subnets(local_stack):
    extra = {"vpc_name": "prefect-elt-vpc-pub", "vpc_cidr": "10.40.0.0/16", "vpc_layout": "public",
             "vpc_nat_gateways": "none", "vpc_azs": ["us-east-1b", "us-east-1c"]}
    client = ec2()
    try:
        created = run(local_stack, extra)
        assert created.run.rc == 0, created.run.failed_messages
        vpc_id = created.run.facts("vpc__vpc_id")
        assert created.run.facts("vpc__azs") == ["us-east-1b", "us-east-1c"]
        assert created.run.facts("vpc__private_subnet_ids") == []
        assert created.run.facts("vpc__task_subnet_ids") == created.run.facts("vpc__public_subnet_ids")
        assert created.run.facts("vpc__assign_public_ip") is True
        assert client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"] == []
        assert len(client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]) == 2
        again = run(local_stack, extra)
        assert again.run.changed_tasks == []
    finally:
        gone = run(local_stack, {**extra, "vpc_state": "absent"})
        assert gone.run.rc == 0, gone.run.failed_messages
    assert leftovers(client) == {}


@pytest.mark.parametrize("extra, variable", [
    ({"vpc_cidr": "10.20.0.300/16"}, "vpc_cidr"),
    ({"vpc_cidr": "10.20.0.7/16"}, "vpc_cidr"),
    ({"vpc_public_subnet_cidrs": ["10.20.0.0/20", "10.99.0.0/20"]}, "vpc_public_subnet_cidrs"),
    ({"vpc_private_subnet_cidrs": ["10.20.0.0/20", "10.20.64.0/20"]}, "vpc_private_subnet_cidrs"),
    ({"vpc_azs": ["us-east-1a"]}, "vpc_azs"),
    ({"vpc_azs": ["us-east-1a", "us-east-1a"]}, "vpc_azs"),
    ({"vpc_layout": "public", "vpc_nat_gateways": "single"}, "vpc_nat_gateways"),
    ({"vpc_layout": "private", "vpc_nat_gateways": "none"}, "vpc_nat_gateways"),
    ({"vpc_cidr": "10.20.0.0/26", "vpc_subnet_newbits": 4}, "vpc_subnet_newbits"),
], ids=["cidr-unparsable", "cidr-host-bits", "subnet-outside-vpc", "subnets-overlap", "one-az", "duplicate-az",
        "public-with-nat", "private-without-nat", "subnets-too-small"])
def test_bad_input_fails_in_validation_without_aws_writes(local_stack, extra, variable):
    r = run(local_stack, extra)
    assert r.run.rc != 0
    messages = failure_messages(r.run)
    assert variable in messages, messages
    assert r.writes == []
    assert not any(c.action.startswith("Describe") for c in r.calls), "validation happens before any AWS call"
