#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Deregister the Application Auto Scaling scalable target of one resource (its policies go with it)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: application_autoscaling_deregister
version_added: 0.1.0
short_description: Deregister the scalable target of one resource, with its scaling policies
description:
  - Reads the resource's scalable target and calls C(DeregisterScalableTarget) only when there is one. AWS deletes
    the target's scaling policies (and their CloudWatch alarms) and scheduled actions with it.
  - C(community.aws.application_autoscaling_policy) with C(state=absent) deletes one policy and leaves the scalable
    target registered; this module removes the target itself. Registration is that module's job.
attributes:
  check_mode:
    description: Reports whether a target would be deregistered, without deregistering it.
  diff_mode:
    description: Shows the target's capacity and policy names before and nothing after.
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - dataops.prefect_fargate.application_autoscaling
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Remove the worker service's autoscaling
  dataops.prefect_fargate.application_autoscaling_deregister:
    resource_id: service/prefect-elt-prod/prefect-elt-prod-worker
"""

RETURN = r"""
scalable_target:
  description: The target that was deregistered (or would be, in check mode), or C({}) when there was none.
  returned: always
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.application_autoscaling import (
    read_module_scaling, scaling_module, target_key)


def main():
    module, client = scaling_module()
    namespace, resource_id, dimension = target_key(module)
    target, policies = read_module_scaling(module, client)
    result = dict(changed=bool(target), scalable_target=target)
    if module._diff:
        before = {"MinCapacity": target.get("MinCapacity"), "MaxCapacity": target.get("MaxCapacity"),
                  "ScalingPolicies": [p["PolicyName"] for p in policies]} if target else {}
        result["diff"] = dict(before=before, after={})
    if target and not module.check_mode:
        try:
            client.deregister_scalable_target(aws_retry=True, ServiceNamespace=namespace, ResourceId=resource_id,
                                              ScalableDimension=dimension)
        except botocore.exceptions.ClientError as exc:
            # Gone in between (another run, or the service's deletion): nothing left to do.
            if exc.response.get("Error", {}).get("Code") not in ("ObjectNotFoundException", "ValidationException"):
                module.fail_json_aws(exc, msg="Could not deregister the scalable target of %s" % resource_id)
            result["changed"] = False
        except botocore.exceptions.BotoCoreError as exc:
            module.fail_json_aws(exc, msg="Could not deregister the scalable target of %s" % resource_id)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
