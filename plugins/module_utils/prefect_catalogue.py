# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Catalogue mode of prefect_deployment: many deployments in one module run, stale ones pruned by a stack tag.

One Ansible task per deployment costs a process start (~0.5-1 s) each; one run reads the stack's
deployments with a few ``/filter`` calls, compares each with the same functions as the single mode, and
writes only what differs (0 writes for an unchanged catalogue).
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import PrefectClient
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_deployment_sync import (
    apply_update,
    compute_update,
    create_body,
    deployment_options,
    desired_schedule,
    managed_view,
    plan_schedules,
    predict_update,
)

PAGE = 200  # Prefect's default (and maximum) page size of /filter endpoints


class CountingClient(PrefectClient):
    """PrefectClient that counts every request (reads too), for the benchmark and honest reporting."""

    requests = 0

    def request(self, method, path, body=None, allow_404=False, fail_on_error=True):
        self.requests += 1
        return super().request(method, path, body=body, allow_404=allow_404, fail_on_error=fail_on_error)


def read_all(client, path, body):
    """Every page of a ``/filter`` endpoint."""
    items, offset = [], 0
    while True:
        page = client.request("POST", path, body=dict(body, limit=PAGE, offset=offset)) or []
        items.extend(page)
        if len(page) < PAGE:
            return items
        offset += PAGE


def read_current(client, wanted, stack_tag):
    """The deployments that matter: the stack's (by tag) and the listed ones (by flow + name).

    Returns ({(flow_name, name): deployment}, {flow_name: flow_id}, [stack deployments]).
    """
    flow_ids = {}
    names = sorted({flow for flow, _ in wanted})
    if names:
        for flow in read_all(client, "/flows/filter", {"flows": {"name": {"any_": names}}}):
            flow_ids[flow["name"]] = flow["id"]
    by_id = {}
    if flow_ids:
        listed = read_all(client, "/deployments/filter", {
            "flows": {"id": {"any_": sorted(flow_ids.values())}},
            "deployments": {"name": {"any_": sorted({name for _, name in wanted})}}})
        by_id.update((d["id"], d) for d in listed)
    tagged = read_all(client, "/deployments/filter", {"deployments": {"tags": {"all_": [stack_tag]}}})
    by_id.update((d["id"], d) for d in tagged)
    flow_names = {v: k for k, v in flow_ids.items()}
    unknown = sorted({d["flow_id"] for d in by_id.values()} - set(flow_names))
    if unknown:
        for flow in read_all(client, "/flows/filter", {"flows": {"id": {"any_": unknown}}}):
            flow_names[flow["id"]] = flow["name"]
    current = {}
    for dep in by_id.values():
        dep["_flow_name"] = flow_names.get(dep["flow_id"], dep["flow_id"])
        current[(dep["_flow_name"], dep["name"])] = dep
    stack = [d for d in by_id.values() if stack_tag in (d.get("tags") or [])]
    return current, flow_ids, stack


def with_stack_tag(params, current, stack_tag):
    """The deployment's options with the stack tag added to its tags (all options present, None = unmanaged)."""
    params = dict(params)
    tags = params.get("tags")
    if tags is None:
        tags = list((current or {}).get("tags") or [])
    if stack_tag not in tags:
        tags = list(tags) + [stack_tag]
    params["tags"] = tags
    return params


