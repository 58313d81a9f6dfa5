# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the s3_buckets role's buckets for dataops.prefect_fargate.stack_state_info.

A bucket is `in_sync` only when amazon.aws.s3_bucket, with the settings the role passes, would change
nothing: it exists, and its default encryption (algorithm, KMS key, bucket key), versioning, public access
block, object ownership, bucket policy (amazon.aws compare_policies) and tags (purge_tags) are the wanted
ones. A lifecycle rule is in sync when community.aws.s3_lifecycle would not put it: the bucket holds a rule
with that ID equal to the rule the module builds (state present), or none (state absent). Whatever the
reader cannot read or compare is out of sync, and the stock module decides. The reader never writes.

spec:
  buckets: [{name, encryption (AES256|aws:kms), encryption_key_id, versioning, policy (document or {}),
             object_ownership, tags}]   (public access: all four blocks on)
  lifecycle: [{bucket (one of `buckets`), id, state (present|absent), abort_incomplete_multipart_upload_days,
               noncurrent_version_expiration_days, expiration_days, transition_days, storage_class}]
  stored: {bucket, prefixes: [...]}   (optional: returns state.stored = {bucket_exists, keys}, see read_stored)
"""

from __future__ import annotations

import json

from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import error_code, in_parallel, read_all, tag_dict

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

PUBLIC_ACCESS = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


class _NoBucket(Exception):
    """The bucket itself does not exist (any of its reads answers NoSuchBucket)."""


NO_BUCKET = ("NoSuchBucket",)


def _read(call, missing, **params):
    """The answer of one read, or None when the API says the setting does not exist (codes in `missing`).
    Raises _NoBucket when the bucket does not exist: no HeadBucket first, the settings' reads tell."""
    try:
        return call(aws_retry=True, **params)
    except ClientError as exc:
        if error_code(exc) in missing:
            return None
        if error_code(exc) in NO_BUCKET:
            raise _NoBucket() from None
        raise


def lifecycle_rule(want):
    """The rule community.aws.s3_lifecycle builds from the role's arguments (build_rule)."""
    rule = {"Filter": {"Prefix": ""}, "Status": "Enabled", "ID": want["id"]}
    if want.get("abort_incomplete_multipart_upload_days"):
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(want["abort_incomplete_multipart_upload_days"])}
    if want.get("expiration_days"):
        rule["Expiration"] = {"Days": int(want["expiration_days"])}
    if want.get("noncurrent_version_expiration_days"):
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(want["noncurrent_version_expiration_days"])}
    if want.get("transition_days"):
        rule["Transitions"] = [{"Days": int(want["transition_days"]), "StorageClass": want["storage_class"].upper()}]
    return rule


