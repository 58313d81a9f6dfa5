"""Readers of dataops.prefect_fargate.stack_state_info against moto in-process (no server).

The roles skip a stock write module when its reader says `in_sync`, so a reader must never call
something in sync that the module would change: every drift below must come out of sync, and only it.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_iam import read_iam
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_vpc import read_vpc

TAGS = {"Project": "p", "Environment": "t"}
NAME = "stack"


class Client:
    """A boto3 client as AnsibleAWSModule hands it out (accepts aws_retry=)."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name == "get_paginator":
            return attr
        return lambda *a, aws_retry=None, **kw: attr(*a, **kw)


def _tag_list(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


SPEC = {"name": NAME, "cidr": "10.9.0.0/16", "tags": TAGS, "region": "us-east-1", "layout": "public",
        "nat_gateways": "single", "azs": ["us-east-1a", "us-east-1b"], "s3_endpoint": False,
        "subnets": [{"name": f"{NAME}-public-us-east-1a", "cidr": "10.9.0.0/20", "az": "us-east-1a", "tier": "public"},
                    {"name": f"{NAME}-public-us-east-1b", "cidr": "10.9.16.0/20", "az": "us-east-1b", "tier": "public"}]}


def build_public_network(ec2):
    """What roles/vpc makes for SPEC (public layout, no S3 endpoint)."""
    vpc = ec2.create_vpc(CidrBlock=SPEC["cidr"], TagSpecifications=[
        {"ResourceType": "vpc", "Tags": _tag_list(dict(TAGS, Name=NAME))}])["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = []
    for s in SPEC["subnets"]:
        subnets.append(ec2.create_subnet(VpcId=vpc, CidrBlock=s["cidr"], AvailabilityZone=s["az"], TagSpecifications=[
            {"ResourceType": "subnet", "Tags": _tag_list(dict(TAGS, Name=s["name"], Tier="public"))}])["Subnet"]["SubnetId"])
    igw = ec2.create_internet_gateway(TagSpecifications=[
        {"ResourceType": "internet-gateway", "Tags": _tag_list(dict(TAGS, Name=f"{NAME}-igw"))}])["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=[
        {"ResourceType": "route-table", "Tags": _tag_list(dict(TAGS, Name=f"{NAME}-public", Tier="public"))}])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    for subnet in subnets:
        ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
    return {"vpc": vpc, "subnets": subnets, "igw": igw, "rt": rt}


def test_vpc_reader_on_an_empty_account_finds_nothing_in_sync(aws):
    state = read_vpc(Client(boto3.client("ec2")), SPEC)
    assert not state["in_sync"]
    assert state["vpc"] == {"id": "", "in_sync": False, "why": f"no VPC named {NAME} with CIDR 10.9.0.0/16"}
    assert not any(s["in_sync"] for s in state["subnets"].values())


def test_vpc_reader_finds_the_converged_network_in_sync(aws):
    ec2 = boto3.client("ec2")
    ids = build_public_network(ec2)
    state = read_vpc(Client(ec2), SPEC)
    assert state["in_sync"], state
    assert state["vpc"]["id"] == ids["vpc"]
    assert [state["subnets"][s["name"]]["id"] for s in SPEC["subnets"]] == ids["subnets"]
    assert state["internet_gateway"]["id"] == ids["igw"]
    assert state["public_route_table"]["id"] == ids["rt"]


@pytest.mark.parametrize("with_vpc", [False, True], ids=["no-vpc-yet", "vpc-without-gateway"])
def test_vpc_reader_lists_a_detached_gateway_of_the_stack_for_adoption(aws, with_vpc):
    """A run stopped between ec2_vpc_igw's create and attach leaves a tagged, detached gateway: the reader
    names it (the role then attaches it instead of making a second one); someone else's gateway is not named."""
    ec2 = boto3.client("ec2")
    if with_vpc:
        ec2.create_vpc(CidrBlock=SPEC["cidr"], TagSpecifications=[{"ResourceType": "vpc", "Tags": _tag_list(dict(TAGS, Name=NAME))}])
    mine = ec2.create_internet_gateway(TagSpecifications=[
        {"ResourceType": "internet-gateway", "Tags": _tag_list(dict(TAGS, Name=f"{NAME}-igw"))}])["InternetGateway"]["InternetGatewayId"]
    ec2.create_internet_gateway(TagSpecifications=[
        {"ResourceType": "internet-gateway", "Tags": _tag_list({"Project": "other", "Name": f"{NAME}-igw"})}])
    state = read_vpc(Client(ec2), SPEC)
    assert state["internet_gateway"]["in_sync"] is False
    assert state["internet_gateway"]["detached"] == [mine]


@pytest.mark.parametrize("drift, out_of_sync", [
    (lambda ec2, ids: ec2.modify_vpc_attribute(VpcId=ids["vpc"], EnableDnsHostnames={"Value": False}), "vpc"),
    (lambda ec2, ids: ec2.create_tags(Resources=[ids["vpc"]], Tags=[{"Key": "Extra", "Value": "1"}]), "vpc"),
    (lambda ec2, ids: ec2.modify_subnet_attribute(SubnetId=ids["subnets"][1], MapPublicIpOnLaunch={"Value": True}), "subnet"),
    (lambda ec2, ids: ec2.delete_tags(Resources=[ids["subnets"][1]], Tags=[{"Key": "Tier"}]), "subnet"),
    (lambda ec2, ids: ec2.create_tags(Resources=[ids["igw"]], Tags=[{"Key": "Name", "Value": "other"}]), "internet_gateway"),
    (lambda ec2, ids: ec2.delete_route(RouteTableId=ids["rt"], DestinationCidrBlock="0.0.0.0/0"), "public_route_table"),
    (lambda ec2, ids: ec2.create_route(RouteTableId=ids["rt"], DestinationCidrBlock="192.168.0.0/16", GatewayId=ids["igw"]),
     "public_route_table"),
    (lambda ec2, ids: ec2.disassociate_route_table(AssociationId=[
        a["RouteTableAssociationId"] for a in ec2.describe_route_tables(RouteTableIds=[ids["rt"]])["RouteTables"][0]["Associations"]
        if a.get("SubnetId") == ids["subnets"][0]][0]), "public_route_table"),
])
def test_vpc_reader_reports_each_drift_on_its_resource_only(aws, drift, out_of_sync):
    ec2 = boto3.client("ec2")
    ids = build_public_network(ec2)
    drift(ec2, ids)
    state = read_vpc(Client(ec2), SPEC)
    flags = {"vpc": state["vpc"]["in_sync"], "internet_gateway": state["internet_gateway"]["in_sync"],
             "public_route_table": state["public_route_table"]["in_sync"],
             "subnet": all(s["in_sync"] for s in state["subnets"].values())}
    assert {k for k, v in flags.items() if not v} == {out_of_sync}
    assert not state["in_sync"]


TRUST = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}
MANAGED = "arn:aws:iam::123456789012:policy/m"  # moto's default account


