# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the ecs_fargate_agent role's AWS resources (all but IAM) for dataops.prefect_fargate.stack_state_info.

One boto3 session reads the worker subnets (their zones and VPC), the Prefect credential secret, the log group, the
ECS cluster (settings, tags), the task-event queues and their EventBridge rule and target, the worker security
group, the latest ACTIVE revision of the worker task family (with its tags) and the worker service. Each resource is `in_sync` only when
the role's write task (a stock module, or this collection's ecs_cluster_settings) would change nothing; the
comparisons mirror theirs:

- community.aws.secretsmanager_secret: see read_secret;
- amazon.aws.cloudwatchlogs_log_group: exists, same retention, same tags (purge_tags);
- community.aws.ecs_cluster (state present, no capacity providers): the cluster is ACTIVE; container insights as
  ecs_cluster_settings compares it; tags as community.aws.ecs_tag (purge_tags) compares them;
- community.aws.sqs_queue: exists, each given attribute equal as a string, the policy and redrive policy equal
  for amazon.aws compare_policies, tags (purge_tags); SSE-SQS / KMS key returned for the role's check;
- amazon.aws.cloudwatchevent_rule: exists and ENABLED, same event pattern (as JSON), description, no schedule or
  role, and exactly the wanted targets (id, arn);
- amazon.aws.ec2_security_group: see stack_state_alb.read_security_group (egress left alone);
- the task definition is only read (the role compares its fingerprint with the wanted one, as before);
- community.aws.ecs_service: an ACTIVE service whose desired count, load balancers, health-check grace period,
  propagate_tags, tags and enable_execute_command are the wanted ones (ecs_service's is_matching_service; the
  task definition is compared by the role, which knows the revision it wants), with the wanted network and
  deployment configuration (which ecs_service ignores, so the role forces a new deployment on a difference).

Anything missing or different is out of sync and the stock module decides. The reader never writes. It reads the
value of the role's own secret to compare it (as secretsmanager_secret does); the value never leaves read_secret,
and the wanted one comes in as stack_state_info's no_log option `secret_value`.

spec (built by roles/ecs_fargate_agent/tasks/create.yml):
  subnet_ids: the worker subnets (optional; returned as `subnets`, each with id, availability_zone, vpc_id)
  known_subnets: optional, [{id, availability_zone, vpc_id}] already known (not described again)
  secret: optional; a name or ARN (a given secret: existence only), or {name, description, tags} (the role's own
          secret, compared with the module option secret_value)
  log_group: {name, retention, tags}
  cluster: {name, container_insights, tags}
  queues: [{name, account (optional: saves the GetQueueUrl call of a found queue), attributes: {SQS attribute: value},
            policy, redrive_policy, tags}]
  rule: {name, description, event_pattern, targets: [{id, arn}]}
  security_group: {name, vpc_id (empty: the one VPC of the subnets), ingress: [rule as ec2_security_group takes it], tags}
  task_family: family name
  service: {name, desired_count, load_balancers, health_check_grace_period_seconds, propagate_tags, tags,
            enable_execute_command, subnets, assign_public_ip, deployment: {maximumPercent, minimumHealthyPercent,
            deploymentCircuitBreaker}}
