"""worker_autoscaling role against the local stack (moto): the worker service's scalable target and its CPU
target-tracking policy are created, left alone when in sync, reported in check mode when changed behind the
stack's back (without a write), repaired, switched off, and removed by the delete path.

The ECS service is made here with boto3 (the role only needs one to exist); only the role runs in Ansible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

PLAYBOOK = "tests/integration/playbooks/worker_autoscaling.yml"
CLUSTER, SERVICE = "it-scaling", "it-scaling-worker"
TARGET = {"ServiceNamespace": "ecs", "ResourceId": f"service/{CLUSTER}/{SERVICE}", "ScalableDimension": "ecs:service:DesiredCount"}
POLICY = f"{SERVICE}-cpu"
# roles/worker_autoscaling/defaults/main.yml
WANTED = {"TargetValue": 60.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
          "ScaleInCooldown": 300, "ScaleOutCooldown": 60, "DisableScaleIn": False}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def scaling(stack):
    aas = client(stack, "application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[TARGET["ResourceId"]])["ScalableTargets"]
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=TARGET["ResourceId"])["ScalingPolicies"]
    return targets, policies


def changed(result):
    """Changed task names without the `worker_autoscaling : ` prefix Ansible gives a role's tasks."""
    return [name.split(" : ", 1)[-1] for name in result.changed_tasks]


def run(stack, **kwargs):
    result = stack.run_playbook(PLAYBOOK, **kwargs)
    assert result.rc == 0, result.failed_messages or result.stdout[-3000:]
    return result


def writes_during(stack, **kwargs):
    recorder = stack.MotoRecorder().start()
    result = run(stack, **kwargs)
    return result, [c.action or c.url for c in recorder.mutating_calls()]


@pytest.fixture(scope="module")
def service(local_stack):
    local_stack.reset_moto()
    ecs = client(local_stack, "ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(family=SERVICE, containerDefinitions=[{"name": "w", "image": "x", "memory": 128}])
    # EC2 launch type with no instances: nothing is started, the service just exists.
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=SERVICE, desiredCount=0)
    return local_stack


def test_check_mode_on_a_fresh_service_reports_and_writes_nothing(service):
    result, writes = writes_during(service, check=True)
    assert writes == []
    assert changed(result) == ["Report the autoscaling drift in check mode"]
    assert scaling(service) == ([], [])


def test_create_registers_the_target_and_the_cpu_policy(service):
    result = run(service)
    assert "Register the scalable target and put the CPU target-tracking policy" in changed(result)
    [target], [policy] = scaling(service)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert (policy["PolicyName"], policy["PolicyType"]) == (POLICY, "TargetTrackingScaling")
    assert policy["TargetTrackingScalingPolicyConfiguration"] == WANTED


def test_second_run_changes_nothing(service):
    result, writes = writes_during(service)
    assert changed(result) == [] and writes == []


def test_drift_is_reported_in_check_mode_then_repaired(service):
    aas = client(service, "application-autoscaling")
    aas.register_scalable_target(MinCapacity=1, MaxCapacity=9, **TARGET)
    aas.put_scaling_policy(PolicyName=POLICY, PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration=dict(WANTED, TargetValue=85.0), **TARGET)

    check, writes = writes_during(service, check=True, diff=True)
    assert writes == []
    assert changed(check) == ["Report the autoscaling drift in check mode"]
    report = next(r for n, r in check.task_results() if n.endswith("Report the autoscaling drift in check mode"))["msg"]
    assert "capacity 1-9, wanted 1-4" in report and "85.0" in report
    [target], [policy] = scaling(service)
    assert target["MaxCapacity"] == 9  # check mode left it alone

    repair = run(service)
    assert changed(repair) == ["Register the scalable target and put the CPU target-tracking policy"]
    [target], [policy] = scaling(service)
    assert target["MaxCapacity"] == 4 and policy["TargetTrackingScalingPolicyConfiguration"] == WANTED
    assert run(service).changed_tasks == []


def test_changed_inputs_are_applied(service):
    result = run(service, extra_vars={"worker_autoscaling_max_tasks": 6, "worker_autoscaling_cpu_target": 75})
    assert result.changed_tasks
    [target], [policy] = scaling(service)
    assert target["MaxCapacity"] == 6 and policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 75.0
    assert run(service).changed_tasks  # back to the defaults


