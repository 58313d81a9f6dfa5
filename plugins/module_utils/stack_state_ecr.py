# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the ecr_image role's repository and image tags for dataops.prefect_fargate.stack_state_info.

In one process: DescribeRepositories (scan on push, tag mutability, encryption), the lifecycle policy, the
repository's tags and, with the registry login fetched here (ecr:GetAuthorizationToken, kept in the process,
never returned), the digests of the content-hash tag and of the moving tag (Registry HTTP API v2 HEAD
manifests) or the repository's tag list.

`repository.in_sync` is true only when community.aws.ecs_ecr, with the arguments the role passes (name,
scan_on_push, image_tag_mutability, lifecycle_policy; no repository policy, no encryption), would change
nothing: the repository exists, its tag mutability and scan on push are the wanted ones and its lifecycle
policy equals the wanted one under amazon.aws compare_policies (the module's own comparison). `tags.in_sync`
mirrors ecr_repository_tags (compare_aws_tags, purge). A key the spec leaves out is not compared; whatever
cannot be read is out of sync and the stock module decides. The reader never writes.

spec:
  repository_name, registry_id (optional),
  scan_on_push (bool), tag_mutability (MUTABLE|IMMUTABLE), lifecycle_policy (JSON text or dict), tags (dict)
  registry: {override (host[:port], '' = ECR's registry), insecure (bool), tag, moving_tag, list_tags (bool)}
"""

from __future__ import annotations

import json

from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import open_registry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import error_code, json_document

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def read_repository(ecr, spec):
    """The repository as ecs_ecr compares it, and its tags as ecr_repository_tags does."""
    name = spec["repository_name"]
    registry = {"registryId": spec["registry_id"]} if spec.get("registry_id") else {}
    try:
        repo = ecr.describe_repositories(aws_retry=True, repositoryNames=[name], **registry)["repositories"][0]
    except ClientError as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise
        repo = None
    if repo is None:
        missing = {"in_sync": False, "why": "not found"}
        state = {"repository": dict(missing, exists=False, arn="", uri="", current={})}
        if "tags" in spec:
            state["tags"] = dict(missing, current={})
        return state

    current = {"scan_on_push": repo.get("imageScanningConfiguration", {}).get("scanOnPush"),
               "tag_mutability": repo.get("imageTagMutability"),
               "encryption": repo.get("encryptionConfiguration") or {}}
    why = []
    if "tag_mutability" in spec and current["tag_mutability"] != str(spec["tag_mutability"]).upper():
        why.append("tag mutability")
    if "scan_on_push" in spec and current["scan_on_push"] != bool(spec["scan_on_push"]):
        why.append("scan on push")
    if spec.get("lifecycle_policy") is not None:
        try:
            text = ecr.get_lifecycle_policy(aws_retry=True, repositoryName=name, **registry).get("lifecyclePolicyText")
        except ClientError as exc:
            if error_code(exc) != "LifecyclePolicyNotFoundException":
                raise
            text = None
        current["lifecycle_policy"] = json.loads(text) if text else None
        if not current["lifecycle_policy"] or compare_policies(current["lifecycle_policy"], json_document(spec["lifecycle_policy"])):
            why.append("lifecycle policy")
    state = {"repository": {"exists": True, "arn": repo["repositoryArn"], "uri": repo.get("repositoryUri", ""),
                            "in_sync": not why, "why": ", ".join(why), "current": current}}
    if "tags" in spec:
        answer = ecr.list_tags_for_resource(aws_retry=True, resourceArn=repo["repositoryArn"]).get("tags", [])
        tags = boto3_tag_list_to_ansible_dict(answer, tag_name_key_name="Key", tag_value_key_name="Value")
        wanted = {str(k): str(v) for k, v in (spec["tags"] or {}).items()}
        to_set, to_remove = compare_aws_tags(tags, wanted, purge_tags=True)
        why = (["tags to set: %s" % ", ".join(sorted(to_set))] if to_set else []) + (["tags to remove: %s" % ", ".join(sorted(to_remove))] if to_remove else [])
        state["tags"] = {"in_sync": not why, "why": "; ".join(why), "current": tags}
    return state


def read_registry(ecr, spec, want):
    """Digests of the content-hash tag and the moving tag, and the tag list, through the registry API."""
    registry = open_registry(ecr, want.get("override") or "", bool(want.get("insecure")), spec.get("registry_id"))
    name = spec["repository_name"]
    state = {"host": registry.host, "repository_uri": "%s/%s" % (registry.host, name)}
    if want.get("tag"):
        state["tag_digest"] = registry.digest(name, want["tag"])
    if want.get("moving_tag"):
        state["moving_tag_digest"] = registry.digest(name, want["moving_tag"])
        # The role's retag (ecr_image_tag) changes nothing only when both tags have one and the same manifest.
        state["moving_tag_in_sync"] = bool(state["moving_tag_digest"]) and state["moving_tag_digest"] == state.get("tag_digest")
    if want.get("list_tags"):
        state["tags"] = sorted(registry.tags(name))
    return state


def read_ecr(client, spec):
    ecr = client("ecr")
    state = read_repository(ecr, spec)
    if spec.get("registry") is not None:
        state["registry"] = read_registry(ecr, spec, spec["registry"])
    state["in_sync"] = (state["repository"]["in_sync"] and state.get("tags", {}).get("in_sync", True)
                        and state.get("registry", {}).get("moving_tag_in_sync", True)
                        and bool(state.get("registry", {}).get("tag_digest", "-")))
    return state
