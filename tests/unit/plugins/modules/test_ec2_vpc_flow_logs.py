"""ec2_vpc_flow_logs: read, compare, write only on a difference; replace what cannot change in place.

A real botocore EC2 client answers from botocore's Stubber: every request the module sends must be the
next scripted one, with exactly these parameters (the stubber checks them against the API model), and
a request nobody scripted fails the test.
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.modules import ec2_vpc_flow_logs

from .aws_stubs import run as stubbed_run

VPC = "vpc-0123456789abcdef0"
GROUP = "/vpc/prefect-elt/flow-logs"
ROLE = "arn:aws:iam::123456789012:role/prefect-elt-flow-logs"
NAME = "prefect-elt-flow-logs"
ARGS = {"resource_id": VPC, "name": NAME, "log_group_name": GROUP, "deliver_logs_permission_arn": ROLE,
        "tags": {"Project": "prefect-elt"}}
FILTERS = [{"Name": "resource-id", "Values": [VPC]},
           {"Name": "log-destination-type", "Values": ["cloud-watch-logs"]},
           {"Name": "tag:Name", "Values": [NAME]}]
WANTED_TAGS = [{"Key": "Project", "Value": "prefect-elt"}, {"Key": "Name", "Value": NAME}]


def flow_log(flow_log_id="fl-1", minute=0, **overrides):
    data = {"FlowLogId": flow_log_id, "ResourceId": VPC, "LogDestinationType": "cloud-watch-logs",
            "LogGroupName": GROUP, "DeliverLogsPermissionArn": ROLE, "TrafficType": "ALL",
            "MaxAggregationInterval": 600, "FlowLogStatus": "ACTIVE", "DeliverLogsStatus": "SUCCESS",
            "CreationTime": datetime.datetime(2026, 1, 1, 0, minute, tzinfo=datetime.timezone.utc),
            "Tags": [{"Key": "Project", "Value": "prefect-elt"}, {"Key": "Name", "Value": NAME}]}
    data.update(overrides)
    return data


def describe(*flow_logs, filters=FILTERS):
    return ("describe_flow_logs", {"FlowLogs": list(flow_logs)}, {"Filters": filters})


def create(new_id="fl-new", **overrides):
    params = {"ResourceIds": [VPC], "ResourceType": "VPC", "TrafficType": "ALL",
              "LogDestinationType": "cloud-watch-logs", "LogGroupName": GROUP, "DeliverLogsPermissionArn": ROLE,
              "MaxAggregationInterval": 600,
              "TagSpecifications": [{"ResourceType": "vpc-flow-log", "Tags": WANTED_TAGS}]}
    params.update(overrides)
    return ("create_flow_logs", {"FlowLogIds": [new_id], "Unsuccessful": []}, params)


def delete(*ids):
    return ("delete_flow_logs", {"Unsuccessful": []}, {"FlowLogIds": list(ids)})


def run(args, script, **kwargs):
    """Run the module against the scripted EC2 answers; return its result."""
    return stubbed_run(ec2_vpc_flow_logs, "ec2", args, script, **kwargs)


def test_creates_the_flow_log_with_its_tags():
    result = run(ARGS, [describe(), create("fl-new")])
    assert result["changed"] is True
    assert result["flow_log_id"] == "fl-new"
    assert result["replaced"] is False and result["deleted_flow_log_ids"] == []
    assert result["flow_log"]["tags"] == {"Project": "prefect-elt", "Name": NAME}
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["log_group_name"] == GROUP


def test_traffic_type_and_interval_reach_the_api():
    args = {**ARGS, "traffic_type": "REJECT", "max_aggregation_interval": 60}
    result = run(args, [describe(), create("fl-new", TrafficType="REJECT", MaxAggregationInterval=60)])
    assert result["flow_log"]["traffic_type"] == "REJECT"
    assert result["flow_log"]["max_aggregation_interval"] == 60


def test_unchanged_flow_log_makes_no_write():
    result = run(ARGS, [describe(flow_log("fl-1"))])  # any write would be an unscripted call
    assert result["changed"] is False
    assert result["flow_log_id"] == "fl-1"
    assert result["diff"]["before"] == result["diff"]["after"]


def test_interval_left_out_by_the_api_counts_as_600():
    old = flow_log("fl-1")
    del old["MaxAggregationInterval"]
    assert run(ARGS, [describe(old)])["changed"] is False


@pytest.mark.parametrize("field, value, arg", [
    ("LogGroupName", "/vpc/other/flow-logs", None),
    ("DeliverLogsPermissionArn", "arn:aws:iam::123456789012:role/other", None),
    ("TrafficType", "ACCEPT", None),
    ("MaxAggregationInterval", 60, None),
], ids=["destination", "role", "traffic-type", "interval"])
def test_immutable_difference_deletes_then_creates(field, value, arg):
    result = run(ARGS, [describe(flow_log("fl-old", **{field: value})), delete("fl-old"), create("fl-new")])
    assert result["changed"] is True and result["replaced"] is True
    assert result["flow_log_id"] == "fl-new"
    assert result["deleted_flow_log_ids"] == ["fl-old"]
    snake = {"LogGroupName": "log_group_name", "DeliverLogsPermissionArn": "deliver_logs_permission_arn",
             "TrafficType": "traffic_type", "MaxAggregationInterval": "max_aggregation_interval"}[field]
    assert result["diff"]["before"][snake] == value
    assert result["diff"]["after"][snake] == flow_log()[field]


def test_changed_destination_in_check_mode_predicts_without_writing():
    result = run(ARGS, [describe(flow_log("fl-old", LogGroupName="/vpc/other/flow-logs"))], check_mode=True)
    assert result["changed"] is True and result["replaced"] is True
    assert result["flow_log_id"] == ""  # the new id is not known before the create
    assert result["deleted_flow_log_ids"] == ["fl-old"]
    assert result["diff"]["after"]["log_group_name"] == GROUP


def test_check_mode_create_makes_no_write():
    result = run(ARGS, [describe()], check_mode=True)
    assert result["changed"] is True
    assert result["flow_log_id"] == ""
    assert result["flow_log"]["resource_id"] == VPC


def test_tags_change_in_place():
    current = flow_log("fl-1", Tags=[{"Key": "Name", "Value": NAME}, {"Key": "Project", "Value": "old"},
                                     {"Key": "Stale", "Value": "x"}])
    result = run(ARGS, [describe(current),
                        ("delete_tags", {}, {"Resources": ["fl-1"], "Tags": [{"Key": "Stale"}]}),
                        ("create_tags", {}, {"Resources": ["fl-1"], "Tags": [{"Key": "Project", "Value": "prefect-elt"}]})])
    assert result["changed"] is True and result["replaced"] is False
    assert result["flow_log_id"] == "fl-1"
    assert result["flow_log"]["tags"] == {"Name": NAME, "Project": "prefect-elt"}


def test_tags_not_purged_when_asked():
    current = flow_log("fl-1", Tags=[{"Key": "Name", "Value": NAME}, {"Key": "Project", "Value": "prefect-elt"},
                                     {"Key": "Owner", "Value": "net-team"}])
    result = run({**ARGS, "purge_tags": False}, [describe(current)])
    assert result["changed"] is False
    assert result["flow_log"]["tags"]["Owner"] == "net-team"


def test_duplicates_keep_the_oldest_matching_one():
    result = run(ARGS, [describe(flow_log("fl-dup", minute=5), flow_log("fl-first", minute=1)), delete("fl-dup")])
    assert result["changed"] is True and result["replaced"] is False
    assert result["flow_log_id"] == "fl-first"
    assert result["deleted_flow_log_ids"] == ["fl-dup"]


def test_absent_deletes_every_owned_flow_log():
    args = {"resource_id": VPC, "state": "absent"}
    filters = FILTERS[:2]  # without a name, every CloudWatch Logs flow log of the VPC is owned
    result = run(args, [describe(flow_log("fl-1"), flow_log("fl-2"), filters=filters), delete("fl-1", "fl-2")])
    assert result["changed"] is True
    assert result["deleted_flow_log_ids"] == ["fl-1", "fl-2"]
    assert result["flow_log_id"] == "" and result["flow_log"] == {}
    assert result["diff"]["after"] == {}


def test_absent_when_gone_makes_no_write():
    result = run({"resource_id": VPC, "name": NAME, "state": "absent"}, [describe()])
    assert result["changed"] is False
    assert result["deleted_flow_log_ids"] == []


def test_absent_in_check_mode_makes_no_write():
    args = {"resource_id": VPC, "name": NAME, "state": "absent"}
    result = run(args, [describe(flow_log("fl-1"))], check_mode=True)
    assert result["changed"] is True
    assert result["deleted_flow_log_ids"] == ["fl-1"]


def test_absent_tolerates_a_flow_log_deleted_meanwhile():
    script = [describe(flow_log("fl-1")),
              ("error", "delete_flow_logs", "InvalidFlowLogId.NotFound", {"FlowLogIds": ["fl-1"]})]
    result = run({"resource_id": VPC, "name": NAME, "state": "absent"}, script)
    assert result["changed"] is True


def test_unsuccessful_create_fails_with_the_reason():
    answer = {"FlowLogIds": [], "Unsuccessful": [
        {"ResourceId": VPC, "Error": {"Code": "400", "Message": "Access denied for LogDestination"}}]}
    script = [describe(), ("create_flow_logs", answer, create()[2])]
    result = run(ARGS, script, expect_fail=True)
    assert "Access denied for LogDestination" in result["msg"]


def test_unsuccessful_delete_fails():
    error = {"Code": "Client.UnauthorizedOperation", "Message": "nope"}
    answer = {"Unsuccessful": [{"ResourceId": "fl-1", "Error": error}]}
    script = [describe(flow_log("fl-1")), ("delete_flow_logs", answer, {"FlowLogIds": ["fl-1"]})]
    result = run({"resource_id": VPC, "name": NAME, "state": "absent"}, script, expect_fail=True)
    assert "nope" in result["msg"]


def test_present_needs_destination_and_role():
    result = run({"resource_id": VPC}, [], expect_fail=True)
    assert "log_group_name" in result["msg"] and "deliver_logs_permission_arn" in result["msg"]


def test_throttled_read_is_retried():
    script = [("error", "describe_flow_logs", "RequestLimitExceeded", {"Filters": FILTERS}), describe(flow_log())]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("time.sleep", lambda seconds: None)
        result = run(ARGS, script)
    assert result["changed"] is False
