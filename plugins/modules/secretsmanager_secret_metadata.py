#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""a secret's metadata (ARN, tags, deletion state) without reading its value."""

from __future__ import annotations

DOCUMENTATION = r"""
module: secretsmanager_secret_metadata
short_description: Describe a Secrets Manager secret without reading its value
description:
  - Calls C(DescribeSecret) only, so the deployer needs no C(secretsmanager:GetSecretValue) and
    the value never reaches Ansible. community.aws has no info module for secrets.
options:
  name:
    description: Name or ARN of the secret.
    type: str
    required: true
extends_documentation_fragment:
  - dataops.prefect_fargate.common.no_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the secret's tags
  dataops.prefect_fargate.secretsmanager_secret_metadata:
    name: prefect-worker/prefect-credential
  register: secret
"""

RETURN = r"""
exists:
  description: Whether the secret exists and is not scheduled for deletion.
  returned: always
  type: bool
arn:
  description: ARN of the secret (empty when it does not exist).
  returned: always
  type: str
tags:
  description: Tags of the secret as a dict.
  returned: always
  type: dict
deleted_date:
  description: When the secret is scheduled for deletion, that date (empty otherwise).
  returned: always
  type: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict


# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not
# retry by default (it knows the EC2/query codes: Throttling, RequestLimitExceeded, ...).
THROTTLING = ["ThrottlingException"]


def main() -> None:
    module = AnsibleAWSModule(argument_spec=dict(name=dict(type="str", required=True)), supports_check_mode=True)
    client = module.client("secretsmanager", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    try:
        secret = client.describe_secret(aws_retry=True, SecretId=module.params["name"])
    except is_boto3_error_code("ResourceNotFoundException"):
        module.exit_json(changed=False, exists=False, arn="", tags={}, deleted_date="")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Could not describe secret {module.params['name']}")
    deleted = secret.get("DeletedDate")
    module.exit_json(
        changed=False,
        exists=deleted is None,
        arn=secret.get("ARN", ""),
        tags=boto3_tag_list_to_ansible_dict(secret.get("Tags", [])),
        deleted_date=str(deleted or ""),
    )


if __name__ == "__main__":
    main()
