#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read the Application Auto Scaling scalable target of one resource and its scaling policies."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: application_autoscaling_info
version_added: 0.1.0
short_description: Read the scalable target of one resource and its scaling policies
description:
  - Calls C(DescribeScalableTargets) and C(DescribeScalingPolicies) for one resource (an ECS service by default)
    and returns what it finds, as AWS returns it (CamelCase keys), so a role can compare the registered
    capacity and the policy with what it wants before it writes, in check mode too.
  - C(community.aws.application_autoscaling_policy) registers the target and puts the policy but writes even in
    check mode and has no info counterpart; this module is that counterpart.
author:
  - Prefect Fargate maintainers (@dataops)
options:
  service_namespace:
    description: Namespace of the scalable resource.
    type: str
    default: ecs
  resource_id:
    description: Identifier of the scalable resource, C(service/<cluster>/<service>) for an ECS service.
    type: str
    required: true
  scalable_dimension:
    description: The scalable dimension.
    type: str
    default: ecs:service:DesiredCount
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the worker service's autoscaling
  dataops.prefect_fargate.application_autoscaling_info:
    resource_id: service/prefect-elt-prod/prefect-elt-prod-worker
  register: scaling
"""

RETURN = r"""
scalable_target:
  description: The scalable target as C(DescribeScalableTargets) returns it (C(MinCapacity), C(MaxCapacity), ...), or C({}).
  returned: always
  type: dict
scaling_policies:
  description: The target's scaling policies as C(DescribeScalingPolicies) returns them (C(PolicyName), C(PolicyType),
    C(TargetTrackingScalingPolicyConfiguration), ...).
  returned: always
  type: list
  elements: dict
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.application_autoscaling import THROTTLING, read_scaling


def main():
    module = AnsibleAWSModule(argument_spec=dict(service_namespace=dict(type="str", default="ecs"),
                                                 resource_id=dict(type="str", required=True),
                                                 scalable_dimension=dict(type="str", default="ecs:service:DesiredCount")),
                              supports_check_mode=True)
    client = module.client("application-autoscaling", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    params = module.params
    try:
        target, policies = read_scaling(client, params["service_namespace"], params["resource_id"], params["scalable_dimension"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not read the autoscaling of %s" % params["resource_id"])
    module.exit_json(changed=False, scalable_target=target, scaling_policies=policies)


if __name__ == "__main__":
    main()
