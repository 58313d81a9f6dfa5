"""The prefect_flow role's catalogue filters: every bad entry is refused with the entry and the field named,
duplicates are refused, defaults are filled, and the catalogue becomes prefect_deployment's options."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("prefect_flow_filters", REPO / "roles/prefect_flow/filter_plugins/prefect_flow.py")
flt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flt)

ELT = {"name": "top-gainers-elt", "source_dir": str(REPO / "flow_app/gainers_elt"),
       "entrypoint": "gainers_elt/flow.py:top_gainers_elt", "deployment_name": "daily",
       "schedules": [{"cron": "0 6 * * *", "timezone": "UTC", "slug": "daily"}], "results_prefix": "top-gainers"}
DIGEST = {"name": "gainers-digest", "source_dir": str(REPO / "flow_app/gainers_digest"),
          "entrypoint": "gainers_digest/flow.py:gainers_digest", "deployment_name": "weekly",
          "schedules": [{"cron": "0 7 * * 1"}], "results_read_prefixes": ["top-gainers"]}


def test_the_shipped_catalogue_is_valid():
    assert flt.catalogue_errors([ELT, DIGEST]) == []


# (what to change in the second entry, words the single error message must contain)
BAD = [
    ({"name": "Gainers_Digest"}, ["prefect_flow_catalogue[1]", "name must be"]),
    ({"name": None}, ["prefect_flow_catalogue[1]", "name is required"]),
    ({"source_dir": "flow_app/gainers_digest"}, ["(gainers-digest)", "source_dir must be an absolute path"]),
    ({"source_dir": "/nonexistent/gainers_digest"}, ["(gainers-digest)", "source_dir", "is not a directory"]),
    ({"entrypoint": "gainers_digest/flow.py"}, ["(gainers-digest)", "entrypoint must be"]),
    ({"entrypoint": "gainers_elt/flow.py:gainers_digest"}, ["(gainers-digest)", "entrypoint must start with"]),
    ({"entrypoint": "gainers_digest/nope.py:gainers_digest"}, ["(gainers-digest)", "entrypoint file", "nope.py"]),
    ({"schedules": [{"cron": "every monday"}]}, ["(gainers-digest)", "schedules[0].cron"]),
    ({"schedules": [{"cron": "0 7 * * 1", "interval": 60}]}, ["schedules[0] needs exactly one of cron, interval, rrule"]),
    ({"schedules": [{"interval": -5}]}, ["schedules[0].interval must be"]),
    ({"schedules": [{"rrule": "DAILY"}]}, ["schedules[0].rrule"]),
    ({"schedules": [{"cron": "0 7 * * 1", "timezone": "Mars Time"}]}, ["schedules[0].timezone"]),
    ({"schedules": [{"cron": "0 7 * * 1", "active": "yes"}]}, ["schedules[0].active"]),
    ({"schedules": [{"cron": "0 7 * * 1", "slug": "w"}, {"cron": "0 8 * * 1", "slug": "w"}]}, ["schedules[1].slug 'w' is used twice"]),
    ({"schedules": [{"cron": "0 7 * * 1", "cronn": "x"}]}, ["schedules[0] has unknown field(s) cronn"]),
    ({"cpu": 256, "memory": 4096}, ["(gainers-digest)", "cpu / memory 256 / 4096"]),
    ({"memory": 16384}, ["cpu / memory 512 / 16384"]),   # the pool's cpu with the entry's memory
    ({"concurrency_limit": -1}, ["(gainers-digest)", "concurrency_limit"]),
    ({"retries": "many"}, ["(gainers-digest)", "retries must be"]),
    ({"retry_delay_seconds": -1}, ["retry_delay_seconds"]),
    ({"paused": "no"}, ["(gainers-digest)", "paused must be true or false"]),
    ({"tags": ["stack:other"]}, ["(gainers-digest)", "tags", "reserved"]),
    ({"env": {"BAD-NAME": "x"}}, ["(gainers-digest)", "env must map"]),
    ({"image": "https://registry/x"}, ["(gainers-digest)", "image must be"]),
    ({"parameters": ["a"]}, ["(gainers-digest)", "parameters must be a mapping"]),
    ({"results_prefix": "top-gainers"}, ["(gainers-digest)", "results_prefix 'top-gainers' is the one of prefect_flow_catalogue[0]"]),
    ({"results_prefix": "top-gainers/digest"}, ["results_prefix 'top-gainers/digest' lies under 'top-gainers'"]),
    ({"results_prefix": "/abs/"}, ["results_prefix must be"]),
    ({"deployment_name": "a/b"}, ["(gainers-digest)", "deployment_name"]),
    ({"work_queue": ""}, ["(gainers-digest)", "work_queue must not be empty"]),
    ({"schedule": "0 7 * * 1"}, ["(gainers-digest)", "unknown field(s) schedule"]),
]


@pytest.mark.parametrize(("change", "words"), BAD, ids=[str(next(iter(c))) + "-" + str(i) for i, (c, _) in enumerate(BAD)])
def test_a_bad_entry_is_refused_naming_the_entry_and_the_field(change, words):
    entry = {**DIGEST, **change}
    errors = flt.catalogue_errors([ELT, entry])
    assert errors, "expected a refusal"
    assert any(all(w in e for w in words) for e in errors), errors
    assert not any("prefect_flow_catalogue[0]" in e.split(":")[0] for e in errors), errors  # the good entry is not blamed


def test_duplicate_names_and_deployments_are_refused():
    errors = flt.catalogue_errors([ELT, {**DIGEST, "name": "top-gainers-elt", "results_prefix": "x"}])
    assert any("prefect_flow_catalogue[1] (top-gainers-elt): name 'top-gainers-elt' duplicates prefect_flow_catalogue[0]" in e
               for e in errors), errors
    twin = {**ELT, "name": "elt-eur", "flow_name": "top-gainers-elt", "results_prefix": "eur"}  # same deployment
    errors = flt.catalogue_errors([ELT, twin])
    assert any("deployment top-gainers-elt/daily duplicates the one of prefect_flow_catalogue[0]" in e
               for e in errors), errors
    assert flt.catalogue_errors([ELT, {**twin, "deployment_name": "eur"}]) == []


def test_an_empty_or_malformed_catalogue_is_refused():
    assert "is empty" in flt.catalogue_errors([])[0]
    assert "must be a list" in flt.catalogue_errors({"name": "x"})[0]
    assert "prefect_flow_catalogue[0] must be a mapping" in flt.catalogue_errors(["x"])[0]


def test_two_packages_with_one_name_are_refused(tmp_path):
    other = tmp_path / "gainers_digest"
    (other).mkdir()
    (other / "flow.py").write_text("")
    errors = flt.catalogue_errors([DIGEST, {**DIGEST, "name": "copy", "deployment_name": "x", "source_dir": str(other)}])
    assert any("prefect_flow_catalogue[1] (copy): source_dir" in e and "same package name" in e for e in errors), errors


def test_defaults_are_filled_in():
    [entry] = flt.catalogue([{"name": "x", "source_dir": "/a/pkg/", "entrypoint": "pkg/flow.py:f"}])
    assert entry["flow_name"] == "x" and entry["deployment_name"] == "default" and entry["results_prefix"] == "x"
    assert entry["package"] == "pkg" and entry["entrypoint_path"] == "/a/pkg/flow.py:f"
    assert entry["schedules"] == [] and entry["work_queue"] == "default" and entry["demo"] is True


def files_of(*paths: str) -> list[dict]:
    return [{"path": p, "checksum": p[::-1]} for p in paths]


def test_code_hash_per_package_changes_only_with_that_package():
    entries = flt.catalogue([{**ELT, "source_dir": "/src/gainers_elt"}, {**DIGEST, "source_dir": "/src/gainers_digest"},
                             {**ELT, "name": "again", "deployment_name": "again", "source_dir": "/src/gainers_elt"}])
    files = files_of("/src/gainers_elt/flow.py", "/src/gainers_elt/load.py", "/src/gainers_digest/flow.py")
    code = flt.code(files, entries, "flows")
    assert set(code) == {"gainers_elt", "gainers_digest"}   # one upload per package, shared by its entries
    elt = code["gainers_elt"]
    assert elt["folder"] == f"flows/gainers_elt/{elt['hash']}"
    assert elt["files"] == [["/src/gainers_elt/flow.py", f"{elt['folder']}/gainers_elt/flow.py"],
                            ["/src/gainers_elt/load.py", f"{elt['folder']}/gainers_elt/load.py"]]
    changed = flt.code(files + files_of("/src/gainers_digest/new.py"), entries, "flows")
    assert changed["gainers_elt"] == elt and changed["gainers_digest"]["hash"] != code["gainers_digest"]["hash"]


def test_deployments_carry_each_entrys_options():
    entries = flt.catalogue([ELT, {**DIGEST, "cpu": 256, "memory": 512, "env": {"A": 1}, "retries": 2,
                                   "retry_delay_seconds": 30, "image": "repo/flow:x", "tags": ["digest"],
                                   "paused": True, "concurrency_limit": 1, "work_queue": "weekly",
                                   "job_variables": {"stream_output": False}}])
    code = {"gainers_elt": {"hash": "h1", "folder": "flows/gainers_elt/h1"},
            "gainers_digest": {"hash": "h2", "folder": "flows/gainers_digest/h2"}}
    schemas = {e["entrypoint_path"]: {"title": e["name"]} for e in entries}
    elt, digest = flt.deployments(entries, code, schemas, "store", "pool", {"gainers-digest": "arn:role/digest"})
    assert (elt["flow_name"], elt["name"], elt["version"]) == ("top-gainers-elt", "daily", "h1")
    assert elt["pull_steps"][0]["prefect_aws.deployments.steps.pull_from_s3"] == {
        "requires": "prefect-aws>=0.5", "bucket": "store", "folder": "flows/gainers_elt/h1"}
    assert elt["schedules"] == [{"cron": "0 6 * * *", "timezone": "UTC", "slug": "daily"}]
    assert elt["job_variables"] == {} and elt["work_pool_name"] == "pool"
    assert digest["schedules"] == [{"cron": "0 7 * * 1", "timezone": "UTC"}]
    assert digest["job_variables"] == {
        "stream_output": False, "cpu": 256, "memory": 512, "image": "repo/flow:x", "task_role_arn": "arn:role/digest",
        "env": {"A": "1", "PREFECT_FLOWS_DEFAULT_RETRIES": "2", "PREFECT_FLOWS_DEFAULT_RETRY_DELAY_SECONDS": "30"}}
    assert (digest["paused"], digest["concurrency_limit"], digest["work_queue_name"], digest["tags"]) == \
        (True, 1, "weekly", ["digest"])
    assert digest["parameter_openapi_schema"] == {"title": "gainers-digest"}
    assert flt.deployment_names(entries) == [{"flow_name": "top-gainers-elt", "name": "daily"},
                                             {"flow_name": "gainers-digest", "name": "weekly"}]
