"""Readers of dataops.prefect_fargate.stack_state_info against moto in-process (no server).

The roles skip a stock write module when its reader says `in_sync`, so a reader must never call
something in sync that the module would change: every drift below must come out of sync, and only it.
"""

from __future__ import annotations

import json

import boto3
from botocore.exceptions import ClientError
import pytest
from moto import mock_aws

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_alb import read_alb, wanted_rules
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_ecs import read_ecs_agent, read_queue, read_secret
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_iam import read_iam
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_s3 import lifecycle_rule, read_s3
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_server import read_server
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_vpc import read_vpc

from tests.helpers.module_runner import Client, run_module

TAGS = {"Project": "p", "Environment": "t"}
NAME = "stack"


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


def test_vpc_reader_reads_the_nat_elastic_ips_only_for_a_nat_gateway_still_to_make(aws):
    """The role allocates a tagged elastic IP, then makes the NAT gateway: a run stopped in between leaves the IP,
    which the reader names for adoption. Once the gateway exists the IPs are not read at all."""
    ec2 = boto3.client("ec2")
    ids = build_public_network(ec2)
    private = dict(SPEC, layout="private", nat_gateways="single",
                   subnets=SPEC["subnets"] + [{"name": f"{NAME}-private-us-east-1a", "cidr": "10.9.128.0/20", "az": "us-east-1a",
                                               "tier": "private"}])
    mine = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": _tag_list(dict(TAGS, Name=f"{NAME}-nat-us-east-1a"))}])["AllocationId"]
    ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": _tag_list({"Name": "someone-else"})}])
    client = CountingClient(ec2)
    state = read_vpc(client, private)
    assert [a["allocation_id"] for a in state["nat_addresses"]] == [mine]
    assert "describe_addresses" in client.called and state["nats"][f"{NAME}-nat-us-east-1a"]["why"] == "not found"
    ec2.create_nat_gateway(SubnetId=ids["subnets"][0], AllocationId=mine, TagSpecifications=[
        {"ResourceType": "natgateway", "Tags": _tag_list(dict(TAGS, Name=f"{NAME}-nat-us-east-1a"))}])
    client = CountingClient(ec2)
    state = read_vpc(client, private)
    assert state["nats"][f"{NAME}-nat-us-east-1a"]["in_sync"], state["nats"]
    assert "describe_addresses" not in client.called and state["nat_addresses"] == []


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


# ------------------------------------------------------------------------------------------ alb
def clients():
    made = {}
    return lambda name: made.setdefault(name, Client(boto3.client(name)))


def alb_spec(**overrides):
    spec = {"subnet_ids": [],
            "security_group": {"name": "lb-alb", "tags": dict(TAGS, Name="lb-alb"),
                               "ingress": [{"proto": "tcp", "ports": [80], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "Clients"}],
                               "egress": [{"proto": "tcp", "ports": ["8080"], "cidr_ip": "vpc", "rule_desc": "Targets in the VPC"}]},
            "target_group": {"name": "lb-tg", "protocol": "HTTP", "port": "8080", "target_type": "ip",
                             "health_check": {"HealthCheckProtocol": "HTTP", "HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 30},
                             "deregistration_delay": 30, "tags": dict(TAGS, Name="lb-tg")},
            "load_balancer": {"name": "lb", "tags": dict(TAGS, Name="lb"),
                              "listeners": [{"Protocol": "HTTP", "Port": 80, "DefaultActions": [{"Type": "forward", "TargetGroupName": "lb-tg"}]}],
                              "attributes": {"idle_timeout.timeout_seconds": "60", "deletion_protection.enabled": "false"}}}
    for key, value in overrides.items():
        spec[key] = dict(spec[key], **value) if isinstance(value, dict) else value
    return spec


def build_alb(ec2, elb):
    """What roles/alb makes for alb_spec() in the network of build_public_network()."""
    net = build_public_network(ec2)
    sg = ec2.create_security_group(GroupName="lb-alb", Description="d", VpcId=net["vpc"], TagSpecifications=[
        {"ResourceType": "security-group", "Tags": _tag_list(dict(TAGS, Name="lb-alb"))}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "Clients"}]}])
    ec2.revoke_security_group_egress(GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": SPEC["cidr"], "Description": "Targets in the VPC"}]}])
    tg = elb.create_target_group(Name="lb-tg", Protocol="HTTP", Port=8080, VpcId=net["vpc"], TargetType="ip", HealthCheckProtocol="HTTP",
                                 HealthCheckPath="/health", HealthCheckIntervalSeconds=30,
                                 Tags=_tag_list(dict(TAGS, Name="lb-tg")))["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    lb = elb.create_load_balancer(Name="lb", Subnets=net["subnets"], SecurityGroups=[sg],
                                  Tags=_tag_list(dict(TAGS, Name="lb")))["LoadBalancers"][0]["LoadBalancerArn"]
    elb.modify_load_balancer_attributes(LoadBalancerArn=lb, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"},
                                                                        {"Key": "deletion_protection.enabled", "Value": "false"}])
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])["Listeners"][0]["ListenerArn"]
    return dict(net, sg=sg, tg=tg, lb=lb, listener=listener)


def test_alb_reader_on_an_empty_account_finds_nothing_in_sync(aws):
    state = read_alb(clients(), alb_spec())
    assert not state["in_sync"]
    assert (state["security_group"]["in_sync"], state["target_group"]["in_sync"], state["load_balancer"]["in_sync"]) == (False, False, False)
    assert state["subnets"] == [] and state["vpc"]["id"] == ""


def test_alb_reader_finds_the_converged_load_balancer_in_sync(aws):
    ids = build_alb(boto3.client("ec2"), boto3.client("elbv2"))
    state = read_alb(clients(), alb_spec(subnet_ids=ids["subnets"]))
    assert state["in_sync"], state
    assert (state["security_group"]["id"], state["target_group"]["arn"], state["load_balancer"]["id"]) == (ids["sg"], ids["tg"], ids["lb"])
    assert state["vpc"] == {"id": ids["vpc"], "cidr": SPEC["cidr"]}
    assert sorted(s["availability_zone"] for s in state["subnets"]) == ["us-east-1a", "us-east-1b"]
    assert state["load_balancer"]["dns_name"]


