"""The prefect_flow role on the local stack: check mode writes nothing, converge, idempotent re-run with zero
AWS and Prefect writes, the registered gainers_elt deployment runs to completion, delete removes it all.

moto stands in for what the other roles make (bucket, cluster + service, target group): created here with boto3.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest

from tests.helpers import stack as stack_helpers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = "tests/integration/playbooks/prefect_flow.yml"


def api(path: str, method: str = "GET", body: dict | None = None):
    req = urllib.request.Request(stack_helpers.prefect_api_url() + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def exists(path: str) -> bool:
    try:
        api(path)
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


@pytest.fixture(scope="module")
def world(local_stack):
    """Stand-ins for the outputs of s3_buckets / alb / ecs_fargate_agent, unique per run."""
    suffix = uuid.uuid4().hex[:6]
    kw = dict(endpoint_url=stack_helpers.moto_url(), region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    s3, ec2, ecs, elbv2 = (boto3.client(n, **kw) for n in ("s3", "ec2", "ecs", "elbv2"))
    storage, results = f"it-flows-{suffix}", f"it-results-{suffix}"
    s3.create_bucket(Bucket=storage)
    s3.create_bucket(Bucket=results)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"it-{suffix}", Description="it", VpcId=vpc)["GroupId"]
    cluster = f"it-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=f"it-worker-{suffix}", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                 cpu="256", memory="512", containerDefinitions=[{"name": "w", "image": "x", "memory": 512}])
    tg = elbv2.create_target_group(Name=f"it-{suffix}", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    # Attached to the target group as the worker service is: its tasks are the group's targets.
    ecs.create_service(cluster=cluster, serviceName="worker", taskDefinition=f"it-worker-{suffix}", desiredCount=2,
                       launchType="FARGATE",
                       loadBalancers=[{"targetGroupArn": tg, "containerName": "w", "containerPort": 8080}],
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}})
    variables = {
        "prefect_flow_storage_bucket": storage,
        "prefect_flow_local_worker": True,
        "prefect_flow_work_pool_name": f"it-ecs-{suffix}",
        "prefect_flow_process_pool_name": f"it-process-{suffix}",
        "prefect_flow_deployment_name": f"it-{suffix}",
        "prefect_flow_ecs_cluster": cluster,
        "prefect_flow_ecs_service": "worker",
        "prefect_flow_target_group_arn": tg,
        "prefect_flow_vpc_id": vpc,
        "prefect_flow_subnet_ids": [subnet],
        "prefect_flow_security_group_ids": [sg],
        "prefect_flow_execution_role_arn": "arn:aws:iam::123456789012:role/it-execution",
        "prefect_flow_task_role_arn": "arn:aws:iam::123456789012:role/it-flow-run",
        "prefect_flow_image": "127.0.0.1:5000/flow:it",
        "prefect_flow_auth_string_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:it",
        "prefect_flow_log_group": f"/it/{suffix}",
        "prefect_flow_region": "us-east-1",
        "prefect_flow_parameters": {"results_bucket": results,
                                    "source_url": stack_helpers.fixtures_url() + "/gainers-losers/",
                                    "fx_api_url": stack_helpers.fixtures_url() + "/latest"},
        "prefect_flow_health_delay": 2,
        "prefect_flow_health_retries": 45,
    }
    yield variables, s3, results
    stack_helpers.run_playbook(PLAYBOOK, extra_vars={**variables, "prefect_flow_state": "absent"})


def test_role_check_converge_idempotent_run_delete(world):
    variables, s3, results = world
    full_name = f"top-gainers-elt/{variables['prefect_flow_deployment_name']}"

    # check mode on nothing registered yet: succeeds, uploads and registers nothing
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=variables, check=True)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert s3.list_objects_v2(Bucket=variables["prefect_flow_storage_bucket"]).get("KeyCount", 0) == 0
    assert not exists(f"/deployments/name/{full_name}")
    assert not exists(f"/work_pools/{variables['prefect_flow_work_pool_name']}")

    # converge
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=variables)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    deployment_id = run.facts("prefect_flow__deployment_id")
    assert run.facts("prefect_flow__deployment_name") == full_name
    assert run.facts("prefect_flow__work_pool_name") == variables["prefect_flow_process_pool_name"]
    code_uri = run.facts("prefect_flow__code_uri")
    assert code_uri.startswith(f"s3://{variables['prefect_flow_storage_bucket']}/flows/")
    assert run.facts("prefect_flow__ui_url").endswith(f"/deployments/deployment/{deployment_id}")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=variables["prefect_flow_storage_bucket"])["Contents"]]
    assert any(k.endswith("/gainers_elt/flow.py") for k in keys)
    deployment = api(f"/deployments/{deployment_id}")
    assert deployment["schedules"][0]["schedule"] == {"cron": "0 6 * * *", "timezone": "UTC", "day_or": True}
    assert "results_bucket" in deployment["parameter_openapi_schema"]["required"]
    pool = api(f"/work_pools/{variables['prefect_flow_work_pool_name']}")
    defaults = {k: v.get("default") for k, v in pool["base_job_template"]["variables"]["properties"].items()}
    assert pool["type"] == "ecs" and defaults["cluster"] == variables["prefect_flow_ecs_cluster"]
    assert defaults["network_configuration"] == {"subnets": variables["prefect_flow_subnet_ids"],
                                                 "securityGroups": variables["prefect_flow_security_group_ids"],
                                                 "assignPublicIp": "DISABLED"}
    assert defaults["prefect_api_auth_string_secret_arn"] == variables["prefect_flow_auth_string_secret_arn"]
    assert defaults["cloudwatch_logs_options"]["awslogs-group"] == variables["prefect_flow_log_group"]
    # The group exists and the execution role may not create groups: prefect-aws's default "true" is overridden.
    assert defaults["cloudwatch_logs_options"]["awslogs-create-group"] == "false"

    # second run: nothing changes, no mutating AWS call, deployment not touched
    recorder = stack_helpers.MotoRecorder().start()
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=variables)
    mutating = recorder.mutating_calls()
    assert run.rc == 0, run.stdout[-4000:]
    assert run.changed_tasks == [], run.changed_tasks
    assert mutating == [], mutating
    assert api(f"/deployments/{deployment_id}")["updated"] == deployment["updated"]

    # check mode on the deployed stack: nothing to change
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=variables, check=True)
    assert run.rc == 0 and run.changed_tasks == [], run.changed_tasks

    # the registered gainers_elt deployment runs to completion on the local worker
    flow_run = api(f"/deployments/{deployment_id}/create_flow_run", "POST", {})
    deadline = time.monotonic() + 180
    state = flow_run["state"]["type"]
    while time.monotonic() < deadline and state not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        time.sleep(3)
        state = api(f"/flow_runs/{flow_run['id']}")["state"]["type"]
    assert state == "COMPLETED", api(f"/flow_runs/{flow_run['id']}")["state"]
    assert s3.list_objects_v2(Bucket=results).get("KeyCount", 0) >= 1

    # delete: deployment, worker, pools; a second delete changes nothing
    absent = {**variables, "prefect_flow_state": "absent"}
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=absent)
    assert run.rc == 0, run.stdout[-4000:]
    assert not exists(f"/deployments/{deployment_id}")
    assert not exists(f"/work_pools/{variables['prefect_flow_work_pool_name']}")
    assert not exists(f"/work_pools/{variables['prefect_flow_process_pool_name']}")
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=absent)
    assert run.rc == 0 and run.changed_tasks == [], run.changed_tasks
