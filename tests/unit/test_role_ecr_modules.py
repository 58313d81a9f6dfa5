"""Unit tests of the collection's ECR modules (ecr_authorization_token, ecr_repository_tags) with a scripted
boto3 client: no AWS, no emulator."""

from __future__ import annotations

import base64
import datetime
import json
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from ansible_collections.dataops.prefect_fargate.plugins.modules import ecr_authorization_token as token_mod
from ansible_collections.dataops.prefect_fargate.plugins.modules import ecr_repository_tags as tags_mod

from tests.helpers.module_runner import run_module

ARN = "arn:aws:ecr:us-east-1:123456789012:repository/prefect-flow"


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Op")


# ------------------------------------------------------------------------------ ecr_authorization_token
def test_token_is_decoded_into_a_registry_login():
    client = mock.Mock()
    client.get_authorization_token.return_value = {"authorizationData": [{
        "authorizationToken": base64.b64encode(b"AWS:s3cr3t:with:colons").decode(),
        "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "expiresAt": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc),
    }]}
    out = run_module(token_mod, {}, client)
    assert not out.failed
    assert out.result["changed"] is False
    assert out.result["registry"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert (out.result["username"], out.result["password"]) == ("AWS", "s3cr3t:with:colons")
    assert out.result["expires_at"] == "2030-01-01T00:00:00+00:00"
    client.get_authorization_token.assert_called_once_with(aws_retry=True)


def test_token_for_another_registry_id():
    client = mock.Mock()
    client.get_authorization_token.return_value = {"authorizationData": [{
        "authorizationToken": base64.b64encode(b"AWS:x").decode(), "proxyEndpoint": "https://999.dkr.ecr.eu-west-1.amazonaws.com/"}]}
    out = run_module(token_mod, {"registry_id": "999"}, client)
    assert out.result["registry"] == "999.dkr.ecr.eu-west-1.amazonaws.com"
    client.get_authorization_token.assert_called_once_with(aws_retry=True, registryIds=["999"])


@pytest.mark.parametrize("token", ["not base64!", base64.b64encode(b"no-colon").decode(), base64.b64encode(b":").decode()])
def test_malformed_token_fails_without_echoing_it(token):
    with pytest.raises(ValueError) as err:
        token_mod.decode_token(token)
    assert token not in str(err.value)


def test_empty_authorization_data_fails():
    client = mock.Mock()
    client.get_authorization_token.return_value = {"authorizationData": []}
    out = run_module(token_mod, {}, client)
    assert out.failed and "no authorization data" in out.result["msg"]


# -------------------------------------------------------------------------------- ecr_repository_tags
def tags_client(current: dict | None, exists: bool = True) -> mock.Mock:
    client = mock.Mock()
    client.exceptions = mock.Mock()
    if exists:
        client.describe_repositories.return_value = {"repositories": [{"repositoryArn": ARN}]}
    else:
        client.describe_repositories.side_effect = client_error("RepositoryNotFoundException")
    client.list_tags_for_resource.return_value = {"tags": [{"Key": k, "Value": v} for k, v in (current or {}).items()]}
    return client


@pytest.mark.parametrize(
    "current, wanted, purge, check, added, removed",
    [
        ({}, {"Project": "p"}, True, False, {"Project": "p"}, []),  # create
        ({"Project": "p"}, {"Project": "p"}, True, False, {}, []),  # unchanged
        ({"Project": "old", "Stale": "x"}, {"Project": "p"}, True, False, {"Project": "p"}, ["Stale"]),  # update + purge
        ({"Stale": "x"}, {"Project": "p"}, False, False, {"Project": "p"}, []),  # no purge
        ({"Stale": "x"}, {"Project": "p"}, True, True, {"Project": "p"}, ["Stale"]),  # check mode: predict only
    ],
    ids=["create", "unchanged", "update", "keep-others", "check-mode"],
)
def test_tags_are_compared_then_written(current, wanted, purge, check, added, removed):
    client = tags_client(current)
    out = run_module(tags_mod, {"repository_name": "prefect-flow", "tags": wanted, "purge_tags": purge,
                                "_ansible_check_mode": check, "_ansible_diff": True}, client)
    assert not out.failed, out.result
    assert out.result["changed"] is bool(added or removed)
    assert out.result["added"] == added and out.result["removed"] == removed
    expected_after = {k: v for k, v in {**current, **wanted}.items() if k not in removed}
    assert out.result["tags"] == expected_after
    assert out.result["diff"] == {"before": {"tags": current}, "after": {"tags": expected_after}}
    if check or not added:
        client.tag_resource.assert_not_called()
    else:
        client.tag_resource.assert_called_once_with(
            aws_retry=True, resourceArn=ARN, tags=[{"Key": k, "Value": v} for k, v in added.items()])
    if check or not removed:
        client.untag_resource.assert_not_called()
    else:
        client.untag_resource.assert_called_once_with(aws_retry=True, resourceArn=ARN, tagKeys=removed)


def test_tags_on_a_missing_repository_fail_but_are_predicted_in_check_mode():
    out = run_module(tags_mod, {"repository_name": "nope", "tags": {"A": "1"}}, tags_client(None, exists=False))
    assert out.failed and "does not exist" in out.result["msg"]
    out = run_module(tags_mod, {"repository_name": "nope", "tags": {"A": "1"}, "_ansible_check_mode": True},
                     tags_client(None, exists=False))
    assert not out.failed and out.result["changed"] is True and out.result["repository_arn"] == ""


def test_tag_values_are_strings():
    client = tags_client({"Count": "3"})
    out = run_module(tags_mod, {"repository_name": "r", "tags": {"Count": 3}}, client)
    assert out.result["changed"] is False, json.dumps(out.result)
