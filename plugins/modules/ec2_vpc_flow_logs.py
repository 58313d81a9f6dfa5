#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""The CloudWatch Logs flow log of one VPC (read, compare, write only on a difference)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_vpc_flow_logs
short_description: Ensure or remove the flow log of a VPC (or subnet, network interface) delivering to CloudWatch Logs
description:
  - Manages one flow log of one resource that delivers to a CloudWatch Logs log group, through an IAM
    role that the C(vpc-flow-logs.amazonaws.com) service assumes.
  - Reads the resource's flow logs (C(DescribeFlowLogs)), compares them with the wanted settings and
    writes only when something differs. A flow log's destination, delivery role, traffic type and
    maximum aggregation interval cannot be changed in place, so a difference in any of them deletes
    the flow log and creates a new one (the flow log id changes). Tags are changed in place.
  - The flow logs this module owns on the resource are those delivering to CloudWatch Logs and, when
    O(name) is given, carrying that C(Name) tag (other flow logs of the resource are left alone).
    With O(state=present) exactly one is kept; extra matching ones are deleted.
  - Neither C(amazon.aws) nor C(community.aws) has a flow-logs module.
options:
  state:
    description: Whether the flow log should exist.
    type: str
    choices: [present, absent]
    default: present
  resource_id:
    description: Id of the VPC (or subnet, network interface; see O(resource_type)) whose traffic is logged.
    type: str
    required: true
  resource_type:
    description: Type of O(resource_id).
    type: str
    choices: [VPC, Subnet, NetworkInterface]
    default: VPC
  name:
    description:
      - C(Name) tag of the flow log; identifies it among the resource's CloudWatch Logs flow logs.
      - When omitted, every flow log of the resource delivering to CloudWatch Logs is managed by this task.
    type: str
  log_group_name:
    description: CloudWatch Logs log group the records go to. Required with O(state=present).
    type: str
  deliver_logs_permission_arn:
    description:
      - ARN of the IAM role the flow logs service assumes to write to O(log_group_name)
        (trust C(vpc-flow-logs.amazonaws.com); C(logs:CreateLogStream), C(logs:PutLogEvents),
        C(logs:DescribeLogGroups), C(logs:DescribeLogStreams) on the log group).
      - Required with O(state=present).
    type: str
    aliases: [role_arn]
  traffic_type:
    description: Traffic to log.
    type: str
    choices: [ALL, ACCEPT, REJECT]
    default: ALL
  max_aggregation_interval:
    description: Maximum seconds over which a flow is captured into one record.
    type: int
    choices: [60, 600]
    default: 600
  tags:
    description: Tags of the flow log (O(name), when given, is added as C(Name)).
    type: dict
    default: {}
    aliases: [resource_tags]
  purge_tags:
    description: Remove tags not in O(tags) (keys starting with C(aws:) are never removed).
    type: bool
    default: true
attributes:
  check_mode:
    details: Predicts C(changed) and the diff from the read alone; no write call is made.
notes:
  - IAM actions are C(ec2:DescribeFlowLogs) and, for changes, C(ec2:CreateFlowLogs), C(ec2:DeleteFlowLogs),
    C(ec2:CreateTags), C(ec2:DeleteTags), and C(iam:PassRole) on O(deliver_logs_permission_arn).
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Log the rejected traffic of a VPC to CloudWatch Logs
  dataops.prefect_fargate.ec2_vpc_flow_logs:
    resource_id: "{{ vpc_id }}"
    name: prefect-elt-flow-logs
    log_group_name: /vpc/prefect-elt/flow-logs
    deliver_logs_permission_arn: arn:aws:iam::123456789012:role/prefect-elt-flow-logs
    traffic_type: REJECT
    max_aggregation_interval: 60
    tags:
      Project: prefect-elt

- name: Remove the flow log of the VPC
  dataops.prefect_fargate.ec2_vpc_flow_logs:
    resource_id: "{{ vpc_id }}"
    name: prefect-elt-flow-logs
    state: absent
"""

RETURN = r"""
flow_log_id:
  description:
    - Id of the flow log after the call.
    - Empty with O(state=absent), and in check mode when a flow log would be created or replaced.
  returned: always
  type: str
  sample: fl-0123456789abcdef0
