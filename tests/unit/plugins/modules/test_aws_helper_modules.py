"""ecr_authorization_token, ecr_repository_tags, ecs_cluster_settings, secretsmanager_secret_metadata.

A real botocore client answers from botocore's Stubber (every request must be the next scripted one,
with exactly these parameters). Each module wraps its client with AWSRetry.jittered_backoff: a
throttled call is retried (the throttling case of each module proves it; sleeps are skipped).
"""

from __future__ import annotations

import base64
import datetime

from ansible_collections.dataops.prefect_fargate.plugins.modules import ecr_authorization_token
from ansible_collections.dataops.prefect_fargate.plugins.modules import ecr_repository_tags
from ansible_collections.dataops.prefect_fargate.plugins.modules import ecs_cluster_settings
from ansible_collections.dataops.prefect_fargate.plugins.modules import secretsmanager_secret_metadata

from .aws_stubs import run, throttled

REPO_NAME = "prefect-elt-dev/flow"
REPO_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/prefect-elt-dev/flow"
CLUSTER = "prefect-elt-dev"
SECRET = "prefect-elt-dev/prefect-credential"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prefect-elt-dev/prefect-credential-AbCdEf"


# --- ecr_authorization_token -------------------------------------------------------------------

def token_answer(user="AWS", password="s3cr3t"):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorizationData": [{
        "authorizationToken": token, "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "expiresAt": datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc)}]}


