#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_image_tag
short_description: Point a tag of an Amazon ECR repository at an image's manifest, or read an image's digest
version_added: 0.4.0
description:
  - Through the registry's HTTP API (Docker Registry HTTP API v2, which ECR's registry endpoint speaks), reads the
    manifest digest of I(source) (a tag or a C(sha256:) digest) and, when I(tag) is given, puts that manifest under
    I(tag) unless I(tag) already has that digest. This is what C(aws ecr put-image) does to retag an image; no local
    image or pull is needed.
  - The registry login comes from C(ecr:GetAuthorizationToken) inside the module; it is never returned or logged.
  - In check mode it reads and predicts the change without writing.
  - Other modules of this collection are not members of the C(aws) group of amazon.aws, so give this module
    its connection settings with C(module_defaults) for C(group/dataops.prefect_fargate.aws) (or the module
    name) next to C(group/aws).
options:
  repository_name:
    description: Name of the repository.
    type: str
    required: true
  source:
    description: Tag or digest (C(sha256:<64 hex>)) of the image whose manifest to read. It must exist.
    type: str
    required: true
  tag:
    description:
      - Tag to point at the manifest of I(source). Without it the module only reads the digest of I(source).
    type: str
  registry:
    description:
      - Registry C(host[:port]) to talk to instead of the ECR registry of the credentials (a registry standing in for
        ECR). The login is still the ECR authorization token.
    type: str
    default: ""
  insecure:
    description: Plain HTTP and no TLS verification (only sensible with I(registry)).
    type: bool
    default: false
  registry_id:
    description: AWS account ID of the registry. Defaults to the account of the credentials.
    type: str
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Point latest at the image of the content-hash tag
  dataops.prefect_fargate.ecr_image_tag:
    repository_name: prefect-elt-dev/flow
    source: 3f2a9c0d1e4b5a6c
    tag: latest

- name: Read the digest of a pushed tag
  dataops.prefect_fargate.ecr_image_tag:
    repository_name: prefect-elt-dev/flow
    source: 3f2a9c0d1e4b5a6c
  register: pushed
"""

RETURN = r"""
digest:
  description: Manifest digest of I(source).
  returned: success
  type: str
  sample: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
previous_digest:
  description: Digest I(tag) had before the run (empty when it did not exist, or without I(tag)).
  returned: success
  type: str
registry:
  description: The registry host the module talked to.
  returned: success
  type: str
  sample: 123456789012.dkr.ecr.us-east-1.amazonaws.com
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import RegistryError
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import open_registry


# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not
# retry by default (it knows the EC2/query codes: Throttling, RequestLimitExceeded, ...).
THROTTLING = ["ThrottlingException"]


def ensure_tag(registry, repository, source, tag, check_mode):
    """(changed, digest of source, previous digest of tag); raises RegistryError."""
    digest = registry.digest(repository, source)
    if not digest:
        raise RegistryError("%s:%s is not in the registry %s" % (repository, source, registry.host))
    if not tag:
        return False, digest, ""
    previous = registry.digest(repository, tag)
    if previous == digest:
        return False, digest, previous
    if check_mode:
        return True, digest, previous
    body, content_type, read_digest = registry.manifest(repository, digest)
    if read_digest and read_digest != digest:
        raise RegistryError("%s@%s came back with digest %s" % (repository, digest, read_digest))
    moved = registry.put_manifest(repository, tag, body, content_type)
    if moved != digest:
        raise RegistryError("%s:%s now has digest %s, expected %s (the registry re-serialised the manifest)"
                            % (repository, tag, moved or "?", digest))
    return True, digest, previous


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            repository_name=dict(type="str", required=True),
            source=dict(type="str", required=True),
            tag=dict(type="str"),
            registry=dict(type="str", default=""),
            insecure=dict(type="bool", default=False),
            registry_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("ecr", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    try:
        registry = open_registry(client, params["registry"], params["insecure"], params["registry_id"])
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Failed to get an ECR authorization token")
    except (RegistryError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    try:
        changed, digest, previous = ensure_tag(registry, params["repository_name"], params["source"], params["tag"], module.check_mode)
    except RegistryError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=changed, digest=digest, previous_digest=previous, registry=registry.host)
    if module._diff and params["tag"]:
        result["diff"] = {"before": {params["tag"]: previous}, "after": {params["tag"]: digest}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
