# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of IAM roles and their inline policies for dataops.prefect_fargate.stack_state_info.

Used by the roles that converge IAM roles with amazon.aws.iam_role (purge_policies: true, purge_tags: true,
create_instance_profile: false) and inline policies with amazon.aws.iam_policy (state: present). A role is
`in_sync` only when iam_role would change nothing: it exists, its tags, trust policy (compared as
iam_role compares it, with amazon.aws's compare_policies), description and attached managed policies are
the wanted ones. An inline policy is in sync when iam_policy would not put it: it exists and
compare_policies finds no difference. The reader never writes.

spec:
  roles: [{name, description, assume_role_policy_document, managed_policies: [arn], tags,
           inline_policies: {policy name: policy document (JSON text or dict)}}]
  path_prefix: optional; the names of every role under it are returned too (path_roles)

Returns {roles: {name: {exists, arn, in_sync, why, policies: {name: {in_sync, why}}, policies_in_sync}},
path_roles, in_sync}.
"""

from __future__ import annotations


from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import in_parallel, json_document

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def _missing(exc):
    return exc.response.get("Error", {}).get("Code") in ("NoSuchEntity", "NoSuchEntityException")


def _read_role(iam, want):
    name = want["name"]
    out = {"exists": False, "arn": "", "in_sync": False, "why": "not found", "policies": {}}
    for policy in want.get("inline_policies") or {}:
        out["policies"][policy] = {"in_sync": False, "why": "role not found"}
    try:
        role = iam.get_role(aws_retry=True, RoleName=name)["Role"]
    except ClientError as exc:
        if _missing(exc):
            return out
        raise
    out.update(exists=True, arn=role["Arn"])
    why = []
    current_tags = {t["Key"]: t["Value"] for t in role.get("Tags") or [] if not t["Key"].startswith("aws:")}
    if current_tags != dict(want.get("tags") or {}):
        why.append("tags")
    if want.get("assume_role_policy_document") is not None and compare_policies(
            json_document(role.get("AssumeRolePolicyDocument") or {}), json_document(want["assume_role_policy_document"])):
        why.append("trust policy")
    if want.get("description") is not None and role.get("Description") != want["description"]:
        why.append("description")
    attached = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        attached += [p["PolicyArn"] for p in page.get("AttachedPolicies", [])]
    if set(attached) != set(want.get("managed_policies") or []):
        why.append("managed policies")
    out.update(in_sync=not why, why=", ".join(why))
    for policy, document in (want.get("inline_policies") or {}).items():
        try:
            current = iam.get_role_policy(aws_retry=True, RoleName=name, PolicyName=policy)["PolicyDocument"]
        except ClientError as exc:
            if _missing(exc):
                out["policies"][policy] = {"in_sync": False, "why": "not found"}
                continue
            raise
        differs = compare_policies(json_document(current), json_document(document))
        out["policies"][policy] = {"in_sync": not differs, "why": "document" if differs else ""}
    return out


def read_iam(iam, spec):
    wanted = spec.get("roles") or []
    # The roles are read at once (each is a few round trips that only wait on IAM).
    roles = dict(zip([want["name"] for want in wanted], in_parallel(lambda want: _read_role(iam, want), wanted)))
    for out in roles.values():
        out["policies_in_sync"] = all(p["in_sync"] for p in out["policies"].values())
    result = {"roles": roles, "path_roles": []}
    if spec.get("path_prefix"):
        for page in iam.get_paginator("list_roles").paginate(PathPrefix=spec["path_prefix"]):
            result["path_roles"] += [r["RoleName"] for r in page.get("Roles", [])]
    result["in_sync"] = all(r["in_sync"] and all(p["in_sync"] for p in r["policies"].values()) for r in roles.values())
    return result
