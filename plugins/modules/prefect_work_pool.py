#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_work_pool
short_description: Manage a Prefect 3 work pool and its base job template
version_added: 0.1.0
description:
  - Ensures a Prefect work pool exists with the given type, base job template, description,
    concurrency limit and paused state, or removes it.
  - For O(type=ecs) the base job template starts from the default template of the installed
    C(prefect-aws) (C(ECSWorker.get_default_base_job_template())); for O(type=process) from
    Prefect's own process worker. O(job_variables) then become the defaults of the template's
    variables (cluster, vpc_id, network_configuration, role ARNs, image, cpu, memory, ...).
  - That default template is kept per installed C(prefect-aws) and C(prefect) versions under
    C($XDG_CACHE_HOME/dataops.prefect_fargate/base-job-templates) (default C(~/.cache)), so a later run
    needs no prefect-aws import; an unreadable or unwritable cache only costs the import.
  - Reads the pool first, compares the normalised state and writes only when something differs,
    so a re-run makes no API write and reports C(changed=false).
  - Optionally waits until a number of workers polling the pool are C(ONLINE).
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - dataops.prefect_fargate.prefect
attributes:
  check_mode:
    description: Predicts C(changed) and the resulting pool without any write.
  diff_mode:
    description: Returns the pool before and after, with secret-looking values blanked.
options:
  name:
    description: Name of the work pool.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the pool; V(absent) deletes it (and, through Prefect, its
        queues). Deployments that use the pool are not deleted.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - Worker type of the pool, for example V(ecs) or V(process). Required with O(state=present).
      - The type of an existing pool cannot be changed; the module fails instead of replacing it.
    type: str
  base_job_template:
    description:
      - A complete base job template (C(job_configuration) + C(variables)) to start from instead
        of the installed worker's default. Required for types other than V(ecs) and V(process)
        when O(job_variables) is given.
    type: dict
  job_variables:
    description:
      - Defaults to set in the base job template, as a mapping of variable name to value, for
        example C(cluster), C(vpc_id), C(network_configuration) (C(subnets), C(securityGroups),
        C(assignPublicIp)), C(execution_role_arn), C(task_role_arn), C(image), C(cpu), C(memory),
        C(prefect_api_key_secret_arn), C(configure_cloudwatch_logs), C(cloudwatch_logs_options).
      - Every key must be a variable of the template; unknown keys fail with the list of allowed
        names. A value of V(null) leaves the template's default untouched.
    type: dict
    default: {}
  description:
    description: Description of the pool. Left unchanged when omitted.
    type: str
  concurrency_limit:
    description: Maximum number of concurrent flow runs of the pool. Left unchanged when omitted.
    type: int
  paused:
    description: Whether the pool is paused. Left unchanged when omitted (a new pool is not paused).
    type: bool
  wait_for_workers:
    description:
      - After ensuring the pool, wait until at least this many workers of the pool are C(ONLINE).
        V(0) does not wait. Skipped in check mode.
    type: int
    default: 0
  wait_timeout:
    description: Seconds to wait for O(wait_for_workers) before failing.
    type: int
    default: 120
requirements:
  - prefect-aws in the controller's Python for O(type=ecs) without O(base_job_template).
  - prefect in the controller's Python for O(type=process) without O(base_job_template).
"""

EXAMPLES = r"""
- name: Register the flow infrastructure
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/dataops.prefect_fargate.prefect:
      api_url: "{{ prefect_api_url }}"
      api_key: "{{ prefect_api_key }}"
  tasks:
    - name: Ensure the ECS work pool with defaults for every flow run
      dataops.prefect_fargate.prefect_work_pool:
        name: prefect-elt-dev-ecs
        type: ecs
        description: Flow runs on ECS Fargate
        concurrency_limit: 4
        job_variables:
          cluster: prefect-elt-dev
          vpc_id: vpc-0123456789abcdef0
          network_configuration:
            subnets: [subnet-0aaa, subnet-0bbb]
            securityGroups: [sg-0ccc]
            assignPublicIp: DISABLED
          execution_role_arn: arn:aws:iam::123456789012:role/prefect-elt-dev-execution
          task_role_arn: arn:aws:iam::123456789012:role/prefect-elt-dev-flow-run
          image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/prefect-elt:3f2a9c
          cpu: 512
          memory: 1024
          prefect_api_key_secret_arn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:prefect-key
          configure_cloudwatch_logs: true
          cloudwatch_logs_options:
            awslogs-group: /prefect-elt-dev/flow-runs
            awslogs-region: eu-west-1

    - name: Ensure a process pool and wait for one local worker
      dataops.prefect_fargate.prefect_work_pool:
        name: local-process
        type: process
        wait_for_workers: 1
        wait_timeout: 60

    - name: Remove a pool
      dataops.prefect_fargate.prefect_work_pool:
        name: old-pool
        state: absent
