#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Tags of one ECS resource by ARN (read, compare, write only the difference)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_resource_tags
short_description: Set the tags of an ECS cluster, service or task definition by ARN
description:
  - Reads the resource's tags and adds, changes or (with O(purge_tags)) removes only what differs.
  - C(community.aws.ecs_tag) fails on a resource without tags when the API leaves the C(tags) key
    out of its answer (moto does), and C(community.aws.ecs_taskdefinition) cannot tag at all.
options:
  resource_arn:
    description: ARN of the cluster, service or task definition.
    type: str
    required: true
  tags:
    description: Wanted tags.
    type: dict
    required: true
  purge_tags:
    description: Remove tags not in O(tags).
    type: bool
    default: true
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
- name: Tag the cluster
  dataops.prefect_fargate.ecs_resource_tags:
    resource_arn: "{{ cluster_arn }}"
    tags: {Project: prefect-elt}
"""

RETURN = r"""
tags:
  description: The tags after the call (predicted in check mode).
  returned: success
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            resource_arn=dict(type="str", required=True),
            tags=dict(type="dict", required=True),
            purge_tags=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    client = module.client("ecs")
    arn = module.params["resource_arn"]
    wanted = {str(k): str(v) for k, v in module.params["tags"].items()}
    try:
        current_list = client.list_tags_for_resource(resourceArn=arn).get("tags", [])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not read the tags of {arn}")
    current = {item["key"]: item.get("value", "") for item in current_list}
    to_set = {k: v for k, v in wanted.items() if current.get(k) != v}
    to_remove = sorted(k for k in current if k not in wanted) if module.params["purge_tags"] else []
    after = {k: v for k, v in current.items() if k not in to_remove}
    after.update(wanted)
    result = dict(changed=bool(to_set or to_remove), tags=after)
    if module._diff:
        result["diff"] = dict(before=current, after=after)
    if result["changed"] and not module.check_mode:
        try:
            if to_remove:
                client.untag_resource(resourceArn=arn, tagKeys=to_remove)
            if to_set:
                client.tag_resource(resourceArn=arn, tags=[{"key": k, "value": v} for k, v in to_set.items()])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Could not tag {arn}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
