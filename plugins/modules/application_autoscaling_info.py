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
extends_documentation_fragment:
  - dataops.prefect_fargate.common.read_only
  - dataops.prefect_fargate.application_autoscaling
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

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.application_autoscaling import read_module_scaling, scaling_module


def main():
    module, client = scaling_module()
    target, policies = read_module_scaling(module, client)
    module.exit_json(changed=False, scalable_target=target, scaling_policies=policies)


if __name__ == "__main__":
    main()
