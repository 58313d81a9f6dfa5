#!/usr/bin/env python3
"""The IAM actions a deployment really calls, derived from a recording of its AWS requests.

The moto server records every request it receives (`/moto-api/recorder/start-recording`, then
`/moto-api/recorder/download-recording`: one JSON object per line with method, url, headers and
body). This script turns such a recording into the set of IAM actions (`service:Action`) the
requests need, and checks that a policy document grants each of them:

    scripts/deployer_policy.py RECORDING                       # print the derived actions
    scripts/deployer_policy.py RECORDING --check docs/deployer-policy.json

How a request becomes an action:
- JSON protocol (ECS, ECR, CloudWatch Logs, Secrets Manager, EventBridge, SQS): the operation is the
  part of `X-Amz-Target` after the dot; the service is the signing service of the request's
  credential scope (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
- Query protocol (EC2, IAM, ELBv2, STS, SQS before JSON): the `Action` parameter (body or query
  string) with the same signing service.
- S3 (REST): the HTTP method, whether the path names a bucket or an object, and the sub-resource
  in the query string (`?policy`, `?versioning`, ...) give the S3 action, mostly not the API name
  (DeleteBucketEncryption is `s3:PutEncryptionConfiguration`, HeadBucket is `s3:ListBucket`, ...).
- ECR's registry (Docker Registry HTTP API v2, `/v2/...` paths: what `podman push` sends to
  `<account>.dkr.ecr.<region>.amazonaws.com`) maps to the ECR layer actions.

Only the deployer's requests count: by default those whose User-Agent carries `Ansible/` (every
amazon.aws / community.aws module and this collection's modules send it). The ECS worker and flow
runs call AWS with their task roles and other User-Agents; `--all-agents` counts them too.
Requests that need no permission (`sts:GetCallerIdentity`) are left out.

The check matches actions only (wildcards allowed, case-insensitive) against the Allow statements;
resource scoping and conditions are for a review of the policy file, not for this script.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import re
import sys
import urllib.parse
from collections import Counter
from pathlib import Path

# Signing service (credential scope) -> IAM service prefix, where they differ.
SERVICE_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}
# Operations no policy needs to grant.
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}
USER_AGENT_MARK = "Ansible/"

# S3 sub-resources of a bucket: query key -> {HTTP method: action}.
S3_BUCKET_SUBRESOURCES = {
    "policy": {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"},
    "policyStatus": {"GET": "GetBucketPolicyStatus"},
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "encryption": {"GET": "GetEncryptionConfiguration", "PUT": "PutEncryptionConfiguration",
                   "DELETE": "PutEncryptionConfiguration"},
    "publicAccessBlock": {"GET": "GetBucketPublicAccessBlock", "PUT": "PutBucketPublicAccessBlock",
                          "DELETE": "PutBucketPublicAccessBlock"},
    "lifecycle": {"GET": "GetLifecycleConfiguration", "PUT": "PutLifecycleConfiguration",
                  "DELETE": "PutLifecycleConfiguration"},
    "tagging": {"GET": "GetBucketTagging", "PUT": "PutBucketTagging", "DELETE": "PutBucketTagging"},
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
    "ownershipControls": {"GET": "GetBucketOwnershipControls", "PUT": "PutBucketOwnershipControls",
                          "DELETE": "PutBucketOwnershipControls"},
    "location": {"GET": "GetBucketLocation"},
    "versions": {"GET": "ListBucketVersions"},
    "uploads": {"GET": "ListBucketMultipartUploads"},
    "cors": {"GET": "GetBucketCORS", "PUT": "PutBucketCORS", "DELETE": "PutBucketCORS"},
    "website": {"GET": "GetBucketWebsite", "PUT": "PutBucketWebsite", "DELETE": "DeleteBucketWebsite"},
    "logging": {"GET": "GetBucketLogging", "PUT": "PutBucketLogging"},
    "notification": {"GET": "GetBucketNotification", "PUT": "PutBucketNotification"},
    "requestPayment": {"GET": "GetBucketRequestPayment", "PUT": "PutBucketRequestPayment"},
    "object-lock": {"GET": "GetBucketObjectLockConfiguration", "PUT": "PutBucketObjectLockConfiguration"},
    "accelerate": {"GET": "GetAccelerateConfiguration", "PUT": "PutAccelerateConfiguration"},
    "replication": {"GET": "GetReplicationConfiguration", "PUT": "PutReplicationConfiguration",
                    "DELETE": "PutReplicationConfiguration"},
    "inventory": {"GET": "GetInventoryConfiguration", "PUT": "PutInventoryConfiguration"},
    "metrics": {"GET": "GetMetricsConfiguration", "PUT": "PutMetricsConfiguration"},
    "analytics": {"GET": "GetAnalyticsConfiguration", "PUT": "PutAnalyticsConfiguration"},
    "intelligent-tiering": {"GET": "GetIntelligentTieringConfiguration",
                            "PUT": "PutIntelligentTieringConfiguration"},
}
# Sub-resources of an object.
S3_OBJECT_SUBRESOURCES = {
    "tagging": {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"},
    "acl": {"GET": "GetObjectAcl", "PUT": "PutObjectAcl"},
    "attributes": {"GET": "GetObjectAttributes"},
    "retention": {"GET": "GetObjectRetention", "PUT": "PutObjectRetention"},
    "legal-hold": {"GET": "GetObjectLegalHold", "PUT": "PutObjectLegalHold"},
    "restore": {"POST": "RestoreObject"},
}
# The versioned form of an object action (a `versionId` in the query string).
S3_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion",
                "GetObjectTagging": "GetObjectVersionTagging", "PutObjectTagging": "PutObjectVersionTagging",
                "DeleteObjectTagging": "DeleteObjectVersionTagging", "GetObjectAcl": "GetObjectVersionAcl",
                "PutObjectAcl": "PutObjectVersionAcl", "GetObjectAttributes": "GetObjectVersionAttributes"}


class UnmappedRequest(ValueError):
    """A request this script cannot turn into an IAM action (named in the check's failure)."""


def _headers(entry: dict) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}