def test_alb_reader_describes_neither_known_subnets_nor_a_known_vpc_and_tags_everything_in_one_call(aws):
    ids = build_alb(boto3.client("ec2"), boto3.client("elbv2"))
    known = [{"id": subnet, "availability_zone": az, "vpc_id": ids["vpc"]} for subnet, az in zip(ids["subnets"], ["us-east-1a", "us-east-1b"])]
    made = {}

    def counting(name):
        return made.setdefault(name, CountingClient(boto3.client(name)))

    state = read_alb(counting, dict(alb_spec(subnet_ids=ids["subnets"]), known_subnets=known, vpc={"id": ids["vpc"], "cidr": SPEC["cidr"]}))
    assert state["in_sync"], state
    assert state["subnets"] == known and state["vpc"] == {"id": ids["vpc"], "cidr": SPEC["cidr"]}
    assert "describe_subnets" not in made["ec2"].called and "describe_vpcs" not in made["ec2"].called
    assert made["elbv2"].called.count("describe_tags") == 1  # the balancer's and the target group's tags at once
    # A known VPC other than the subnets' is not taken: the subnets' VPC is described.
    made.clear()
    state = read_alb(counting, dict(alb_spec(subnet_ids=ids["subnets"]), known_subnets=known, vpc={"id": "vpc-other", "cidr": "10.0.0.0/16"}))
    assert state["vpc"] == {"id": ids["vpc"], "cidr": SPEC["cidr"]} and "describe_vpcs" in made["ec2"].called


