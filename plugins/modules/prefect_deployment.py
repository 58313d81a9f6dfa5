#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_deployment
short_description: Manage Prefect 3 flow deployments (one, or a whole catalogue) without wiping their schedules
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
  - B(Catalogue mode), when O(stack_tag) is given. O(deployments) lists any number of deployments, each with
    the options of the single mode; they are reconciled in one module run (the stack's deployments are
    read with a few C(POST /api/deployments/filter) calls, not one read each), every one of them gets
    O(stack_tag) among its tags, and with O(prune=true) the deployments carrying O(stack_tag) that are
    no longer listed are deleted. Deployments without that tag are never deleted. O(state=absent)
    deletes every deployment carrying O(stack_tag) and the listed ones.
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - dataops.prefect_fargate.prefect
attributes:
  check_mode:
    description: Predicts C(changed) and the resulting deployment without any write.
  diff_mode:
    description: Returns the managed fields before and after, with secret-looking values blanked.
options:
  name:
    description: Name of the deployment. Required (with O(flow_name)) unless O(stack_tag) is given.
    type: str
  flow_name:
    description: Name of the flow (the C(@flow) name, for example V(top-gainers-elt)). Created when missing.
    type: str
  state:
    description:
      - V(present) creates or updates the deployment; V(absent) deletes it (the flow is kept).
      - In catalogue mode, V(absent) deletes every deployment carrying O(stack_tag) and the listed ones.
    type: str
    choices: [present, absent]
    default: present
  stack_tag:
    description:
      - Catalogue mode. Prefect tag marking the deployments of one stack, for example V(stack:prefect-elt-dev);
        added to every deployment of O(deployments), and the only way deployments to remove are found.
      - Mutually exclusive with O(name) and the other single-deployment options (give those per deployment).
    type: str
  deployments:
    description:
      - Catalogue mode. The deployments, each a dict with the single-mode options (O(name), O(flow_name),
        O(entrypoint), ..., O(schedules)); O(name) and O(flow_name) are required and the pair is unique.
        An option left out is not managed, except the tags, which always gain O(stack_tag).
    type: list
    elements: dict
  prune:
    description: Catalogue mode. Delete the deployments carrying O(stack_tag) that O(deployments) no longer lists.
    type: bool
    default: true
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

    - name: Register a catalogue in one task; deployments of the stack no longer listed are deleted
      dataops.prefect_fargate.prefect_deployment:
        stack_tag: stack:prefect-elt-dev
        deployments:
          - flow_name: top-gainers-elt
            name: daily
            entrypoint: gainers_elt/flow.py:top_gainers_elt
            work_pool_name: prefect-elt-dev-ecs
            schedules: [{cron: "0 6 * * *", slug: daily}]
          - flow_name: gainers-digest
            name: weekly
            entrypoint: gainers_digest/flow.py:gainers_digest
            work_pool_name: prefect-elt-dev-ecs
            schedules: [{cron: "0 7 * * 1"}]
      register: catalogue

    - name: Remove every deployment of the stack (and nothing else)
      dataops.prefect_fargate.prefect_deployment:
        stack_tag: stack:prefect-elt-dev
        state: absent
"""

RETURN = r"""
deployments:
  description: Catalogue mode. One result per listed deployment, in order.
  returned: when stack_tag is given
  type: list
  elements: dict
  contains:
    name:
      description: Full name C(<flow>/<deployment>).
      type: str
    id:
      description: Deployment id (empty in check mode when it would be created).
      type: str
    action:
      description: V(created), V(updated), V(unchanged); with O(state=absent) V(deleted) or V(absent).
      type: str
    changed:
      description: Whether this deployment was (in check mode, would be) written.
      type: bool
    ui_url:
      description: Prefect UI page of the deployment, when it has an id.
      type: str
    writes:
      description: The mutating calls made for this deployment.
      type: list
      elements: str
removed:
  description: Catalogue mode. Full names of the deployments deleted (in check mode, that would be).
  returned: when stack_tag is given
  type: list
  elements: str
requests:
  description: Catalogue mode. HTTP requests sent to the Prefect API, reads included.
  returned: when stack_tag is given
  type: int
id:
  description: Deployment id (empty in check mode when it would be created, and when absent).
  returned: when stack_tag is not given
  type: str
  sample: 5d3c4b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a
name:
  description: Full deployment name C(<flow_name>/<name>), as C(prefect deployment run) expects it.
  returned: when stack_tag is not given
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
  returned: when stack_tag is not given
  type: dict
writes:
  description: The mutating API calls the module made (C(METHOD path)); empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["PATCH /deployments/5d3c4b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import (
    PREFECT_MUTUALLY_EXCLUSIVE,
    PrefectClient,
    prefect_argument_spec,
    sanitize,
)
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_deployment_sync import (
    apply_update,
    create_body,
    compute_update,
    deployment_options,
    desired_schedule,
    managed_view,
    plan_schedules,
    predict_update,
)
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_catalogue import run_catalogue


def main():
    single = deployment_options()
    single["name"]["required"] = single["flow_name"]["required"] = False
    argument_spec = prefect_argument_spec(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        # each element is checked against the single-mode options in prefect_catalogue (documented there)
        deployments=dict(type="list", elements="dict"),
        stack_tag=dict(type="str"),
        prune=dict(type="bool", default=True),
        **single
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=PREFECT_MUTUALLY_EXCLUSIVE + [("name", "stack_tag"), ("name", "deployments")],
        required_one_of=[("name", "stack_tag")],
        required_together=[("name", "flow_name")],
        required_by={"deployments": "stack_tag"},
        supports_check_mode=True,
    )
    if module.params["stack_tag"] is not None:
        stray = sorted(k for k in single if module.params[k] is not None)
        if stray:
            module.fail_json(msg="with stack_tag (catalogue mode) give each deployment's options inside "
                                 "deployments, not at the top level: %s" % ", ".join(stray))
        run_catalogue(module)
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

    update = compute_update(params, current)
    create, patch, delete = plan_schedules(desired_schedules, current.get("schedules") or []) \
        if desired_schedules is not None else ([], [], [])
    changed = bool(update or create or patch or delete)
    if not changed:
        finish(False, current, current.get("flow_id"))

    if module.check_mode:
        finish(True, predict_update(current, update, desired_schedules), current.get("flow_id"))

    finish(True, apply_update(client, current["id"], update, patch, delete, create), current.get("flow_id"))


if __name__ == "__main__":
    main()
