"""prefect_deployment in catalogue mode (stack_tag): many deployments in one run, reads by /filter, writes only
for what differs, stale deployments of the stack pruned by tag (never others), check mode, diff, absent."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.modules import prefect_deployment

from ..conftest import Call
from .test_prefect_deployment import ARGS, DEP_ID, FLOW_ID, existing

TAG = "stack:prefect-elt-test"
DIGEST_FLOW = "f0000000-0000-0000-0000-000000000002"
DIGEST_ID = "d0000000-0000-0000-0000-000000000002"
STALE_ID = "d0000000-0000-0000-0000-000000000003"
ELT = {k: v for k, v in ARGS.items()}
DIGEST = {"flow_name": "gainers-digest", "name": "weekly", "entrypoint": "gainers_digest/flow.py:gainers_digest",
          "work_pool_name": "elt-ecs", "parameters": {"results_bucket": "results"},
          "schedules": [{"cron": "0 7 * * 1", "timezone": "UTC", "slug": "weekly"}], "tags": ["digest"]}
FLOWS_BY_NAME = {"flows": {"name": {"any_": ["gainers-digest", "top-gainers-elt"]}}, "limit": 200, "offset": 0}
BY_TAG = {"deployments": {"tags": {"all_": [TAG]}}, "limit": 200, "offset": 0}


def elt_deployment(**overrides):
    return existing(tags=["gainers", "elt", TAG], **overrides)


def digest_deployment(**overrides):
    dep = {"id": DIGEST_ID, "name": "weekly", "flow_id": DIGEST_FLOW, "updated": "2026-01-01T00:00:00Z",
           "entrypoint": "gainers_digest/flow.py:gainers_digest", "work_pool_name": "elt-ecs",
           "work_queue_name": "default", "parameters": {"results_bucket": "results"}, "tags": ["digest", TAG],
           "concurrency_limit": None, "global_concurrency_limit": None,
           "schedules": [{"id": "s2", "active": True, "parameters": {}, "slug": "weekly",
                          "schedule": {"cron": "0 7 * * 1", "timezone": "UTC", "day_or": True}}]}
    dep.update(overrides)
    return dep


def reads(deployments, extra_flows=None, tagged=None):
    """The reads of one catalogue run for ELT + DIGEST with both flows known."""
    script = [Call("POST", "/flows/filter", [{"id": FLOW_ID, "name": "top-gainers-elt"},
                                             {"id": DIGEST_FLOW, "name": "gainers-digest"}], body=FLOWS_BY_NAME),
              Call("POST", "/deployments/filter", deployments),
              Call("POST", "/deployments/filter", deployments if tagged is None else tagged, body=BY_TAG)]
    if extra_flows:
        script.append(Call("POST", "/flows/filter", extra_flows))
    return script


def args(*deployments, **kw):
    return {"stack_tag": TAG, "deployments": [copy.deepcopy(d) for d in deployments], **kw}


def test_create_from_scratch_creates_each_flow_once_and_tags_every_deployment(run_module):
    twin = {**DIGEST, "name": "weekly-eur"}
    flows_filter = {"flows": {"name": {"any_": ["gainers-digest", "top-gainers-elt"]}}, "limit": 200, "offset": 0}
    script = [Call("POST", "/flows/filter", [], body=flows_filter),
              Call("POST", "/deployments/filter", [], body=BY_TAG),
              Call("POST", "/flows/", {"id": FLOW_ID}, body={"name": "top-gainers-elt"}),
              Call("POST", "/deployments/", elt_deployment()),
              Call("POST", "/flows/", {"id": DIGEST_FLOW}, body={"name": "gainers-digest"}),
              Call("POST", "/deployments/", digest_deployment()),
              Call("POST", "/deployments/", digest_deployment(id="d4", name="weekly-eur"))]
    result, api = run_module(prefect_deployment, args(ELT, DIGEST, twin), script)
    assert result["changed"] is True and result["removed"] == []
    assert [d["action"] for d in result["deployments"]] == ["created"] * 3
    assert [d["name"] for d in result["deployments"]] == ["top-gainers-elt/daily", "gainers-digest/weekly",
                                                          "gainers-digest/weekly-eur"]
    created = [body for method, path, body in api.calls if path == "/deployments/"]
    assert all(TAG in body["tags"] for body in created)
    assert created[0]["tags"] == ["elt", "gainers", TAG] and created[1]["flow_id"] == DIGEST_FLOW
    assert created[1]["schedules"][0]["slug"] == "weekly"
    assert result["deployments"][1]["ui_url"].endswith(DIGEST_ID)


def test_unchanged_catalogue_makes_no_write(run_module):
    result, api = run_module(prefect_deployment, args(ELT, DIGEST), reads([elt_deployment(), digest_deployment()]))
    assert result["changed"] is False and api.writes == []
    assert [d["action"] for d in result["deployments"]] == ["unchanged", "unchanged"]
    assert result["requests"] == 3


def test_changing_one_deployment_writes_only_that_one(run_module):
    changed = {**DIGEST, "parameters": {"results_bucket": "results", "top": 5}}
    script = reads([elt_deployment(), digest_deployment()]) + [
        Call("PATCH", f"/deployments/{DIGEST_ID}", None, body={"parameters": {"results_bucket": "results", "top": 5}}),
        Call("GET", f"/deployments/{DIGEST_ID}", digest_deployment(parameters=changed["parameters"]))]
    result, api = run_module(prefect_deployment, args(ELT, changed), script)
    assert result["changed"] is True
    assert api.writes == [("PATCH", f"/deployments/{DIGEST_ID}")]
    assert [d["action"] for d in result["deployments"]] == ["unchanged", "updated"]
    assert result["deployments"][0]["writes"] == []


def test_a_listed_deployment_without_the_stack_tag_is_adopted(run_module):
    """A deployment of an earlier release (no stack tag) gains the tag: then prune can find it later."""
    untagged = existing()
    script = reads([untagged], tagged=[]) + [
        Call("PATCH", f"/deployments/{DEP_ID}", None, body={"tags": ["elt", "gainers", TAG]}),
        Call("GET", f"/deployments/{DEP_ID}", elt_deployment())]
    script[0] = Call("POST", "/flows/filter", [{"id": FLOW_ID, "name": "top-gainers-elt"}])
    result, api = run_module(prefect_deployment, args(ELT), script)
    assert api.writes == [("PATCH", f"/deployments/{DEP_ID}")] and result["changed"] is True


def stale():
    return digest_deployment(id=STALE_ID, name="hourly", flow_id="f-old", tags=[TAG])


def test_prune_deletes_only_stale_deployments_of_the_stack(run_module):
    """Listed: ELT + digest. Tagged by the stack: those two and a stale one of another flow -> deleted.
    Deployments of other stacks or without tags never come back from the tag filter, so they are never seen."""
    script = reads([elt_deployment(), digest_deployment()],
                   tagged=[elt_deployment(), digest_deployment(), stale()],
                   extra_flows=[{"id": "f-old", "name": "old-flow"}]) + [
        Call("DELETE", f"/deployments/{STALE_ID}", None)]
    result, api = run_module(prefect_deployment, args(ELT, DIGEST), script)
    assert result["changed"] is True and result["removed"] == ["old-flow/hourly"]
    assert api.writes == [("DELETE", f"/deployments/{STALE_ID}")]
    tag_filter = api.calls[2][2]
    assert tag_filter == BY_TAG


def test_prune_false_keeps_removed_entries(run_module):
    script = [Call("POST", "/flows/filter", [{"id": FLOW_ID, "name": "top-gainers-elt"}]),
              Call("POST", "/deployments/filter", [elt_deployment()]),
              Call("POST", "/deployments/filter", [elt_deployment(), stale()], body=BY_TAG),
              Call("POST", "/flows/filter", [{"id": "f-old", "name": "old-flow"}])]
    result, api = run_module(prefect_deployment, {**args(ELT), "prune": False}, script)
    assert result["changed"] is False and result["removed"] == [] and api.writes == []


def test_check_mode_predicts_creates_updates_and_removals_without_writing(run_module):
    changed = {**DIGEST, "paused": True}
    new = {**DIGEST, "name": "monthly"}
    script = reads([elt_deployment(), digest_deployment()], tagged=[elt_deployment(), digest_deployment(), stale()],
                   extra_flows=[{"id": "f-old", "name": "old-flow"}])
    result, api = run_module(prefect_deployment, args(ELT, changed, new), script, check_mode=True, diff=True)
    assert api.writes == [] and result["changed"] is True
    assert [d["action"] for d in result["deployments"]] == ["unchanged", "updated", "created"]
    assert result["removed"] == ["old-flow/hourly"]
    assert set(result["diff"]["after"]) == {"gainers-digest/weekly", "gainers-digest/monthly", "old-flow/hourly"}
    assert result["diff"]["after"]["gainers-digest/weekly"]["paused"] is True
    assert result["diff"]["after"]["old-flow/hourly"] == {}
    assert result["diff"]["before"]["gainers-digest/monthly"] == {}


def test_diff_blanks_secrets(run_module):
    changed = {**ELT, "job_variables": {"cpu": 1024, "env": {"PREFECT_API_KEY": "pnu_other"}}}
    script = reads([elt_deployment()]) + [Call("PATCH", f"/deployments/{DEP_ID}", None),
                                          Call("GET", f"/deployments/{DEP_ID}", elt_deployment(job_variables=changed["job_variables"]))]
    script[0] = Call("POST", "/flows/filter", [{"id": FLOW_ID, "name": "top-gainers-elt"}])
    result, _ = run_module(prefect_deployment, args(changed), script, diff=True)
    after = result["diff"]["after"]["top-gainers-elt/daily"]
    assert after["job_variables"]["env"]["PREFECT_API_KEY"] == "********"
    assert "pnu_" not in str(result)


def test_absent_deletes_every_deployment_of_the_stack_and_the_listed_ones(run_module):
    script = [Call("POST", "/flows/filter", [{"id": FLOW_ID, "name": "top-gainers-elt"}]),
              Call("POST", "/deployments/filter", [existing()]),   # listed, not tagged
              Call("POST", "/deployments/filter", [stale()], body=BY_TAG),
              Call("POST", "/flows/filter", [{"id": "f-old", "name": "old-flow"}]),
              Call("DELETE", f"/deployments/{STALE_ID}", None),
              Call("DELETE", f"/deployments/{DEP_ID}", None)]
    result, api = run_module(prefect_deployment, {"stack_tag": TAG, "state": "absent",
                                                  "deployments": [{"flow_name": "top-gainers-elt", "name": "daily"}]},
                             script)
    assert result["changed"] is True and result["removed"] == ["old-flow/hourly", "top-gainers-elt/daily"]
    assert [d["action"] for d in result["deployments"]] == ["deleted"]


def test_absent_on_an_empty_workspace_changes_nothing(run_module):
    script = [Call("POST", "/deployments/filter", [], body=BY_TAG)]
    result, api = run_module(prefect_deployment, {"stack_tag": TAG, "state": "absent"}, script)
    assert result["changed"] is False and api.writes == []


def test_reads_follow_pages(run_module):
    page = [digest_deployment(id=f"d-{i}", name=f"n{i}", tags=[TAG]) for i in range(200)]
    script = [Call("POST", "/deployments/filter", page, body=BY_TAG),
              Call("POST", "/deployments/filter", [], body={**BY_TAG, "offset": 200}),
              Call("POST", "/flows/filter", [{"id": DIGEST_FLOW, "name": "gainers-digest"}])]
    script += [Call("DELETE", f"/deployments/d-{i}", None) for i in sorted(range(200), key=lambda i: f"n{i}")]
    result, api = run_module(prefect_deployment, {"stack_tag": TAG}, script)
    assert len(result["removed"]) == 200


@pytest.mark.parametrize(("module_args", "message"), [
    (args(ELT, ELT), "deployments[1]: top-gainers-elt/daily is listed twice"),
    ({**args(ELT), "entrypoint": "x.py:f"}, "give each deployment's options inside deployments"),
    (args({**DIGEST, "concurrency_limit": -1}), "deployments[0] (gainers-digest/weekly): concurrency_limit must be >= 0"),
    ({"stack_tag": " "}, "stack_tag must not be empty"),
    ({"deployments": [ELT]}, "stack_tag"),
])
def test_bad_catalogue_arguments_fail_before_any_request(run_module, module_args, message):
    result, api = run_module(prefect_deployment, module_args, [], expect_fail=True)
    assert message in result["msg"] and api.calls == []


def test_each_deployment_is_checked_against_the_single_mode_options(run_module):
    result, api = run_module(prefect_deployment, args({**DIGEST, "paused": "sometimes"}), [], expect_fail=True)
    assert result["msg"].startswith("deployments[0]: ") and "paused" in result["msg"] and api.calls == []
    result, _ = run_module(prefect_deployment, args({"name": "x"}), [], expect_fail=True)
    assert "deployments[0]: " in result["msg"] and "flow_name" in result["msg"]
    result, _ = run_module(prefect_deployment, args({**DIGEST, "schedules": [{"cron": "* * * * *", "interval": 5}]}),
                           [], expect_fail=True)
    assert "deployments[0]: " in result["msg"] and "mutually exclusive" in result["msg"]