"""

from __future__ import annotations

import json

from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_alb import read_security_group, read_subnets
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import error_code, in_parallel, json_document, read_all, tag_dict

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def _out(why, **extra):
    return dict(extra, in_sync=not why, why=", ".join(why))


def _ecs_tags(items):
    return {t["key"]: t["value"] for t in items or [] if not t["key"].startswith("aws:")}


def read_secret(sm, want, value=None):
    """The credential secret. `want` is a name or ARN (a given secret: only whether it exists), or the secret the role
    writes with community.aws.secretsmanager_secret ({name, description, tags}, with `value`, the wanted SecretString):
    then it is `in_sync` only when that module would change nothing. Its comparisons: not scheduled for deletion, same
    description, no KMS key of its own, rotation off, the same value, no resource policy (compare_policies with none
    wanted), the same tags (purge_tags). `value_in_sync` says whether the value alone is the wanted one (the tasks
    that use it read it when they start); `tags` are the current ones. The value is compared here, never returned."""
    name = want if isinstance(want, str) else want["name"]
    try:
        secret = sm.describe_secret(aws_retry=True, SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return _out(["not found"], exists=False, arn="", tags={}, value_in_sync=False)
        raise
    exists = secret.get("DeletedDate") is None
    found = {"exists": exists, "arn": secret.get("ARN", ""), "tags": tag_dict(secret.get("Tags"))}
    if isinstance(want, str):
        return _out([] if exists else ["scheduled for deletion"], value_in_sync=exists, **found)
    if not exists:  # secretsmanager_secret restores it; its value cannot be read meanwhile
        return _out(["scheduled for deletion"], value_in_sync=False, **found)
    why = []
    if secret.get("Description", "") != want.get("description", ""):
        why.append("description")
    if secret.get("KmsKeyId") is not None:  # the module is given no key: any key of the secret's own differs
        why.append("KMS key")
    if secret.get("RotationEnabled", False):
        why.append("rotation")
    if found["tags"] != {k: str(v) for k, v in (want.get("tags") or {}).items()}:
        why.append("tags")
    current, policy = in_parallel(lambda read: read(aws_retry=True, SecretId=name), [sm.get_secret_value, sm.get_resource_policy])
    value_in_sync = value is not None and current.get("SecretString") == value
    if not value_in_sync:
        why.append("value")
    if compare_policies(None, policy.get("ResourcePolicy")):
        why.append("resource policy")
    return _out(why, value_in_sync=value_in_sync, **found)


def read_log_group(logs, want):
    found = [g for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=want["name"])
             for g in page.get("logGroups", []) if g["logGroupName"] == want["name"]]
    if not found:
        return _out(["not found"], exists=False, retention_in_days=None)
    group = found[0]
    why = []
    if group.get("retentionInDays") != (int(want["retention"]) if want.get("retention") is not None else None):
        why.append("retention")
    tags = logs.list_tags_log_group(aws_retry=True, logGroupName=want["name"]).get("tags", {})
    if tags != dict(want.get("tags") or {}):
        why.append("tags")
    return _out(why, exists=True, retention_in_days=group.get("retentionInDays"))


def read_cluster(ecs, want):
    clusters = ecs.describe_clusters(aws_retry=True, clusters=[want["name"]], include=["SETTINGS", "TAGS"]).get("clusters", [])
    active = [c for c in clusters if c.get("status") == "ACTIVE"]
    if not active:
        return _out(["not found"], arn="", settings_in_sync=False, tags_in_sync=False)
    cluster = active[0]
    insights = next((s.get("value", "disabled") for s in cluster.get("settings") or [] if s.get("name") == "containerInsights"), "disabled")
    return _out([], arn=cluster["clusterArn"], settings_in_sync=insights == want["container_insights"],
                tags_in_sync=_ecs_tags(cluster.get("tags")) == dict(want.get("tags") or {}))


NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _queue_attributes(sqs, want):
    """(url, attributes) of the queue, or ("", None) when it does not exist.

    With the queue's account (spec `account`) the URL is first taken as the endpoint's, account, name: the form
    SQS gives its queues, and what its GetQueueUrl answers. AWS asks callers not to rely on that form, so when
    that URL finds no queue or is refused (NonExistentQueue, InvalidAddress, AccessDenied), GetQueueUrl is asked:
    a missing queue costs one call more, a found one one call less (the no-op case). Other errors are raised.
    """
    if want.get("account"):
        url = "%s/%s/%s" % (sqs.meta.endpoint_url.rstrip("/"), want["account"], want["name"])
        try:
            return url, sqs.get_queue_attributes(aws_retry=True, QueueUrl=url, AttributeNames=["All"])["Attributes"]
        except ClientError as exc:
            if error_code(exc) not in NO_QUEUE + ("InvalidAddress", "AccessDenied", "AccessDeniedException"):
                raise
    try:
        url = sqs.get_queue_url(aws_retry=True, QueueName=want["name"])["QueueUrl"]
    except ClientError as exc:
        if error_code(exc) in NO_QUEUE:
            return "", None
        raise
    return url, sqs.get_queue_attributes(aws_retry=True, QueueUrl=url, AttributeNames=["All"])["Attributes"]


def read_queue(sqs, want):
    url, attributes = _queue_attributes(sqs, want)
    if attributes is None:
        return _out(["not found"], url="", arn="", sqs_managed_sse_enabled=False, kms_master_key_id="")
    why = []
    for key, value in (want.get("attributes") or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        if str(attributes.get(key, "")).lower() != str(value).lower():
            why.append(key)
    for key, wanted in (("Policy", want.get("policy")), ("RedrivePolicy", want.get("redrive_policy"))):
        if wanted is not None and compare_policies(json.loads(attributes.get(key, "{}")), json_document(wanted)):
            why.append(key)
    tags = sqs.list_queue_tags(aws_retry=True, QueueUrl=url).get("Tags", {})
    if tags != dict(want.get("tags") or {}):
        why.append("tags")
    return _out(why, url=url, arn=attributes.get("QueueArn", ""),
                sqs_managed_sse_enabled=str(attributes.get("SqsManagedSseEnabled", "false")).lower() == "true",
                kms_master_key_id=attributes.get("KmsMasterKeyId", ""))


def read_rule(events, want):
    try:
        rule = events.describe_rule(aws_retry=True, Name=want["name"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return _out(["not found"], arn="")
        raise
    why = []
    if rule.get("State") != "ENABLED":
        why.append("state")
    if json_document(rule.get("EventPattern") or "null") != json_document(want["event_pattern"]):
        why.append("event pattern")
    if rule.get("Description") != want.get("description"):
        why.append("description")
    if rule.get("ScheduleExpression") or rule.get("RoleArn"):
        why.append("schedule or role")
    targets = events.list_targets_by_rule(aws_retry=True, Rule=want["name"]).get("Targets", [])
    # Any other field of a target (Input, RoleArn...) is one the module would remove.
    current = sorted((t["Id"], t["Arn"], tuple(sorted(k for k in t if k not in ("Id", "Arn")))) for t in targets)
    if current != sorted((t["id"], t["arn"], ()) for t in want.get("targets") or []):
        why.append("targets")
    return _out(why, arn=rule.get("Arn", ""))


def read_task_definition(ecs, family):
    try:
        found = ecs.describe_task_definition(aws_retry=True, taskDefinition=family, include=["TAGS"])
    except ClientError as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            return {"arn": "", "definition": {}, "tags": {}}
        raise
    definition = found.get("taskDefinition") or {}
    return {"arn": definition.get("taskDefinitionArn", ""), "definition": definition, "tags": _ecs_tags(found.get("tags"))}


def read_service(ecs, cluster_found, want, group_id):
    empty = _out(["not found"], exists=False, task_definition="", tags_in_sync=False, drift=False)
    if not cluster_found:
        return empty
    services = ecs.describe_services(aws_retry=True, cluster=want["cluster"], services=[want["name"]], include=["TAGS"]).get("services", [])
    active = [s for s in services if s.get("status") == "ACTIVE"]
    if not active:
        return empty
    service = active[0]
    why = []
    # No wanted count: the count is someone else's to set (Application Auto Scaling, worker_autoscaling).
    if want.get("desired_count") not in (None, "") and int(want["desired_count"]) != service.get("desiredCount"):
        why.append("desired count")
    if want.get("health_check_grace_period_seconds") and int(want["health_check_grace_period_seconds"]) != service.get("healthCheckGracePeriodSeconds"):
        why.append("health check grace period")
    wanted_lbs = [{"targetGroupArn": lb["targetGroupArn"], "containerName": lb["containerName"], "containerPort": int(lb["containerPort"])}
                  for lb in want.get("load_balancers") or []]
    if wanted_lbs != service.get("loadBalancers"):
        why.append("load balancers")
    if (want.get("propagate_tags") or "NONE") != service.get("propagateTags"):
        why.append("propagate tags")
    tags_in_sync = _ecs_tags(service.get("tags")) == dict(want.get("tags") or {})
    if not tags_in_sync:
        why.append("tags")
    if bool(want.get("enable_execute_command")) != service.get("enableExecuteCommand", False):
        why.append("enable execute command")
    # ecs_service leaves these alone on an existing service: the role forces a new deployment when they differ.
    network = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    deploy = service.get("deploymentConfiguration") or {}
    drift = (sorted(network.get("subnets") or []) != sorted(want.get("subnets") or [])
             or (network.get("securityGroups") or []) != [group_id]
             or network.get("assignPublicIp", "DISABLED") != ("ENABLED" if want.get("assign_public_ip") else "DISABLED")
             or any(deploy.get(k) != v for k, v in (want.get("deployment") or {}).items()))
    if drift:
        why.append("network or deployment configuration")
    return _out(why, exists=True, task_definition=service.get("taskDefinition", ""), tags_in_sync=tags_in_sync, drift=drift,
                desired_count=service.get("desiredCount"))


def read_ecs_agent(client, spec):
    # Clients first (a boto3 session is not thread-safe), then the independent resources at once.
    ecs, ec2, secrets, logs, sqs, events = (client(name) for name in ("ecs", "ec2", "secretsmanager", "logs", "sqs", "events"))
    queues = spec.get("queues") or []
    result = read_all({
        "subnets": lambda: read_subnets(ec2, spec.get("subnet_ids") or [], spec.get("known_subnets")),
        "secret": lambda: read_secret(secrets, spec["secret"], spec.get("secret_value")) if spec.get("secret")
        else _out(["not asked"], exists=False, arn="", tags={}, value_in_sync=False),
        "log_group": lambda: read_log_group(logs, spec["log_group"]),
        "cluster": lambda: read_cluster(ecs, spec["cluster"]),
        "queues": lambda: dict(zip([q["name"] for q in queues], in_parallel(lambda q: read_queue(sqs, q), queues))),
        "rule": lambda: read_rule(events, spec["rule"]),
        "task_definition": lambda: read_task_definition(ecs, spec["task_family"]),
    })
    vpc_ids = sorted({s["vpc_id"] for s in result["subnets"]})
    vpc_id = spec["security_group"].get("vpc_id") or (vpc_ids[0] if len(vpc_ids) == 1 else "")
    result["security_group"] = read_security_group(ec2, vpc_id, dict(spec["security_group"], egress=None))
    result["service"] = read_service(ecs, result["cluster"]["in_sync"], dict(spec["service"], cluster=spec["cluster"]["name"]),
                                     result["security_group"]["id"])
    result["in_sync"] = all(r["in_sync"] for r in [result["log_group"], result["cluster"], result["rule"], result["security_group"],
                                                   result["service"], *result["queues"].values(),
                                                   *([result["secret"]] if spec.get("secret") else [])]) \
        and result["cluster"]["settings_in_sync"] and result["cluster"]["tags_in_sync"]
    return result
