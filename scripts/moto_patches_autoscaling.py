"""The local stack's moto patch layer, Application Auto Scaling: where moto 5.2 answers differently from AWS.

Each function's docstring says what AWS does, what moto 5.2 does and what the patch changes;
tests/unit/test_moto_patches_autoscaling.py shows each gap without the patch and gone with it.

  autoscaling_deregister_deletes_policies
                                  DeregisterScalableTarget also deletes the target's scaling policies
                                  (with their CloudWatch alarms) and scheduled actions, as AWS does.
  autoscaling_put_policy_replaces_alarms
                                  PutScalingPolicy on an existing target-tracking policy replaces its
                                  alarms instead of leaving the old pair behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]


def _replace(owner: Any, name: str, new: Any) -> Undo:
    original = owner.__dict__[name]

    def undo() -> None:
        setattr(owner, name, original)

    setattr(owner, name, new)
    return undo


def autoscaling_deregister_deletes_policies() -> Undo:
    """AWS: "Deregistering a scalable target deletes the scaling policies and the scheduled actions that are
    associated with it" (DeregisterScalableTarget, Application Auto Scaling API reference); a target-tracking
    policy's alarms go with it.
    moto 5.2: deletes the target only; its policies stay, DescribeScalingPolicies still lists them and their
    alarms stay in CloudWatch.
    Patch: after the target, delete its policies (with their alarms) and its scheduled actions."""
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    original = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
        original(self, namespace, r_id, dimension)
        for key, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (namespace, r_id, dimension):
                policy.delete_alarms(self.account_id, self.region_name)
                del self.policies[key]
        self.scheduled_actions = [
            action for action in self.scheduled_actions
            if (action.service_namespace, action.resource_id, action.scalable_dimension) != (namespace, r_id, dimension)
        ]

    return _replace(ApplicationAutoscalingBackend, "deregister_scalable_target", deregister_scalable_target)


def autoscaling_put_policy_replaces_alarms() -> Undo:
    """AWS: updating a target-tracking policy (PutScalingPolicy with the name of an existing one) keeps one
    pair of alarms for it.
    moto 5.2: builds a new policy object with new alarms and drops the old object without deleting its
    alarms, so every update leaves two more alarms in CloudWatch.
    Patch: delete the replaced policy's alarms."""
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend, FakeApplicationAutoscalingPolicy

    original = ApplicationAutoscalingBackend.put_scaling_policy

    def put_scaling_policy(self: Any, policy_name: str, service_namespace: str, resource_id: str,
                           scalable_dimension: str, policy_body: dict[str, Any], policy_type: str | None) -> Any:
        key = FakeApplicationAutoscalingPolicy.formulate_key(service_namespace, resource_id, scalable_dimension, policy_name)
        old = self.policies.get(key)
        policy = original(self, policy_name, service_namespace, resource_id, scalable_dimension, policy_body, policy_type)
        if old is not None and old is not policy:
            old.delete_alarms(self.account_id, self.region_name)
        return policy

    return _replace(ApplicationAutoscalingBackend, "put_scaling_policy", put_scaling_policy)


PATCHES: dict[str, Callable[[], Undo]] = {
    "autoscaling_deregister_deletes_policies": autoscaling_deregister_deletes_policies,
    "autoscaling_put_policy_replaces_alarms": autoscaling_put_policy_replaces_alarms,
}
