# -*- coding: utf-8 -*-
# Apache-2.0
"""What application_autoscaling_info and application_autoscaling_deregister share: the options that name one
scalable target, the retrying client, and the read of the target with its scaling policies."""

from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not retry by default.
THROTTLING = ["ThrottlingException", "ConcurrentUpdateException"]


def _plain(value):
    """Datetimes (CreationTime) as ISO strings, everything else as it is."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def scaling_argument_spec(**extra):
    """A fresh argument spec of the options that name one scalable target, merged with a module's own options."""
    spec = dict(service_namespace=dict(type="str", default="ecs"),
                resource_id=dict(type="str", required=True),
                scalable_dimension=dict(type="str", default="ecs:service:DesiredCount"))
    spec.update(extra)
    return spec


def scaling_module():
    """The module (check mode supported) and its Application Auto Scaling client, which retries throttling."""
    module = AnsibleAWSModule(argument_spec=scaling_argument_spec(), supports_check_mode=True)
    client = module.client("application-autoscaling", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    return module, client


def target_key(module):
    """(service_namespace, resource_id, scalable_dimension) of the module's parameters."""
    return tuple(module.params[k] for k in ("service_namespace", "resource_id", "scalable_dimension"))


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


def read_module_scaling(module, client):
    """read_scaling for the module's target; a failed read fails the module."""
    try:
        return read_scaling(client, *target_key(module))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not read the autoscaling of %s" % module.params["resource_id"])
