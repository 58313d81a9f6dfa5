# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Deployment comparison shared by prefect_deployment (one deployment) and prefect_deployments (a catalogue).

Pure functions: module options -> Prefect request bodies, and the normalised comparison of a desired
deployment with the one the server returns, so both modules write exactly the fields that differ.
"""

from __future__ import annotations

import json
import re

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import sanitize

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


SCHEDULE_SPEC = dict(
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


def deployment_options():
    """The options describing one deployment (without state and connection options)."""
    return dict(
        name=dict(type="str", required=True),
        flow_name=dict(type="str", required=True),
        entrypoint=dict(type="str"),
        path=dict(type="str"),
        pull_steps=dict(type="list", elements="dict"),
        parameters=dict(type="dict"),
        parameter_openapi_schema=dict(type="dict"),
        enforce_parameter_schema=dict(type="bool"),
        work_pool_name=dict(type="str"),
        work_queue_name=dict(type="str"),
        job_variables=dict(type="dict"),
        schedules=dict(type="list", elements="dict", options=dict(SCHEDULE_SPEC),
                       mutually_exclusive=[("cron", "interval", "rrule")],
                       required_one_of=[("cron", "interval", "rrule")]),
        tags=dict(type="list", elements="str"),
        description=dict(type="str"),
        paused=dict(type="bool"),
        concurrency_limit=dict(type="int"),
        version=dict(type="str"),
    )


def predict_update(current, update, desired_schedules):
    """The deployment as it will be after PATCHing ``update`` and reconciling the schedules (check mode)."""
    predicted = dict(current, **update)
    if "concurrency_limit" in update:
        predicted["global_concurrency_limit"] = {"limit": update["concurrency_limit"]} \
            if update["concurrency_limit"] else None
    if desired_schedules is not None:
        predicted["schedules"] = desired_schedules
    return predicted


def apply_update(client, deployment_id, update, patch, drop, create):
    """PATCH the deployment's fields that differ, then its schedules (plan_schedules' patch/drop/create);
    returns the deployment as Prefect now has it."""
    dep_path = "/deployments/%s" % deployment_id
    if update:
        client.request("PATCH", dep_path, body=update)
    for existing, want in patch:
        client.request("PATCH", "%s/schedules/%s" % (dep_path, existing["id"]), body=want)
    for existing in drop:
        client.request("DELETE", "%s/schedules/%s" % (dep_path, existing["id"]), allow_404=True)
    if create:
        client.request("POST", "%s/schedules" % dep_path, body=create)
    return client.request("GET", dep_path)
