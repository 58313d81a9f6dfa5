"""Application Auto Scaling gaps of moto 5.2 (scripts/moto_patches_autoscaling.py): each test shows the gap
without the patch and AWS's behaviour with it. moto runs in-process (`mock_aws`), no server."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from scripts import moto_patches, moto_patches_autoscaling
from tests.helpers.moto_testing import fake_aws_env

TARGET = {"ServiceNamespace": "ecs", "ResourceId": "service/c/s", "ScalableDimension": "ecs:service:DesiredCount"}
CPU = {"TargetValue": 60.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
       "ScaleInCooldown": 300, "ScaleOutCooldown": 60, "DisableScaleIn": False}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    fake_aws_env(monkeypatch)
    with mock_aws():
        yield


def _scaled_service():
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="f", containerDefinitions=[{"name": "a", "image": "x", "memory": 128}])
    ecs.create_service(cluster="c", serviceName="s", taskDefinition="f", desiredCount=1)
    aas = boto3.client("application-autoscaling")
    aas.register_scalable_target(MinCapacity=1, MaxCapacity=4, **TARGET)
    aas.put_scaling_policy(PolicyName="cpu", PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=CPU, **TARGET)
    return aas, boto3.client("cloudwatch")


def _policies(aas):
    return aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=TARGET["ResourceId"])["ScalingPolicies"]


def _alarms(cloudwatch):
    return [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]]


def test_patches_are_registered_in_the_patch_layer():
    assert set(moto_patches_autoscaling.PATCHES) <= set(moto_patches.PATCHES)


def test_deregister_keeps_policies_without_the_patch():
    aas, cloudwatch = _scaled_service()
    aas.deregister_scalable_target(**TARGET)
    assert len(_policies(aas)) == 1 and len(_alarms(cloudwatch)) == 2


def test_deregister_deletes_policies_and_alarms_with_the_patch(patched):
    patched("autoscaling_deregister_deletes_policies")
    aas, cloudwatch = _scaled_service()
    aas.deregister_scalable_target(**TARGET)
    assert _policies(aas) == [] and _alarms(cloudwatch) == []
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_deregister_leaves_other_targets_policies(patched):
    patched("autoscaling_deregister_deletes_policies")
    aas = _scaled_service()[0]
    boto3.client("ecs").create_service(cluster="c", serviceName="other", taskDefinition="f", desiredCount=1)
    other = dict(TARGET, ResourceId="service/c/other")
    aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **other)
    aas.put_scaling_policy(PolicyName="cpu", PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=CPU, **other)
    aas.deregister_scalable_target(**TARGET)
    left = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert [p["ResourceId"] for p in left] == ["service/c/other"]


def test_policy_update_leaks_alarms_without_the_patch():
    aas, cloudwatch = _scaled_service()
    aas.put_scaling_policy(PolicyName="cpu", PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration=dict(CPU, TargetValue=70.0), **TARGET)
    assert len(_alarms(cloudwatch)) == 4


def test_policy_update_replaces_alarms_with_the_patch(patched):
    patched("autoscaling_put_policy_replaces_alarms")
    aas, cloudwatch = _scaled_service()
    aas.put_scaling_policy(PolicyName="cpu", PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration=dict(CPU, TargetValue=70.0), **TARGET)
    assert len(_alarms(cloudwatch)) == 2
    assert [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in _policies(aas)] == [70.0]