"""

RETURN = r"""
work_pool:
  description: The work pool after the run (predicted in check mode), secrets blanked. Empty when absent.
  returned: always
  type: dict
  sample:
    id: 0b5c7a1e-4a7a-4c55-9a4e-6d1f0f3a2b11
    name: prefect-elt-dev-ecs
    type: ecs
    is_paused: false
    concurrency_limit: 4
    status: READY
    base_job_template: {job_configuration: {}, variables: {}}
workers_online:
  description: Names of the pool's ONLINE workers (only when O(wait_for_workers) > 0).
  returned: when wait_for_workers > 0 and not in check mode
  type: list
  elements: str
  sample: [ProcessWorker 8f1c2d]
waited:
  description: Seconds spent waiting for workers.
  returned: when wait_for_workers > 0 and not in check mode
  type: float
  sample: 4.2
ui_url:
  description: Prefect UI page of the pool.
  returned: when state is present
  type: str
  sample: http://127.0.0.1:4200/work-pools/work-pool/local-process
"""

import copy
import hashlib
import json
import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import (
    PREFECT_MUTUALLY_EXCLUSIVE,
    PrefectClient,
    prefect_argument_spec,
    quote,
    sanitize,
    wait_for_workers,
)

_POOL_FIELDS = ("description", "concurrency_limit", "is_paused", "base_job_template")


# The default template is a pure function of the installed worker packages; importing prefect-aws to
# build it costs about a second per run, so it is kept per package versions (a cache only: any error
# reading or writing it just builds the template again).
TEMPLATE_PACKAGES = {"ecs": ("prefect-aws", "prefect"), "process": ("prefect",)}


def template_cache_path(pool_type):
    """The cache file for the installed versions of ``pool_type``'s packages, or None."""
    from importlib import metadata

    try:
        versions = ["%s=%s" % (name, metadata.version(name)) for name in TEMPLATE_PACKAGES[pool_type]]
    except (KeyError, metadata.PackageNotFoundError):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir,
                                                            ".cache")
    key = hashlib.sha256(("%s:%s" % (pool_type, ",".join(versions))).encode()).hexdigest()[:24]
    return os.path.join(root, "dataops.prefect_fargate", "base-job-templates", "%s-%s.json" % (pool_type, key))


def cached_default_base_job_template(module, pool_type):
    path = template_cache_path(pool_type)
    if path:
        try:
            with open(path) as handle:
                cached = json.load(handle)
            if isinstance(cached, dict) and "job_configuration" in cached:
                return cached
        except (OSError, ValueError):
            pass
    template = default_base_job_template(module, pool_type)
    if path and template is not None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False) as handle:
                json.dump(template, handle)
            os.replace(handle.name, path)
        except OSError:
            pass
    return template


def default_base_job_template(module, pool_type):
    """The default template of the installed worker for ``pool_type`` (None if unknown)."""
    if pool_type == "ecs":
        try:
            from prefect_aws.workers.ecs_worker import ECSWorker
        except ImportError as exc:
            module.fail_json(
                msg="type=ecs needs prefect-aws importable by the controller's Python (%s) to build the "
                    "default base job template, or pass base_job_template explicitly." % exc)
        return ECSWorker.get_default_base_job_template()
    if pool_type == "process":
        try:
            from prefect.workers.process import ProcessWorker
        except ImportError as exc:
            module.fail_json(
                msg="type=process needs prefect importable by the controller's Python (%s), or pass "
                    "base_job_template explicitly." % exc)
        return ProcessWorker.get_default_base_job_template()
    return None


