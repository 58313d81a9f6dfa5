"""prefect_deployment: read -> compare -> write only on a difference, schedules never wiped, check mode, diff."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.modules import prefect_deployment

from ..conftest import Call

DEP_PATH = "/deployments/name/top-gainers-elt/daily"
DEP_ID = "d0000000-0000-0000-0000-000000000001"
FLOW_ID = "f0000000-0000-0000-0000-000000000001"
SCHEMA = {"type": "object", "title": "Parameters", "required": ["results_bucket"],
          "properties": {"results_bucket": {"type": "string", "position": 0, "title": "results_bucket"}}}
PULL = [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "flows", "folder": "flows/abc"}}]

ARGS = {
    "flow_name": "top-gainers-elt",
    "name": "daily",
    "entrypoint": "gainers_elt/flow.py:top_gainers_elt",
    "pull_steps": PULL,
    "parameters": {"results_bucket": "results"},
    "parameter_openapi_schema": SCHEMA,
    "work_pool_name": "elt-ecs",
    "work_queue_name": "default",
    "job_variables": {"cpu": 512, "env": {"PREFECT_API_KEY": "pnu_secret"}},
    "schedules": [{"cron": "0 6 * * *", "timezone": "UTC", "slug": "daily"}],
    "tags": ["elt", "gainers"],
    "description": "Top gainers",
    "paused": False,
    "concurrency_limit": 2,
    "version": "abc",
}


def existing(**overrides):
    """The deployment as Prefect 3.9 returns it for ARGS (server-chosen fields included)."""
    dep = {
        "id": DEP_ID, "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
        "name": "daily", "flow_id": FLOW_ID, "version": "abc", "description": "Top gainers",
        "paused": False, "status": "READY", "entrypoint": "gainers_elt/flow.py:top_gainers_elt", "path": None,
        "pull_steps": copy.deepcopy(PULL), "parameters": {"results_bucket": "results"},
        "parameter_openapi_schema": copy.deepcopy(SCHEMA), "enforce_parameter_schema": True,
        "work_pool_name": "elt-ecs", "work_queue_name": "default", "work_queue_id": "q1",
        "job_variables": {"cpu": 512, "env": {"PREFECT_API_KEY": "pnu_secret"}},
        "tags": ["gainers", "elt"],  # order differs from ARGS: not a change
        "labels": {"prefect.flow.id": FLOW_ID},
        "concurrency_limit": None,
        "global_concurrency_limit": {"id": "g1", "limit": 2, "name": f"deployment:{DEP_ID}"},
        "schedules": [{
            "id": "s1", "deployment_id": DEP_ID, "active": True, "max_scheduled_runs": None,
            "parameters": {}, "slug": "daily",
            "schedule": {"cron": "0 6 * * *", "timezone": "UTC", "day_or": True},
        }],
    }
    dep.update(overrides)
    return dep


def test_create_upserts_flow_then_creates_deployment_with_schedules(run_module):
    # POST /flows/ answers with the existing flow when there is one, so create needs no flow read
    script = [Call("GET", DEP_PATH, None),
              Call("POST", "/flows/", {"id": FLOW_ID}, body={"name": "top-gainers-elt"}),
              Call("POST", "/deployments/", existing())]
    result, api = run_module(prefect_deployment, ARGS, script)

    assert result["changed"] is True
    assert result["id"] == DEP_ID and result["flow_id"] == FLOW_ID
    assert result["name"] == "top-gainers-elt/daily"
    assert result["ui_url"] == f"http://prefect.test/deployments/deployment/{DEP_ID}"
    body = api.calls[-1][2]
    assert body["flow_id"] == FLOW_ID and body["name"] == "daily"
    assert body["schedules"] == [{"schedule": {"cron": "0 6 * * *", "timezone": "UTC", "day_or": True},
                                  "active": True, "parameters": {}, "slug": "daily"}]
    assert body["parameter_openapi_schema"] == SCHEMA and body["pull_steps"] == PULL
    assert body["concurrency_limit"] == 2
    # secrets are blanked in what the module returns
    assert result["deployment"]["job_variables"]["env"]["PREFECT_API_KEY"] == "********"


def test_unchanged_makes_zero_writes(run_module):
    result, api = run_module(prefect_deployment, ARGS, [Call("GET", DEP_PATH, existing())], diff=True)
    assert result["changed"] is False
    assert api.writes == []
    assert result["id"] == DEP_ID
    assert result["diff"]["before"] == result["diff"]["after"]


@pytest.mark.parametrize(
    "change, expected_body",
    [
        ({"parameters": {"results_bucket": "other"}}, {"parameters": {"results_bucket": "other"}}),
        ({"description": "new"}, {"description": "new"}),
        ({"paused": True}, {"paused": True}),
        ({"tags": ["elt"]}, {"tags": ["elt"]}),
        ({"concurrency_limit": 0}, {"concurrency_limit": None}),
        ({"version": "def"}, {"version": "def"}),
        ({"work_pool_name": "elt-process"}, {"work_pool_name": "elt-process", "work_queue_name": "default"}),
        ({"pull_steps": [{"x.y": {"folder": "flows/def"}}]}, {"pull_steps": [{"x.y": {"folder": "flows/def"}}]}),
    ],
    ids=["parameters", "description", "paused", "tags", "concurrency-removed", "version", "pool", "pull-steps"],
)
def test_update_patches_only_the_difference(run_module, change, expected_body):
    args = {**ARGS, **change}
    after = existing()
    result, api = run_module(prefect_deployment, args, [
        Call("GET", DEP_PATH, existing()),
        Call("PATCH", f"/deployments/{DEP_ID}", None, body=expected_body),
        Call("GET", f"/deployments/{DEP_ID}", after),
    ], diff=True)
    assert result["changed"] is True
    assert api.writes == [("PATCH", f"/deployments/{DEP_ID}")]
    # the PATCH never carries schedules: Prefect would recreate them
    assert "schedules" not in api.calls[1][2]


def test_omitted_schedules_are_left_alone(run_module):
    args = {k: v for k, v in ARGS.items() if k != "schedules"}
    args["parameters"] = {"results_bucket": "changed"}
    current = existing(schedules=[{"id": "s9", "active": True, "parameters": {}, "slug": None,
                                   "schedule": {"interval": 3600.0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}}])
    result, api = run_module(prefect_deployment, args, [
        Call("GET", DEP_PATH, current),
        Call("PATCH", f"/deployments/{DEP_ID}", None, body={"parameters": {"results_bucket": "changed"}}),
        Call("GET", f"/deployments/{DEP_ID}", current),
    ])
    assert result["changed"] is True
    assert not any("/schedules" in path for _, path in api.writes)


def test_identical_schedule_with_server_fields_is_not_a_change(run_module):
    args = {**ARGS, "schedules": [{"interval": 3600, "timezone": "UTC"}, {"rrule": "FREQ=DAILY"}]}
    current = existing(schedules=[
        {"id": "s2", "active": True, "parameters": {}, "slug": None,
         "schedule": {"rrule": "DTSTART:20200101T000000\nFREQ=DAILY", "timezone": "UTC"}},
        {"id": "s1", "active": True, "parameters": {}, "slug": None,
         "schedule": {"interval": 3600.0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}},
    ])
    result, api = run_module(prefect_deployment, args, [Call("GET", DEP_PATH, current)])
    assert result["changed"] is False and api.writes == []


def test_changed_schedule_is_patched_in_place_by_slug(run_module):
    args = {**ARGS, "schedules": [{"cron": "30 7 * * *", "timezone": "Australia/Sydney", "slug": "daily"}]}
    result, api = run_module(prefect_deployment, args, [
        Call("GET", DEP_PATH, existing()),
        Call("PATCH", f"/deployments/{DEP_ID}/schedules/s1", None, body={
            "schedule": {"cron": "30 7 * * *", "timezone": "Australia/Sydney", "day_or": True},
            "active": True, "parameters": {}, "slug": "daily"}),
        Call("GET", f"/deployments/{DEP_ID}", existing()),
    ])
    assert result["changed"] is True
    assert api.writes == [("PATCH", f"/deployments/{DEP_ID}/schedules/s1")]


def test_schedule_added_and_removed(run_module):
    args = {**ARGS, "schedules": [{"interval": 600, "slug": "often"}]}
    result, api = run_module(prefect_deployment, args, [
        Call("GET", DEP_PATH, existing()),
        Call("DELETE", f"/deployments/{DEP_ID}/schedules/s1", None),
        Call("POST", f"/deployments/{DEP_ID}/schedules", [], body=[{
            "schedule": {"interval": 600.0, "timezone": "UTC"}, "active": True, "parameters": {}, "slug": "often"}]),
        Call("GET", f"/deployments/{DEP_ID}", existing()),
    ])
    assert result["changed"] is True


def test_empty_schedule_list_removes_them(run_module):
    result, api = run_module(prefect_deployment, {**ARGS, "schedules": []}, [
        Call("GET", DEP_PATH, existing()),
        Call("DELETE", f"/deployments/{DEP_ID}/schedules/s1", None),
        Call("GET", f"/deployments/{DEP_ID}", existing(schedules=[])),
    ])
    assert result["changed"] is True


@pytest.mark.parametrize("present", [True, False], ids=["present", "already-gone"])
def test_absent(run_module, present):
    script = [Call("GET", DEP_PATH, existing() if present else None)]
    if present:
        script.append(Call("DELETE", f"/deployments/{DEP_ID}", None))
    result, api = run_module(prefect_deployment, {"flow_name": "top-gainers-elt", "name": "daily", "state": "absent"}, script)
    assert result["changed"] is present
    assert api.writes == ([("DELETE", f"/deployments/{DEP_ID}")] if present else [])


@pytest.mark.parametrize("scenario", ["create", "update", "delete"])
def test_check_mode_predicts_without_writing(run_module, scenario):
    if scenario == "create":
        args, script = ARGS, [Call("GET", DEP_PATH, None), Call("GET", "/flows/name/top-gainers-elt", None)]
    elif scenario == "update":
        args, script = {**ARGS, "parameters": {"results_bucket": "x"}}, [Call("GET", DEP_PATH, existing())]
    else:
        args, script = {"flow_name": "top-gainers-elt", "name": "daily", "state": "absent"}, [Call("GET", DEP_PATH, existing())]
    result, api = run_module(prefect_deployment, args, script, check_mode=True, diff=True)
    assert result["changed"] is True
    assert api.writes == []
    if scenario == "update":
        assert result["diff"]["after"]["parameters"] == {"results_bucket": "x"}
        assert result["diff"]["before"]["parameters"] == {"results_bucket": "results"}
    if scenario == "create":
        assert result["diff"]["before"] == {}
        assert result["diff"]["after"]["schedules"][0]["schedule"]["cron"] == "0 6 * * *"


def test_diff_blanks_secrets(run_module):
    args = {**ARGS, "job_variables": {"cpu": 1024, "env": {"PREFECT_API_KEY": "pnu_new"}}}
    result, _ = run_module(prefect_deployment, args, [Call("GET", DEP_PATH, existing())], check_mode=True, diff=True)
    text = repr(result)
    assert "pnu_new" not in text and "pnu_secret" not in text
    assert result["diff"]["after"]["job_variables"]["cpu"] == 1024


def test_api_key_and_auth_string_are_mutually_exclusive(run_module):
    result, _ = run_module(prefect_deployment, {**ARGS, "api_key": "k", "auth_string": "u:p"}, [], expect_fail=True)
    assert "mutually exclusive" in result["msg"]


def test_schedule_needs_exactly_one_kind(run_module):
    result, _ = run_module(prefect_deployment, {**ARGS, "schedules": [{"cron": "* * * * *", "interval": 5}]}, [],
                           expect_fail=True)
    assert "mutually exclusive" in result["msg"]
