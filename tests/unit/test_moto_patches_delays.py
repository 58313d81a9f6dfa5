"""The pending delays of the local stack's moto patch layer (scripts/moto_patches_delays.py): a NAT gateway
stays `pending`, a load balancer `provisioning`, a service deployment IN_PROGRESS for the configured time;
0 (the default) leaves moto as it is. moto runs in-process (`mock_aws`), no server."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws

from scripts import moto_patches, moto_patches_delays
from tests.helpers.moto_testing import fake_aws_env


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    fake_aws_env(monkeypatch)
    for name in moto_patches_delays.ENV.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(moto_patches_delays, "_OVERRIDES", {})
    with mock_aws():
        yield


def _subnet(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return vpc, [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
                 for i, az in enumerate("ab")]


def _nat_state(ec2):
    _, subnets = _subnet(ec2)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)["NatGateway"]["NatGatewayId"]
    return lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]


def test_without_a_delay_a_nat_gateway_is_available_at_once(patched):
    patched("nat_gateway_pending_delay")
    assert _nat_state(boto3.client("ec2"))() == "available"


def test_nat_gateway_stays_pending_for_the_delay(patched, monkeypatch):
    patched("nat_gateway_pending_delay")
    monkeypatch.setenv("LOCAL_STACK_DELAY_NAT_S", "0.6")
    ec2 = boto3.client("ec2")
    state = _nat_state(ec2)
    assert state() == "pending"
    pending = ec2.describe_nat_gateways(Filter=[{"Name": "state", "Values": ["pending"]}])["NatGateways"]
    assert len(pending) == 1  # the state filter sees it too (the vpc role looks NATs up by state)
    time.sleep(0.7)
    assert state() == "available"


def _load_balancer_state(elb, ec2):
    vpc, subnets = _subnet(ec2)
    arn = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    return lambda: elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]["State"]["Code"]


def test_without_a_delay_a_load_balancer_is_active_when_described(patched):
    patched("elbv2_provisioning_delay")
    assert _load_balancer_state(boto3.client("elbv2"), boto3.client("ec2"))() == "active"


def test_load_balancer_stays_provisioning_for_the_delay(patched):
    patched("elbv2_provisioning_delay")
    assert moto_patches_delays.set_delays({"alb": 0.6}) == (200, {"nat": 0.0, "alb": 0.6, "service": 0.0, "nat_unknown": 0.0})
    state = _load_balancer_state(boto3.client("elbv2"), boto3.client("ec2"))
    assert state() == "provisioning"
    time.sleep(0.7)
    assert state() == "active"


def test_service_deployment_may_complete_only_after_the_delay(patched):
    assert moto_patches._deployment_may_complete({"id": "d1"})  # unpatched: the scheduler decides alone
    patched("ecs_service_deployment_delay")
    moto_patches_delays.set_delays({"service": 0.5})
    assert not moto_patches._deployment_may_complete({"id": "d1"})
    time.sleep(0.6)
    assert moto_patches._deployment_may_complete({"id": "d1"})
    moto_patches_delays.set_delays({"service": 0})
    assert moto_patches._deployment_may_complete({"id": "d2"})


def test_bad_delay_is_refused():
    assert moto_patches_delays.set_delays({"nat": "soon"})[0] == 400


def test_delays_are_part_of_the_patch_layer():
    assert set(moto_patches_delays.PATCHES) <= set(moto_patches.PATCHES)


def test_targets_report_initial_while_their_load_balancer_provisions(patched):
    patched("elbv2_provisioning_delay")
    patched("elbv2_targets_initial_while_provisioning")
    moto_patches_delays.set_delays({"alb": 0.6})
    elb, ec2 = boto3.client("elbv2"), boto3.client("ec2")
    vpc, subnets = _subnet(ec2)
    tg = elb.create_target_group(Name="tg", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    lb = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.0.10", "Port": 8080}])

    def states():
        return [d["TargetHealth"]["State"] for d in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]]
    assert states() == ["initial"]
    time.sleep(0.7)
    assert states() != ["initial"]


def test_a_route_to_a_nat_gateway_ec2_does_not_know_is_refused_as_on_aws(patched):
    patched("nat_gateway_route_consistency")
    ec2 = boto3.client("ec2")
    vpc, subnets = _subnet(ec2)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    with pytest.raises(ec2.exceptions.ClientError, match="InvalidNatGatewayID.NotFound"):
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId="nat-0123456789abcdef0")
    moto_patches_delays.set_delays({"nat_unknown": 0.6})  # EC2's eventual consistency: a new id is unknown a while
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)["NatGateway"]["NatGatewayId"]
    with pytest.raises(ec2.exceptions.ClientError, match="InvalidNatGatewayID.NotFound"):
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    time.sleep(0.7)
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    with pytest.raises(ec2.exceptions.ClientError, match="InvalidNatGatewayID.NotFound"):  # ReplaceRoute too
        ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId="nat-0123456789abcdef0")
    ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    assert [r["NatGatewayId"] for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"] == [nat]
