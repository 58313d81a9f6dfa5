"""The local stack's moto patch layer (scripts/moto_patches.py): one test per gap.

Each test shows the gap with moto as installed, then applies that one patch and shows moto answering as
AWS does. moto runs in-process (`mock_aws`), no server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from scripts import moto_patches
from tests.helpers.moto_testing import fake_aws_env

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    fake_aws_env(monkeypatch, REGION)
    monkeypatch.delenv(moto_patches.ECR_REGISTRY_ENV, raising=False)


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


# --- ECS on Fargate: task lifecycle, the stand-in's channel, service scheduler, task events ------------


def run_fargate_task(ecs, subnets, task_definition, **extra):
    return ecs.run_task(cluster="c", taskDefinition=task_definition, launchType="FARGATE",
                        networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}}, **extra)["tasks"][0]


def describe(ecs, task_arn, **extra):
    return ecs.describe_tasks(cluster="c", tasks=[task_arn], **extra)["tasks"][0]


def report(task_arn, status, **fields):
    code, answer = moto_patches.fargate_report({"taskArn": task_arn, "lastStatus": status, **fields})
    assert code == 200, answer
    return answer


def fargate_stack(ecs):
    _, subnets, sg = network()
    ecs.create_cluster(clusterName="c")
    return subnets, sg


@mock_aws
def test_fargate_task_starts_provisioning_and_moves_only_as_its_host_reports(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    task_definition = fargate_task_definition(ecs)
    patched("ecs_fargate_task_resources")
    before = ecs.run_task(cluster="c", taskDefinition=task_definition, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg]}})["tasks"][0]
    # The gap: RUNNING at once, then one state further per DescribeTasks, whatever runs.
    assert before["lastStatus"] == "RUNNING"
    assert [describe(ecs, before["taskArn"])["lastStatus"] for _ in range(4)][-1] == "STOPPED"

    patched("ecs_task_lifecycle")
    task = run_fargate_task(ecs, subnets, task_definition, tags=[{"key": "prefect.io/flow-run-id", "value": "f1"}])
    assert (task["lastStatus"], task["desiredStatus"], task["version"]) == ("PROVISIONING", "RUNNING", 1)
    assert task["platformVersion"] == "1.4.0" and (task["cpu"], task["memory"]) == ("256", "512")
    arn = task["taskArn"]
    assert [describe(ecs, arn)["lastStatus"] for _ in range(4)] == ["PROVISIONING"] * 4
    # What prefect-aws's observer reads: the RunTask tags, through DescribeTasks(include=[TAGS]).
    assert describe(ecs, arn, include=["TAGS"])["tags"] == [{"key": "prefect.io/flow-run-id", "value": "f1"}]
    assert moto_patches.fargate_poll({"tasks": []})["start"][0]["taskArn"] == arn
    report(arn, "PENDING")
    report(arn, "RUNNING", containers=[{"name": "app", "runtimeId": "r1"}])
    running = describe(ecs, arn)
    assert (running["lastStatus"], running["containers"][0]["lastStatus"]) == ("RUNNING", "RUNNING")
    assert running["startedAt"] and running["pullStartedAt"] and running["connectivity"] == "CONNECTED"
    report(arn, "STOPPED", stoppedReason="Essential container in task exited", stopCode="EssentialContainerExited",
           containers=[{"name": "app", "exitCode": 3}])
    stopped = describe(ecs, arn)
    assert (stopped["lastStatus"], stopped["desiredStatus"], stopped["stopCode"]) == (
        "STOPPED", "STOPPED", "EssentialContainerExited")
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert stopped["containers"][0]["exitCode"] == 3 and stopped["stoppedAt"] >= stopped["startedAt"]
    assert stopped["version"] == 5  # one per state: PROVISIONING, PENDING, RUNNING, DEPROVISIONING, STOPPED
    report(arn, "RUNNING")  # a late report never moves a task back
    assert describe(ecs, arn)["lastStatus"] == "STOPPED"


@mock_aws
def test_fargate_task_network_without_security_groups(patched):
    ec2, ecs = client("ec2"), client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]  # DNS hostnames off, as a new VPC is
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.7.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    ecs.create_cluster(clusterName="c")
    task_definition = fargate_task_definition(ecs)
    patched("ecs_fargate_task_resources")
    with pytest.raises(KeyError):  # the gap: a 500 from the server (KeyError 'securityGroups')
        run_fargate_task(ecs, [subnet], task_definition)

    patched("ecs_task_lifecycle")
    task = run_fargate_task(ecs, [subnet], task_definition)
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["privateIPv4Address"] == "10.30.7.4" and task["availabilityZone"] == "us-east-1b"
    assert details["privateDnsName"] == "ip-10-30-7-4.ec2.internal"
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
    default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                       {"Name": "group-name", "Values": ["default"]}])
    assert [g["GroupId"] for g in eni["Groups"]] == [default_sg["SecurityGroups"][0]["GroupId"]]
    assert task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] == "10.30.7.4"
    ecs.stop_task(cluster="c", task=task["taskArn"])  # never started: STOPPED at once, its ENI deleted
    assert ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id",
                                                     "Values": [details["networkInterfaceId"]]}])["NetworkInterfaces"] == []


@mock_aws
def test_stop_task_asks_the_host_and_leaves_last_status_to_it(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    task_definition = fargate_task_definition(ecs)
    patched("ecs_fargate_task_resources")
    before = ecs.run_task(cluster="c", taskDefinition=task_definition, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg]}})["tasks"][0]
    stopped = ecs.stop_task(cluster="c", task=before["taskArn"])["task"]
    assert stopped["lastStatus"] == "STOPPED"  # the gap: STOPPED at once, although the container still runs
    with pytest.raises(Exception):  # the gap: 500 for an unknown task
        ecs.stop_task(cluster="c", task="0123456789abcdef")

    patched("ecs_task_lifecycle")
    arn = run_fargate_task(ecs, subnets, task_definition)["taskArn"]
    moto_patches.fargate_poll({"tasks": []})
    report(arn, "RUNNING")
    answer = ecs.stop_task(cluster="c", task=arn)["task"]
    assert (answer["lastStatus"], answer["desiredStatus"]) == ("RUNNING", "STOPPED")
    assert (answer["stoppedReason"], answer["stopCode"]) == ("Task stopped by user", "UserInitiated")
    assert moto_patches.fargate_poll({"tasks": [arn]})["stop"] == [{"taskArn": arn, "reason": "Task stopped by user"}]
    report(arn, "STOPPED", containers=[{"name": "app", "exitCode": 143}])
    final = describe(ecs, arn)
    assert (final["lastStatus"], final["stoppedReason"], final["containers"][0]["exitCode"]) == (
        "STOPPED", "Task stopped by user", 143)
    with pytest.raises(ClientError) as err:
        ecs.stop_task(cluster="c", task="0123456789abcdef")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "The referenced task was not found" in err.value.response["Error"]["Message"]


@mock_aws
def test_list_tasks_lists_running_tasks_by_default_and_filters_by_service(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    first = run_fargate_task(ecs, subnets, fargate_task_definition(ecs))["taskArn"]
    second = run_fargate_task(ecs, subnets, fargate_task_definition(ecs), group="service:svc")["taskArn"]
    ecs.stop_task(cluster="c", task=first)
    assert ecs.list_tasks(cluster="c")["taskArns"] == [second]
    assert ecs.list_tasks(cluster="c", desiredStatus="STOPPED")["taskArns"] == [first]
    assert ecs.list_tasks(cluster="c", serviceName="svc")["taskArns"] == [second]
    assert ecs.list_tasks(cluster="c", serviceName="other")["taskArns"] == []


@mock_aws
def test_list_tasks_gap_without_the_lifecycle_patch(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    run = dict(cluster="c", taskDefinition=fargate_task_definition(ecs), launchType="FARGATE",
               networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg]}})
    stopped = ecs.run_task(**run)["tasks"][0]["taskArn"]
    ecs.stop_task(cluster="c", task=stopped)
    assert ecs.list_tasks(cluster="c")["taskArns"] == [stopped]  # the gap: a STOPPED task by default
    assert ecs.list_tasks(cluster="c", serviceName="nothing")["taskArns"] == [stopped]  # serviceName ignored


def trust_ecs_tasks(iam, name: str, service: str = "ecs-tasks.amazonaws.com") -> str:
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]


def app_task_definition(ecs, **container):
    base = {"name": "app", "image": "img:1", "logConfiguration": {"logDriver": "awslogs", "options": {
        "awslogs-group": "/ecs/app", "awslogs-region": REGION, "awslogs-stream-prefix": "ecs"}}}
    extra = {key: container.pop(key) for key in ("taskRoleArn",) if key in container}
    return ecs.register_task_definition(
        family="app", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{**base, **container}], **extra)["taskDefinition"]["taskDefinitionArn"]


@mock_aws
def test_poll_hands_out_what_ecs_resolves(patched):
    ecs, iam, sm, ssm, logs = (client(name) for name in ("ecs", "iam", "secretsmanager", "ssm", "logs"))
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    logs.create_log_group(logGroupName="/ecs/app")
    role = trust_ecs_tasks(iam, "app-task")
    whole = sm.create_secret(Name="prefect-key", SecretString="pnu_123")["ARN"]
    keyed = sm.create_secret(Name="creds", SecretString=json.dumps({"user": "u", "password": "p"}))["ARN"]
    ssm.put_parameter(Name="/app/token", Value="t0k", Type="SecureString")
    task_definition = app_task_definition(
        ecs, taskRoleArn=role, command=["run"], environment=[{"name": "A", "value": "def"}, {"name": "B", "value": "def"}],
        secrets=[{"name": "KEY", "valueFrom": whole}, {"name": "PASSWORD", "valueFrom": f"{keyed}:password::"},
                 {"name": "PARTIAL", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prefect-key"},
                 {"name": "TOKEN", "valueFrom": "/app/token"}])
    arn = run_fargate_task(ecs, subnets, task_definition, overrides={"containerOverrides": [
        {"name": "app", "environment": [{"name": "B", "value": "override"}], "command": ["other"]}]})["taskArn"]

    spec = moto_patches.fargate_poll({"tasks": []})["start"][0]
    container = spec["containers"][0]
    assert container["environment"] == {"A": "def", "B": "override", "KEY": "pnu_123", "PASSWORD": "p",
                                        "PARTIAL": "pnu_123", "TOKEN": "t0k"}
    assert (container["command"], container["image"], container["essential"], container["stopTimeout"]) == (
        ["other"], "img:1", True, 30)
    assert spec["taskArn"] == arn and spec["region"] == REGION and spec["privateIpv4Address"].startswith("10.20.")
    credentials = spec["credentials"]
    caller = boto3.client("sts", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                          aws_secret_access_key=credentials["SecretAccessKey"],
                          aws_session_token=credentials["SessionToken"]).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::123456789012:assumed-role/app-task/{arn.split('/')[-1]}"
    stream = f"ecs/app/{arn.split('/')[-1]}"  # what the observer's log forwarding reads
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName="/ecs/app")["logStreams"]] == [stream]
    now = int(time.time() * 1000)
    assert moto_patches.fargate_logs({"taskArn": arn, "container": "app", "events": [
        {"timestamp": now, "message": "hello"}, {"timestamp": now + 1, "message": "world"}]}) == (200, {"accepted": 2})
    events = logs.get_log_events(logGroupName="/ecs/app", logStreamName=stream)["events"]
    assert [e["message"] for e in events] == ["hello", "world"]


@pytest.mark.parametrize("case, reason", [
    ("missing-secret", "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                       "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): "
                       "failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf from "
                       "secrets manager: ResourceNotFoundException"),
    ("missing-json-key", "retrieved secret from Secrets Manager did not contain json key nope"),
    ("missing-log-group", "ResourceInitializationError: failed to validate logger args: create stream has been "
                          "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The "
                          "specified log group does not exist."),
    ("untrusted-role", "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/lambda-only' that was "
                       "provided for this task."),
    ("missing-role", "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/gone' that was "
                     "provided for this task."),
])
@mock_aws
def test_poll_stops_a_task_ecs_cannot_start(patched, case, reason):
    ecs, iam, sm, logs = (client(name) for name in ("ecs", "iam", "secretsmanager", "logs"))
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    if case != "missing-log-group":
        logs.create_log_group(logGroupName="/ecs/app")
    keyed = sm.create_secret(Name="creds", SecretString=json.dumps({"user": "u"}))["ARN"]
    container = {
        "missing-secret": {"secrets": [{"name": "S", "valueFrom":
                                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"}]},
        "missing-json-key": {"secrets": [{"name": "S", "valueFrom": f"{keyed}:nope::"}]},
        "missing-log-group": {},
        "untrusted-role": {"taskRoleArn": trust_ecs_tasks(iam, "lambda-only", "lambda.amazonaws.com")},
        "missing-role": {"taskRoleArn": "arn:aws:iam::123456789012:role/gone"},
    }[case]
    arn = run_fargate_task(ecs, subnets, app_task_definition(ecs, **container))["taskArn"]
    assert moto_patches.fargate_poll({"tasks": []}) == {"start": [], "stop": []}
    task = describe(ecs, arn)
    assert (task["lastStatus"], task["stopCode"]) == ("STOPPED", "TaskFailedToStart")
    assert reason in task["stoppedReason"]


@mock_aws
def test_logs_create_the_group_when_the_task_definition_says_so(patched):
    ecs, logs = client("ecs"), client("logs")
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    task_definition = app_task_definition(ecs, logConfiguration={"logDriver": "awslogs", "options": {
        "awslogs-group": "/flows", "awslogs-region": REGION, "awslogs-stream-prefix": "prefect",
        "awslogs-create-group": "true"}})
    arn = run_fargate_task(ecs, subnets, task_definition)["taskArn"]
    assert len(moto_patches.fargate_poll({"tasks": []})["start"]) == 1
    streams = logs.describe_log_streams(logGroupName="/flows")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [f"prefect/app/{arn.split('/')[-1]}"]


@mock_aws
def test_a_task_its_host_no_longer_holds_is_stopped(patched):
    ecs = client("ecs")
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    arn = run_fargate_task(ecs, subnets, fargate_task_definition(ecs))["taskArn"]
    moto_patches.fargate_poll({"tasks": []})
    report(arn, "RUNNING")
    assert moto_patches.fargate_poll({"tasks": [arn]}) == {"start": [], "stop": []}
    assert moto_patches.fargate_poll({"tasks": ["arn:aws:ecs:us-east-1:123456789012:task/c/gone"]})["stop"] == [
        {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/gone",
         "reason": "Task not found: the emulator no longer knows it"}]
    task = describe(ecs, arn)  # the stand-in restarted without it (previous poll): lost
    assert task["lastStatus"] == "STOPPED" and "container host stopped" in task["stoppedReason"]


@mock_aws
def test_poll_waits_for_work_and_wakes_up_on_run_task(patched):
    ecs = client("ecs")
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    task_definition = fargate_task_definition(ecs)
    started = time.monotonic()
    assert moto_patches.fargate_poll({"tasks": [], "wait": 0.3}) == {"start": [], "stop": []}
    assert time.monotonic() - started >= 0.3
    timer = threading.Timer(0.2, lambda: run_fargate_task(ecs, subnets, task_definition))
    timer.start()
    started = time.monotonic()
    answer = moto_patches.fargate_poll({"tasks": [], "wait": 5})
    timer.join()
    assert len(answer["start"]) == 1 and time.monotonic() - started < 2


@mock_aws
def test_capacity_per_service_deployment_and_in_all(patched, monkeypatch):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    monkeypatch.setenv(moto_patches.MAX_TASKS_ENV, "2")
    task_definition = fargate_task_definition(ecs)
    for _ in range(3):
        run_fargate_task(ecs, subnets, task_definition)
    assert len(moto_patches.fargate_poll({"tasks": []})["start"]) == 2  # the third stays PROVISIONING
    states = [t["lastStatus"] for t in ecs.describe_tasks(cluster="c", tasks=ecs.list_tasks(cluster="c")["taskArns"])["tasks"]]
    assert sorted(states) == ["PROVISIONING"] * 3  # handed out, not yet reported PENDING


# The service scheduler: a stand-in that reports every task it is given RUNNING at once, and STOPPED
# when asked to stop.
class FakeHost:
    def __init__(self):
        self.held: set[str] = set()

    def poll(self) -> dict:
        answer = moto_patches.fargate_poll({"tasks": sorted(self.held)})
        for spec in answer["start"]:
            self.held.add(spec["taskArn"])
            report(spec["taskArn"], "RUNNING")
        for item in answer["stop"]:
            self.held.discard(item["taskArn"])
            moto_patches.fargate_report({"taskArn": item["taskArn"], "lastStatus": "STOPPED",
                                         "containers": [{"name": "app", "exitCode": 143}]})
        return answer

    def kill(self, arn: str) -> None:
        self.held.discard(arn)
        report(arn, "STOPPED", stoppedReason="Essential container in task exited", stopCode="EssentialContainerExited",
               containers=[{"name": "app", "exitCode": 137}])


def service_view(ecs):
    service = ecs.describe_services(cluster="c", services=["svc"])["services"][0]
    running = ecs.list_tasks(cluster="c", serviceName="svc")["taskArns"]
    tasks = ecs.describe_tasks(cluster="c", tasks=running)["tasks"] if running else []
    return service, sorted(tasks, key=lambda t: t["createdAt"])


@mock_aws
def test_fargate_service_runs_real_tasks(patched, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    task_definition = fargate_task_definition(ecs)
    before = create_service(ecs, subnets, sg, task_definition)
    assert before["runningCount"] == 2 and ecs.list_tasks(cluster="c")["taskArns"] == []  # the gap: no tasks
    ecs.delete_service(cluster="c", service="svc", force=True)

    patched("ecs_service_scheduler")
    monkeypatch.setenv(moto_patches.MAX_SERVICE_TASKS_ENV, "1")
    created = create_service(ecs, subnets, sg, task_definition)
    assert (created["runningCount"], created["pendingCount"]) == (0, 2)
    service, tasks = service_view(ecs)
    assert [(t["lastStatus"], t["group"]) for t in tasks] == [("PROVISIONING", "service:svc")] * 2
    deployment = service["deployments"][0]
    assert all(t["startedBy"] == deployment["id"] for t in tasks) and deployment["id"].startswith("ecs-svc/")
    host = FakeHost()
    host.poll()  # capacity for one task of the deployment: the other stays PROVISIONING
    service, tasks = service_view(ecs)
    assert (service["runningCount"], service["pendingCount"]) == (1, 1)
    assert (service["deployments"][0]["rolloutState"], service["deployments"][0]["runningCount"]) == ("IN_PROGRESS", 1)
    ecs.update_service(cluster="c", service="svc", desiredCount=1)
    host.poll()
    service, tasks = service_view(ecs)
    assert (service["runningCount"], service["pendingCount"], len(tasks)) == (1, 0, 1)
    assert service["deployments"][0]["rolloutState"] == "COMPLETED"
    assert "has reached a steady state." in service["events"][0]["message"]


@mock_aws
def test_fargate_service_replaces_a_task_that_died(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    for name in ("ecs_fargate_task_resources", "ecs_task_lifecycle", "ecs_service_scheduler"):
        patched(name)
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition=fargate_task_definition(ecs), desiredCount=1,
                       launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}},
                       tags=[{"key": "Project", "value": "p"}], propagateTags="SERVICE")
    host = FakeHost()
    host.poll()
    _, [first] = service_view(ecs)
    assert describe(ecs, first["taskArn"], include=["TAGS"])["tags"] == [{"key": "Project", "value": "p"}]
    host.kill(first["taskArn"])
    service, [replacement] = service_view(ecs)  # started at once (the report runs the scheduler)
    assert replacement["taskArn"] != first["taskArn"] and replacement["lastStatus"] == "PROVISIONING"
    host.poll()
    service, [replacement] = service_view(ecs)
    assert (service["runningCount"], replacement["lastStatus"]) == (1, "RUNNING")
    dead = describe(ecs, first["taskArn"])
    assert (dead["lastStatus"], dead["stopCode"], dead["containers"][0]["exitCode"]) == (
        "STOPPED", "EssentialContainerExited", 137)


@mock_aws
def test_fargate_service_rolls_a_new_task_definition_and_scales_to_zero(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    for name in ("ecs_fargate_task_resources", "ecs_task_lifecycle", "ecs_service_scheduler"):
        patched(name)
    first_revision = fargate_task_definition(ecs)
    second_revision = fargate_task_definition(ecs, container_memory=256)
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition=first_revision, desiredCount=1,
                       launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}})
    host = FakeHost()
    host.poll()
    _, [old] = service_view(ecs)
    ecs.update_service(cluster="c", service="svc", taskDefinition=second_revision)
    service, tasks = service_view(ecs)
    assert [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]] == [
        ("PRIMARY", second_revision, "IN_PROGRESS"), ("ACTIVE", first_revision, "COMPLETED")]
    assert [t["lastStatus"] for t in tasks] == ["RUNNING", "PROVISIONING"]  # the old one runs until the new one does
    host.poll()  # the new task RUNNING: the old one is asked to stop ...
    host.poll()  # ... and stops
    service, [new] = service_view(ecs)
    assert new["taskDefinitionArn"] == second_revision and new["lastStatus"] == "RUNNING"
    stopped = describe(ecs, old["taskArn"])
    assert (stopped["lastStatus"], stopped["stopCode"]) == ("STOPPED", "ServiceSchedulerInitiated")
    assert stopped["stoppedReason"] == f"Scaling activity initiated by (deployment {service['deployments'][0]['id']})"
    assert [(d["status"], d["rolloutState"], d["runningCount"]) for d in service["deployments"]] == [
        ("PRIMARY", "COMPLETED", 1)]
    assert ecs.list_tasks(cluster="c", serviceName="svc", desiredStatus="STOPPED")["taskArns"] == [old["taskArn"]]

    ecs.update_service(cluster="c", service="svc", desiredCount=0,
                       networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}})
    host.poll()
    service, tasks = service_view(ecs)
    assert (service["runningCount"], service["pendingCount"], tasks) == (0, 0, [])


@mock_aws
def test_fargate_service_circuit_breaker_rolls_back(patched):
    ecs = client("ecs")
    subnets, sg = fargate_stack(ecs)
    for name in ("ecs_fargate_task_resources", "ecs_create_service_settings", "ecs_task_lifecycle",
                 "ecs_service_scheduler"):
        patched(name)
    good = fargate_task_definition(ecs)
    bad = app_task_definition(ecs)  # its log group does not exist: every task fails to start
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition=good, desiredCount=1, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}},
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    host = FakeHost()
    host.poll()
    ecs.update_service(cluster="c", service="svc", taskDefinition=bad)
    for _ in range(6):
        host.poll()  # each poll: a task of the bad revision fails to start, the scheduler starts another
    service, tasks = service_view(ecs)
    assert service["taskDefinition"] == good  # rolled back after 3 failed tasks (the threshold's minimum)
    assert [(d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]] == [(good, "COMPLETED")]
    assert [(t["taskDefinitionArn"], t["lastStatus"]) for t in tasks] == [(good, "RUNNING")]
    messages = [e["message"] for e in service["events"]]
    assert any("deployment failed: tasks failed to start." in m for m in messages)
    assert any("rolling back to deployment" in m for m in messages)
    failed = ecs.list_tasks(cluster="c", serviceName="svc", desiredStatus="STOPPED")["taskArns"]
    assert sorted(t["stopCode"] for t in ecs.describe_tasks(cluster="c", tasks=failed)["tasks"]) == [
        "ServiceSchedulerInitiated"] + ["TaskFailedToStart"] * 3  # + the first good task, replaced by the rollback


@mock_aws
def test_a_service_that_cannot_place_tasks_does_not_stop_the_scheduler(patched):
    ec2, ecs = client("ec2"), client("ecs")
    subnets, sg = fargate_stack(ecs)
    for name in ("ecs_fargate_task_resources", "ecs_task_lifecycle", "ecs_service_scheduler"):
        patched(name)
    gone = ec2.create_subnet(VpcId=ec2.describe_subnets(SubnetIds=subnets)["Subnets"][0]["VpcId"],
                             CidrBlock="10.20.9.0/24")["Subnet"]["SubnetId"]
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition=fargate_task_definition(ecs), desiredCount=0,
                       launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": [gone]}})
    ec2.delete_subnet(SubnetId=gone)
    ecs.update_service(cluster="c", service="svc", desiredCount=1)
    arn = run_fargate_task(ecs, subnets, fargate_task_definition(ecs))["taskArn"]
    assert [spec["taskArn"] for spec in moto_patches.fargate_poll({"tasks": []})["start"]] == [arn]
    moto_patches.fargate_poll({"tasks": [arn]})
    events = [e["message"] for e in ecs.describe_services(cluster="c", services=["svc"])["services"][0]["events"]]
    assert events[0].startswith("(service svc) was unable to place a task. Reason: Error retrieving subnet information")
    assert sum("unable to place" in message for message in events) == 1  # said once, not on every poll


@mock_aws
def test_create_service_without_security_groups(patched):
    ecs = client("ecs")
    subnets, _ = fargate_stack(ecs)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    create = dict(cluster="c", serviceName="svc", taskDefinition=fargate_task_definition(ecs), desiredCount=1,
                  launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}})
    with pytest.raises(Exception):  # the gap: 500 (KeyError 'securityGroups')
        ecs.create_service(**create)

    patched("ecs_service_scheduler")
    assert ecs.create_service(**create)["service"]["pendingCount"] == 1


def observer_queue(sqs, events, cluster_arn: str, policy: bool = True) -> str:
    """What the ecs_fargate_agent role makes (tasks/events.yml): rule -> SQS queue with a policy."""
    url = sqs.create_queue(QueueName="ecs-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(Name="ecs-events", EventPattern=json.dumps({
        "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"], "detail": {"clusterArn": [cluster_arn]}}))["RuleArn"]
    events.put_targets(Rule="ecs-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
    if policy:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
    return url


def drain(sqs, url: str) -> list[dict]:
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


@mock_aws
def test_task_state_changes_reach_the_observer_queue(patched):
    ecs, sqs, events = client("ecs"), client("sqs"), client("events")
    subnets, _ = fargate_stack(ecs)
    cluster_arn = ecs.describe_clusters(clusters=["c"])["clusters"][0]["clusterArn"]
    url = observer_queue(sqs, events, cluster_arn)
    patched("ecs_fargate_task_resources")
    patched("ecs_task_lifecycle")
    task_definition = fargate_task_definition(ecs)
    run_fargate_task(ecs, subnets, task_definition)
    assert drain(sqs, url) == []  # the gap: ECS sends no events

    patched("ecs_task_state_change_events")
    arn = run_fargate_task(ecs, subnets, task_definition, startedBy="prefect")["taskArn"]
    moto_patches.fargate_poll({"tasks": []})
    report(arn, "PENDING")
    report(arn, "RUNNING")
    report(arn, "STOPPED", stoppedReason="Essential container in task exited", stopCode="EssentialContainerExited",
           containers=[{"name": "app", "exitCode": 1}])
    bodies = [body for body in drain(sqs, url) if body["detail"]["taskArn"] == arn]
    assert [b["detail"]["lastStatus"] for b in bodies] == ["PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING", "STOPPED"]
    last = bodies[-1]
    assert set(last) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert (last["version"], last["detail-type"], last["source"], last["account"], last["region"], last["resources"]) == (
        "0", "ECS Task State Change", "aws.ecs", "123456789012", REGION, [arn])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", last["time"]) and len({b["id"] for b in bodies}) == 5
    detail = last["detail"]
    assert (detail["clusterArn"], detail["taskDefinitionArn"], detail["desiredStatus"], detail["stopCode"]) == (
        cluster_arn, task_definition, "STOPPED", "EssentialContainerExited")
    assert (detail["group"], detail["startedBy"], detail["launchType"], detail["version"]) == (
        "family:app", "prefect", "FARGATE", 5)
    assert detail["containers"][0]["name"] == "app" and detail["containers"][0]["exitCode"] == 1
    assert detail["containers"][0]["lastStatus"] == "STOPPED" and detail["stoppedReason"] == "Essential container in task exited"
    assert detail["stoppedAt"].endswith("Z") and detail["createdAt"].endswith("Z")


@mock_aws
def test_task_events_need_a_queue_policy_that_lets_eventbridge_send(patched):
    ecs, sqs, events = client("ecs"), client("sqs"), client("events")
    subnets, _ = fargate_stack(ecs)
    cluster_arn = ecs.describe_clusters(clusters=["c"])["clusters"][0]["clusterArn"]
    url = observer_queue(sqs, events, cluster_arn, policy=False)
    for name in ("ecs_fargate_task_resources", "ecs_task_lifecycle", "ecs_task_state_change_events"):
        patched(name)
    run_fargate_task(ecs, subnets, fargate_task_definition(ecs))
    assert drain(sqs, url) == []  # as on AWS: EventBridge may not send to a queue without such a policy
    other = ecs.create_cluster(clusterName="other")["cluster"]["clusterName"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": "*"}]})})
    ecs.run_task(cluster=other, taskDefinition=fargate_task_definition(ecs), launchType="FARGATE",
                 networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}})
    assert drain(sqs, url) == []  # the rule is scoped to cluster "c"
    run_fargate_task(ecs, subnets, fargate_task_definition(ecs))
    assert [b["detail"]["lastStatus"] for b in drain(sqs, url)] == ["PROVISIONING"]


# --- ELBv2 -------------------------------------------------------------------------------------------


@mock_aws
def test_target_group_of_an_ecs_service_reports_its_running_tasks(patched, monkeypatch):
    vpc, subnets, sg = network()
    elbv2, ecs = client("elbv2"), client("ecs")
    tg = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    ecs.create_cluster(clusterName="c")
    for name in ("ecs_fargate_task_resources", "ecs_task_lifecycle", "ecs_service_scheduler"):
        patched(name)
    monkeypatch.setenv(moto_patches.MAX_SERVICE_TASKS_ENV, "2")
    create_service(ecs, subnets, sg, fargate_task_definition(ecs),
                   loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}])
    FakeHost().poll()
    _, tasks = service_view(ecs)
    addresses = sorted(d["value"] for t in tasks for d in t["attachments"][0]["details"] if d["name"] == "privateIPv4Address")
    assert [t["lastStatus"] for t in tasks] == ["RUNNING"] * 2 and len(addresses) == 2
    assert elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []  # the gap

    patched("elbv2_ecs_service_targets")
    health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert [(h["Target"]["Port"], h["TargetHealth"]["State"]) for h in health] == [(8080, "healthy")] * 2
    assert sorted(h["Target"]["Id"] for h in health) == addresses
    assert addresses[0].startswith("10.20.1.") and addresses[1].startswith("10.20.2.")  # spread over the subnets
    one = elbv2.describe_target_health(TargetGroupArn=tg, Targets=[{"Id": addresses[0]}])
    assert one["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "healthy"

    ecs.update_service(cluster="c", service="svc", desiredCount=0)
    assert len(elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]) == 2  # still RUNNING
    FakeHost().poll()  # (a new host: the tasks are lost and STOPPED)
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
