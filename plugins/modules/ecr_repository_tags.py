#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_repository_tags
short_description: Manage the tags of an Amazon ECR repository
version_added: 0.1.0
description:
  - Reads the tags of an ECR repository, compares them with I(tags) and adds, updates or removes only
    what differs (C(ecr:ListTagsForResource), C(ecr:TagResource), C(ecr:UntagResource)).
  - C(community.aws.ecs_ecr) creates the repository but cannot tag it; this module fills that gap.
  - Other modules of this collection are not members of the C(aws) group of amazon.aws, so give this module
    its connection settings with C(module_defaults) for C(group/dataops.prefect_fargate.aws) (or the module
    name) next to C(group/aws).
options:
  repository_name:
    description: Name of the repository.
    type: str
    required: true
  registry_id:
    description: AWS account ID of the registry. Defaults to the account of the credentials.
    type: str
  tags:
    description: Tags the repository should have.
    type: dict
    required: true
  purge_tags:
    description: Remove tags that are not in I(tags).
    type: bool
    default: true
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    details: On a repository that does not exist yet (check mode before its creation) it predicts a change.
"""

EXAMPLES = r"""
- name: Tag the flow image repository
  dataops.prefect_fargate.ecr_repository_tags:
    repository_name: prefect-elt-dev-flow
    tags:
      Project: prefect-elt
      Environment: dev
"""

RETURN = r"""
tags:
  description: Tags of the repository after the run (predicted in check mode).
  returned: success
  type: dict
  sample: {"Project": "prefect-elt"}
repository_arn:
  description: ARN of the repository (empty when it does not exist, check mode only).
  returned: success
  type: str
added:
  description: Tags added or updated.
  returned: success
  type: dict
removed:
  description: Tag keys removed.
  returned: success
  type: list
  elements: str
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags


# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not
# retry by default (it knows the EC2/query codes: Throttling, RequestLimitExceeded, ...).
THROTTLING = ["ThrottlingException"]


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            repository_name=dict(type="str", required=True),
            registry_id=dict(type="str"),
            tags=dict(type="dict", required=True),
            purge_tags=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    client = module.client("ecr", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    name = module.params["repository_name"]
    wanted = {str(k): str(v) for k, v in module.params["tags"].items()}

    describe = {"repositoryNames": [name]}
    if module.params["registry_id"]:
        describe["registryId"] = module.params["registry_id"]
    try:
        repo = client.describe_repositories(aws_retry=True, **describe)["repositories"][0]
    except is_boto3_error_code("RepositoryNotFoundException"):
        if module.check_mode:
            module.exit_json(changed=bool(wanted), tags=wanted, repository_arn="", added=wanted, removed=[])
        module.fail_json(msg=f"ECR repository {name} does not exist")
    except (BotoCoreError, ClientError) as exc:  # pylint: disable=duplicate-except
        module.fail_json_aws(exc, msg=f"Failed to describe ECR repository {name}")

    arn = repo["repositoryArn"]
    try:
        current = boto3_tag_list_to_ansible_dict(
            client.list_tags_for_resource(aws_retry=True, resourceArn=arn).get("tags", []),
            tag_name_key_name="Key", tag_value_key_name="Value",
        )
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"Failed to list the tags of {arn}")

    to_set, to_remove = compare_aws_tags(current, wanted, purge_tags=module.params["purge_tags"])
    after = {k: v for k, v in {**current, **to_set}.items() if k not in to_remove}
    changed = bool(to_set or to_remove)
    if changed and not module.check_mode:
        try:
            if to_remove:
                client.untag_resource(aws_retry=True, resourceArn=arn, tagKeys=to_remove)
            if to_set:
                client.tag_resource(aws_retry=True, resourceArn=arn, tags=ansible_dict_to_boto3_tag_list(to_set))
        except (BotoCoreError, ClientError) as exc:
            module.fail_json_aws(exc, msg=f"Failed to update the tags of {arn}")

    result = dict(changed=changed, tags=after, repository_arn=arn, added=to_set, removed=sorted(to_remove))
    if module._diff:
        result["diff"] = {"before": {"tags": current}, "after": {"tags": after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
