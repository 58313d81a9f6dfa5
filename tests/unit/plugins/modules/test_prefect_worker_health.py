"""prefect_worker_health: each check reports what it observed; the message names what is unhealthy."""

from __future__ import annotations

from unittest import mock

import botocore.exceptions
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dataops.prefect_fargate.plugins.modules import prefect_worker_health

from ..conftest import Call
from ..module_utils.test_prefect_api_flaky import FlakyServer

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/1"
ARGS = {"ecs_cluster": "c", "ecs_service": "w", "target_group_arn": TG, "work_pool_name": "elt-ecs",
        "region": "us-east-1", "access_key": "a", "secret_key": "b"}


def service(running=2, desired=2, rollout="COMPLETED", status="ACTIVE"):
    return {"services": [{"status": status, "desiredCount": desired, "runningCount": running, "pendingCount": 0,
                          "deployments": [{"status": "PRIMARY", "rolloutState": rollout}]}], "failures": []}


def targets(*states):
    return {"TargetHealthDescriptions": [{"Target": {"Id": f"10.0.0.{i}"}, "TargetHealth": {"State": s}}
                                         for i, s in enumerate(states)]}


@pytest.fixture
def aws(monkeypatch):
    ecs, elbv2 = mock.MagicMock(name="ecs"), mock.MagicMock(name="elbv2")
    ecs.describe_services.return_value = service()
    elbv2.describe_target_health.return_value = targets("healthy", "healthy")
    made = {}

    def client(self, name, **kw):
        made[name] = kw
        return {"ecs": ecs, "elbv2": elbv2}[name]

    monkeypatch.setattr(AnsibleAWSModule, "client", client)
    ecs.made = made
    return ecs, elbv2


def prefect_calls(online=1, pool_status="READY"):
    workers = [{"name": f"w{i}", "status": "ONLINE"} for i in range(online)] + [{"name": "old", "status": "OFFLINE"}]
    return [Call("GET", "/work_pools/elt-ecs", {"name": "elt-ecs", "status": pool_status}),
            Call("POST", "/work_pools/elt-ecs/workers/filter", workers)]


def test_all_healthy(run_module, aws):
    result, api = run_module(prefect_worker_health, ARGS, prefect_calls())
    assert result["healthy"] is True and result["changed"] is False
    assert result["checks"]["ecs"]["running"] == 2 and result["checks"]["ecs"]["rollout_state"] == "COMPLETED"
    assert result["checks"]["target_group"]["healthy_targets"] == 2
    assert result["checks"]["workers"]["online"] == 1
    assert result["checks"]["workers"]["workers"] == {"w0": "ONLINE", "old": "OFFLINE"}
    assert result["msg"].startswith("healthy:")
    aws[0].describe_services.assert_called_once_with(cluster="c", services=["w"], aws_retry=True)
    assert api.writes == []


@pytest.mark.parametrize("ecs_answer, expected", [
    (service(running=1, rollout="IN_PROGRESS"), "ecs (running 1/2, rollout IN_PROGRESS)"),
    (service(running=0, desired=0), "ecs (running 0/0)"),
    ({"services": [], "failures": [{"arn": "w", "reason": "MISSING"}]}, "service w not found in cluster c"),
], ids=["rolling", "scaled-to-zero", "missing"])
def test_ecs_not_stable(run_module, aws, ecs_answer, expected):
    aws[0].describe_services.return_value = ecs_answer
    result, _ = run_module(prefect_worker_health, ARGS, prefect_calls())
    assert result["healthy"] is False
    assert expected in result["msg"]
    assert "target_group" not in result["msg"] and "workers (" not in result["msg"]


def test_zero_targets_are_unhealthy(run_module, aws):
    """A target group with no registered target has no healthy worker behind it (AWS lists every
    registered target, even draining or initial ones)."""
    aws[1].describe_target_health.return_value = {"TargetHealthDescriptions": []}
    result, _ = run_module(prefect_worker_health, ARGS, prefect_calls())
    assert result["healthy"] is False
    assert result["checks"]["target_group"]["healthy_targets"] == 0
    assert "target_group (0 healthy (need 1); no targets registered)" in result["msg"]


def test_aws_calls_retry_with_jittered_backoff(run_module, aws):
    run_module(prefect_worker_health, ARGS, prefect_calls())
    assert set(aws[0].made) == {"ecs", "elbv2"}
    assert all(callable(kw.get("retry_decorator")) for kw in aws[0].made.values())
    aws[1].describe_target_health.assert_called_once_with(TargetGroupArn=TG, aws_retry=True)


def test_unhealthy_targets(run_module, aws):
    aws[1].describe_target_health.return_value = targets("unhealthy", "initial")
    result, _ = run_module(prefect_worker_health, ARGS, prefect_calls())
    assert result["healthy"] is False
    assert "target_group (0 healthy (need 1); initial=1, unhealthy=1)" in result["msg"]


def test_no_online_worker(run_module, aws):
    result, _ = run_module(prefect_worker_health, {**ARGS, "min_workers": 2}, prefect_calls(online=1))
    assert result["healthy"] is False
    assert "workers (1/2 ONLINE in pool elt-ecs" in result["msg"]