def test_delete_path_removes_target_and_policy(service):
    check, writes = writes_during(service, extra_vars={"it_state": "absent"}, check=True)
    assert writes == [] and check.changed_tasks and len(scaling(service)[0]) == 1
    result = run(service, extra_vars={"it_state": "absent"})
    assert changed(result) == ["Deregister the worker service's scalable target and its policies"]
    assert scaling(service) == ([], [])
    assert client(service, "cloudwatch").describe_alarms(AlarmNamePrefix=f"TargetTracking-{TARGET['ResourceId']}")["MetricAlarms"] == []
    again = run(service, extra_vars={"it_state": "absent"})
    assert changed(again) == []


def test_switching_autoscaling_off_deregisters_it(service):
    run(service)
    assert len(scaling(service)[1]) == 1
    off = run(service, extra_vars={"it_enabled": False})
    assert changed(off) == ["Deregister the scalable target when autoscaling is off"]
    assert scaling(service) == ([], [])
    recorder = service.MotoRecorder().start()
    still_off = run(service, extra_vars={"it_enabled": False})
    assert still_off.changed_tasks == []
    # nothing registered: the reader's answer skips the deregister module, which would read the target again
    reads = [c.action for c in recorder.calls() if c.action == "DescribeScalableTargets"]
    assert reads == ["DescribeScalableTargets"], reads


def test_site_and_teardown_run_the_role_on_the_stacks_worker_service(service):
    """The playbooks' wiring: site.yml (after ecs_fargate_agent, --tags worker_autoscaling) finds the stack's
    worker service by the group_vars names, and teardown.yml, which has no facts, deregisters it by name."""
    stack_service, resource = "prefect-elt-local-worker", "service/prefect-elt-local/prefect-elt-local-worker"
    ecs = client(service, "ecs")
    ecs.create_cluster(clusterName="prefect-elt-local")
    ecs.create_service(cluster="prefect-elt-local", serviceName=stack_service, taskDefinition=SERVICE, desiredCount=0)
    aas = client(service, "application-autoscaling")

    site = service.run_playbook("site.yml", tags="worker_autoscaling", extra_vars={"worker_autoscaling_enabled": True})
    assert site.rc == 0, site.failed_messages or site.stdout[-3000:]
    [target] = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    [policy] = aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"]
    assert policy["PolicyName"] == f"{stack_service}-cpu"

    teardown = service.run_playbook("teardown.yml", tags="worker_autoscaling")
    assert teardown.rc == 0, teardown.failed_messages or teardown.stdout[-3000:]
    assert "worker_autoscaling : Deregister the worker service's scalable target and its policies" in teardown.changed_tasks
    assert aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"] == []


def test_the_deployer_policy_grants_what_the_role_calls(service):
    """With IAM enforced (scripts/local_iam.py), inventories/local acts as the deployer, whose only policy is
    docs/deployer-policy.json: the role creates and removes the autoscaling with it, and an action the policy
    leaves out (DeleteScalingPolicy, which the role never calls) is refused, so enforcement covers the service."""
    state = Path(os.environ.get("LOCAL_STACK_STATE", ".local-stack"))
    credentials = state / "iam" / "credentials.json"
    had_credentials = credentials.exists()
    script = [sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "local_iam.py")]
    subprocess.run([*script, "enforce"], check=True, capture_output=True, text=True)
    try:
        keys = json.loads(credentials.read_text())["principals"]
        harness, deployer = ({"aws_access_key_id": keys[p]["access_key_id"], "aws_secret_access_key": keys[p]["secret_access_key"]}
                             for p in ("harness", "deployer"))
        as_deployer = boto3.client("application-autoscaling", endpoint_url=service.moto_url(), region_name="us-east-1", **deployer)
        aas = boto3.client("application-autoscaling", endpoint_url=service.moto_url(), region_name="us-east-1", **harness)
        created = run(service)
        assert "Register the scalable target and put the CPU target-tracking policy" in changed(created)
        assert len(aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=TARGET["ResourceId"])["ScalingPolicies"]) == 1
        with pytest.raises(as_deployer.exceptions.ClientError, match="AccessDenied"):
            as_deployer.delete_scaling_policy(PolicyName=POLICY, **TARGET)
        removed = run(service, extra_vars={"it_state": "absent"})
        assert changed(removed) == ["Deregister the worker service's scalable target and its policies"]
        assert aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[TARGET["ResourceId"]])["ScalableTargets"] == []
    finally:
        subprocess.run([*script, "off"], check=True, capture_output=True, text=True)
        if not had_credentials:  # later tests act with the open key, as before
            credentials.unlink(missing_ok=True)
