#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_deployment
short_description: Manage a Prefect 3 flow deployment without wiping its schedules
version_added: 0.1.0
description:
  - Ensures a Prefect flow (by name) and one of its deployments exist with the given entrypoint,
    pull steps, parameters and their schema, work pool and queue, job variables, schedules, tags,
    description, paused state, concurrency limit and version, or removes the deployment.
  - Reads the deployment, normalises both sides, compares and writes only the fields that differ
    (C(PATCH /api/deployments/{id})), so a re-run makes no write, keeps the deployment's C(updated)
    timestamp and reports C(changed=false). Prefect's C(POST /api/deployments/) upsert is only used
    to create, because it always bumps C(updated) and deletes the schedules it is not given.
  - Schedules are reconciled one by one through C(/api/deployments/{id}/schedules); when
    O(schedules) is omitted the deployment's schedules are left exactly as they are.
author:
  - Prefect Fargate maintainers (@dataops)
extends_documentation_fragment:
  - dataops.prefect_fargate.prefect
attributes:
  check_mode:
    support: full
    description: Predicts C(changed) and the resulting deployment without any write.
  diff_mode:
    support: full
    description: Returns the managed fields before and after, with secret-looking values blanked.
options:
  name:
    description: Name of the deployment.
    type: str
    required: true
  flow_name:
    description: Name of the flow (the C(@flow) name, for example V(top-gainers-elt)). Created when missing.
    type: str
    required: true
  state:
    description: V(present) creates or updates the deployment; V(absent) deletes it (the flow is kept).
    type: str
    choices: [present, absent]
    default: present
  entrypoint:
    description: Entrypoint of the flow relative to the pulled code, for example V(gainers_elt/flow.py:top_gainers_elt).
    type: str
  path:
    description: Working directory of flow runs (rarely needed with pull steps).
    type: str
  pull_steps:
    description:
      - Steps a worker runs before the flow, for example a single
        C(prefect_aws.deployments.steps.pull_from_s3) step with C(bucket) and C(folder) (see EXAMPLES).
    type: list
    elements: dict
  parameters:
    description: Default parameters of flow runs. Compared as a whole mapping.
    type: dict
  parameter_openapi_schema:
    description:
      - OpenAPI schema of the flow's parameters. Prefect refuses parameters a deployment has no
        schema for; derive it with C(prefect.utilities.callables.parameter_schema_from_entrypoint)
        (the C(dataops.prefect_fargate.prefect_flow) role does).
    type: dict
  enforce_parameter_schema:
    description: Whether Prefect validates run parameters against O(parameter_openapi_schema).
    type: bool
  work_pool_name:
    description: Work pool whose workers run the deployment.
    type: str
  work_queue_name:
    description: Queue of the work pool. Prefect uses V(default) when omitted at creation.
    type: str
  job_variables:
    description: Per-deployment overrides of the work pool's base job template variables.
    type: dict
  schedules:
    description:
      - The complete list of schedules. Omit to leave the existing schedules untouched; V([])
        removes them all. Matching is by O(schedules[].slug) when given, else by content.
    type: list
    elements: dict
    suboptions:
      cron:
        description: Cron expression. Exactly one of O(schedules[].cron), O(schedules[].interval), O(schedules[].rrule).
        type: str
      interval:
        description: Interval in seconds.
        type: float
      anchor_date:
        description: ISO 8601 anchor of an interval schedule. Server-chosen when omitted (and then not compared).
        type: str
      rrule:
        description: iCalendar RRULE string.
        type: str
      timezone:
        description: IANA timezone the schedule is evaluated in.
        type: str
        default: UTC
      day_or:
        description: Cron only; how day-of-month and day-of-week combine (Prefect's C(day_or)).
        type: bool
        default: true
      active:
        description: Whether the schedule creates runs.
        type: bool
        default: true
      slug:
        description: Stable identifier of the schedule within the deployment.
        type: str
      parameters:
        description: Parameter overrides for runs of this schedule.
        type: dict
        default: {}
  tags:
    description: Tags of the deployment (order is ignored).
    type: list
    elements: str
  description:
    description: Description of the deployment.
    type: str
  paused:
    description: Whether the deployment is paused (paused deployments schedule no runs).
    type: bool
  concurrency_limit:
    description: Maximum concurrent runs of the deployment; V(0) removes the limit.
    type: int
  version:
    description: Free-form version label, for example the content hash of the flow code.
    type: str
notes:
  - Fields whose option is omitted are not managed (left as they are), except at creation where
    Prefect's defaults apply.
"""

EXAMPLES = r"""
- name: Register the ELT flow
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/dataops.prefect_fargate.prefect:
      api_url: "{{ prefect_api_url }}"
      auth_string: "{{ prefect_auth_string }}"
  tasks:
    - name: Ensure the daily deployment
      dataops.prefect_fargate.prefect_deployment:
        flow_name: top-gainers-elt
        name: daily
        entrypoint: gainers_elt/flow.py:top_gainers_elt
        pull_steps:
          - prefect_aws.deployments.steps.pull_from_s3:
              requires: prefect-aws>=0.5
              bucket: prefect-elt-dev-flow-storage
              folder: flows/3f2a9c1e
        parameters:
          results_bucket: prefect-elt-dev-results
          target_currency: AUD
        parameter_openapi_schema: "{{ flow_schema }}"
        work_pool_name: prefect-elt-dev-ecs
        schedules:
          - cron: "0 6 * * *"
            timezone: Australia/Sydney
            slug: daily
        tags: [elt, gainers]
        version: 3f2a9c1e
      register: deployment

    - name: Show where it is
      ansible.builtin.debug:
        msg: "{{ deployment.name }} {{ deployment.id }} {{ deployment.ui_url }}"

    - name: Remove it
      dataops.prefect_fargate.prefect_deployment:
        flow_name: top-gainers-elt
        name: daily
        state: absent
"""

RETURN = r"""
id:
  description: Deployment id (empty in check mode when it would be created, and when absent).
  returned: always
  type: str
  sample: 5d3c4b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a
name:
  description: Full deployment name C(<flow_name>/<name>), as C(prefect deployment run) expects it.
  returned: always
  type: str
  sample: top-gainers-elt/daily
flow_id:
  description: Id of the flow (empty in check mode when the flow would be created).
  returned: when state is present
  type: str
ui_url:
  description: Prefect UI page of the deployment.
  returned: when state is present and the deployment exists
  type: str
  sample: http://127.0.0.1:4200/deployments/deployment/5d3c4b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a
deployment:
  description: The deployment after the run (predicted in check mode), secrets blanked.
  returned: always
  type: dict
writes:
  description: The mutating API calls the module made (C(METHOD path)); empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["PATCH /deployments/5d3c4b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"]
"""

import json
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import (
    PREFECT_MUTUALLY_EXCLUSIVE,
    PrefectClient,
    prefect_argument_spec,
    sanitize,
)

# option name -> how to compare; every one of them is only managed when the option is given
_SCALARS = ("entrypoint", "path", "description", "version", "paused", "enforce_parameter_schema",
            "work_pool_name", "work_queue_name")
_DOCUMENTS = ("parameters", "parameter_openapi_schema", "job_variables", "pull_steps")
_DTSTART = re.compile(r"^DTSTART[^\n]*\n")


def canonical(value):
    """JSON-canonical form, so 1 == 1.0 and key order never causes a false difference."""
    return json.dumps(value, sort_keys=True, default=str)


def current_concurrency(current):
    limit = (current.get("global_concurrency_limit") or {}).get("limit")
    return limit if limit is not None else current.get("concurrency_limit")


def desired_schedule(option):
    """Module option -> DeploymentScheduleCreate body."""
    kinds = [k for k in ("cron", "interval", "rrule") if option.get(k) not in (None, "")]
    if len(kinds) != 1:
        raise ValueError("each schedule needs exactly one of cron, interval, rrule (got %s)" % (kinds or "none"))
    kind = kinds[0]
    schedule = {kind: option[kind], "timezone": option.get("timezone") or "UTC"}
    if kind == "cron":
        schedule["day_or"] = option.get("day_or", True) is not False
    if kind == "interval":
        schedule["interval"] = float(option["interval"])
        if option.get("anchor_date"):
            schedule["anchor_date"] = option["anchor_date"]
    body = {"schedule": schedule, "active": option.get("active", True) is not False,
            "parameters": option.get("parameters") or {}}
    if option.get("slug"):
        body["slug"] = option["slug"]
    return body


def schedule_matches(desired, existing):
    """True when an existing schedule already is the desired one (server-chosen fields ignored)."""
    want, have = desired["schedule"], dict(existing.get("schedule") or {})
    if "interval" in want and "anchor_date" not in want:
        have.pop("anchor_date", None)
    if "rrule" in want and "rrule" in have and not want["rrule"].startswith("DTSTART"):
        have["rrule"] = _DTSTART.sub("", have["rrule"])
    if "cron" in want:
        have.setdefault("day_or", True)
    if canonical(want) != canonical(have):
        return False
    if desired["active"] != existing.get("active", True):
        return False
    if canonical(desired["parameters"]) != canonical(existing.get("parameters") or {}):
        return False
    return "slug" not in desired or desired["slug"] == existing.get("slug")


def plan_schedules(desired, existing):
    """Return (create, patch [(existing, desired)], delete) turning ``existing`` into ``desired``."""
    existing = list(existing)
    todo = []
    # 1. identical schedules stay as they are
    for want in desired:
        hit = next((e for e in existing if schedule_matches(want, e)), None)
        if hit is not None:
            existing.remove(hit)
        else:
            todo.append(want)
    patch = []
    # 2. same slug, different content -> patch in place
    for want in list(todo):
        if want.get("slug"):
            hit = next((e for e in existing if e.get("slug") == want["slug"]), None)
            if hit is not None:
                existing.remove(hit)
                todo.remove(want)
                patch.append((hit, want))
    # 3. remaining changed schedules without slugs replace remaining old ones in order
    while todo and existing and not todo[0].get("slug") and not existing[0].get("slug"):
        patch.append((existing.pop(0), todo.pop(0)))
    return todo, patch, existing


def schedule_view(schedule):
    view = {"schedule": schedule.get("schedule"), "active": schedule.get("active", True),
            "parameters": schedule.get("parameters") or {}}
    if schedule.get("slug"):
        view["slug"] = schedule["slug"]
    return view


def managed_view(deployment):
    """The fields this module manages, as the diff shows them."""
    if not deployment:
        return {}
    view = {k: deployment.get(k) for k in _SCALARS + _DOCUMENTS}
    view["tags"] = sorted(deployment.get("tags") or [])
    view["concurrency_limit"] = current_concurrency(deployment)
    view["schedules"] = [schedule_view(s) for s in deployment.get("schedules") or []]
    return sanitize(view)


def compute_update(params, current):
    """Fields of a PATCH body that differ from ``current`` (only options the caller gave)."""
    update = {}
    for key in _SCALARS:
        if params[key] is not None and params[key] != current.get(key):
            update[key] = params[key]
    for key in _DOCUMENTS:
        if params[key] is not None and canonical(params[key]) != canonical(current.get(key)):
            update[key] = params[key]
    if params["tags"] is not None and sorted(params["tags"]) != sorted(current.get("tags") or []):
        update["tags"] = params["tags"]
    if params["concurrency_limit"] is not None:
        want = params["concurrency_limit"] or None
        if want != current_concurrency(current):
            update["concurrency_limit"] = want
    # Prefect resolves the queue from the pre-existing pool/queue pair: send both together.
    if "work_pool_name" in update or "work_queue_name" in update:
        update.setdefault("work_pool_name", params["work_pool_name"] or current.get("work_pool_name"))
        if params["work_queue_name"] or current.get("work_queue_name"):
            update.setdefault("work_queue_name", params["work_queue_name"] or current.get("work_queue_name"))
    return update


def create_body(params, flow_id):
    body = {"name": params["name"], "flow_id": flow_id}
    for key in _SCALARS + _DOCUMENTS + ("tags",):
        if params[key] is not None:
            body[key] = params[key]
    if params["concurrency_limit"]:
        body["concurrency_limit"] = params["concurrency_limit"]
    body["schedules"] = [desired_schedule(s) for s in params["schedules"] or []]
    return body


def main():
    schedule_spec = dict(
        cron=dict(type="str"),
        interval=dict(type="float"),
        anchor_date=dict(type="str"),
        rrule=dict(type="str"),
        timezone=dict(type="str", default="UTC"),
        day_or=dict(type="bool", default=True),
        active=dict(type="bool", default=True),
        slug=dict(type="str"),
        parameters=dict(type="dict", default={}),
    )
    argument_spec = prefect_argument_spec(
        name=dict(type="str", required=True),
        flow_name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        entrypoint=dict(type="str"),
        path=dict(type="str"),
        pull_steps=dict(type="list", elements="dict"),
        parameters=dict(type="dict"),
        parameter_openapi_schema=dict(type="dict"),
        enforce_parameter_schema=dict(type="bool"),
        work_pool_name=dict(type="str"),
        work_queue_name=dict(type="str"),
        job_variables=dict(type="dict"),
        schedules=dict(type="list", elements="dict", options=schedule_spec,
                       mutually_exclusive=[("cron", "interval", "rrule")],
                       required_one_of=[("cron", "interval", "rrule")]),
        tags=dict(type="list", elements="str"),
        description=dict(type="str"),
        paused=dict(type="bool"),
        concurrency_limit=dict(type="int"),
        version=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=PREFECT_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    params = module.params
    if params["concurrency_limit"] is not None and params["concurrency_limit"] < 0:
        module.fail_json(msg="concurrency_limit must be >= 0 (0 removes the limit), got %s"
                             % params["concurrency_limit"])
    client = PrefectClient(module)
    full_name = "%s/%s" % (params["flow_name"], params["name"])
    current = client.get_deployment(params["flow_name"], params["name"])

    def finish(changed, after, flow_id=None, **extra):
        result = dict(changed=changed, name=full_name, id=(after or {}).get("id") or "",
                      deployment=sanitize(after or {}),
                      writes=["%s %s" % w for w in client.writes], **extra)
        if flow_id is not None:
            result["flow_id"] = flow_id
        if result["id"]:
            result["ui_url"] = "%s/deployments/deployment/%s" % (client.ui_url, result["id"])
        if module._diff:
            result["diff"] = dict(before=managed_view(current), after=managed_view(after))
        module.exit_json(**result)

    if params["state"] == "absent":
        if current is not None and not module.check_mode:
            client.request("DELETE", "/deployments/%s" % current["id"], allow_404=True)
        finish(current is not None, None)

    try:
        desired_schedules = None if params["schedules"] is None else [desired_schedule(s) for s in params["schedules"]]
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    if current is None:
        if module.check_mode:
            flow = client.get_flow(params["flow_name"])
            flow_id = (flow or {}).get("id", "")
            body = create_body(params, flow_id)
            predicted = dict(body, id="", tags=params["tags"] or [], concurrency_limit=params["concurrency_limit"],
                             schedules=body["schedules"])
            finish(True, predicted, flow_id)
        # POST /flows/ returns the existing flow when there is one: one call instead of read-then-create
        flow_id = client.request("POST", "/flows/", body={"name": params["flow_name"]})["id"]
        created = client.request("POST", "/deployments/", body=create_body(params, flow_id))
        finish(True, created, flow_id)

    dep_path = "/deployments/%s" % current["id"]
    update = compute_update(params, current)
    create, patch, delete = plan_schedules(desired_schedules, current.get("schedules") or []) \
        if desired_schedules is not None else ([], [], [])
    changed = bool(update or create or patch or delete)
    if not changed:
        finish(False, current, current.get("flow_id"))

    if module.check_mode:
        predicted = dict(current, **update)
        if "concurrency_limit" in update:
            predicted["global_concurrency_limit"] = {"limit": update["concurrency_limit"]} \
                if update["concurrency_limit"] else None
        if desired_schedules is not None:
            predicted["schedules"] = desired_schedules
        finish(True, predicted, current.get("flow_id"))

    if update:
        client.request("PATCH", dep_path, body=update)
    for existing, want in patch:
        client.request("PATCH", "%s/schedules/%s" % (dep_path, existing["id"]), body=want)
    for existing in delete:
        client.request("DELETE", "%s/schedules/%s" % (dep_path, existing["id"]), allow_404=True)
    if create:
        client.request("POST", "%s/schedules" % dep_path, body=create)
    after = client.request("GET", dep_path)
    finish(True, after, current.get("flow_id"))


if __name__ == "__main__":
    main()