def test_token_is_decoded_and_never_changes_anything():
    result = run(ecr_authorization_token, "ecr", {}, [("get_authorization_token", token_answer(), {})])
    assert result["changed"] is False
    assert result["registry"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert (result["username"], result["password"]) == ("AWS", "s3cr3t")
    assert result["expires_at"] == "2026-01-01T12:00:00+00:00"


def test_token_for_another_registry_and_throttling_is_retried():
    params = {"registryIds": ["210987654321"]}
    script = [throttled("get_authorization_token", params), ("get_authorization_token", token_answer(), params)]
    result = run(ecr_authorization_token, "ecr", {"registry_id": "210987654321"}, script)
    assert result["password"] == "s3cr3t"


def test_malformed_token_fails():
    answer = token_answer()
    answer["authorizationData"][0]["authorizationToken"] = base64.b64encode(b"no-colon").decode()
    result = run(ecr_authorization_token, "ecr", {}, [("get_authorization_token", answer, {})], expect_fail=True)
    assert "not base64 'user:password'" in result["msg"]


# --- ecr_repository_tags -----------------------------------------------------------------------

def describe_repo():
    return ("describe_repositories", {"repositories": [{"repositoryArn": REPO_ARN, "repositoryName": REPO_NAME}]},
            {"repositoryNames": [REPO_NAME]})


def list_tags(tags):
    return ("list_tags_for_resource", {"tags": [{"Key": k, "Value": v} for k, v in tags.items()]},
            {"resourceArn": REPO_ARN})


def test_repository_tags_unchanged_make_no_write():
    tags = {"Project": "prefect-elt"}
    result = run(ecr_repository_tags, "ecr", {"repository_name": REPO_NAME, "tags": tags},
                 [describe_repo(), list_tags(tags)])
    assert result["changed"] is False and result["tags"] == tags


def test_repository_tags_added_and_purged_with_diff():
    script = [describe_repo(), list_tags({"Old": "x", "Project": "old"}),
              ("untag_resource", {}, {"resourceArn": REPO_ARN, "tagKeys": ["Old"]}),
              ("tag_resource", {}, {"resourceArn": REPO_ARN, "tags": [{"Key": "Project", "Value": "prefect-elt"}]})]
    result = run(ecr_repository_tags, "ecr", {"repository_name": REPO_NAME, "tags": {"Project": "prefect-elt"}},
                 script)
    assert result["changed"] is True
    assert result["removed"] == ["Old"] and result["added"] == {"Project": "prefect-elt"}
    assert result["diff"] == {"before": {"tags": {"Old": "x", "Project": "old"}},
                              "after": {"tags": {"Project": "prefect-elt"}}}


def test_repository_tags_check_mode_writes_nothing():
    result = run(ecr_repository_tags, "ecr", {"repository_name": REPO_NAME, "tags": {"A": "1"}},
                 [describe_repo(), list_tags({})], check_mode=True)
    assert result["changed"] is True and result["tags"] == {"A": "1"}


def test_repository_tags_throttled_read_is_retried():
    params = {"repositoryNames": [REPO_NAME]}
    script = [throttled("describe_repositories", params), describe_repo(), list_tags({"A": "1"})]
    result = run(ecr_repository_tags, "ecr", {"repository_name": REPO_NAME, "tags": {"A": "1"}}, script)
    assert result["changed"] is False


# --- ecs_cluster_settings ----------------------------------------------------------------------

def describe_cluster(value="disabled", status="ACTIVE"):
    cluster = {"clusterName": CLUSTER, "status": status, "settings": [{"name": "containerInsights", "value": value}]}
    return ("describe_clusters", {"clusters": [cluster]}, {"clusters": [CLUSTER], "include": ["SETTINGS"]})


def test_cluster_setting_unchanged():
    result = run(ecs_cluster_settings, "ecs", {"cluster": CLUSTER, "container_insights": "enabled"},
                 [describe_cluster("enabled")])
    assert result["changed"] is False
    assert result["diff"] == {"before": {"containerInsights": "enabled"}, "after": {"containerInsights": "enabled"}}


def test_cluster_setting_updated_after_a_throttled_update():
    params = {"cluster": CLUSTER, "settings": [{"name": "containerInsights", "value": "enabled"}]}
    answer = {"cluster": {"clusterName": CLUSTER, "settings": [{"name": "containerInsights", "value": "enabled"}]}}
    script = [describe_cluster("disabled"), throttled("update_cluster", params), ("update_cluster", answer, params)]
    result = run(ecs_cluster_settings, "ecs", {"cluster": CLUSTER, "container_insights": "enabled"}, script)
    assert result["changed"] is True
    assert result["settings"] == [{"name": "containerInsights", "value": "enabled"}]


def test_cluster_setting_check_mode_does_not_update():
    result = run(ecs_cluster_settings, "ecs", {"cluster": CLUSTER, "container_insights": "enhanced"},
                 [describe_cluster("disabled")], check_mode=True)
    assert result["changed"] is True


def test_cluster_missing_fails_outside_check_mode():
    result = run(ecs_cluster_settings, "ecs", {"cluster": CLUSTER, "container_insights": "enabled"},
                 [describe_cluster(status="INACTIVE")], expect_fail=True)
    assert "does not exist" in result["msg"]


# --- secretsmanager_secret_metadata ------------------------------------------------------------

def test_secret_metadata_without_the_value():
    answer = {"ARN": SECRET_ARN, "Name": SECRET, "Tags": [{"Key": "Project", "Value": "prefect-elt"}]}
    result = run(secretsmanager_secret_metadata, "secretsmanager", {"name": SECRET},
                 [("describe_secret", answer, {"SecretId": SECRET})])
    assert result == {"changed": False, "exists": True, "arn": SECRET_ARN, "tags": {"Project": "prefect-elt"},
                      "deleted_date": ""}


def test_secret_scheduled_for_deletion_and_missing():
    answer = {"ARN": SECRET_ARN, "Name": SECRET, "DeletedDate": datetime.datetime(2026, 1, 2)}
    result = run(secretsmanager_secret_metadata, "secretsmanager", {"name": SECRET},
                 [("describe_secret", answer, {"SecretId": SECRET})])
    assert result["exists"] is False and result["deleted_date"].startswith("2026-01-02")
    result = run(secretsmanager_secret_metadata, "secretsmanager", {"name": SECRET},
                 [("error", "describe_secret", "ResourceNotFoundException", {"SecretId": SECRET})])
    assert result["exists"] is False and result["arn"] == ""


def test_secret_metadata_throttled_call_is_retried():
    script = [throttled("describe_secret", {"SecretId": SECRET}),
              ("describe_secret", {"ARN": SECRET_ARN, "Name": SECRET}, {"SecretId": SECRET})]
    result = run(secretsmanager_secret_metadata, "secretsmanager", {"name": SECRET}, script)
    assert result["exists"] is True