def _body(entry: dict) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        return base64.b64decode(body).decode("utf-8", errors="replace")
    return body


def signing_service(entry: dict) -> str:
    """The service of the request's SigV4 credential scope (header, or query string when presigned)."""
    headers = _headers(entry)
    match = re.search(r"Credential=[^/,]+/\d{8}/[^/]+/([^/]+)/aws4_request", headers.get("authorization", ""))
    if not match:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(entry.get("url", "")).query)
        credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
        if len(credential) == 5:
            return credential[3]
        return ""
    return match.group(1)


def s3_action(method: str, url: str, headers: dict[str, str], body: str) -> list[str]:
    """The S3 IAM actions of one REST request (path-style or virtual-hosted-style URL)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    host = parts.hostname or ""
    path = urllib.parse.unquote(parts.path).lstrip("/")
    virtual_bucket = re.match(r"^(.+)\.s3[.-]", host)
    if virtual_bucket:
        bucket, key = virtual_bucket.group(1), path
    else:
        bucket, _, key = path.partition("/")
    method = method.upper()

    if not bucket:
        if method == "GET":
            return ["ListAllMyBuckets"]
        raise UnmappedRequest(f"S3 {method} {url}")

    if not key:
        for sub, by_method in S3_BUCKET_SUBRESOURCES.items():
            if sub in query:
                if method not in by_method:
                    raise UnmappedRequest(f"S3 {method} bucket ?{sub}")
                return [by_method[method]]
        if "delete" in query and method == "POST":  # DeleteObjects: one permission per kind of key
            actions = ["DeleteObject"]
            if "<VersionId>" in body:
                actions.append("DeleteObjectVersion")
            return actions
        # ListObjects(V2) and HeadBucket need s3:ListBucket.
        simple = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
        if method in simple:
            return [simple[method]]
        raise UnmappedRequest(f"S3 {method} bucket {url}")

    versioned = "versionId" in query
    if "uploadId" in query:  # multipart upload of an object
        multipart = {"PUT": "PutObject", "POST": "PutObject", "DELETE": "AbortMultipartUpload",
                     "GET": "ListMultipartUploadParts"}
        return [multipart[method]]
    if "uploads" in query and method == "POST":
        return ["PutObject"]
    for sub, by_method in S3_OBJECT_SUBRESOURCES.items():
        if sub in query:
            if method not in by_method:
                raise UnmappedRequest(f"S3 {method} object ?{sub}")
            action = by_method[method]
            return [S3_VERSIONED.get(action, action) if versioned else action]
    simple = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}
    if method not in simple:
        raise UnmappedRequest(f"S3 {method} object {url}")
    action = simple[method]
    actions = [S3_VERSIONED.get(action, action) if versioned else action]
    if method == "PUT" and "x-amz-copy-source" in headers:  # CopyObject also reads the source
        actions.append("GetObjectVersion" if "versionId=" in headers["x-amz-copy-source"] else "GetObject")
    if method == "PUT" and "x-amz-tagging" in headers:
        actions.append("PutObjectTagging")
    return actions


def registry_action(method: str, path: str) -> str:
    """ECR's registry side (Docker Registry HTTP API v2) -> the ECR layer/image action."""
    method = method.upper()
    if path.rstrip("/") == "/v2":
        return "GetAuthorizationToken"  # the version check that starts a login
    if "/blobs/uploads" in path:
        return {"POST": "InitiateLayerUpload", "PATCH": "UploadLayerPart",
                "PUT": "CompleteLayerUpload"}.get(method, "InitiateLayerUpload")
    if "/blobs/" in path:
        return "BatchCheckLayerAvailability" if method == "HEAD" else "GetDownloadUrlForLayer"
    if "/manifests/" in path:
        return {"PUT": "PutImage", "DELETE": "BatchDeleteImage"}.get(method, "BatchGetImage")
    if path.endswith("/tags/list"):
        return "ListImages"
    raise UnmappedRequest(f"registry {method} {path}")