@pytest.mark.parametrize("drift, out_of_sync", [
    (lambda ec2, elb, ids: ec2.authorize_security_group_ingress(GroupId=ids["sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "security_group"),
    (lambda ec2, elb, ids: ec2.authorize_security_group_egress(GroupId=ids["sg"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "security_group"),
    (lambda ec2, elb, ids: ec2.create_tags(Resources=[ids["sg"]], Tags=[{"Key": "Extra", "Value": "1"}]), "security_group"),
    (lambda ec2, elb, ids: elb.modify_target_group(TargetGroupArn=ids["tg"], HealthCheckPath="/other"), "target_group"),
    (lambda ec2, elb, ids: elb.modify_target_group_attributes(TargetGroupArn=ids["tg"], Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]), "target_group"),
    (lambda ec2, elb, ids: elb.modify_load_balancer_attributes(LoadBalancerArn=ids["lb"], Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "120"}]), "load_balancer"),
    (lambda ec2, elb, ids: elb.add_tags(ResourceArns=[ids["lb"]], Tags=[{"Key": "Extra", "Value": "1"}]), "load_balancer"),
    (lambda ec2, elb, ids: elb.delete_listener(ListenerArn=ids["listener"]), "load_balancer"),
    (lambda ec2, elb, ids: elb.create_listener(LoadBalancerArn=ids["lb"], Protocol="HTTP", Port=8081,
                                               DefaultActions=[{"Type": "forward", "TargetGroupArn": ids["tg"]}]), "load_balancer"),
])
def test_alb_reader_reports_each_drift_on_its_resource_only(aws, drift, out_of_sync):
    ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
    ids = build_alb(ec2, elb)
    drift(ec2, elb, ids)
    state = read_alb(clients(), alb_spec(subnet_ids=ids["subnets"]))
    assert {k for k in ("security_group", "target_group", "load_balancer") if not state[k]["in_sync"]} == {out_of_sync}, state
    assert not state["in_sync"]


def test_security_group_rules_are_expanded_as_ec2_security_group_does():
    rules = [{"proto": "tcp", "ports": [80, "8000-8010"], "cidr_ip": ["0.0.0.0/0", "::/0"], "rule_desc": "d"},
             {"proto": "all", "group_id": "sg-1"}, {"proto": "tcp", "from_port": 22, "to_port": 22, "cidr_ip": "vpc"}]
    assert wanted_rules(rules, "10.0.0.0/16") == {
        ("tcp", 80, 80, "ipv4", "0.0.0.0/0", "d"), ("tcp", 80, 80, "ipv6", "::/0", "d"),
        ("tcp", 8000, 8010, "ipv4", "0.0.0.0/0", "d"), ("tcp", 8000, 8010, "ipv6", "::/0", "d"),
        ("-1", None, None, "group", "sg-1", None), ("tcp", 22, 22, "ipv4", "10.0.0.0/16", None)}


def test_alb_reader_sees_a_wanted_change(aws):
    ids = build_alb(boto3.client("ec2"), boto3.client("elbv2"))
    more_cidrs = {"ingress": [{"proto": "tcp", "ports": [80], "cidr_ip": ["0.0.0.0/0", "10.0.0.0/8"], "rule_desc": "Clients"}]}
    assert not read_alb(clients(), alb_spec(subnet_ids=ids["subnets"], security_group=more_cidrs))["security_group"]["in_sync"]
    https = {"listeners": [{"Protocol": "HTTP", "Port": 80, "DefaultActions": [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]}]}
    assert not read_alb(clients(), alb_spec(subnet_ids=ids["subnets"], load_balancer=https))["load_balancer"]["in_sync"]


def test_alb_reader_lists_a_target_group_the_role_no_longer_wants(aws):
    ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
    ids = build_alb(ec2, elb)
    spec = alb_spec(subnet_ids=ids["subnets"], stale_target_groups=["lb-srv-tg", "never-made-tg"])
    state = read_alb(clients(), spec)
    assert state["stale_target_groups"] == [] and state["in_sync"], state
    srv = elb.create_target_group(Name="lb-srv-tg", Protocol="HTTP", Port=4200, VpcId=ids["vpc"],
                                  TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    state = read_alb(clients(), spec)
    assert state["stale_target_groups"] == [{"name": "lb-srv-tg", "arn": srv}]
    assert not state["in_sync"] and state["load_balancer"]["in_sync"]


def test_alb_reader_sees_a_listener_rule_left_by_the_server_when_rules_are_purged(aws):
    ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
    ids = build_alb(ec2, elb)
    listener = {"Protocol": "HTTP", "Port": 80, "DefaultActions": [{"Type": "forward", "TargetGroupName": "lb-tg"}], "Rules": []}
    spec = alb_spec(subnet_ids=ids["subnets"], load_balancer={"listeners": [listener]})
    assert read_alb(clients(), spec)["load_balancer"]["in_sync"]
    elb.create_rule(ListenerArn=ids["listener"], Priority=10, Conditions=[{"Field": "path-pattern", "Values": ["/health"]}],
                    Actions=[{"Type": "forward", "TargetGroupArn": ids["tg"]}])
    state = read_alb(clients(), spec)
    assert not state["load_balancer"]["in_sync"] and state["load_balancer"]["why"] == "listeners"


# ------------------------------------------------------------------------------------------ ecs_agent
QUEUE_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                        "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:123456789012:q"}]}
PATTERN = {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"], "detail": {"clusterArn": ["arn:aws:ecs:us-east-1:123456789012:cluster/c"]}}
ECS_TAGS = dict(TAGS, Name="svc")


def ecs_spec(vpc_id, alb_sg, tg, subnets, **service):
    return {"secret": "c/prefect-credential",
            "log_group": {"name": "/ecs/c", "retention": 30, "tags": dict(TAGS, Name="/ecs/c")},
            "cluster": {"name": "c", "container_insights": "disabled", "tags": dict(TAGS, Name="c")},
            # The dead-letter queue with its account (URL derived), the other without (GetQueueUrl): both reads.
            "queues": [{"name": "q-dlq", "account": "123456789012", "attributes": {"MessageRetentionPeriod": 1209600},
                        "tags": dict(TAGS, Name="q-dlq")},
                       {"name": "q", "attributes": {"MessageRetentionPeriod": "604800", "VisibilityTimeout": 300},
                        "redrive_policy": {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:q-dlq", "maxReceiveCount": 3},
                        "policy": QUEUE_POLICY, "tags": dict(TAGS, Name="q")}],
            "rule": {"name": "r", "description": "task events", "event_pattern": PATTERN,
                     "targets": [{"id": "observer", "arn": "arn:aws:sqs:us-east-1:123456789012:q"}]},
            "security_group": {"name": "c-worker", "vpc_id": vpc_id, "tags": dict(TAGS, Name="c-worker"),
                               "ingress": [{"proto": "tcp", "ports": ["8080"], "group_id": alb_sg, "rule_desc": "Load balancer health checks"}]},
            "task_family": "c-worker",
            "service": dict({"name": "svc", "desired_count": 1, "health_check_grace_period_seconds": 60, "propagate_tags": "SERVICE",
                             "load_balancers": [{"targetGroupArn": tg, "containerName": "prefect-worker", "containerPort": "8080"}],
                             "tags": ECS_TAGS, "enable_execute_command": False, "subnets": subnets, "assign_public_ip": False,
                             "deployment": {"maximumPercent": 200, "minimumHealthyPercent": 100,
                                            "deploymentCircuitBreaker": {"enable": True, "rollback": True}}}, **service)}


@pytest.fixture
def ecs_aws(aws):
    """moto with the local stack's CreateService patch (moto drops the grace period and deployment settings)."""
    from scripts import moto_patches

    undo = moto_patches.ecs_create_service_settings()
    yield
    undo()


def build_ecs_agent():
    """What roles/ecs_fargate_agent makes (all but IAM) for ecs_spec(), behind the load balancer of build_alb()."""
    ec2, ecs, sqs, events, logs = (boto3.client(n) for n in ("ec2", "ecs", "sqs", "events", "logs"))
    ids = build_alb(ec2, boto3.client("elbv2"))
    boto3.client("secretsmanager").create_secret(Name="c/prefect-credential", SecretString="x")
    logs.create_log_group(logGroupName="/ecs/c", tags=dict(TAGS, Name="/ecs/c"))
    logs.put_retention_policy(logGroupName="/ecs/c", retentionInDays=30)
    ecs.create_cluster(clusterName="c", tags=[{"key": k, "value": v} for k, v in dict(TAGS, Name="c").items()],
                       settings=[{"name": "containerInsights", "value": "disabled"}])
    sqs.create_queue(QueueName="q-dlq", Attributes={"MessageRetentionPeriod": "1209600"}, tags=dict(TAGS, Name="q-dlq"))
    sqs.create_queue(QueueName="q", tags=dict(TAGS, Name="q"), Attributes={
        "MessageRetentionPeriod": "604800", "VisibilityTimeout": "300", "Policy": json.dumps(QUEUE_POLICY),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:q-dlq", "maxReceiveCount": 3})})
    events.put_rule(Name="r", Description="task events", EventPattern=json.dumps(PATTERN), State="ENABLED")
    events.put_targets(Rule="r", Targets=[{"Id": "observer", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}])
    worker_sg = ec2.create_security_group(GroupName="c-worker", Description="d", VpcId=ids["vpc"], TagSpecifications=[
        {"ResourceType": "security-group", "Tags": _tag_list(dict(TAGS, Name="c-worker"))}])["GroupId"]
    pair = {"GroupId": ids["sg"], "Description": "Load balancer health checks"}
    ec2.authorize_security_group_ingress(GroupId=worker_sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                                                                            "UserIdGroupPairs": [pair]}])
    taskdef = ecs.register_task_definition(family="c-worker", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
                                           containerDefinitions=[{"name": "prefect-worker", "image": "img", "memory": 512}],
                                           tags=[{"key": "Name", "value": "c-worker"}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition=taskdef, desiredCount=1, launchType="FARGATE",
                       loadBalancers=[{"targetGroupArn": ids["tg"], "containerName": "prefect-worker", "containerPort": 8080}],
                       healthCheckGracePeriodSeconds=60, propagateTags="SERVICE", enableExecuteCommand=False,
                       networkConfiguration={"awsvpcConfiguration": {"subnets": ids["subnets"], "securityGroups": [worker_sg],
                                                                     "assignPublicIp": "DISABLED"}},
                       deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                                "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                       tags=[{"key": k, "value": v} for k, v in ECS_TAGS.items()])
    return dict(ids, worker_sg=worker_sg, taskdef=taskdef)


def ecs_flags(state):
    flags = {k: state[k]["in_sync"] for k in ("log_group", "cluster", "rule", "security_group", "service")}
    flags.update({"queue " + k: v["in_sync"] for k, v in state["queues"].items()},
                 cluster_settings=state["cluster"]["settings_in_sync"], cluster_tags=state["cluster"]["tags_in_sync"])
    return flags


def test_ecs_agent_reader_on_an_empty_account_finds_nothing_in_sync(aws):
    state = read_ecs_agent(clients(), ecs_spec("vpc-none", "sg-none", "arn:tg", ["subnet-a"]))
    assert not state["in_sync"]
    assert not any(ecs_flags(state).values()), state
    assert (state["secret"]["exists"], state["secret"]["arn"], state["secret"]["in_sync"]) == (False, "", False)
    assert state["task_definition"]["arn"] == ""
    assert state["log_group"]["exists"] is False and state["service"]["exists"] is False


def test_ecs_agent_reader_finds_the_converged_worker_in_sync(ecs_aws):
    ids = build_ecs_agent()
    state = read_ecs_agent(clients(), ecs_spec(ids["vpc"], ids["sg"], ids["tg"], ids["subnets"]))
    assert state["in_sync"], {k: v for k, v in ecs_flags(state).items() if not v}
    assert state["secret"]["exists"] and state["secret"]["arn"].startswith("arn:aws:secretsmanager:")
    assert state["security_group"]["id"] == ids["worker_sg"]
    assert state["task_definition"]["arn"] == ids["taskdef"] and state["task_definition"]["tags"] == {"Name": "c-worker"}
    assert state["task_definition"]["definition"]["family"] == "c-worker"
    assert state["service"]["task_definition"] == ids["taskdef"] and not state["service"]["drift"]
    assert state["queues"]["q"]["sqs_managed_sse_enabled"] in (True, False)  # read, not judged (the role asserts it)


@pytest.mark.parametrize("account, calls", [
    ("123456789012", ["get_queue_attributes", "list_queue_tags"]),  # the URL is derived: no GetQueueUrl
    ("999999999999", ["get_queue_attributes", "get_queue_url", "get_queue_attributes", "list_queue_tags"]),  # wrong: asked
    ("", ["get_queue_url", "get_queue_attributes", "list_queue_tags"]),
])
def test_queue_read_derives_the_url_and_falls_back_to_asking(aws, account, calls):
    sqs = boto3.client("sqs")
    real = sqs.create_queue(QueueName="events", tags={"Name": "events"})["QueueUrl"]
    # moto finds a queue by its name whatever account the URL names; SQS does not (another account's queue, or
    # none): the client stands for SQS there.
    attributes = sqs.get_queue_attributes

    def by_url(QueueUrl, **kw):  # noqa: N803
        if "/999999999999/" in QueueUrl:
            raise ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue"}}, "GetQueueAttributes")
        return attributes(QueueUrl=QueueUrl, **kw)

    sqs.get_queue_attributes = by_url
    client = CountingClient(sqs)
    state = read_queue(client, {"name": "events", "account": account, "attributes": {}, "tags": {"Name": "events"}})
    assert state["in_sync"] and state["url"] == real and client.called == calls
    client = CountingClient(sqs)
    missing = read_queue(client, {"name": "gone", "account": account, "attributes": {}, "tags": {}})
    assert missing["why"] == "not found" and missing["url"] == ""


def _service(ids, **changes):
    boto3.client("ecs").update_service(cluster="c", service="svc", **changes)


@pytest.mark.parametrize("drift, out_of_sync", [
    (lambda ids: boto3.client("logs").put_retention_policy(logGroupName="/ecs/c", retentionInDays=1), "log_group"),
    (lambda ids: boto3.client("logs").tag_log_group(logGroupName="/ecs/c", tags={"Extra": "1"}), "log_group"),
    (lambda ids: boto3.client("ecs").update_cluster(cluster="c", settings=[{"name": "containerInsights", "value": "enabled"}]),
     "cluster_settings"),
    (lambda ids: boto3.client("ecs").untag_resource(resourceArn="arn:aws:ecs:us-east-1:123456789012:cluster/c", tagKeys=["Environment"]),
     "cluster_tags"),
    (lambda ids: boto3.client("sqs").set_queue_attributes(QueueUrl=boto3.client("sqs").get_queue_url(QueueName="q")["QueueUrl"],
                                                          Attributes={"VisibilityTimeout": "30"}), "queue q"),
    (lambda ids: boto3.client("sqs").set_queue_attributes(QueueUrl=boto3.client("sqs").get_queue_url(QueueName="q")["QueueUrl"],
                                                          Attributes={"Policy": json.dumps({**QUEUE_POLICY, "Statement": [
                                                              {**QUEUE_POLICY["Statement"][0], "Principal": "*"}]})}), "queue q"),
    (lambda ids: boto3.client("sqs").tag_queue(QueueUrl=boto3.client("sqs").get_queue_url(QueueName="q-dlq")["QueueUrl"],
                                               Tags={"Extra": "1"}), "queue q-dlq"),
    (lambda ids: boto3.client("events").disable_rule(Name="r"), "rule"),
    (lambda ids: boto3.client("events").put_targets(Rule="r", Targets=[{"Id": "other", "Arn": "arn:aws:sqs:us-east-1:123456789012:q-dlq"}]),
     "rule"),
    (lambda ids: boto3.client("ec2").authorize_security_group_ingress(GroupId=ids["worker_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "security_group"),
    (lambda ids: _service(ids, desiredCount=4), "service"),
    (lambda ids: _service(ids, networkConfiguration={"awsvpcConfiguration": {
        "subnets": ids["subnets"][:1], "securityGroups": [ids["worker_sg"]], "assignPublicIp": "DISABLED"}}), "service"),
])
def test_ecs_agent_reader_reports_each_drift_on_its_resource_only(ecs_aws, drift, out_of_sync):
    ids = build_ecs_agent()
    drift(ids)
    state = read_ecs_agent(clients(), ecs_spec(ids["vpc"], ids["sg"], ids["tg"], ids["subnets"]))
    assert {k for k, v in ecs_flags(state).items() if not v} == {out_of_sync}, state
    assert not state["in_sync"]


def test_ecs_agent_reader_service_network_drift_forces_a_deployment(ecs_aws):
    ids = build_ecs_agent()
    state = read_ecs_agent(clients(), ecs_spec(ids["vpc"], ids["sg"], ids["tg"], ids["subnets"], assign_public_ip=True))
    assert state["service"]["drift"] and not state["service"]["in_sync"]
    state = read_ecs_agent(clients(), ecs_spec(ids["vpc"], ids["sg"], ids["tg"], ids["subnets"], desired_count=2))
    assert not state["service"]["drift"] and not state["service"]["in_sync"]


def test_ecs_agent_reader_leaves_the_count_alone_when_autoscaling_owns_it(ecs_aws):
    """worker_autoscaling on: the role passes no wanted count, so a count autoscaling set is no drift, and the
    reader says what the count is (the role passes it back to ecs_service unchanged)."""
    ids = build_ecs_agent()
    _service(ids, desiredCount=4)
    state = read_ecs_agent(clients(), ecs_spec(ids["vpc"], ids["sg"], ids["tg"], ids["subnets"], desired_count=""))
    assert state["service"]["in_sync"], state["service"]
    assert state["service"]["desired_count"] == 4


# The role's own credential secret: the reader must call it in sync exactly when community.aws.secretsmanager_secret
# (run here in check mode, with the role's arguments) would change nothing.
SECRET_VALUE = "pnu_not-a-real-key-0123456789"
SECRET = {"name": "c/prefect-credential", "description": "Prefect credential (PREFECT_API_KEY) of the ECS worker c",
          "tags": dict(TAGS, Name="c/prefect-credential", CreatedBy="dataops.prefect_fargate.ecs_fargate_agent")}
SECRET_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:DeleteSecret",
                                                         "Resource": "*"}]}


def secret_module_changes(sm) -> bool:
    from ansible_collections.community.aws.plugins.modules import secretsmanager_secret

    args = {"name": SECRET["name"], "description": SECRET["description"], "secret_type": "string", "secret": SECRET_VALUE,
            "overwrite": True, "tags": SECRET["tags"], "purge_tags": True, "state": "present", "_ansible_check_mode": True}
    out = run_module(secretsmanager_secret, args, Client(sm))
    assert not out.failed, out.result
    return out.result["changed"]


@pytest.mark.parametrize("drift, why", [
    (None, ""),
    (lambda sm: sm.put_secret_value(SecretId=SECRET["name"], SecretString="rotated elsewhere"), "value"),
    (lambda sm: sm.update_secret(SecretId=SECRET["name"], Description="edited"), "description"),
    (lambda sm: sm.tag_resource(SecretId=SECRET["name"], Tags=[{"Key": "Owner", "Value": "someone"}]), "tags"),
    (lambda sm: sm.untag_resource(SecretId=SECRET["name"], TagKeys=["Project"]), "tags"),
    (lambda sm: sm.put_resource_policy(SecretId=SECRET["name"], ResourcePolicy=json.dumps(SECRET_POLICY)), "resource policy"),
    (lambda sm: sm.delete_secret(SecretId=SECRET["name"], RecoveryWindowInDays=7), "scheduled for deletion"),
])
def test_ecs_agent_reader_compares_the_secret_as_secretsmanager_secret_does(aws, drift, why):
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name=SECRET["name"], Description=SECRET["description"], SecretString=SECRET_VALUE, Tags=_tag_list(SECRET["tags"]))
    if drift:
        drift(sm)
    found = read_secret(Client(sm), SECRET, SECRET_VALUE)
    assert found["why"] == why
    assert found["in_sync"] is (not why) is (not secret_module_changes(sm))
    assert found["value_in_sync"] is (why == "" or why not in ("value", "scheduled for deletion"))
    assert found["arn"].startswith("arn:aws:secretsmanager:") and SECRET_VALUE not in json.dumps(found)


def test_ecs_agent_reader_secret_missing_or_given(aws):
    sm = Client(boto3.client("secretsmanager"))
    assert read_secret(sm, SECRET, SECRET_VALUE) == {"exists": False, "arn": "", "tags": {}, "in_sync": False, "why": "not found",
                                                     "value_in_sync": False}
    arn = boto3.client("secretsmanager").create_secret(Name="given", SecretString="theirs")["ARN"]
    counting = CountingClient(boto3.client("secretsmanager"))
    given = read_secret(counting, arn)
    assert (given["exists"], given["arn"], given["in_sync"]) == (True, arn, True)
    assert counting.called == ["describe_secret"]  # a given secret's value is never read


def test_s3_reader_lists_the_stored_keys_under_each_prefix_across_pages(aws):
    s3 = boto3.client("s3")
    want = {"stored": {"bucket": "code", "prefixes": ["flows/a/1/", "flows/b/2/"]}}
    assert read_s3(Client(s3), want)["stored"] == {"bucket_exists": False, "keys": []}
    s3.create_bucket(Bucket="code")
    keys = [f"flows/a/1/f{n:04d}.py" for n in range(1001)] + ["flows/b/2/flow.py"]  # a listing page holds 1000
    for key in keys + ["flows/b/1/old.py", "results/x.csv"]:
        s3.put_object(Bucket="code", Key=key, Body=b"x")
    state = read_s3(Client(s3), want)
    assert state["stored"] == {"bucket_exists": True, "keys": keys}
    assert state["in_sync"] is True and state["buckets"] == {}  # stored keys are facts, not settings


class CountingClient(Client):
    """Client that also records which API methods were called."""

    def __init__(self, client):
        super().__init__(client)
        self.called = []

    def __getattr__(self, name):
        if name != "get_paginator" and callable(getattr(self._client, name)):
            self.called.append(name)
        return super().__getattr__(name)


BUCKET_POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": ["arn:aws:s3:::res", "arn:aws:s3:::res/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
BUCKET_SPEC = {"buckets": [{"name": "res", "encryption": "AES256", "encryption_key_id": "", "versioning": True,
                            "policy": BUCKET_POLICY, "object_ownership": "BucketOwnerEnforced", "tags": TAGS}],
               "lifecycle": [{"bucket": "res", "id": "expire", "state": "present", "expiration_days": 30,
                              "abort_incomplete_multipart_upload_days": 7}]}


def converge_bucket(s3):
    """What roles/s3_buckets makes for BUCKET_SPEC."""
    s3.create_bucket(Bucket="res")
    s3.put_bucket_encryption(Bucket="res", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_versioning(Bucket="res", VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(Bucket="res", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_ownership_controls(Bucket="res", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    s3.put_bucket_policy(Bucket="res", Policy=json.dumps(BUCKET_POLICY))
    s3.put_bucket_tagging(Bucket="res", Tagging={"TagSet": _tag_list(TAGS)})
    s3.put_bucket_lifecycle_configuration(Bucket="res", LifecycleConfiguration={"Rules": [
        lifecycle_rule(BUCKET_SPEC["lifecycle"][0])]})


def test_s3_reader_on_an_empty_account_asks_no_head_and_finds_nothing(aws):
    client = CountingClient(boto3.client("s3"))
    state = read_s3(client, BUCKET_SPEC)
    assert state["buckets"]["res"] == {"exists": False, "in_sync": False, "why": "not found"}
    assert state["lifecycle"] == {"res/expire": {"in_sync": False, "why": "bucket not found"}}
    assert "head_bucket" not in client.called


def test_s3_reader_finds_the_converged_bucket_in_sync_in_one_call_per_setting(aws):
    s3 = boto3.client("s3")
    converge_bucket(s3)
    client = CountingClient(s3)
    state = read_s3(client, BUCKET_SPEC)
    assert state["in_sync"], state
    # Six settings and the lifecycle rules, each once; no HeadBucket, no second lifecycle read.
    assert sorted(client.called) == sorted(["get_bucket_encryption", "get_bucket_versioning", "get_public_access_block",
                                            "get_bucket_ownership_controls", "get_bucket_policy", "get_bucket_tagging",
                                            "get_bucket_lifecycle_configuration"])


@pytest.mark.parametrize("drift, bucket_why, rule_why", [
    (lambda s3: s3.put_bucket_versioning(Bucket="res", VersioningConfiguration={"Status": "Suspended"}), "versioning", ""),
    (lambda s3: s3.delete_bucket_tagging(Bucket="res"), "tags", ""),
    (lambda s3: s3.delete_bucket_policy(Bucket="res"), "policy", ""),
    (lambda s3: s3.delete_bucket_lifecycle(Bucket="res"), "", "rule missing"),
])
def test_s3_reader_reports_each_drift_on_its_setting_only(aws, drift, bucket_why, rule_why):
    s3 = boto3.client("s3")
    converge_bucket(s3)
    drift(s3)
    state = read_s3(Client(s3), BUCKET_SPEC)
    assert state["buckets"]["res"]["why"] == bucket_why
    assert state["lifecycle"]["res/expire"]["why"] == rule_why
    assert state["in_sync"] is False


def test_s3_reader_refuses_a_lifecycle_rule_of_a_bucket_outside_the_spec(aws):
    spec = dict(BUCKET_SPEC, lifecycle=[dict(BUCKET_SPEC["lifecycle"][0], bucket="other")])
    with pytest.raises(ValueError, match="names bucket other, which is not one of the spec's buckets"):
        read_s3(Client(boto3.client("s3")), spec)


def test_s3_reader_stored_code_of_no_package_still_checks_the_bucket(aws):
    s3 = boto3.client("s3")
    want = {"stored": {"bucket": "code", "prefixes": []}}
    assert read_s3(Client(s3), want)["stored"] == {"bucket_exists": False, "keys": []}
    s3.create_bucket(Bucket="code")
    assert read_s3(Client(s3), want)["stored"] == {"bucket_exists": True, "keys": []}


# ------------------------------------------------------------------------------------------ prefect_server
SRV_TAGS = dict(TAGS, Name="srv")


def server_spec(subnets, **overrides):
    spec = {"subnet_ids": subnets,
            "server_security_group": {"name": "srv-server", "tags": dict(TAGS, Name="srv-server"),
                                      "ingress": [{"proto": "tcp", "ports": ["4200"], "group_id": "sg-0lb", "rule_desc": "lb"}]},
            "db_security_group": {"name": "srv-db", "tags": dict(TAGS, Name="srv-db"),
                                  "ingress": [{"proto": "tcp", "ports": [5432], "group_id": "@server", "rule_desc": "server"}]},
            "db_subnet_group": {"name": "srv-db", "description": "db subnets", "subnet_ids": subnets, "tags": dict(TAGS, Name="srv-db")},
            "secrets": ["srv/db-url", "srv/auth", "srv/never-made"],
            "database": {"identifier": "srv-db", "instance_class": "db.t4g.micro", "allocated_storage": "20", "storage_type": "gp3",
                         "kms_key_id": "", "multi_az": False, "backup_retention_period": "7", "deletion_protection": False,
                         "engine_version": "", "tags": dict(TAGS, Name="srv-db")},
            "log_group": {"name": "/ecs/srv", "retention": "30", "tags": dict(TAGS, Name="/ecs/srv")},
            "iam": {"roles": [{"name": "srv-exec", "description": "exec", "managed_policies": [],
                               "assume_role_policy_document": {"Version": "2012-10-17", "Statement": [
                                   {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                               "tags": dict(TAGS, Name="srv-exec"),
                               "inline_policies": {"read": {"Version": "2012-10-17", "Statement": [
                                   {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                    "Resource": ["@secret:srv/db-url", "@secret:srv/auth"]}]}}}]},
            "cluster": {"name": "srv"}, "task_family": "srv", "service": {"cluster": "srv", "name": "srv"}}
    spec.update(overrides)
    return spec


def build_server():
    """What roles/prefect_server makes for server_spec(), in the network of build_public_network()."""
    ec2, rds, sm, logs, iam, ecs = (boto3.client(n) for n in ("ec2", "rds", "secretsmanager", "logs", "iam", "ecs"))
    net = build_public_network(ec2)
    lb = ec2.create_security_group(GroupName="lb", Description="d", VpcId=net["vpc"])["GroupId"]
    server = ec2.create_security_group(GroupName="srv-server", Description="d", VpcId=net["vpc"], TagSpecifications=[
        {"ResourceType": "security-group", "Tags": _tag_list(dict(TAGS, Name="srv-server"))}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=server, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 4200, "ToPort": 4200, "UserIdGroupPairs": [{"GroupId": lb, "Description": "lb"}]}])
    db_sg = ec2.create_security_group(GroupName="srv-db", Description="d", VpcId=net["vpc"], TagSpecifications=[
        {"ResourceType": "security-group", "Tags": _tag_list(dict(TAGS, Name="srv-db"))}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": server, "Description": "server"}]}])
    ec2.revoke_security_group_egress(GroupId=db_sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    rds.create_db_subnet_group(DBSubnetGroupName="srv-db", DBSubnetGroupDescription="db subnets", SubnetIds=net["subnets"],
                               Tags=_tag_list(dict(TAGS, Name="srv-db")))
    rds.create_db_instance(DBInstanceIdentifier="srv-db", Engine="postgres", DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
                           StorageType="gp3", StorageEncrypted=True, MasterUsername="prefect", MasterUserPassword="x" * 20,
                           DBSubnetGroupName="srv-db", VpcSecurityGroupIds=[db_sg], PubliclyAccessible=False, MultiAZ=False,
                           BackupRetentionPeriod=7, DeletionProtection=False, CopyTagsToSnapshot=True,
                           AutoMinorVersionUpgrade=True, Tags=_tag_list(dict(TAGS, Name="srv-db")))
    arns = {name: sm.create_secret(Name=name, SecretString="v")["ARN"] for name in ("srv/db-url", "srv/auth")}
    logs.create_log_group(logGroupName="/ecs/srv", tags=dict(TAGS, Name="/ecs/srv"))
    logs.put_retention_policy(logGroupName="/ecs/srv", retentionInDays=30)
    spec = server_spec(net["subnets"], server_security_group=dict(server_spec([])["server_security_group"], ingress=[
        {"proto": "tcp", "ports": ["4200"], "group_id": lb, "rule_desc": "lb"}]))
    role = spec["iam"]["roles"][0]
    iam.create_role(RoleName="srv-exec", Description="exec", AssumeRolePolicyDocument=json.dumps(role["assume_role_policy_document"]),
                    Tags=_tag_list(role["tags"]))
    policy = json.loads(json.dumps(role["inline_policies"]["read"]).replace('"@secret:srv/db-url"', json.dumps(arns["srv/db-url"]))
                        .replace('"@secret:srv/auth"', json.dumps(arns["srv/auth"])))
    iam.put_role_policy(RoleName="srv-exec", PolicyName="read", PolicyDocument=json.dumps(policy))
    ecs.create_cluster(clusterName="srv")
    return dict(net, lb=lb, server=server, db_sg=db_sg, arns=arns, spec=spec)


def server_flags(state):
    keys = ("server_security_group", "db_security_group", "db_subnet_group", "database", "log_group", "iam", "cluster")
    return {k for k in keys if not state[k]["in_sync"]}


def test_server_reader_on_an_empty_account_finds_nothing(aws):
    state = read_server(clients(), server_spec([]))
    assert not state["in_sync"]
    assert server_flags(state) == {"server_security_group", "db_security_group", "db_subnet_group", "database",
                                   "log_group", "iam", "cluster"}
    assert state["service"] == {} and state["task_definition"]["arn"] == ""
    assert not any(s["exists"] for s in state["secrets"].values())


def test_server_reader_finds_the_converged_server_in_sync(aws):
    ids = build_server()
    state = read_server(clients(), ids["spec"])
    assert state["in_sync"], {k: state[k]["why"] for k in server_flags(state)}
    assert state["vpc_id"] == ids["vpc"] and state["db_security_group"]["id"] == ids["db_sg"]
    assert state["secrets"]["srv/auth"]["arn"] == ids["arns"]["srv/auth"] and not state["secrets"]["srv/never-made"]["exists"]
    assert state["database"]["exists"] and state["database"]["address"]


@pytest.mark.parametrize("drift, out_of_sync", [
    (lambda ids: boto3.client("ec2").authorize_security_group_ingress(GroupId=ids["db_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "db_security_group"),
    (lambda ids: boto3.client("ec2").create_tags(Resources=[ids["server"]], Tags=[{"Key": "Extra", "Value": "1"}]),
     "server_security_group"),
    (lambda ids: boto3.client("rds").modify_db_instance(DBInstanceIdentifier="srv-db", BackupRetentionPeriod=1,
                                                        ApplyImmediately=True), "database"),
    (lambda ids: boto3.client("logs").put_retention_policy(logGroupName="/ecs/srv", retentionInDays=7), "log_group"),
    (lambda ids: boto3.client("iam").put_role_policy(RoleName="srv-exec", PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})), "iam"),
    (lambda ids: boto3.client("ecs").delete_cluster(cluster="srv"), "cluster"),
])
def test_server_reader_reports_each_drift_on_its_resource_only(aws, drift, out_of_sync):
    ids = build_server()
    drift(ids)
    state = read_server(clients(), ids["spec"])
    assert server_flags(state) == {out_of_sync}, state
    assert not state["in_sync"]


def test_server_reader_compares_the_auth_secret_with_its_value_in_one_read(aws):
    ids = build_server()
    sm = boto3.client("secretsmanager")
    sm.update_secret(SecretId="srv/auth", Description="auth")
    sm.tag_resource(SecretId="srv/auth", Tags=_tag_list({"Name": "srv/auth"}))
    spec = dict(ids["spec"], auth_secret={"name": "srv/auth", "description": "auth", "tags": {"Name": "srv/auth"}}, secret_value="v")
    made = clients()
    counting = CountingClient(boto3.client("secretsmanager"))
    state = read_server(lambda name: counting if name == "secretsmanager" else made(name), spec)
    assert state["in_sync"] and state["auth_secret"]["in_sync"] and state["auth_secret"]["value_in_sync"], state["auth_secret"]
    assert state["secrets"]["srv/auth"] == {"exists": True, "arn": ids["arns"]["srv/auth"], "tags": {"Name": "srv/auth"}}
    assert counting.called.count("describe_secret") == 3  # db-url, never-made, auth: the auth secret once
    sm.put_secret_value(SecretId="srv/auth", SecretString="rotated")
    state = read_server(clients(), spec)
    assert (state["auth_secret"]["why"], state["auth_secret"]["value_in_sync"], state["in_sync"]) == ("value", False, False)
    assert server_flags(state) == set()  # the other resources are untouched


# ------------------------------------------------------------------------------ overlapped reads (in_parallel)
def test_independent_reads_overlap_keep_their_order_and_raise_the_first_error():
    import threading

    from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import in_parallel, read_all

    # Three reads that each wait for the other two: only reads that really run at once get past the barrier.
    barrier = threading.Barrier(3, timeout=10)
    assert in_parallel(lambda n: (barrier.wait(), n * 10)[1], [1, 2, 3]) == [10, 20, 30]
    assert read_all({"b": lambda: 2, "a": lambda: 1}) == {"b": 2, "a": 1}
    assert in_parallel(lambda n: n, []) == [] and in_parallel(lambda n: -n, [4]) == [-4]

    def read(n):
        if n == 2:
            raise KeyError("rule")  # a spec that lacks a key: the module reports it
        return n

    with pytest.raises(KeyError):
        in_parallel(read, [1, 2, 3])


# ------------------------------------------------------------------------- the reader chooses the zones
def layout_spec(**over):
    spec = {key: value for key, value in SPEC.items() if key not in ("subnets", "azs")}
    spec.update(azs=[], az_count=2, subnet_cidrs={"public": ["10.9.0.0/20", "10.9.16.0/20"], "private": []})
    spec.update(over)
    return spec


def test_the_reader_picks_the_first_available_zones_and_lays_the_subnets_out(aws):
    ec2 = boto3.client("ec2")
    empty = read_vpc(Client(ec2), layout_spec())["layout"]
    assert empty["error"] == "" and empty["azs"] == ["us-east-1a", "us-east-1b"]
    assert set(empty["available_azs"]) >= {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert empty["subnets"] == SPEC["subnets"]  # what the role laid out before, in the same order
    ids = build_public_network(ec2)
    client = CountingClient(ec2)
    state = read_vpc(client, layout_spec())
    # Every subnet exists: their zones are the layout, without a zone lookup.
    assert state["layout"] == dict(empty, available_azs=[]) and "describe_availability_zones" not in client.called
    assert state["in_sync"] and [state["subnets"][s["name"]]["id"] for s in SPEC["subnets"]] == ids["subnets"]
    private = read_vpc(Client(ec2), layout_spec(layout="private", azs=["us-east-1b", "us-east-1a"],
                                                subnet_cidrs={"public": ["10.9.0.0/20", "10.9.16.0/20"],
                                                              "private": ["10.9.32.0/20", "10.9.48.0/20"]}))["layout"]
    assert [(s["tier"], s["az"], s["cidr"]) for s in private["subnets"]] == [
        ("public", "us-east-1b", "10.9.0.0/20"), ("public", "us-east-1a", "10.9.16.0/20"),
        ("private", "us-east-1b", "10.9.32.0/20"), ("private", "us-east-1a", "10.9.48.0/20")]


@pytest.mark.parametrize("azs, count, lookup", [
    ([], 2, False),                              # the subnets' zones, although 1a is the first available
    (["us-east-1b", "us-east-1c"], 2, False),    # the zones asked for are those of the subnets
    (["us-east-1a", "us-east-1b"], 2, True),     # other zones asked for: looked up (and laid out on them)
    ([], 3, True),                               # a third zone wanted: looked up
])
def test_existing_subnets_are_the_layout_only_when_they_are_all_of_it(aws, azs, count, lookup):
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=SPEC["cidr"], TagSpecifications=[
        {"ResourceType": "vpc", "Tags": _tag_list(dict(TAGS, Name=NAME))}])["Vpc"]["VpcId"]
    for cidr, az in (("10.9.0.0/20", "us-east-1b"), ("10.9.16.0/20", "us-east-1c")):
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)
    client = CountingClient(ec2)
    spec = layout_spec(azs=azs, az_count=count, subnet_cidrs={"public": ["10.9.0.0/20", "10.9.16.0/20", "10.9.32.0/20"]})
    layout = read_vpc(client, spec)["layout"]
    assert ("describe_availability_zones" in client.called) is lookup
    assert layout["azs"] == (azs or (["us-east-1a", "us-east-1b", "us-east-1c"] if lookup else ["us-east-1b", "us-east-1c"]))


def test_zones_that_are_not_available_stop_the_read(aws):
    ec2 = boto3.client("ec2")
    state = read_vpc(Client(ec2), layout_spec(azs=["us-east-1a", "us-east-1z"]))
    assert state["layout"]["error"] == ('vpc_azs ["us-east-1z"] are not available availability zones of this region '
                                        '(available: ["us-east-1a"]).')
    assert state["layout"]["azs"] == ["us-east-1a", "us-east-1z"]
    assert "us-east-1z" not in state["layout"]["available_azs"] and "vpc" not in state
    too_many = read_vpc(Client(ec2), layout_spec(az_count=40))["layout"]
    assert too_many["error"].startswith("The region offers only") and too_many["error"].endswith("vpc_az_count is 40.")
    short = read_vpc(Client(ec2), layout_spec(subnet_cidrs={"public": ["10.9.0.0/20"], "private": []}))["layout"]
    assert short["error"] == 'vpc_public_subnet_cidrs must list one CIDR per availability zone (2), got ["10.9.0.0/20"].'
    assert "vpc" not in read_vpc(Client(ec2), layout_spec(subnet_cidrs={"public": ["10.9.0.0/20"]}))
