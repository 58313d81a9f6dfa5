#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""set load balancer attributes (read, compare, write only what differs)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: elbv2_lb_attributes
short_description: Set attributes of an application or network load balancer
description:
  - Reads the load balancer's attributes and calls C(ModifyLoadBalancerAttributes) with only the
    keys whose value differs. An attribute the API does not report counts as different.
  - C(amazon.aws.elb_application_lb) reads fixed attribute keys and fails when one is missing
    from the answer (moto reports C(idle_timeout.timeout_seconds) and C(access_logs.s3.enabled)
    only once set); this module has no such assumption.
options:
  arn:
    description: ARN of the load balancer.
    type: str
    required: true
  attributes:
    description: Attribute keys (as the API names them, e.g. C(idle_timeout.timeout_seconds)) and wanted values.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Set the idle timeout
  dataops.prefect_fargate.elbv2_lb_attributes:
    arn: "{{ lb_arn }}"
    attributes:
      idle_timeout.timeout_seconds: 120
"""

RETURN = r"""
attributes:
  description: The wanted attributes after the call (values as strings).
  returned: success
  type: dict
changed_keys:
  description: Keys that were (or in check mode would be) changed.
  returned: success
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def as_api_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(arn=dict(type="str", required=True), attributes=dict(type="dict", required=True)),
        supports_check_mode=True,
    )
    client = module.client("elbv2")
    arn = module.params["arn"]
    wanted = {key: as_api_value(value) for key, value in module.params["attributes"].items()}
    try:
        current_list = client.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not read the attributes of {arn}")
    current = {item["Key"]: item.get("Value", "") for item in current_list}
    changed_keys = sorted(key for key, value in wanted.items() if current.get(key) != value)
    result = dict(changed=bool(changed_keys), attributes=wanted, changed_keys=changed_keys)
    if module._diff:
        result["diff"] = dict(
            before={key: current.get(key) for key in changed_keys}, after={key: wanted[key] for key in changed_keys}
        )
    if changed_keys and not module.check_mode:
        try:
            client.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": key, "Value": wanted[key]} for key in changed_keys]
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Could not set the attributes {changed_keys} of {arn}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
