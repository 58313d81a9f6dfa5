"""The local stack's moto patch layer (scripts/moto_patches.py): one test per gap.

Each test shows the gap with moto as installed, then applies that one patch and shows moto answering as
AWS does. moto runs in-process (`mock_aws`), no server.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from scripts import moto_patches

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv(moto_patches.ECR_REGISTRY_ENV, raising=False)


@pytest.fixture
def patched():
    """Apply patches by name inside a test; every one is undone afterwards."""
    undo = []

    def apply(name: str) -> None:
        undo.append(moto_patches.PATCHES[name]())

    yield apply
    for step in reversed(undo):
        step()


def client(service: str):
    return boto3.client(service, region_name=REGION)


def network():
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the vpc role makes it
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
               for cidr, az in (("10.20.1.0/24", "us-east-1a"), ("10.20.2.0/24", "us-east-1b"))]
    sg = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)["GroupId"]
    return vpc, subnets, sg


def fargate_task_definition(ecs, container_memory: int | None = None) -> str:
    container = {"name": "app", "image": "app:1", "essential": True, "portMappings": [{"containerPort": 8080}]}
    if container_memory:
        container["memory"] = container_memory
    return ecs.register_task_definition(
        family="app", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[container])["taskDefinition"]["taskDefinitionArn"]


def create_service(ecs, subnets, sg, task_definition, **extra):
    return ecs.create_service(
        cluster="c", serviceName="svc", taskDefinition=task_definition, desiredCount=2, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg]}}, **extra,
    )["service"]


# --- ECS ---------------------------------------------------------------------------------------------


@mock_aws
def test_cluster_without_capacity_providers_reports_empty_lists(patched):
    ecs = client("ecs")
    ecs.create_cluster(clusterName="before")
    before = ecs.describe_clusters(clusters=["before"])["clusters"][0]
    assert "capacityProviders" not in before  # the gap: community.aws.ecs_cluster's KeyError

    patched("ecs_cluster_capacity_providers")
    ecs.create_cluster(clusterName="after")
    after = ecs.describe_clusters(clusters=["after"])["clusters"][0]
    assert after["capacityProviders"] == [] and after["defaultCapacityProviderStrategy"] == []


@mock_aws
def test_list_tags_of_an_untagged_cluster_is_an_empty_list(patched):
    ecs = client("ecs")
    arn = ecs.create_cluster(clusterName="c")["cluster"]["clusterArn"]
    assert "tags" not in ecs.list_tags_for_resource(resourceArn=arn)  # the gap: ecs_tag's KeyError

    patched("ecs_list_tags_always_a_list")
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "Project", "value": "p"}])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "Project", "value": "p"}]


@mock_aws
def test_create_service_keeps_grace_period_and_deployment_configuration(patched):
    _, subnets, sg = network()
    ecs = client("ecs")
    ecs.create_cluster(clusterName="c")
    task_definition = fargate_task_definition(ecs)
    wanted = dict(healthCheckGracePeriodSeconds=120, enableExecuteCommand=True,
                  deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                           "maximumPercent": 200, "minimumHealthyPercent": 100})
    before = create_service(ecs, subnets, sg, task_definition, **wanted)
    assert "healthCheckGracePeriodSeconds" not in before  # the gap
    assert "deploymentCircuitBreaker" not in before.get("deploymentConfiguration", {})
    ecs.delete_service(cluster="c", service="svc", force=True)

    patched("ecs_create_service_settings")
    create_service(ecs, subnets, sg, task_definition, **wanted)
    after = ecs.describe_services(cluster="c", services=["svc"])["services"][0]
    assert after["healthCheckGracePeriodSeconds"] == 120
    assert after["deploymentConfiguration"] == wanted["deploymentConfiguration"]
    assert after["enableExecuteCommand"] is True


@mock_aws
def test_create_service_fills_aws_default_deployment_configuration(patched):
    _, subnets, sg = network()
    ecs = client("ecs")
    ecs.create_cluster(clusterName="c")
    patched("ecs_create_service_settings")
    created = create_service(ecs, subnets, sg, fargate_task_definition(ecs))
    assert created["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200, "minimumHealthyPercent": 100}
    assert "healthCheckGracePeriodSeconds" not in created


@mock_aws
def test_update_service_stores_the_task_definition_arn(patched):
    _, subnets, sg = network()
    ecs = client("ecs")
    ecs.create_cluster(clusterName="c")
    arn = fargate_task_definition(ecs)
    create_service(ecs, subnets, sg, arn)
    updated = ecs.update_service(cluster="c", service="svc", taskDefinition="app:1")["service"]
    assert updated["taskDefinition"] == "app:1"  # the gap

    patched("ecs_update_service_task_definition_arn")
    updated = ecs.update_service(cluster="c", service="svc", taskDefinition="app:1")["service"]
    assert updated["taskDefinition"] == arn


@mock_aws
def test_run_task_of_a_fargate_task_definition_without_container_memory(patched):
    _, subnets, sg = network()
    ecs = client("ecs")
    ecs.create_cluster(clusterName="c")
    task_definition = fargate_task_definition(ecs)  # no container-level memory, as prefect-aws registers
    run = dict(cluster="c", taskDefinition=task_definition, launchType="FARGATE",
               networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg]}})
    with pytest.raises(TypeError):  # the gap: a 500 from the server
        ecs.run_task(**run)

    patched("ecs_fargate_task_resources")
    tasks = ecs.run_task(**run)["tasks"]
    assert len(tasks) == 1 and tasks[0]["taskDefinitionArn"] == task_definition


def test_task_resources_use_container_memory_without_task_level_sizes(patched):
    from moto.ecs.models import EC2ContainerServiceBackend

    class Definition:  # an EC2 task definition: no task-level cpu/memory
        cpu = memory = None
        container_definitions = [{"cpu": 128, "memory": 300, "portMappings": [{"hostPort": 80}]},
                                 {"cpu": 0, "memoryReservation": 100}]

    patched("ecs_fargate_task_resources")
    needs = EC2ContainerServiceBackend._calculate_task_resource_requirements(Definition())
    assert (needs["CPU"], needs["MEMORY"], needs["PORTS"]) == (128, 400, [80])


# --- ELBv2 -------------------------------------------------------------------------------------------


@mock_aws
def test_target_group_of_an_ecs_service_reports_its_running_tasks(patched, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    vpc, subnets, sg = network()
    elbv2, ecs = client("elbv2"), client("ecs")
    tg = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    ecs.create_cluster(clusterName="c")
    create_service(ecs, subnets, sg, fargate_task_definition(ecs),
                   loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}])
    assert elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []  # the gap

    patched("elbv2_ecs_service_targets")
    health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert [(h["Target"]["Port"], h["TargetHealth"]["State"]) for h in health] == [(8080, "healthy")] * 2
    assert sorted(h["Target"]["Id"] for h in health) == ["10.20.1.10", "10.20.2.10"]
    one = elbv2.describe_target_health(TargetGroupArn=tg, Targets=[{"Id": "10.20.1.10"}])
    assert one["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "healthy"

    ecs.update_service(cluster="c", service="svc", desiredCount=0)
    assert elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []
    ecs.update_service(cluster="c", service="svc", desiredCount=1)
    ecs.delete_service(cluster="c", service="svc", force=True)
    assert elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []


# Every attribute amazon.aws.elb_application_lb compares (module_utils/elbv2.py, compare_elb_attributes).
ELB_APPLICATION_LB_KEYS = {
    "access_logs.s3.enabled", "access_logs.s3.bucket", "access_logs.s3.prefix", "deletion_protection.enabled",
    "idle_timeout.timeout_seconds", "routing.http2.enabled", "routing.http.desync_mitigation_mode",
    "routing.http.drop_invalid_header_fields.enabled", "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
    "routing.http.xff_client_port.enabled", "waf.fail_open.enabled",
}


def load_balancer(elbv2, subnets, name):
    return elbv2.create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]


@mock_aws
def test_load_balancer_reports_every_attribute_with_aws_defaults(patched):
    _, subnets, _ = network()
    elbv2 = client("elbv2")
    before = load_balancer(elbv2, subnets, "before")
    keys = {a["Key"] for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=before)["Attributes"]}
    assert ELB_APPLICATION_LB_KEYS - keys  # the gap: elb_application_lb's KeyError

    patched("elbv2_load_balancer_attributes")
    after = load_balancer(elbv2, subnets, "after")
    attrs = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=after)["Attributes"]}
    assert ELB_APPLICATION_LB_KEYS <= set(attrs)
    assert attrs["idle_timeout.timeout_seconds"] == "60" and attrs["routing.http2.enabled"] == "true"
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=after, Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "120"}])
    attrs = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=after)["Attributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "120"


# --- EC2 ---------------------------------------------------------------------------------------------


@mock_aws
def test_nat_gateway_tags_have_resource_type_natgateway(patched):
    ec2 = client("ec2")
    _, subnets, _ = network()
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip, TagSpecifications=[
        {"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "nat-a"}]}])["NatGateway"]["NatGatewayId"]
    # What amazon.aws.ec2_vpc_nat_gateway reads (describe_ec2_tags with resource_type="natgateway").
    filters = [{"Name": "resource-id", "Values": [nat]}, {"Name": "resource-type", "Values": ["natgateway"]}]
    assert ec2.describe_tags(Filters=filters)["Tags"] == []  # the gap: the module re-tags every run

    patched("ec2_nat_gateway_tag_type")
    tags = ec2.describe_tags(Filters=filters)["Tags"]
    assert [(t["Key"], t["Value"], t["ResourceType"]) for t in tags] == [("Name", "nat-a", "natgateway")]


# --- S3 ----------------------------------------------------------------------------------------------


def tls_only_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


@mock_aws
def test_tls_only_bucket_policy_allows_requests_to_the_endpoint(patched):
    s3 = client("s3")
    s3.create_bucket(Bucket="tls-bucket")
    s3.put_bucket_policy(Bucket="tls-bucket", Policy=tls_only_policy("tls-bucket"))
    with pytest.raises(ClientError):  # the gap: moto denies every object request
        s3.put_object(Bucket="tls-bucket", Key="k", Body=b"x")

    patched("s3_secure_transport")
    s3.put_object(Bucket="tls-bucket", Key="k", Body=b"x")
    assert s3.get_object(Bucket="tls-bucket", Key="k")["Body"].read() == b"x"
    s3.delete_object(Bucket="tls-bucket", Key="k")


@mock_aws
def test_bucket_policy_deny_still_applies_when_its_condition_matches(patched):
    s3 = client("s3")
    s3.create_bucket(Bucket="tls-bucket")
    patched("s3_secure_transport")
    policy = json.loads(tls_only_policy("tls-bucket"))
    policy["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    s3.put_bucket_policy(Bucket="tls-bucket", Policy=json.dumps(policy))
    with pytest.raises(ClientError):
        s3.put_object(Bucket="tls-bucket", Key="k", Body=b"x")
    del policy["Statement"][0]["Condition"]
    s3.put_bucket_policy(Bucket="tls-bucket", Policy=json.dumps(policy))
    with pytest.raises(ClientError):
        s3.put_object(Bucket="tls-bucket", Key="k", Body=b"x")


# --- ECR ---------------------------------------------------------------------------------------------


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry holding repository `repo` with tag v1 (digest sha256:aa); records DELETEs."""

    tags: dict[str, list[str]] = {}
    deleted: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        repo = self.path.split("/")[2]
        if self.path.endswith("/tags/list") and self.tags.get(repo):
            body = json.dumps({"name": repo, "tags": self.tags[repo]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Docker-Content-Digest", "sha256:aa")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self):
        repo, digest = self.path.split("/")[2], self.path.rsplit("/", 1)[-1]
        self.deleted.append(f"{repo}@{digest}")
        self.tags.pop(repo, None)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def registry(monkeypatch):
    FakeRegistry.tags = {"repo": ["v1"]}
    FakeRegistry.deleted = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(moto_patches.ECR_REGISTRY_ENV, f"http://127.0.0.1:{server.server_port}")
    yield FakeRegistry
    server.shutdown()
    server.server_close()


@mock_aws
def test_delete_repository_sees_the_images_in_the_registry(patched, registry):
    ecr = client("ecr")
    ecr.create_repository(repositoryName="repo")
    ecr.delete_repository(repositoryName="repo")  # the gap: deleted although the registry holds v1
    assert registry.deleted == [] and registry.tags == {"repo": ["v1"]}

    patched("ecr_delete_repository_images")
    ecr.create_repository(repositoryName="repo")
    with pytest.raises(ClientError) as err:
        ecr.delete_repository(repositoryName="repo")
    assert err.value.response["Error"]["Code"] == "RepositoryNotEmptyException"
    ecr.delete_repository(repositoryName="repo", force=True)
    assert registry.deleted == ["repo@sha256:aa"]
    assert ecr.describe_repositories()["repositories"] == []


@mock_aws
def test_delete_repository_without_registry_address_is_moto_s_own(patched):
    patched("ecr_delete_repository_images")
    ecr = client("ecr")
    ecr.create_repository(repositoryName="repo")
    ecr.delete_repository(repositoryName="repo")
    assert ecr.describe_repositories()["repositories"] == []


# --- apply / undo ------------------------------------------------------------------------------------


@mock_aws
def test_objects_get_sse_s3_by_default(patched):
    s3 = client("s3")
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="plain", Key="before", Body=b"x")
    assert "ServerSideEncryption" not in s3.head_object(Bucket="plain", Key="before")  # the gap

    patched("s3_default_encryption")
    s3.put_object(Bucket="plain", Key="after", Body=b"x")
    assert s3.head_object(Bucket="plain", Key="after")["ServerSideEncryption"] == "AES256"
    # An explicit header and a bucket's own configuration still win.
    s3.put_object(Bucket="plain", Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert s3.head_object(Bucket="plain", Key="kms")["ServerSideEncryption"] == "aws:kms"
    s3.create_bucket(Bucket="kms-default")
    s3.put_bucket_encryption(Bucket="kms-default", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    s3.put_object(Bucket="kms-default", Key="k", Body=b"x")
    assert s3.head_object(Bucket="kms-default", Key="k")["ServerSideEncryption"] == "aws:kms"


def test_apply_all_is_idempotent_and_undo_all_restores_moto():
    from moto.ecs.models import Cluster
    from moto.s3.models import FakeBucket

    originals = (Cluster.__init__, FakeBucket.get_permission)
    try:
        assert moto_patches.apply_all() == list(moto_patches.PATCHES)
        patched_once = (Cluster.__init__, FakeBucket.get_permission)
        assert patched_once != originals
        moto_patches.apply_all()
        assert (Cluster.__init__, FakeBucket.get_permission) == patched_once
    finally:
        moto_patches.undo_all()
    assert (Cluster.__init__, FakeBucket.get_permission) == originals


def test_every_patch_is_in_the_module_docstring():
    for name, patch in moto_patches.PATCHES.items():
        assert name in moto_patches.__doc__, name
        doc = patch.__doc__ or ""
        assert "AWS:" in doc and "moto 5.2:" in doc and "Patch:" in doc, name
