#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read what a role of this collection converges, in one process, and say what differs from the wanted state."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_state_info
version_added: 0.3.0
short_description: Read the AWS resources of one role of the stack in one process and compare them with the wanted state
description:
  - A no-op converge used to start one module process per resource and per loop item (subnet, route table,
    NAT gateway...), each importing boto3 and building its own client, about a second each. This module reads
    every resource of one role with one boto3 session and returns, per resource, its id and whether it is
    C(in_sync), that is whether the role's write task (a stock amazon.aws / community.aws module) would change
    nothing. The role then runs its write tasks only for what is out of sync.
  - The comparisons mirror the stock modules' own, so skipping an in-sync resource is exact; whatever the
    reader does not know or finds different is reported out of sync and the stock module decides (and
    reports the change, in check mode and with C(--diff) too).
  - Read-only. Readers live in C(plugins/module_utils/stack_state_<reader>.py).
options:
  reader:
    description: Which role's resources to read.
    type: str
    required: true
    choices: [alb, ecr, ecs_agent, iam, prefect_server, s3, vpc]
  spec:
    description:
      - The wanted state, as the role computes it. For C(vpc) the keys C(name), C(cidr), C(tags), C(region),
        C(layout), C(nat_gateways), C(s3_endpoint), C(azs), and either C(subnets) (list of C(name), C(cidr), C(az),
        C(tier)) or C(az_count) and C(subnet_cidrs) (C(public) and C(private), one CIDR per zone each); with the latter the
        reader picks the zones (C(azs), or the first C(az_count) available ones by name) and lays the subnets out;
        when every wanted subnet exists already, their zones are the zones and none are looked up.
      - For C(iam) the keys C(roles) (list of C(name), C(description), C(assume_role_policy_document),
        C(managed_policies) (ARNs), C(tags), C(inline_policies) (policy name to document)) and C(path_prefix)
        (optional; the names of every role under it are returned as C(path_roles)).
      - For C(s3) the keys C(buckets) (list of C(name), C(encryption), C(encryption_key_id), C(versioning), C(policy),
        C(object_ownership), C(tags); all four public access blocks on) and C(lifecycle) (list of C(bucket), C(id),
        C(state), C(abort_incomplete_multipart_upload_days), C(noncurrent_version_expiration_days), C(expiration_days),
        C(transition_days), C(storage_class)), and optionally C(stored) (C(bucket), C(prefixes)), which lists the keys
        stored under those prefixes.
      - For C(alb) the keys C(subnet_ids), C(security_group) (C(name), C(ingress), C(egress), C(tags)), C(target_group)
        (C(name), C(protocol), C(port), C(target_type), C(health_check), C(attributes), C(tags)) and C(load_balancer)
        (C(name), C(listeners), C(attributes), C(tags)), optionally C(server_target_group) (as C(target_group)) and
        C(stale_target_groups) (names that must not exist); see C(plugins/module_utils/stack_state_alb.py).
      - For C(ecr) the keys C(repository_name), C(registry_id) (optional), C(scan_on_push), C(tag_mutability),
        C(lifecycle_policy) (JSON text), C(tags) and C(registry) (C(override), C(insecure), C(tag), C(moving_tag),
        C(list_tags)); a key left out is not compared. With C(registry) the reader gets the registry login itself
        (C(ecr:GetAuthorizationToken)) and never returns it; see C(plugins/module_utils/stack_state_ecr.py).
      - For C(ecs_agent) the keys C(secret), C(log_group), C(cluster), C(queues), C(rule), C(security_group),
        C(task_family), C(service); see C(plugins/module_utils/stack_state_ecs.py). C(secret) is a name or ARN (whether
        it exists), or C(name), C(description) and C(tags) of the secret the role writes, compared with O(secret_value).
      - For C(prefect_server) the keys C(subnet_ids), C(server_security_group), C(db_security_group),
        C(db_subnet_group), C(secrets), C(database), C(log_group), C(iam), C(cluster), C(task_family), C(service) and
        optionally C(auth_secret) (C(name), C(description), C(tags), compared with O(secret_value)); see
        C(plugins/module_utils/stack_state_server.py).
    type: dict
    required: true
  secret_value:
    description:
      - The value a secret the role writes should hold, for C(ecs_agent) the secret of C(spec.secret) (given as a
        dict), for C(prefect_server) the one of C(spec.auth_secret). The reader compares it with the stored one, as
        C(community.aws.secretsmanager_secret) does, and returns only whether they are equal.
      - Never logged, never returned.
    type: str
extends_documentation_fragment:
  - dataops.prefect_fargate.common.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the network
  dataops.prefect_fargate.stack_state_info:
    reader: vpc
    spec:
      name: prefect-elt-dev
      cidr: 10.20.0.0/16
      tags: {Project: prefect-elt}
      region: us-east-1
      layout: private
      nat_gateways: single
      azs: [us-east-1a, us-east-1b]
      subnets:
        - {name: prefect-elt-dev-public-us-east-1a, cidr: 10.20.0.0/20, az: us-east-1a, tier: public}
      s3_endpoint: true
  register: network

