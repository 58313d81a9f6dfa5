# -*- coding: utf-8 -*-
# Apache-2.0
"""Application Auto Scaling reads shared by application_autoscaling_info and application_autoscaling_deregister."""

from __future__ import annotations

# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not retry by default.
THROTTLING = ["ThrottlingException", "ConcurrentUpdateException"]


def _plain(value):
    """Datetimes (CreationTime) as ISO strings, everything else as it is."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def read_scaling(client, namespace, resource_id, dimension):
    """The resource's scalable target ({} when none) and its scaling policies (every page)."""
    targets = client.describe_scalable_targets(aws_retry=True, ServiceNamespace=namespace, ResourceIds=[resource_id],
                                               ScalableDimension=dimension)["ScalableTargets"]
    policies, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = client.describe_scaling_policies(aws_retry=True, ServiceNamespace=namespace, ResourceId=resource_id,
                                                ScalableDimension=dimension, **kwargs)
        policies.extend(p for p in page["ScalingPolicies"] if p.get("ResourceId") == resource_id)
        token = page.get("NextToken")
        if not token:
            break
    target = next((t for t in targets if t.get("ResourceId") == resource_id), {})
    return _plain(target), _plain(policies)
