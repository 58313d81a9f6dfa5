#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_authorization_token
short_description: Get a registry login for Amazon ECR from the ECR API
version_added: 0.1.0
description:
  - Calls C(ecr:GetAuthorizationToken) and returns the registry endpoint with the decoded user name and
    password, ready for a container registry login (podman, buildah, docker).
  - "The token is valid for 12 hours. It is a secret: always run this module with C(no_log: true) and
    pass the password to the next task without printing it."
  - Read-only; it never changes anything, so it runs in check mode too.
  - Other modules of this collection are not members of the C(aws) group of amazon.aws, so give this module
    its connection settings with C(module_defaults) for C(group/dataops.prefect_fargate.aws) (or the module
    name) next to C(group/aws).
options:
  registry_id:
    description:
      - AWS account ID of the registry. Defaults to the account of the credentials.
    type: str
extends_documentation_fragment:
  - dataops.prefect_fargate.common.no_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Get an ECR login
  dataops.prefect_fargate.ecr_authorization_token:
  register: ecr_login
  no_log: true

# A login is needed for a container tool (podman, buildah, docker); for the registry HTTP API use
# dataops.prefect_fargate.ecr_image_tag, which fetches the token itself.
- name: Write a private auth file for podman/buildah
  ansible.builtin.copy:
    content: "{{ {'auths': {ecr_login.registry: {'auth': (ecr_login.username ~ ':' ~ ecr_login.password) | b64encode}}} | to_json }}"
    dest: /run/user/1000/ecr-auth.json
    mode: "0600"
  no_log: true
"""

RETURN = r"""
registry:
  description: Registry host name (proxy endpoint without the scheme), the first part of an image URI.
  returned: success
  type: str
  sample: 123456789012.dkr.ecr.us-east-1.amazonaws.com
proxy_endpoint:
  description: Registry endpoint URL as returned by AWS.
  returned: success
  type: str
  sample: https://123456789012.dkr.ecr.us-east-1.amazonaws.com
username:
  description: User name for the registry login (always C(AWS) on ECR).
  returned: success
  type: str
  sample: AWS
password:
  description: Password for the registry login. A secret, valid until I(expires_at).
  returned: success
  type: str
expires_at:
  description: When the token expires (ISO 8601).
  returned: success
  type: str
  sample: "2025-01-01T12:00:00+00:00"
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import decode_token
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import registry_host


# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not
# retry by default (it knows the EC2/query codes: Throttling, RequestLimitExceeded, ...).
THROTTLING = ["ThrottlingException"]


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(registry_id=dict(type="str")),
        supports_check_mode=True,
    )
    client = module.client("ecr", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    kwargs = {}
    if module.params["registry_id"]:
        kwargs["registryIds"] = [module.params["registry_id"]]
    try:
        response = client.get_authorization_token(aws_retry=True, **kwargs)
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Failed to get an ECR authorization token")

    data = response.get("authorizationData") or []
    if not data:
        module.fail_json(msg="ECR returned no authorization data")
    entry = data[0]
    try:
        username, password = decode_token(entry["authorizationToken"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    expires_at = entry.get("expiresAt")
    module.exit_json(
        changed=False,
        registry=registry_host(entry["proxyEndpoint"]),
        proxy_endpoint=entry["proxyEndpoint"],
        username=username,
        password=password,
        expires_at=expires_at.isoformat() if hasattr(expires_at, "isoformat") else str(expires_at or ""),
    )


if __name__ == "__main__":
    main()