def actions_of(entry: dict) -> list[str]:
    """The IAM actions (`prefix:Action`) one recorded request needs."""
    headers = _headers(entry)
    method = entry.get("method", "GET")
    url = entry.get("url", "")
    path = urllib.parse.urlsplit(url).path
    service = signing_service(entry)

    if path.startswith("/v2") and not service:
        return ["ecr:" + registry_action(method, path)]
    if not service:
        raise UnmappedRequest(f"unsigned request {method} {url}")
    prefix = SERVICE_PREFIX.get(service, service)

    target = headers.get("x-amz-target")
    if target:  # JSON protocol
        return [f"{prefix}:{target.rsplit('.', 1)[-1]}"]
    if service == "s3":
        return [f"s3:{action}" for action in s3_action(method, url, headers, _body(entry))]
    body = _body(entry)
    for source in (body, urllib.parse.urlsplit(url).query):
        params = urllib.parse.parse_qs(source) if "=" in source else {}
        if "Action" in params:  # query protocol
            return [f"{prefix}:{params['Action'][0]}"]
    raise UnmappedRequest(f"{service} {method} {url}")


def read_recording(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def derive(entries: list[dict], all_agents: bool = False) -> tuple[Counter, list[str]]:
    """(action -> number of requests, unmapped request descriptions) of the deployer's requests."""
    actions: Counter = Counter()
    unmapped: list[str] = []
    for entry in entries:
        if not all_agents and USER_AGENT_MARK not in _headers(entry).get("user-agent", ""):
            continue
        try:
            for action in actions_of(entry):
                if action not in ALWAYS_ALLOWED:
                    actions[action] += 1
        except UnmappedRequest as exc:
            unmapped.append(str(exc))
    return actions, unmapped


def allowed_patterns(policy: dict) -> list[str]:
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    patterns: list[str] = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        action = statement.get("Action", [])
        patterns += [action] if isinstance(action, str) else list(action)
    return patterns


def missing_actions(actions, policy: dict) -> list[str]:
    """The actions no Allow statement of the policy grants (IAM matches action names case-insensitively)."""
    patterns = [p.lower() for p in allowed_patterns(policy)]
    return sorted(a for a in actions if not any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", type=Path, help="moto recorder download (JSON lines)")
    parser.add_argument("--check", type=Path, metavar="POLICY",
                        help="fail (exit 1) naming every derived action the policy does not allow")
    parser.add_argument("--all-agents", action="store_true",
                        help="count every request, not only those sent by Ansible")
    parser.add_argument("--counts", action="store_true", help="print the number of requests per action")
    args = parser.parse_args(argv)

    actions, unmapped = derive(read_recording(args.recording), all_agents=args.all_agents)
    if args.check is None:
        for action in sorted(actions):
            print(f"{action}\t{actions[action]}" if args.counts else action)
    for request in unmapped:
        print(f"unmapped request: {request}", file=sys.stderr)
    if args.check is None:
        return 1 if unmapped else 0

    missing = missing_actions(actions, json.loads(args.check.read_text()))
    if missing:
        print(f"{args.check} does not grant {len(missing)} action(s) the deployment called:")
        for action in missing:
            print(f"  {action}  ({actions[action]} request(s))")
    if unmapped:
        print(f"{len(unmapped)} request(s) could not be mapped to an IAM action (see above)")
    if missing or unmapped:
        return 1
    print(f"{args.check} grants all {len(actions)} action(s) the deployment called")
    return 0


if __name__ == "__main__":
    sys.exit(main())
