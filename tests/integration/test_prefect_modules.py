"""prefect_work_pool / prefect_deployment against the local Prefect server.

Check mode creates nothing -> register (changed) -> re-register (changed=false, same id, `updated` not bumped,
schedule kept) -> change a parameter (changed, schedule still kept) -> a run of the deployment completes on a
local process worker -> absent removes it. Uses a tiny flow of its own (the real gainers_elt run is the e2e test).
"""

from __future__ import annotations

import textwrap
import urllib.error
import time
import uuid

import pytest

from tests.helpers import stack as stack_helpers
from tests.helpers.stack import api

pytestmark = [pytest.mark.integration]

PLAYBOOK = """\
---
- name: Register a tiny flow
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/dataops.prefect_fargate.prefect:
      api_url: "{{ prefect_api_url }}"
      auth_string: "{{ prefect_api_auth_string | default(omit, true) }}"
  tasks:
    - name: Ensure the process pool
      dataops.prefect_fargate.prefect_work_pool:
        name: "{{ pool }}"
        type: process
        state: "{{ state }}"
      register: pool_result

    - name: Ensure the deployment
      dataops.prefect_fargate.prefect_deployment:
        flow_name: "{{ flow }}"
        name: tiny
        state: "{{ state }}"
        entrypoint: tiny_flow.py:tiny
        pull_steps:
          - prefect.deployments.steps.set_working_directory:
              directory: "{{ code_dir }}"
        parameters: "{{ parameters }}"
        parameter_openapi_schema: "{{ lookup('dataops.prefect_fargate.flow_parameter_schema', 'tiny_flow.py:tiny', root=code_dir) }}"
        work_pool_name: "{{ pool }}"
        schedules:
          - cron: "0 6 * * *"
            timezone: Australia/Sydney
            slug: daily
        tags: [it]
        version: "1"
      register: deployment_result
"""

TINY_FLOW = '''
from prefect import flow


@flow(name="{flow}")
def tiny(greeting: str = "hello", times: int = 1) -> str:
    """A flow small enough to prove a run completes.

    Args:
        greeting: what to say
        times: how often
    """
    return " ".join([greeting] * times)
'''


def result_of(run, task_name):
    for name, result in run.task_results():
        if name == task_name:
            return result
    raise AssertionError(f"task {task_name!r} not in the run: {run.stdout[-2000:]}")


@pytest.fixture(scope="module")
def tiny(local_stack, tmp_path_factory):
    suffix = uuid.uuid4().hex[:6]
    code_dir = tmp_path_factory.mktemp("tiny_flow")
    flow = f"tiny-{suffix}"
    (code_dir / "tiny_flow.py").write_text(textwrap.dedent(TINY_FLOW.format(flow=flow)))
    playbook = code_dir / "register.yml"
    playbook.write_text(PLAYBOOK)
    values = {"pool": f"it-pool-{suffix}", "flow": flow, "code_dir": str(code_dir), "state": "present",
              "parameters": {"greeting": "hi"}}
    yield values, playbook
    stack_helpers.run_playbook(str(playbook), extra_vars={**values, "state": "absent"})


def test_register_reregister_change_run_remove(tiny):
    values, playbook = tiny

    # check mode on nothing: predicts changes, creates nothing
    run = stack_helpers.run_playbook(str(playbook), extra_vars=values, check=True)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert result_of(run, "Ensure the deployment")["changed"] is True
    with pytest.raises(urllib.error.HTTPError):
        api(f"/deployments/name/{values['flow']}/tiny")

    # register
    run = stack_helpers.run_playbook(str(playbook), extra_vars=values)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    first = result_of(run, "Ensure the deployment")
    assert first["changed"] is True and first["id"]
    created = api(f"/deployments/{first['id']}")
    assert created["schedules"][0]["schedule"]["cron"] == "0 6 * * *"
    assert created["parameters"] == {"greeting": "hi"}
    assert set(created["parameter_openapi_schema"]["properties"]) == {"greeting", "times"}

    # re-register unchanged: no write at all
    time.sleep(1.1)  # so a bumped `updated` would be visible
    run = stack_helpers.run_playbook(str(playbook), extra_vars=values)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.changed_tasks == [], run.changed_tasks
    again = result_of(run, "Ensure the deployment")
    assert again["id"] == first["id"] and again["writes"] == []
    unchanged = api(f"/deployments/{first['id']}")
    assert unchanged["updated"] == created["updated"]
    assert [s["id"] for s in unchanged["schedules"]] == [s["id"] for s in created["schedules"]]

    # change a parameter: changed, patched in place, schedule kept
    run = stack_helpers.run_playbook(str(playbook), extra_vars={**values, "parameters": {"greeting": "hey", "times": 2}})
    assert run.rc == 0, run.stdout[-3000:]
    changed = result_of(run, "Ensure the deployment")
    assert changed["changed"] is True and changed["id"] == first["id"]
    assert changed["writes"] == [f"PATCH /deployments/{first['id']}"]
    updated = api(f"/deployments/{first['id']}")
    assert updated["parameters"] == {"greeting": "hey", "times": 2}
    assert updated["updated"] != created["updated"]
    assert [s["id"] for s in updated["schedules"]] == [s["id"] for s in created["schedules"]]

    # a run completes on a process worker (the test's harness) polling the pool
    with stack_helpers.host_worker(values["pool"]):
        flow_run = api(f"/deployments/{first['id']}/create_flow_run", "POST", {})
        deadline = time.monotonic() + 120
        state = flow_run["state"]["type"]
        while time.monotonic() < deadline and state not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            time.sleep(2)
            state = api(f"/flow_runs/{flow_run['id']}")["state"]["type"]
        assert state == "COMPLETED", api(f"/flow_runs/{flow_run['id']}")["state"]

    # absent removes the deployment and the pool; a second absent changes nothing
    run = stack_helpers.run_playbook(str(playbook), extra_vars={**values, "state": "absent"})
    assert run.rc == 0 and set(run.changed_tasks) == {"Ensure the process pool", "Ensure the deployment"}
    run = stack_helpers.run_playbook(str(playbook), extra_vars={**values, "state": "absent"})
    assert run.rc == 0 and run.changed_tasks == []