flow_log:
  description: The flow log after the call (predicted in check mode); empty with O(state=absent).
  returned: always
  type: dict
  contains:
    flow_log_id:
      description: Id of the flow log (empty when only predicted).
      type: str
    resource_id:
      description: The logged resource.
      type: str
    log_destination_type:
      description: Always C(cloud-watch-logs).
      type: str
    log_group_name:
      description: Log group the records go to.
      type: str
    deliver_logs_permission_arn:
      description: Delivery IAM role ARN.
      type: str
    traffic_type:
      description: C(ALL), C(ACCEPT) or C(REJECT).
      type: str
    max_aggregation_interval:
      description: Seconds (60 or 600).
      type: int
    tags:
      description: Tags of the flow log.
      type: dict
  sample:
    flow_log_id: fl-0123456789abcdef0
    resource_id: vpc-0123456789abcdef0
    log_destination_type: cloud-watch-logs
    log_group_name: /vpc/prefect-elt/flow-logs
    deliver_logs_permission_arn: arn:aws:iam::123456789012:role/prefect-elt-flow-logs
    traffic_type: ALL
    max_aggregation_interval: 600
    tags: {Name: prefect-elt-flow-logs}
replaced:
  description: Whether an existing flow log was (or in check mode would be) deleted and created anew.
  returned: always
  type: bool
deleted_flow_log_ids:
  description: Ids of the flow logs that were (or would be) deleted.
  returned: always
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

DESTINATION_TYPE = "cloud-watch-logs"
# Settings a flow log cannot change after creation: any difference means delete + create.
IMMUTABLE = ("log_group_name", "deliver_logs_permission_arn", "traffic_type", "max_aggregation_interval")


@AWSRetry.jittered_backoff()
def describe_flow_logs(client, filters: list[dict]) -> list[dict]:
    return client.get_paginator("describe_flow_logs").paginate(Filters=filters).build_full_result().get("FlowLogs", [])


def normalise(flow_log: dict) -> dict:
    """The API's description of a flow log, reduced to what this module manages (snake_case)."""
    return dict(
        flow_log_id=flow_log.get("FlowLogId", ""),
        resource_id=flow_log.get("ResourceId", ""),
        log_destination_type=flow_log.get("LogDestinationType", DESTINATION_TYPE),
        log_group_name=flow_log.get("LogGroupName", ""),
        deliver_logs_permission_arn=flow_log.get("DeliverLogsPermissionArn", ""),
        traffic_type=flow_log.get("TrafficType", ""),
        # The API leaves the interval out of flow logs created before it existed: those used 600.
        max_aggregation_interval=int(flow_log.get("MaxAggregationInterval", 600)),
        tags=boto3_tag_list_to_ansible_dict(flow_log.get("Tags", [])),
    )


def wanted_flow_log(params: dict) -> dict:
    tags = {str(k): str(v) for k, v in (params["tags"] or {}).items()}
    if params["name"]:
        tags["Name"] = params["name"]
    return dict(
        flow_log_id="",
        resource_id=params["resource_id"],
        log_destination_type=DESTINATION_TYPE,
        log_group_name=params["log_group_name"],
        deliver_logs_permission_arn=params["deliver_logs_permission_arn"],
        traffic_type=params["traffic_type"],
        max_aggregation_interval=params["max_aggregation_interval"],
        tags=tags,
    )


def for_diff(flow_log: dict | None) -> dict:
    return {k: v for k, v in (flow_log or {}).items() if k != "flow_log_id"}


class FlowLogs:
    def __init__(self, module: AnsibleAWSModule):
        self.module = module
        self.client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())

    def find(self, resource_id: str, name: str | None) -> list[dict]:
        filters = [
            {"Name": "resource-id", "Values": [resource_id]},
            {"Name": "log-destination-type", "Values": [DESTINATION_TYPE]},
        ]
        if name:
            filters.append({"Name": "tag:Name", "Values": [name]})
        try:
            found = describe_flow_logs(self.client, filters)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Could not read the flow logs of {resource_id}")
        # Sorted by creation time: when duplicates exist, the oldest matching one is kept.
        flow_logs = sorted(found, key=lambda fl: str(fl.get("CreationTime", "")))
        return [normalise(fl) for fl in flow_logs]

    def delete(self, flow_log_ids: list[str]) -> None:
        try:
            answer = self.client.delete_flow_logs(aws_retry=True, FlowLogIds=flow_log_ids)
        except is_boto3_error_code("InvalidFlowLogId.NotFound"):
            return  # already gone (answered as an error; usually listed under Unsuccessful, handled below)
        except (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
        ) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Could not delete the flow logs {flow_log_ids}")
        failed = [
            item for item in answer.get("Unsuccessful", [])
            if item.get("Error", {}).get("Code") != "InvalidFlowLogId.NotFound"
        ]
        if failed:
            self.module.fail_json(msg=f"Could not delete the flow logs {flow_log_ids}: {failed}")

    def create(self, wanted: dict, resource_type: str) -> str:
        request = dict(
            ResourceIds=[wanted["resource_id"]],
            ResourceType=resource_type,
            TrafficType=wanted["traffic_type"],
            LogDestinationType=DESTINATION_TYPE,
            LogGroupName=wanted["log_group_name"],
            DeliverLogsPermissionArn=wanted["deliver_logs_permission_arn"],
            MaxAggregationInterval=wanted["max_aggregation_interval"],
        )
        if wanted["tags"]:
            request["TagSpecifications"] = [
                {"ResourceType": "vpc-flow-log", "Tags": ansible_dict_to_boto3_tag_list(wanted["tags"])}
            ]
        try:
            answer = self.client.create_flow_logs(aws_retry=True, **request)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Could not create the flow log of {wanted['resource_id']}")
        if answer.get("Unsuccessful") or not answer.get("FlowLogIds"):
            self.module.fail_json(
                msg=f"Could not create the flow log of {wanted['resource_id']}: {answer.get('Unsuccessful')}"
            )
        return answer["FlowLogIds"][0]

    def retag(self, flow_log_id: str, to_set: dict, to_remove: list[str]) -> None:
        try:
            if to_remove:
                self.client.delete_tags(aws_retry=True, Resources=[flow_log_id], Tags=[{"Key": k} for k in to_remove])
            if to_set:
                self.client.create_tags(
                    aws_retry=True, Resources=[flow_log_id], Tags=ansible_dict_to_boto3_tag_list(to_set)
                )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Could not tag the flow log {flow_log_id}")


