"""application_autoscaling_info and application_autoscaling_deregister against botocore's Stubber (every request
must be the next scripted one, with exactly these parameters): read-only info, deregister only what exists,
nothing written in check mode, throttling retried."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.modules import application_autoscaling_deregister
from ansible_collections.dataops.prefect_fargate.plugins.modules import application_autoscaling_info

from .aws_stubs import run, throttled

RID = "service/prefect-elt-prod/prefect-elt-prod-worker"
KEY = {"ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount"}
TARGET = {**KEY, "ResourceId": RID, "MinCapacity": 2, "MaxCapacity": 6, "RoleARN": "arn:aws:iam::123456789012:role/x",
          "CreationTime": datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)}
POLICY = {**KEY, "ResourceId": RID, "PolicyARN": "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x", "PolicyName": "cpu",
          "PolicyType": "TargetTrackingScaling", "CreationTime": datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc),
          "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 60.0}}
# A policy of another service whose id the requested one contains as a prefix (moto's filter is a substring test).
OTHER = {**POLICY, "ResourceId": "service/prefect-elt-prod/prefect-elt-prod-w", "PolicyName": "other"}
TARGETS_CALL = {**KEY, "ResourceIds": [RID]}
POLICIES_CALL = {**KEY, "ResourceId": RID}
ARGS = {"resource_id": RID, "region": "us-east-1"}


def reads(target, policies, pages=1):
    script = [("describe_scalable_targets", {"ScalableTargets": [target] if target else []}, TARGETS_CALL)]
    for page in range(pages):
        answer = {"ScalingPolicies": policies if page == pages - 1 else []}
        if page < pages - 1:
            answer["NextToken"] = f"t{page + 1}"
        script.append(("describe_scaling_policies", answer, {**POLICIES_CALL, **({"NextToken": f"t{page}"} if page else {})}))
    return script


def test_info_returns_the_target_and_only_its_own_policies_over_every_page():
    result = run(application_autoscaling_info, "application-autoscaling", ARGS, reads(TARGET, [POLICY, OTHER], pages=2))
    assert result["changed"] is False
    assert (result["scalable_target"]["MinCapacity"], result["scalable_target"]["MaxCapacity"]) == (2, 6)
    assert result["scalable_target"]["CreationTime"].startswith("2026-12-04")
    assert [p["PolicyName"] for p in result["scaling_policies"]] == ["cpu"]


def test_info_on_nothing_registered():
    result = run(application_autoscaling_info, "application-autoscaling", ARGS, reads(None, []), check_mode=True)
    assert result["scalable_target"] == {} and result["scaling_policies"] == []


def test_info_retries_throttling():
    script = [throttled("describe_scalable_targets", TARGETS_CALL)] + reads(TARGET, [])
    assert run(application_autoscaling_info, "application-autoscaling", ARGS, script)["scalable_target"]["MaxCapacity"] == 6


def test_deregister_removes_an_existing_target_with_a_diff():
    script = reads(TARGET, [POLICY]) + [("deregister_scalable_target", {}, {**KEY, "ResourceId": RID})]
    result = run(application_autoscaling_deregister, "application-autoscaling", ARGS, script)
    assert result["changed"] is True
    assert result["diff"] == {"before": {"MinCapacity": 2, "MaxCapacity": 6, "ScalingPolicies": ["cpu"]}, "after": {}}


def test_deregister_in_check_mode_reports_without_writing():
    # The Stubber fails on any request not scripted: a DeregisterScalableTarget here would fail the test.
    result = run(application_autoscaling_deregister, "application-autoscaling", ARGS, reads(TARGET, [POLICY]), check_mode=True)
    assert result["changed"] is True


def test_deregister_without_a_target_changes_nothing():
    result = run(application_autoscaling_deregister, "application-autoscaling", ARGS, reads(None, []))
    assert result["changed"] is False and result["diff"] == {"before": {}, "after": {}}


def test_deregister_of_a_target_gone_in_between_is_not_an_error():
    script = reads(TARGET, []) + [("error", "deregister_scalable_target", "ObjectNotFoundException", {**KEY, "ResourceId": RID})]
    assert run(application_autoscaling_deregister, "application-autoscaling", ARGS, script)["changed"] is False


@pytest.mark.parametrize("module", [application_autoscaling_info, application_autoscaling_deregister])
def test_a_failed_read_fails_either_module_with_the_resource_named(module):
    script = [("error", "describe_scalable_targets", "AccessDeniedException", TARGETS_CALL)]
    result = run(module, "application-autoscaling", ARGS, script, expect_fail=True)
    assert result["msg"].startswith(f"Could not read the autoscaling of {RID}")
