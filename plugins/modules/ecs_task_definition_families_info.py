#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""List the ACTIVE task definitions of every ECS task definition family with a name prefix."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_task_definition_families_info
version_added: 0.2.0
short_description: List the ACTIVE task definition revisions of every ECS family whose name starts with a prefix
description:
  - Fills a gap of the stock modules. C(community.aws.ecs_taskdefinition_info) describes one task
    definition by name, and no amazon.aws / community.aws module lists task definition families.
    The Prefect ECS worker registers one family per deployment (C(prefect_<pool>_<deployment id>)),
    so teardown has to find them by prefix (ListTaskDefinitionFamilies + ListTaskDefinitions).
  - Read-only.
options:
  family_prefix:
    description: Prefix of the family names (C(familyPrefix) of ListTaskDefinitionFamilies).
    type: str
    required: true
extends_documentation_fragment:
  - dataops.prefect_fargate.common.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Find the flow-run task definitions of work pool elt-dev-ecs
  dataops.prefect_fargate.ecs_task_definition_families_info:
    family_prefix: prefect_elt-dev-ecs_
  register: found
"""

RETURN = r"""
families:
  description: Families with at least one ACTIVE revision whose name starts with O(family_prefix).
  returned: always
  type: list
  elements: str
task_definition_arns:
  description: ARNs of the ACTIVE revisions of those families.
  returned: always
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def _paginate(call, key, **params):
    items = []
    while True:
        page = call(aws_retry=True, **params)
        items += page.get(key) or []
        if not page.get("nextToken"):
            return items
        params["nextToken"] = page["nextToken"]


def find(ecs, prefix):
    families = [f for f in _paginate(ecs.list_task_definition_families, "families", familyPrefix=prefix, status="ACTIVE")
                if f.startswith(prefix)]
    arns = []
    for family in sorted(set(families)):
        # ListTaskDefinitions' familyPrefix is the full family name.
        arns += _paginate(ecs.list_task_definitions, "taskDefinitionArns", familyPrefix=family, status="ACTIVE")
    return sorted({a.split("/")[-1].split(":")[0] for a in arns}), arns


def main():
    module = AnsibleAWSModule(argument_spec=dict(family_prefix=dict(type="str", required=True)),
                              supports_check_mode=True)
    ecs = module.client("ecs", retry_decorator=AWSRetry.jittered_backoff())
    try:
        families, arns = find(ecs, module.params["family_prefix"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not list task definitions with prefix %s" % module.params["family_prefix"])
    module.exit_json(changed=False, families=families, task_definition_arns=arns)


if __name__ == "__main__":
    main()
