"""prefect_work_pool: template from the installed worker, defaults from job_variables, honest changed."""

from __future__ import annotations

import copy
import sys

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.module_utils import prefect_api
from ansible_collections.dataops.prefect_fargate.plugins.modules import prefect_work_pool

from ..conftest import Call

TEMPLATE = {
    "job_configuration": {"command": "{{ command }}", "cluster": "{{ cluster }}"},
    "variables": {"type": "object", "properties": {
        "command": {"type": "string", "default": None},
        "cluster": {"type": "string", "default": None},
        "env": {"type": "object"},
    }},
}


def with_defaults(**defaults):
    template = copy.deepcopy(TEMPLATE)
    for key, value in defaults.items():
        template["variables"]["properties"][key]["default"] = value
    return template


def pool(**overrides):
    data = {"id": "p1", "name": "elt-ecs", "type": "ecs", "description": "d", "is_paused": False,
            "concurrency_limit": None, "status": "READY", "base_job_template": with_defaults(cluster="c1")}
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def template_cache(tmp_path, monkeypatch):
    """Each test its own cache of default templates (the module keeps them under XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


ARGS = {"name": "elt-ecs", "type": "ecs", "description": "d", "base_job_template": TEMPLATE,
        "job_variables": {"cluster": "c1", "command": None}}


def test_create(run_module):
    result, api = run_module(prefect_work_pool, ARGS, [
        Call("GET", "/work_pools/elt-ecs", None),
        Call("POST", "/work_pools/", {"id": "p1"}, body={
            "name": "elt-ecs", "type": "ecs", "description": "d", "base_job_template": with_defaults(cluster="c1")}),
        Call("GET", "/work_pools/elt-ecs", pool()),
    ])
    assert result["changed"] is True
    assert result["work_pool"]["id"] == "p1"
    assert result["ui_url"] == "http://prefect.test/work-pools/work-pool/elt-ecs"


def test_unchanged_makes_zero_writes(run_module):
    result, api = run_module(prefect_work_pool, ARGS, [Call("GET", "/work_pools/elt-ecs", pool())], diff=True)
    assert result["changed"] is False
    assert api.writes == []
    assert result["diff"]["before"] == result["diff"]["after"]


@pytest.mark.parametrize("change, body", [
    ({"job_variables": {"cluster": "c2"}}, {"base_job_template": with_defaults(cluster="c2")}),
    ({"paused": True}, {"is_paused": True}),
    ({"concurrency_limit": 3}, {"concurrency_limit": 3}),
    ({"description": "new"}, {"description": "new"}),
], ids=["template-default", "paused", "concurrency", "description"])
def test_update_patches_only_the_difference(run_module, change, body):
    result, api = run_module(prefect_work_pool, {**ARGS, **change}, [
        Call("GET", "/work_pools/elt-ecs", pool()),
        Call("PATCH", "/work_pools/elt-ecs", None, body=body),
        Call("GET", "/work_pools/elt-ecs", pool()),
    ])
    assert result["changed"] is True
    assert api.writes == [("PATCH", "/work_pools/elt-ecs")]


def test_check_mode_create_and_update_write_nothing(run_module):
    result, api = run_module(prefect_work_pool, ARGS, [Call("GET", "/work_pools/elt-ecs", None)], check_mode=True)
    assert result["changed"] is True and api.writes == []
    result, api = run_module(prefect_work_pool, {**ARGS, "paused": True}, [Call("GET", "/work_pools/elt-ecs", pool())],
                             check_mode=True, diff=True)
    assert result["changed"] is True and api.writes == []
    assert result["diff"]["after"]["is_paused"] is True and result["diff"]["before"]["is_paused"] is False


@pytest.mark.parametrize("present", [True, False])
def test_absent(run_module, present):
    script = [Call("GET", "/work_pools/elt-ecs", pool() if present else None)]
    if present:
        script.append(Call("DELETE", "/work_pools/elt-ecs", None))
    result, api = run_module(prefect_work_pool, {"name": "elt-ecs", "state": "absent"}, script)
    assert result["changed"] is present


def test_unknown_job_variable_names_the_allowed_ones(run_module):
    result, _ = run_module(prefect_work_pool, {**ARGS, "job_variables": {"clustr": "c1"}},
                           [Call("GET", "/work_pools/elt-ecs", None)], expect_fail=True)
    assert "clustr" in result["msg"] and "cluster, command, env" in result["msg"]


def test_type_cannot_change(run_module):
    result, _ = run_module(prefect_work_pool, {**ARGS, "type": "process"},
                           [Call("GET", "/work_pools/elt-ecs", pool())], expect_fail=True)
    assert "has type ecs, not process" in result["msg"]


def test_ecs_default_template_comes_from_prefect_aws(run_module):
    """Without base_job_template the installed prefect-aws ECS template is the start."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    expected = ECSWorker.get_default_base_job_template()
    expected["variables"]["properties"]["cluster"]["default"] = "c1"
    expected["variables"]["properties"]["network_configuration"]["default"] = {
        "subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}
    args = {"name": "elt-ecs", "type": "ecs", "job_variables": {
        "cluster": "c1", "network_configuration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"],
                                                   "assignPublicIp": "DISABLED"}}}
    result, _ = run_module(prefect_work_pool, args, [
        Call("GET", "/work_pools/elt-ecs", None),
        Call("POST", "/work_pools/", {"id": "p1"}, body={"name": "elt-ecs", "type": "ecs", "base_job_template": expected}),
        Call("GET", "/work_pools/elt-ecs", pool()),
    ])
    assert result["changed"] is True