def iam_spec(**overrides):
    role = {"name": "r1", "description": "d", "assume_role_policy_document": json.dumps(TRUST), "managed_policies": [MANAGED],
            "tags": dict(TAGS, Name="r1"), "inline_policies": {"p": json.dumps(POLICY)}}
    role.update(overrides)
    return {"roles": [role], "path_prefix": "/flows/"}


def build_role(iam):
    iam.create_role(RoleName="r1", Path="/flows/", Description="d", AssumeRolePolicyDocument=json.dumps(TRUST),
                    Tags=_tag_list(dict(TAGS, Name="r1")))
    iam.create_policy(PolicyName="m", PolicyDocument=json.dumps(POLICY))
    iam.attach_role_policy(RoleName="r1", PolicyArn=MANAGED)
    iam.put_role_policy(RoleName="r1", PolicyName="p", PolicyDocument=json.dumps(POLICY))


def test_iam_reader_missing_role(aws):
    state = read_iam(Client(boto3.client("iam")), iam_spec())
    assert state["roles"]["r1"]["exists"] is False
    assert not state["in_sync"] and not state["roles"]["r1"]["policies_in_sync"]
    assert state["path_roles"] == []


def test_iam_reader_converged_role_is_in_sync(aws):
    iam = boto3.client("iam")
    build_role(iam)
    state = read_iam(Client(iam), iam_spec())
    assert state["in_sync"], state
    assert state["path_roles"] == ["r1"]
    # The same documents in another key order and spacing are the same policy (compare_policies).
    reordered = {"Statement": POLICY["Statement"], "Version": "2012-10-17"}
    assert read_iam(Client(iam), iam_spec(inline_policies={"p": reordered}))["in_sync"]


@pytest.mark.parametrize("change, role_in_sync, policy_in_sync", [
    ({"description": "other"}, False, True),
    ({"tags": dict(TAGS, Name="r1", Extra="1")}, False, True),
    ({"managed_policies": []}, False, True),
    ({"assume_role_policy_document": json.dumps({**TRUST, "Statement": [{**TRUST["Statement"][0], "Action": "sts:TagSession"}]})},
     False, True),
    ({"inline_policies": {"p": json.dumps({**POLICY, "Statement": [{**POLICY["Statement"][0], "Action": "s3:PutObject"}]})}},
     True, False),
    ({"inline_policies": {"p": json.dumps(POLICY), "q": json.dumps(POLICY)}}, True, False),
])
def test_iam_reader_reports_what_differs(aws, change, role_in_sync, policy_in_sync):
    iam = boto3.client("iam")
    build_role(iam)
    state = read_iam(Client(iam), iam_spec(**change))
    role = state["roles"]["r1"]
    assert (role["in_sync"], role["policies_in_sync"]) == (role_in_sync, policy_in_sync), role
    assert not state["in_sync"]