- name: Read the image repository, its tags and the image's tags in the registry
  dataops.prefect_fargate.stack_state_info:
    reader: ecr
    spec:
      repository_name: prefect-elt-dev/flow
      scan_on_push: true
      tag_mutability: IMMUTABLE
      lifecycle_policy: '{"rules": []}'
      tags: {Project: prefect-elt}
      registry: {override: "", insecure: false, tag: 3f2a9c0d1e4b5a6c, moving_tag: ""}
  register: image
"""

RETURN = r"""
state:
  description:
    - What the reader found. Every resource is a dict with C(id) (empty when not found), C(in_sync) and
      C(why) (what differs, empty when in sync); groups of resources are dicts keyed by resource name.
    - For C(vpc) the keys C(vpc), C(subnets), C(internet_gateway), C(public_route_table), C(nats),
      C(private_route_tables), C(s3_endpoint) (a found subnet also has its C(availability_zone)), plus C(nat_gateways)
      and C(nat_addresses) (the VPC's pending or
      available NAT gateways and the NAT elastic IPs, shaped like the results of C(ec2_vpc_nat_gateway_info) and
      C(ec2_eip_info); the elastic IPs only when a NAT gateway is missing) and C(in_sync) (everything in sync); with
      C(az_count), also C(layout) (C(azs), C(available_azs) (empty when no zones were looked up), C(subnets), C(error);
      with an error nothing else is returned).
    - For C(iam) the keys C(roles) (by role name, with C(exists), C(arn), C(in_sync), C(why), C(policies) by policy
      name with C(in_sync) and C(why)), C(path_roles) and C(in_sync).
    - For C(alb) the keys C(subnets), C(vpc), C(security_group), C(target_group), C(load_balancer),
      C(stale_target_groups) (those that exist, with C(name) and C(arn)), C(server_target_group) when asked, and
      C(in_sync).
    - For C(ecr) the keys C(repository) (C(exists), C(arn), C(uri), C(in_sync), C(why), C(current)), C(tags) (C(in_sync),
      C(why), C(current)), C(registry) (C(host), C(repository_uri), C(tag_digest), C(moving_tag_digest),
      C(moving_tag_in_sync), C(tags); digests are empty when the registry lacks the tag) and C(in_sync).
    - For C(ecs_agent) the keys C(secret) (C(exists), C(arn), C(tags), C(in_sync), C(why), C(value_in_sync)), C(log_group),
      C(cluster), C(queues), C(rule), C(security_group), C(task_definition), C(service) and C(in_sync).
    - For C(prefect_server) the keys C(subnets), C(vpc_id), C(server_security_group), C(db_security_group),
      C(db_subnet_group), C(secrets) (by name, C(exists), C(arn), C(tags)), C(auth_secret) when asked (as C(ecs_agent)'s
      C(secret)), C(database) (C(exists), C(arn), C(address),
      C(port), C(status)), C(log_group), C(iam), C(cluster), C(task_definition), C(service) (the ACTIVE service's
      fields, empty when none) and C(in_sync).
    - For C(s3) the keys C(buckets) (by name, with C(exists), C(in_sync), C(why)), C(lifecycle) (by C(bucket/id), with
      C(in_sync), C(why)), C(in_sync) and, with C(stored) in the spec, C(stored) (C(bucket_exists), C(keys)).
  returned: always
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.ecr_registry import RegistryError
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_alb import read_alb
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_ecr import read_ecr
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_ecs import read_ecs_agent
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_iam import read_iam
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_s3 import read_s3
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_server import read_server
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_vpc import read_vpc

# A reader takes one client (a service name) or a client factory (a tuple of the services it reads).
READERS = {"alb": (("ec2", "elbv2"), read_alb), "ecs_agent": (("ec2", "ecs", "events", "logs", "secretsmanager", "sqs"), read_ecs_agent),
           "ecr": (("ecr",), read_ecr), "iam": ("iam", read_iam), "s3": ("s3", read_s3), "vpc": ("ec2", read_vpc),
           "prefect_server": (("ec2", "ecs", "iam", "logs", "rds", "secretsmanager"), read_server)}


def main():
    module = AnsibleAWSModule(argument_spec=dict(reader=dict(type="str", required=True, choices=sorted(READERS)),
                                                 spec=dict(type="dict", required=True),
                                                 secret_value=dict(type="str", no_log=True)),
                              supports_check_mode=True)
    service, reader = READERS[module.params["reader"]]
    if isinstance(service, tuple):
        clients = {}

        def client(name):
            if name not in clients:
                # JSON-protocol services answer throttling with ThrottlingException (not retried by default).
                clients[name] = module.client(name, retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=["ThrottlingException"]))
            return clients[name]
    else:
        client = module.client(service, retry_decorator=AWSRetry.jittered_backoff())
    try:
        spec = module.params["spec"]
        if module.params["secret_value"] is not None:
            spec = dict(spec, secret_value=module.params["secret_value"])
        state = reader(client, spec)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not read the %s resources" % module.params["reader"])
    # The registry side of the ecr reader (never carries the login); a spec a reader cannot take (ValueError).
    except (RegistryError, ValueError) as exc:
        module.fail_json(msg="Could not read the %s resources: %s" % (module.params["reader"], exc))
    except KeyError as exc:
        module.fail_json(msg="spec of reader %s lacks %s" % (module.params["reader"], exc))
    module.exit_json(changed=False, state=state)


if __name__ == "__main__":
    main()
