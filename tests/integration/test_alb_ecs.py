"""alb + ecs_fargate_agent roles against the local stack (moto).

One deployed stack per module: create, converge again (nothing changes, no new task-definition
revision), check mode (no writes), read back the shape, refuse bad input before any write, delete.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest

PLAYBOOK = "tests/integration/playbooks/alb_ecs.yml"
NAME = "it-alb-ecs"
FAMILY = f"{NAME}-worker"
CREDENTIAL = "local:not-a-secret"
# inventories/local: stack_worker_health_port = the instance's WORKER_PORT (tasks share the host network)
PORT = int(os.environ.get("WORKER_PORT", "8080"))  # inventories/local prefect_api_auth_string

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def changed_items(run):
    """Changed tasks with their loop items, for readable failures."""
    out = []
    for name, result in run.task_results():
        for item in result.get("results", [result]):
            if item.get("changed"):
                out.append(f"{name} [{item.get('item', '')}] {json.dumps(item.get('diff', ''), default=str)[:600]}")
    return out


def revisions(stack, status="ACTIVE"):
    return client(stack, "ecs").list_task_definitions(familyPrefix=FAMILY, status=status)["taskDefinitionArns"]


@pytest.fixture(scope="module")
def deployed(local_stack):
    return local_stack.deploy(PLAYBOOK)


def test_create_makes_everything_and_exports_facts(deployed):
    assert deployed.changed_tasks
    for key in ("alb__arn", "alb__dns_name", "alb__security_group_id", "alb__target_group_arn"):
        assert deployed.facts(key), key
    for key in ("cluster_name", "cluster_arn", "service_name", "worker_security_group_id", "execution_role_arn",
                "worker_task_role_arn", "secret_arn", "log_group_name", "task_definition_arn"):
        assert deployed.facts(f"ecs_fargate_agent__{key}"), key
    # The task roles flow runs act as are the prefect_flow role's, absent here: the worker role makes none.
    assert deployed.facts("ecs_fargate_agent__flow_run_task_role_arn") is None
    # The credential never reaches the output.
    assert CREDENTIAL not in deployed.stdout


def test_second_run_changes_nothing_and_adds_no_revision(deployed, local_stack):
    before = revisions(local_stack)
    run = local_stack.run_playbook(PLAYBOOK)
    assert run.rc == 0, run.failed_messages
    assert run.changed_tasks == [], changed_items(run)
    assert revisions(local_stack) == before and len(before) == 1


def test_changed_content_registers_exactly_one_revision_and_updates_service(deployed, local_stack):
    run = local_stack.run_playbook(PLAYBOOK, extra_vars={"ecs_fargate_agent_memory": 2048})
    assert run.rc == 0, run.failed_messages
    active = revisions(local_stack)
    assert len(active) == 2
    service = client(local_stack, "ecs").describe_services(cluster=NAME, services=[FAMILY])["services"][0]
    # The full ARN, as AWS answers (moto patch ecs_update_service_task_definition_arn).
    assert service["taskDefinition"] == active[-1]
    # Back to the original content: a new revision again (content differs from the latest).
    run = local_stack.run_playbook(PLAYBOOK)
    assert run.rc == 0 and len(revisions(local_stack)) == 3
    run = local_stack.run_playbook(PLAYBOOK)
    assert run.changed_tasks == [] and len(revisions(local_stack)) == 3


def test_a_kept_desired_count_is_left_to_autoscaling(deployed, local_stack):
    """ecs_fargate_agent_keep_desired_count (true when worker_autoscaling_enabled): a count Application Auto Scaling
    set is neither reset nor reported; without it the role resets the count."""
    ecs = client(local_stack, "ecs")
    ecs.update_service(cluster=NAME, service=FAMILY, desiredCount=2)  # what a scale-out does

    def desired():
        return ecs.describe_services(cluster=NAME, services=[FAMILY])["services"][0]["desiredCount"]

    kept = local_stack.run_playbook(PLAYBOOK, extra_vars={"ecs_fargate_agent_keep_desired_count": True})
    assert kept.rc == 0, kept.failed_messages
    assert kept.changed_tasks == [], changed_items(kept)
    assert desired() == 2
    reset = local_stack.run_playbook(PLAYBOOK)
    assert reset.rc == 0, reset.failed_messages
    assert any(name.endswith("Ensure the worker service") for name in reset.changed_tasks), changed_items(reset)
    assert desired() == 1


def test_check_mode_on_the_deployed_stack_writes_nothing(deployed, local_stack):
    recorder = local_stack.MotoRecorder().start()
    run = local_stack.run_playbook(PLAYBOOK, check=True, diff=True)
    writes = recorder.mutating_calls()
    assert run.rc == 0, run.failed_messages
    assert writes == [], [c.action or c.url for c in writes]
    assert run.changed_tasks == []
    assert CREDENTIAL not in run.stdout


def test_audit_shape(deployed, local_stack):
    ec2, elb, ecs, iam = (client(local_stack, s) for s in ("ec2", "elbv2", "ecs", "iam"))
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    subnets = ec2.describe_subnets(SubnetIds=[az["SubnetId"] for az in lb["AvailabilityZones"]])["Subnets"]
    assert sorted(s["Tags"][0]["Value"] if len(s["Tags"]) == 1 else {t["Key"]: t["Value"] for t in s["Tags"]}["Name"]
                  for s in subnets) == [f"{NAME}-public-a", f"{NAME}-public-b"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "60"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert (attrs["routing.http2.enabled"], attrs["deletion_protection.enabled"], attrs["access_logs.s3.enabled"]) == (
        "true", "false", "false")

    tg = elb.describe_target_groups(Names=[f"{NAME}-tg"])["TargetGroups"][0]
    assert (tg["TargetType"], tg["Port"], tg["HealthCheckPath"], tg["Matcher"]["HttpCode"]) == ("ip", PORT, "/health", "200")
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(lis["Protocol"], lis["Port"], lis["DefaultActions"][0]["TargetGroupArn"]) for lis in listeners] == [
        ("HTTP", 80, tg["TargetGroupArn"])]

    service = ecs.describe_services(cluster=NAME, services=[FAMILY])["services"][0]
    # inventories/local runs one worker task (ecs_fargate_agent_desired_count: 1; the role default is 2)
    assert service["launchType"] == "FARGATE" and service["desiredCount"] == 1
    assert service["healthCheckGracePeriodSeconds"] == 120
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["loadBalancers"][0]["targetGroupArn"] == tg["TargetGroupArn"]
    # As on AWS, only RUNNING tasks become the target group's targets: this image was never pushed, so no
    # task gets past the pull and the group has none (molecule's scenario sees the real worker's task there).
    health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert health == []
    assert service["runningCount"] == 0
    service_tags = {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"]}
    assert service_tags["Project"] == "it-alb-ecs" and service_tags["Name"] == FAMILY
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    task_subnets = ec2.describe_subnets(SubnetIds=network["subnets"])["Subnets"]
    assert len({s["AvailabilityZone"] for s in task_subnets}) == 2
    assert network["assignPublicIp"] == "DISABLED"

    cluster = ecs.describe_clusters(clusters=[NAME])["clusters"][0]
    assert cluster["capacityProviders"] == []  # the service and the work pool use launchType FARGATE

    for arn in revisions(local_stack):
        taskdef = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        container = taskdef["containerDefinitions"][0]
        env = {e["name"]: e["value"] for e in container.get("environment", [])}
        assert not {"PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"} & set(env)
        assert CREDENTIAL not in json.dumps(taskdef, default=str)
        assert [s["name"] for s in container["secrets"]] == ["PREFECT_API_AUTH_STRING"]
        assert container["command"][:5] == ["prefect", "worker", "start", "--pool", "it-ecs-pool"]
        assert "--with-healthcheck" in container["command"]
        assert f"localhost:{PORT}/health" in " ".join(container["healthCheck"]["command"])
        assert container["logConfiguration"]["logDriver"] == "awslogs"

    worker_sg = ec2.describe_security_groups(GroupIds=network["securityGroups"])["SecurityGroups"][0]
    alb_sg = lb["SecurityGroups"][0]
    assert [(p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in worker_sg["IpPermissions"]] == [(PORT, PORT, [alb_sg], [])]

    # The worker role owns the execution and worker roles only; the worker may pass the execution role and the
    # flow-run task roles under the flow path (none here), nothing else.
    assert sorted(r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(NAME)) == [
        f"{NAME}-execution", f"{NAME}-worker-task"]
    worker_policy = iam.get_role_policy(RoleName=f"{NAME}-worker-task", PolicyName="prefect-ecs-worker")["PolicyDocument"]
    [pass_role] = [st for st in worker_policy["Statement"] if st["Action"] == "iam:PassRole"]
    account = client(local_stack, "sts").get_caller_identity()["Account"]
    assert pass_role["Resource"] == [f"arn:aws:iam::{account}:role/{NAME}-execution", f"arn:aws:iam::{account}:role/{NAME}/flows/*"]
    for role in (f"{NAME}-worker-task", f"{NAME}-execution"):
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                assert not any(a in ("*", "s3:*") for a in actions), (role, statement)
                if any(a.startswith("s3:") for a in actions):
                    assert "*" not in resources and all(r.startswith("arn:aws:s3:::it-alb-ecs-") for r in resources)
                if "iam:PassRole" in actions:
                    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
                    assert "*" not in resources
        attached = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
        assert attached == (["AmazonECSTaskExecutionRolePolicy"] if role.endswith("execution") else [])


@pytest.mark.parametrize(("extra_vars", "variable"), [
    ({"ecs_fargate_agent_desired_count": 0}, "ecs_fargate_agent_desired_count"),
    ({"ecs_fargate_agent_cpu": 256, "ecs_fargate_agent_memory": 4096}, "ecs_fargate_agent_cpu"),
    ({"alb_listener_https": True}, "alb_certificate_arn"),
    ({"ecs_fargate_agent_prefect_api_url": ""}, "ecs_fargate_agent_prefect_api_url"),
    ({"ecs_fargate_agent_prefect_api_auth_string": ""}, "ecs_fargate_agent_secret_arn"),
], ids=["desired-0", "cpu-memory-pair", "https-without-certificate", "no-api-url", "no-credential"])
def test_bad_input_fails_before_any_write(deployed, local_stack, extra_vars, variable):
    recorder = local_stack.MotoRecorder().start()
    run = local_stack.run_playbook(PLAYBOOK, extra_vars=extra_vars)
    writes = recorder.mutating_calls()
    assert run.rc != 0
    messages = " ".join(run.failed_messages)
    assert variable in messages, messages
    assert writes == [], [c.action or c.url for c in writes]


def test_delete_leaves_nothing_and_is_idempotent(deployed, local_stack):
    run = local_stack.run_playbook(PLAYBOOK, extra_vars={"it_state": "absent"})
    assert run.rc == 0, run.failed_messages
    ec2, elb, ecs, iam, logs, sm = (client(local_stack, s) for s in ("ec2", "elbv2", "ecs", "iam", "logs", "secretsmanager"))
    assert [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == NAME] == []
    assert [tg for tg in elb.describe_target_groups()["TargetGroups"] if tg["TargetGroupName"].startswith(NAME)] == []
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{NAME}-alb", f"{NAME}-worker"]}])["SecurityGroups"] == []
    assert revisions(local_stack) == [] and len(revisions(local_stack, "INACTIVE")) >= 1
    assert all(c["status"] == "INACTIVE" for c in ecs.describe_clusters(clusters=[NAME])["clusters"])
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(NAME)]
    assert not logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{NAME}")["logGroups"]
    assert not [s for s in sm.list_secrets()["SecretList"] if s["Name"].startswith(NAME)]

    again = local_stack.run_playbook(PLAYBOOK, extra_vars={"it_state": "absent"})
    assert again.rc == 0, again.failed_messages
    assert again.changed_tasks == []