def test_missing_pool_is_unhealthy_not_an_error(run_module, aws):
    result, _ = run_module(prefect_worker_health, ARGS, [Call("GET", "/work_pools/elt-ecs", None)])
    assert result["healthy"] is False and "work pool elt-ecs does not exist" in result["msg"]


def test_aws_error_is_an_observation(run_module, aws):
    aws[0].describe_services.side_effect = botocore.exceptions.ClientError(
        {"Error": {"Code": "ClusterNotFoundException", "Message": "Cluster not found."}}, "DescribeServices")
    result, _ = run_module(prefect_worker_health, ARGS, prefect_calls())
    assert result["healthy"] is False and "ClusterNotFoundException" in result["msg"]


def test_checks_can_be_disabled(run_module, aws):
    result, api = run_module(prefect_worker_health, {"checks": ["workers"], "work_pool_name": "elt-ecs"}, prefect_calls())
    assert set(result["checks"]) == {"workers"}
    aws[0].describe_services.assert_not_called()
    result, api = run_module(prefect_worker_health, {**ARGS, "checks": ["ecs"], "api_url": None}, [])
    assert set(result["checks"]) == {"ecs"} and api.calls == []


def test_check_inputs_are_required(run_module, aws):
    result, _ = run_module(prefect_worker_health, {"checks": ["ecs", "workers"], "work_pool_name": "p"}, [],
                           expect_fail=True)
    assert "check ecs needs ecs_cluster, ecs_service" in result["msg"]


def test_fail_on_unhealthy_fails_with_the_message(run_module, aws):
    aws[0].describe_services.return_value = service(running=1)
    result, _ = run_module(prefect_worker_health, {**ARGS, "fail_on_unhealthy": True}, prefect_calls(), expect_fail=True)
    assert result["msg"] == "unhealthy: ecs (running 1/2)"
    assert result["checks"]["ecs"]["running"] == 1


def test_internal_polling_until_healthy(run_module, aws, monkeypatch):
    monkeypatch.setattr(prefect_worker_health.time, "sleep", lambda _s: None)
    aws[0].describe_services.side_effect = [service(running=1, rollout="IN_PROGRESS"), service()]
    result, _ = run_module(prefect_worker_health, {**ARGS, "wait_timeout": 60, "poll_interval": 1},
                           prefect_calls() + prefect_calls())
    assert result["healthy"] is True and result["polls"] == 2


# --- the server check: a self-hosted server's health endpoint (roles/prefect_flow waits for it first)
AUTH = "admin:s3cret-never-shown"


def test_server_check_defaults_to_the_api_health_endpoint(run_module, aws):
    result, api = run_module(prefect_worker_health, {"checks": ["server"]}, [Call("GET", "/health", True)])
    assert result["healthy"] is True and result["checks"]["server"]["url"] == "http://prefect.test/api/health"
    assert result["msg"] == "healthy: server (GET http://prefect.test/api/health: OK)"
    assert not aws[0].made  # no AWS client for a server-only check


def test_server_check_needs_a_url(run_module):
    result, _ = run_module(prefect_worker_health, {"checks": ["server"], "api_url": None}, [], expect_fail=True)
    assert "check server needs server_health_url or api_url" in result["msg"]


def _run_real(args):
    """The module against a real HTTP server (no scripted client): what the role's wait does."""
    from ansible.module_utils.testing import patch_module_args

    from ..conftest import ModuleExit, ModuleFail

    with patch_module_args({"_ansible_check_mode": False, **args}):
        with pytest.raises((ModuleExit, ModuleFail)) as info:
            prefect_worker_health.main()
    return info.value.result


def test_server_check_waits_until_the_server_answers():
    with FlakyServer(failures=2) as server:
        result = _run_real({"checks": ["server"], "server_health_url": server.url + "/health", "auth_string": AUTH,
                            "retries": 0, "timeout": 2, "wait_timeout": 30, "poll_interval": 1,
                            "fail_on_unhealthy": True})
    assert result["healthy"] is True and result["polls"] == 3 and server.requests == 3


def test_server_check_fails_within_its_bound_naming_the_url_never_the_auth_string():
    with FlakyServer(failures=None) as server:
        url = server.url.replace("http://", "http://user:pw@") + "/health"
        result = _run_real({"checks": ["server"], "server_health_url": url, "auth_string": AUTH,
                            "retries": 0, "timeout": 2, "wait_timeout": 2, "poll_interval": 1,
                            "fail_on_unhealthy": True})
    assert result["failed"] is True and result["healthy"] is False
    shown = server.url.replace("http://", "http://********@") + "/health"
    assert result["msg"].startswith("unhealthy: server (GET %s: HTTP 503: Service Unavailable)" % shown), result["msg"]
    assert "wait_timeout 2 s" in result["msg"] and result["polls"] == server.requests == 2
    assert AUTH not in str(result) and "s3cret" not in str(result) and "user:pw" not in str(result)