def desired_template(module):
    """Start template + job_variables set as variable defaults; None means 'do not manage'."""
    params = module.params
    template = copy.deepcopy(params["base_job_template"]) if params["base_job_template"] else None
    if template is None:
        template = cached_default_base_job_template(module, params["type"])
    job_variables = {k: v for k, v in (params["job_variables"] or {}).items() if v is not None}
    if template is None:
        if job_variables:
            module.fail_json(msg="job_variables needs a base job template: type=%s has no built-in default, "
                                 "pass base_job_template." % params["type"])
        return None
    properties = template.setdefault("variables", {}).setdefault("properties", {})
    unknown = sorted(set(job_variables) - set(properties))
    if unknown:
        module.fail_json(msg="job_variables %s are not variables of the %s base job template; allowed: %s"
                             % (", ".join(unknown), params["type"], ", ".join(sorted(properties))))
    for key, value in job_variables.items():
        properties[key]["default"] = value
    return template


def main():
    argument_spec = prefect_argument_spec(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        type=dict(type="str"),
        base_job_template=dict(type="dict"),
        job_variables=dict(type="dict", default={}),
        description=dict(type="str"),
        concurrency_limit=dict(type="int"),
        paused=dict(type="bool"),
        wait_for_workers=dict(type="int", default=0),
        wait_timeout=dict(type="int", default=120),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=PREFECT_MUTUALLY_EXCLUSIVE,
        required_if=[("state", "present", ("type",))],
        supports_check_mode=True,
    )
    client = PrefectClient(module)
    params = module.params
    name = params["name"]
    path = "/work_pools/%s" % quote(name)
    current = client.get_work_pool(name)

    if params["state"] == "absent":
        changed = current is not None
        if changed and not module.check_mode:
            client.request("DELETE", path, allow_404=True)
        result = dict(changed=changed, work_pool={})
        if module._diff:
            result["diff"] = dict(before=sanitize(current or {}), after={})
        module.exit_json(**result)

    desired = {}
    template = desired_template(module)
    if template is not None:
        desired["base_job_template"] = template
    if params["description"] is not None:
        desired["description"] = params["description"]
    if params["concurrency_limit"] is not None:
        desired["concurrency_limit"] = params["concurrency_limit"]
    if params["paused"] is not None:
        desired["is_paused"] = params["paused"]

    if current is None:
        changed = True
        after = dict(name=name, type=params["type"], is_paused=False, concurrency_limit=None,
                     description=None, base_job_template={})
        after.update(desired)
        if not module.check_mode:
            client.request("POST", "/work_pools/", body=dict(name=name, type=params["type"], **desired))
    else:
        if current.get("type") != params["type"]:
            module.fail_json(msg="work pool %s has type %s, not %s; Prefect cannot change the type of a pool - "
                                 "delete it (state=absent) first or pick another name"
                                 % (name, current.get("type"), params["type"]))
        update = {k: v for k, v in desired.items() if current.get(k) != v}
        changed = bool(update)
        after = dict(current, **update)
        if changed and not module.check_mode:
            client.request("PATCH", path, body=update)

    if changed and not module.check_mode:
        after = client.get_work_pool(name) or after

    result = dict(changed=changed, work_pool=sanitize(after),
                  ui_url="%s/work-pools/work-pool/%s" % (client.ui_url, quote(name)))
    if module._diff:
        keys = ("name", "type") + _POOL_FIELDS
        result["diff"] = dict(
            before=sanitize({k: current.get(k) for k in keys}) if current else {},
            after=sanitize({k: after.get(k) for k in keys}),
        )

    if params["wait_for_workers"] > 0 and not module.check_mode:
        online, workers, waited, ok = wait_for_workers(client, name, params["wait_for_workers"],
                                                       params["wait_timeout"])
        result.update(workers_online=online, waited=waited)
        if not ok:
            module.fail_json(
                msg="work pool %s: %d of %d required worker(s) ONLINE after %ss (workers seen: %s)"
                    % (name, len(online), params["wait_for_workers"], waited,
                       ", ".join("%s=%s" % (w.get("name"), w.get("status")) for w in workers) or "none"),
                **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