def run_catalogue(module):
    """Catalogue mode of prefect_deployment (``stack_tag`` given): reconcile ``deployments`` and prune."""
    params = module.params
    stack_tag = params["stack_tag"].strip()
    if not stack_tag:
        module.fail_json(msg="stack_tag must not be empty: it is how the stack's deployments are found")
    wanted, seen = [], set()
    validator = ArgumentSpecValidator(deployment_options())
    for index, raw in enumerate(params["deployments"] or []):
        checked = validator.validate(raw)
        if checked.error_messages:
            module.fail_json(msg="deployments[%d]: %s" % (index, "; ".join(checked.error_messages)))
        dep = checked.validated_parameters
        key = (dep["flow_name"], dep["name"])
        if key in seen:
            module.fail_json(msg="deployments[%d]: %s/%s is listed twice" % (index, key[0], key[1]))
        seen.add(key)
        if dep["concurrency_limit"] is not None and dep["concurrency_limit"] < 0:
            module.fail_json(msg="deployments[%d] (%s/%s): concurrency_limit must be >= 0, got %s"
                                 % (index, key[0], key[1], dep["concurrency_limit"]))
        try:
            schedules = None if dep["schedules"] is None else [desired_schedule(s) for s in dep["schedules"]]
        except ValueError as exc:
            module.fail_json(msg="deployments[%d] (%s/%s): %s" % (index, key[0], key[1], exc))
        wanted.append((key, dep, schedules))

    client = CountingClient(module)
    current, flow_ids, stack = read_current(client, [w[0] for w in wanted], stack_tag)
    results, removed, before, after = [], [], {}, {}

    def record(full_name, old, new):
        if module._diff:
            before[full_name] = managed_view(old) if old else {}
            after[full_name] = managed_view(new) if new else {}

    def delete(dep):
        full_name = "%s/%s" % (dep["_flow_name"], dep["name"])
        if not module.check_mode:
            client.request("DELETE", "/deployments/%s" % dep["id"], allow_404=True)
        removed.append(full_name)
        record(full_name, dep, None)

    if params["state"] == "absent":
        targets = {d["id"]: d for d in stack}
        targets.update((current[k]["id"], current[k]) for k, _, _ in wanted if k in current)
        for dep in sorted(targets.values(), key=lambda d: (d["_flow_name"], d["name"])):
            delete(dep)
        for key, _, _ in wanted:
            results.append(dict(name="%s/%s" % key, id="", changed=key in current, writes=[],
                                action="deleted" if key in current else "absent"))
        finish(module, client, results, removed, before, after)

    for key, dep, schedules in wanted:
        full_name = "%s/%s" % key
        existing = current.get(key)
        opts = with_stack_tag(dep, existing, stack_tag)
        start = len(client.writes)
        if existing is None:
            flow_id = flow_ids.get(key[0], "")
            if module.check_mode:
                body = create_body(opts, flow_id)
                new = dict(body, id="", concurrency_limit=opts["concurrency_limit"])
            else:
                if not flow_id:
                    # POST /flows/ returns the existing flow when there is one
                    flow_id = client.request("POST", "/flows/", body={"name": key[0]})["id"]
                    flow_ids[key[0]] = flow_id
                new = client.request("POST", "/deployments/", body=create_body(opts, flow_id))
            record(full_name, None, new)
            results.append(entry(client, full_name, new, "created", start))
            continue
        update = compute_update(opts, existing)
        create, patch, drop = plan_schedules(schedules, existing.get("schedules") or []) \
            if schedules is not None else ([], [], [])
        if not (update or create or patch or drop):
            results.append(entry(client, full_name, existing, "unchanged", start))
            continue
        if module.check_mode:
            new = predict_update(existing, update, schedules)
        else:
            new = apply_update(client, existing["id"], update, patch, drop, create)
        record(full_name, existing, new)
        results.append(entry(client, full_name, new, "updated", start))

    if params["prune"]:
        listed = {k for k, _, _ in wanted}
        for dep in sorted(stack, key=lambda d: (d["_flow_name"], d["name"])):
            if (dep["_flow_name"], dep["name"]) not in listed:
                delete(dep)
    finish(module, client, results, removed, before, after)


def entry(client, full_name, deployment, action, first_write):
    dep_id = (deployment or {}).get("id") or ""
    result = dict(name=full_name, id=dep_id, action=action, changed=action != "unchanged",
                  writes=["%s %s" % w for w in client.writes[first_write:]])
    if dep_id:
        result["ui_url"] = "%s/deployments/deployment/%s" % (client.ui_url, dep_id)
    return result


def finish(module, client, results, removed, before, after):
    changed = bool(removed) or any(r["changed"] for r in results)
    result = dict(changed=changed, deployments=results, removed=removed, requests=client.requests,
                  writes=["%s %s" % w for w in client.writes])
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)