ECS_ONLY = {"name": "elt-ecs", "type": "ecs", "job_variables": {"cluster": "c1"}}


def created_template(run_module):
    _, api = run_module(prefect_work_pool, ECS_ONLY, [
        Call("GET", "/work_pools/elt-ecs", None),
        Call("POST", "/work_pools/", {"id": "p1"}),
        Call("GET", "/work_pools/elt-ecs", pool()),
    ])
    (body,) = [b for m, _p, b in api.calls if m == "POST"]
    return body["base_job_template"]


def test_default_template_is_kept_per_package_versions(run_module, monkeypatch, template_cache):
    """The second run needs no prefect-aws import; another prefect-aws version builds it again."""
    first = created_template(run_module)
    assert list(template_cache.glob("dataops.prefect_fargate/base-job-templates/ecs-*.json"))
    monkeypatch.setitem(sys.modules, "prefect_aws.workers.ecs_worker", None)  # an import would fail now
    assert created_template(run_module) == first
    from importlib import metadata

    monkeypatch.setattr(metadata, "version", lambda name: "0.0-other" if name == "prefect-aws" else "3")
    result, _ = run_module(prefect_work_pool, ECS_ONLY, [Call("GET", "/work_pools/elt-ecs", None)], expect_fail=True)
    assert "prefect-aws" in result["msg"]  # a new key: it had to import, and the import fails


def test_corrupt_template_cache_only_costs_the_cache(run_module, template_cache):
    first = created_template(run_module)
    (entry,) = template_cache.glob("dataops.prefect_fargate/base-job-templates/ecs-*.json")
    entry.write_text("{not json")
    assert created_template(run_module) == first
    entry.write_text("[]")  # valid JSON, not a template
    assert created_template(run_module) == first
    assert entry.read_text().startswith("{")
    assert created_template(run_module) == first


def test_missing_prefect_aws_fails_clearly(run_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "prefect_aws.workers.ecs_worker", None)  # import raises ImportError
    result, _ = run_module(prefect_work_pool, {"name": "elt-ecs", "type": "ecs"},
                           [Call("GET", "/work_pools/elt-ecs", None)], expect_fail=True)
    assert "prefect-aws" in result["msg"] and "base_job_template" in result["msg"]


def test_wait_for_workers(run_module, monkeypatch):
    monkeypatch.setattr(prefect_api.time, "sleep", lambda _s: None)
    workers = [{"name": "w1", "status": "ONLINE"}, {"name": "w2", "status": "OFFLINE"}]
    result, _ = run_module(prefect_work_pool, {**ARGS, "wait_for_workers": 1}, [
        Call("GET", "/work_pools/elt-ecs", pool()),
        Call("POST", "/work_pools/elt-ecs/workers/filter", []),
        Call("POST", "/work_pools/elt-ecs/workers/filter", workers),
    ])
    assert result["workers_online"] == ["w1"]


def test_wait_for_workers_times_out_with_what_it_saw(run_module, monkeypatch):
    ticks = iter(range(0, 1000, 50))
    monkeypatch.setattr(prefect_api.time, "monotonic", lambda: next(ticks))
    monkeypatch.setattr(prefect_api.time, "sleep", lambda _s: None)
    offline = [{"name": "w1", "status": "OFFLINE"}]
    result, _ = run_module(prefect_work_pool, {**ARGS, "wait_for_workers": 1, "wait_timeout": 60}, [
        Call("GET", "/work_pools/elt-ecs", pool()),
        Call("POST", "/work_pools/elt-ecs/workers/filter", offline),
        Call("POST", "/work_pools/elt-ecs/workers/filter", offline),
    ], expect_fail=True)
    assert "0 of 1 required worker(s) ONLINE" in result["msg"] and "w1=OFFLINE" in result["msg"]