def ensure_absent(module: AnsibleAWSModule, api: FlowLogs, current: list[dict]) -> dict:
    ids = [fl["flow_log_id"] for fl in current]
    if ids and not module.check_mode:
        api.delete(ids)
    result = dict(changed=bool(ids), flow_log_id="", flow_log={}, replaced=False, deleted_flow_log_ids=ids)
    if module._diff:
        result["diff"] = dict(before=for_diff(current[0]) if current else {}, after={})
    return result


def ensure_present(module: AnsibleAWSModule, api: FlowLogs, current: list[dict]) -> dict:
    params = module.params
    wanted = wanted_flow_log(params)
    # Keep the first flow log whose immutable settings match; everything else that matched goes.
    keep = next((fl for fl in current if all(fl[k] == wanted[k] for k in IMMUTABLE)), None)
    to_delete = [fl["flow_log_id"] for fl in current if fl is not keep]
    replaced = keep is None and bool(current)
    before = keep or (current[0] if current else None)

    to_set, to_remove = {}, []
    if keep is not None:
        to_set, to_remove = compare_aws_tags(keep["tags"], wanted["tags"], purge_tags=params["purge_tags"])
        after = dict(keep, tags={k: v for k, v in {**keep["tags"], **to_set}.items() if k not in to_remove})
    else:
        after = dict(wanted)
        if not params["purge_tags"] and before is not None:
            # A replacement keeps the old flow log's other tags when they are not purged.
            after["tags"] = {**before["tags"], **wanted["tags"]}
    changed = bool(to_delete or keep is None or to_set or to_remove)

    if changed and not module.check_mode:
        if to_delete:
            api.delete(to_delete)  # first: the API refuses a second flow log to the same destination
        if keep is None:
            after["flow_log_id"] = api.create(after, params["resource_type"])
        elif to_set or to_remove:
            api.retag(keep["flow_log_id"], to_set, to_remove)

    result = dict(
        changed=changed,
        flow_log_id=after["flow_log_id"],
        flow_log=after,
        replaced=replaced,
        deleted_flow_log_ids=to_delete,
    )
    if module._diff:
        result["diff"] = dict(before=for_diff(before), after=for_diff(after))
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            resource_id=dict(type="str", required=True),
            resource_type=dict(type="str", choices=["VPC", "Subnet", "NetworkInterface"], default="VPC"),
            name=dict(type="str"),
            log_group_name=dict(type="str"),
            deliver_logs_permission_arn=dict(type="str", aliases=["role_arn"]),
            traffic_type=dict(type="str", choices=["ALL", "ACCEPT", "REJECT"], default="ALL"),
            max_aggregation_interval=dict(type="int", choices=[60, 600], default=600),
            tags=dict(type="dict", default={}, aliases=["resource_tags"]),
            purge_tags=dict(type="bool", default=True),
        ),
        required_if=[("state", "present", ["log_group_name", "deliver_logs_permission_arn"])],
        supports_check_mode=True,
    )
    api = FlowLogs(module)
    current = api.find(module.params["resource_id"], module.params["name"])
    if module.params["state"] == "absent":
        result = ensure_absent(module, api, current)
    else:
        result = ensure_present(module, api, current)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