def _read_bucket(s3, want, lifecycle=False):
    """One bucket's settings (and its lifecycle rules when `lifecycle`), read at once: one call each, no
    HeadBucket before them (a missing bucket answers NoSuchBucket to each)."""
    name = want["name"]
    why = []
    reads = {
        "encryption": lambda: _read(s3.get_bucket_encryption, ("ServerSideEncryptionConfigurationNotFoundError",), Bucket=name),
        "versioning": lambda: _read(s3.get_bucket_versioning, (), Bucket=name),
        "block": lambda: _read(s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",), Bucket=name),
        "ownership": lambda: _read(s3.get_bucket_ownership_controls, ("OwnershipControlsNotFoundError",), Bucket=name),
        "policy": lambda: _read(s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=name),
        "tagging": lambda: _read(s3.get_bucket_tagging, ("NoSuchTagSet", "NoSuchTagSetError"), Bucket=name),
    }
    if lifecycle:
        reads["lifecycle"] = lambda: _read(s3.get_bucket_lifecycle_configuration, ("NoSuchLifecycleConfiguration",), Bucket=name)
    try:
        got = read_all(reads, workers=5)  # two buckets at once: 10 calls in flight, botocore's connection pool
    except _NoBucket:
        return {"exists": False, "in_sync": False, "why": "not found"}, {}
    lifecycle_rules = {r.get("ID"): r for r in (got.get("lifecycle") or {}).get("Rules", [])}
    enc = got["encryption"]
    rules = (enc or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules") or [{}]
    default = rules[0].get("ApplyServerSideEncryptionByDefault") or {}
    if default.get("SSEAlgorithm") != want["encryption"]:
        why.append("encryption")
    elif want["encryption"] == "aws:kms":
        if want.get("encryption_key_id") and default.get("KMSMasterKeyID") != want["encryption_key_id"]:
            why.append("encryption key")
        if not want.get("encryption_key_id") and default.get("KMSMasterKeyID"):
            why.append("encryption key")
        if not rules[0].get("BucketKeyEnabled"):
            why.append("bucket key")
    versioning = got["versioning"] or {}
    if bool(want["versioning"]) != (versioning.get("Status") == "Enabled"):
        why.append("versioning")
    block = got["block"]
    if (block or {}).get("PublicAccessBlockConfiguration") != PUBLIC_ACCESS:
        why.append("public access block")
    ownership = got["ownership"]
    current_ownership = ((ownership or {}).get("OwnershipControls", {}).get("Rules") or [{}])[0].get("ObjectOwnership")
    if current_ownership != want["object_ownership"]:
        why.append("object ownership")
    policy = got["policy"]
    current_policy = json.loads(policy["Policy"]) if policy and policy.get("Policy") else None
    wanted_policy = json.loads(want["policy"]) if isinstance(want["policy"], str) else want["policy"]
    if wanted_policy:
        if not current_policy or compare_policies(current_policy, wanted_policy):
            why.append("policy")
    elif current_policy:
        why.append("policy")
    tags = tag_dict((got["tagging"] or {}).get("TagSet"))
    if tags != dict(want.get("tags") or {}):
        why.append("tags")
    # What the settings are and would be, for a check-mode diff (the policy is left out: too long to read).
    was = versioning.get("Status", "Disabled")
    current = {"versioning": was, "public_access": (block or {}).get("PublicAccessBlockConfiguration") or {},
               "encryption": default.get("SSEAlgorithm"), "object_ownership": current_ownership, "tags": tags}
    wanted = {"versioning": "Enabled" if want["versioning"] else ("Suspended" if was == "Enabled" else was),
              "public_access": PUBLIC_ACCESS, "encryption": want["encryption"],
              "object_ownership": want["object_ownership"], "tags": dict(want.get("tags") or {})}
    return {"exists": True, "in_sync": not why, "why": ", ".join(why), "current": current, "wanted": wanted}, lifecycle_rules


def read_s3(s3, spec):
    wanted = spec.get("buckets") or []
    rule_buckets = {want["bucket"] for want in spec.get("lifecycle") or []}
    read = in_parallel(lambda want: _read_bucket(s3, want, want["name"] in rule_buckets), wanted, workers=2)
    buckets = {want["name"]: found for want, (found, _rules) in zip(wanted, read)}
    current_rules = {want["name"]: rules for want, (found, rules) in zip(wanted, read) if found["exists"]}

    lifecycle = {}
    for want in spec.get("lifecycle") or []:
        bucket = want["bucket"]
        key = "%s/%s" % (bucket, want["id"])
        if bucket not in buckets:
            raise ValueError("lifecycle rule %s names bucket %s, which is not one of the spec's buckets" % (want["id"], bucket))
        if bucket not in current_rules:
            lifecycle[key] = {"in_sync": False, "why": "bucket not found"}
            continue
        current = current_rules[bucket].get(want["id"])
        if want.get("state", "present") == "absent":
            lifecycle[key] = {"in_sync": current is None, "why": "" if current is None else "rule present"}
        else:
            same = current == lifecycle_rule(want)
            lifecycle[key] = {"in_sync": same, "why": "" if same else ("rule differs" if current else "rule missing")}
    in_sync = all(b["in_sync"] for b in buckets.values()) and all(r["in_sync"] for r in lifecycle.values())
    out = {"buckets": buckets, "lifecycle": lifecycle, "in_sync": in_sync}
    if spec.get("stored"):
        out["stored"] = read_stored(s3, spec["stored"])
    return out


def read_stored(s3, want):
    """Whether the bucket exists and the keys stored under each prefix (every page), in one process: what
    prefect_flow uploads only when missing. Not a setting, so it never makes the reader out of sync."""
    bucket = want["bucket"]
    keys = []
    try:
        if not want.get("prefixes") and _read(s3.head_bucket, ("404", "NotFound"), Bucket=bucket) is None:
            raise _NoBucket()  # nothing to list: ask for the bucket itself
        for prefix in want.get("prefixes") or []:
            page = {"IsTruncated": True}
            while page.get("IsTruncated"):
                token = {"ContinuationToken": page["NextContinuationToken"]} if page.get("NextContinuationToken") else {}
                page = _read(s3.list_objects_v2, (), Bucket=bucket, Prefix=prefix, **token)
                keys += [item["Key"] for item in page.get("Contents") or []]
    except _NoBucket:  # no HeadBucket first: the listing says so
        return {"bucket_exists": False, "keys": []}
    return {"bucket_exists": True, "keys": keys}
