# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the prefect_server role's AWS resources for dataops.prefect_fargate.stack_state_info.

One boto3 session reads what roles/prefect_server converges: the server subnets (their VPC), the server's and the
database's security groups, the DB subnet group, the secrets' metadata, the auth secret (compared with its wanted
value, never returned), the RDS instance, the log
group, the execution role with its inline policy, the ECS cluster, the latest ACTIVE revision of the server task
family and the server service. Each resource is `in_sync` only when the role's write task (a stock module) would
change nothing; the comparisons mirror theirs:

- amazon.aws.ec2_security_group: see stack_state_alb.read_security_group (the server group's egress is left alone,
  the database group's egress must be empty); a database rule's group_id "@server" stands for the server group;
- amazon.aws.rds_subnet_group: exists with the wanted description, subnets and tags;
- amazon.aws.rds_instance: available, and every setting the role passes (class, storage, encryption, Multi-AZ,
  backups, deletion protection, subnet group, security groups, public access, tags...) equal;
- amazon.aws.cloudwatchlogs_log_group, community.aws.ecs_cluster: see stack_state_ecs;
- amazon.aws.iam_role / iam_policy: see stack_state_iam;
- the task definition and the service are only read: the role compares them as before (fingerprint, service
  fields), with what this reader returns instead of two more module runs.

Anything missing or different is out of sync and the stock module decides. The reader never writes.

spec (built by roles/prefect_server/tasks/create.yml):
  subnet_ids: the server subnets
  server_security_group: {name, ingress, tags}
  db_security_group: {name, ingress, tags} (egress: none)
  db_subnet_group: {name, description, subnet_ids, tags}
  secrets: [name] (metadata only: exists, arn, tags)
  auth_secret: optional {name, description, tags}, compared as community.aws.secretsmanager_secret would compare it,
               with the value given as stack_state_info's no_log option secret_value (stack_state_ecs.read_secret);
               returned as `auth_secret`, and under `secrets` when named there
  database: {identifier, instance_class, allocated_storage, storage_type, kms_key_id, multi_az, backup_retention_period,
             deletion_protection, engine_version, tags}
  log_group: {name, retention, tags}
  iam: as stack_state_iam's spec (the execution role and its inline policy); "@secret:<name>" in a policy
       document stands for the ARN of that secret (one of `secrets`)
  cluster: {name}
  task_family: family name
  service: {cluster, name}
"""

from __future__ import annotations

import json

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_alb import read_security_group, read_subnets
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import error_code, tag_dict
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_ecs import (
    read_cluster,
    read_log_group,
    read_secret,
    read_task_definition,
)
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_iam import read_iam

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def _out(why, **extra):
    return dict(extra, in_sync=not why, why=", ".join(why))


def _metadata(found):
    """exists, arn, tags of a secret read by stack_state_ecs.read_secret; one scheduled for deletion does not exist."""
    return {"exists": found["exists"], "arn": found["arn"] if found["exists"] else "", "tags": found["tags"] if found["exists"] else {}}


def read_secrets(sm, names):
    """Metadata of each secret (exists, arn, tags)."""
    return {name: _metadata(read_secret(sm, name)) for name in names}


def read_db_subnet_group(rds, want):
    try:
        group = rds.describe_db_subnet_groups(aws_retry=True, DBSubnetGroupName=want["name"])["DBSubnetGroups"][0]
    except ClientError as exc:
        if error_code(exc) != "DBSubnetGroupNotFoundFault":
            raise
        return _out(["not found"], arn="")
    why = []
    if group.get("DBSubnetGroupDescription") != want["description"]:
        why.append("description")
    if sorted(s["SubnetIdentifier"] for s in group.get("Subnets") or []) != sorted(want["subnet_ids"]):
        why.append("subnets")
    tags = rds.list_tags_for_resource(aws_retry=True, ResourceName=group["DBSubnetGroupArn"]).get("TagList", [])
    if tag_dict(tags) != dict(want.get("tags") or {}):
        why.append("tags")
    return _out(why, arn=group["DBSubnetGroupArn"])


def read_database(rds, want, subnet_group, security_group_id):
    try:
        db = rds.describe_db_instances(aws_retry=True, DBInstanceIdentifier=want["identifier"])["DBInstances"][0]
    except ClientError as exc:
        if error_code(exc) != "DBInstanceNotFound":
            raise
        return _out(["not found"], exists=False, arn="", address="", port=5432, status="")
    why = []
    if db.get("DBInstanceStatus") != "available":
        why.append("status " + str(db.get("DBInstanceStatus")))
    for key, value in (("DBInstanceClass", want["instance_class"]), ("AllocatedStorage", int(want["allocated_storage"])),
                       ("StorageType", want["storage_type"]), ("StorageEncrypted", True),
                       ("MultiAZ", bool(want["multi_az"])), ("BackupRetentionPeriod", int(want["backup_retention_period"])),
                       ("DeletionProtection", bool(want["deletion_protection"])), ("CopyTagsToSnapshot", True),
                       ("AutoMinorVersionUpgrade", True), ("PubliclyAccessible", False)):
        if db.get(key) != value:
            why.append(key)
    if want.get("kms_key_id") and want["kms_key_id"] not in (db.get("KmsKeyId") or ""):
        why.append("KmsKeyId")
    version = str(want.get("engine_version") or "")
    if version and db.get("EngineVersion") != version and not str(db.get("EngineVersion", "")).startswith(version + "."):
        why.append("EngineVersion")
    if (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName") != subnet_group:
        why.append("subnet group")
    if [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups") or [] if g.get("Status") != "removing"] != [security_group_id]:
        why.append("security groups")
    if tag_dict(db.get("TagList")) != dict(want.get("tags") or {}):
        why.append("tags")
    endpoint = db.get("Endpoint") or {}
    return _out(why, exists=True, arn=db.get("DBInstanceArn", ""), address=endpoint.get("Address", ""),
                port=endpoint.get("Port", 5432), status=db.get("DBInstanceStatus", ""))


def read_service(ecs, want, cluster_found):
    """The ACTIVE service, with the fields the role compares (task definition, count, network, load balancers)."""
    if not cluster_found:
        return {}
    services = ecs.describe_services(aws_retry=True, cluster=want["cluster"], services=[want["name"]]).get("services", [])
    active = [s for s in services if s.get("status") == "ACTIVE"]
    if not active:
        return {}
    service = active[0]
    keys = ("serviceName", "status", "taskDefinition", "desiredCount", "networkConfiguration", "loadBalancers")
    return {key: service.get(key) for key in keys}


def _with_secret_arns(document, secrets):
    """A policy document with each "@secret:<name>" replaced by that secret's ARN (the role knows the ARNs only once
    the secrets are read)."""
    if isinstance(document, str):
        text = document
    else:
        text = json.dumps(document)
    for name, found in secrets.items():
        text = text.replace(json.dumps("@secret:" + name), json.dumps(found["arn"] or "not-found:" + name))
    return json.loads(text)


def _with_server_group(rules, group_id):
    return [dict(rule, group_id=group_id or "sg-not-found") if rule.get("group_id") == "@server" else rule for rule in rules or []]


def read_server(client, spec):
    ec2, ecs = client("ec2"), client("ecs")
    subnets = read_subnets(ec2, spec.get("subnet_ids") or [])
    vpc_ids = sorted({s["vpc_id"] for s in subnets})
    vpc_id = vpc_ids[0] if len(vpc_ids) == 1 else ""
    server_sg = read_security_group(ec2, vpc_id, dict(spec["server_security_group"], egress=None))
    db_sg = read_security_group(ec2, vpc_id, dict(spec["db_security_group"], egress=[],
                                                  ingress=_with_server_group(spec["db_security_group"].get("ingress"), server_sg["id"])))
    auth = spec.get("auth_secret")
    metadata_only = [name for name in spec.get("secrets") or [] if not auth or name != auth["name"]]
    result = {"subnets": subnets, "vpc_id": vpc_id, "server_security_group": server_sg, "db_security_group": db_sg,
              "db_subnet_group": read_db_subnet_group(client("rds"), spec["db_subnet_group"]),
              "secrets": read_secrets(client("secretsmanager"), metadata_only)}
    if auth:
        found = read_secret(client("secretsmanager"), auth, spec.get("secret_value"))
        result["auth_secret"] = found
        if auth["name"] in (spec.get("secrets") or []):  # one read serves both
            result["secrets"][auth["name"]] = _metadata(found)
    result["database"] = read_database(client("rds"), spec["database"], spec["db_subnet_group"]["name"], db_sg["id"])
    result["log_group"] = read_log_group(client("logs"), spec["log_group"])
    roles = []
    for role in spec["iam"].get("roles") or []:
        policies = {name: _with_secret_arns(doc, result["secrets"]) for name, doc in (role.get("inline_policies") or {}).items()}
        roles.append(dict(role, inline_policies=policies))
    iam_spec = dict(spec["iam"], roles=roles)
    result["iam"] = read_iam(client("iam"), iam_spec)
    cluster = read_cluster(ecs, dict(spec["cluster"], container_insights="disabled"))
    result["cluster"] = {"arn": cluster["arn"], "in_sync": cluster["in_sync"], "why": cluster["why"]}
    result["task_definition"] = read_task_definition(ecs, spec["task_family"])
    result["service"] = read_service(ecs, spec["service"], cluster["in_sync"])
    result["in_sync"] = all(result[k]["in_sync"] for k in ("server_security_group", "db_security_group", "db_subnet_group",
                                                           "database", "log_group", "iam", "cluster", *(["auth_secret"] if auth else [])))
    return result
