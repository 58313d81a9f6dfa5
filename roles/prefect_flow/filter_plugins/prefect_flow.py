# -*- coding: utf-8 -*-
# Apache-2.0
"""Filters of the prefect_flow role: the flow catalogue, from inventory entries to deployments.

The rules shared with preflight and the ecs_fargate_agent role (Fargate cpu/memory pairs, cron, timezones,
Prefect names) live in the collection's plugins/module_utils/stack_rules.py, exposed as the filters
``dataops.prefect_fargate.fargate_pair_ok`` / ``prefect_name_error`` / ``cron_error`` / ``timezone_ok``.

``prefect_flow_catalogue_errors``: every broken rule of every catalogue entry, each message naming the
entry (its index and name) and the field. ``prefect_flow_catalogue``: the entries with their defaults
filled in. ``prefect_flow_code``: content hash and object keys of each flow package.
``prefect_flow_deployments``: the catalogue as the options of prefect_deployment's catalogue mode.
Plain Python, so tests/unit/test_prefect_flow_catalogue.py exercises every rule without Ansible.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

# Rules shared with preflight and the other roles (the collection's filters dataops.prefect_fargate.*).
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_rules import (  # noqa: F401 (re-exported)
    FARGATE,
    FARGATE_PAIRS,
    PREFECT_BANNED,
    TIMEZONE,
    cron_error,
    fargate_pair_ok,
    prefect_name_error,
    timezone_ok,
)

# field -> default (None: required, or "not set")
ENTRY_DEFAULTS: dict[str, Any] = {
    "name": None,
    "flow_name": None,          # defaults to name
    "source_dir": None,
    "entrypoint": None,
    "deployment_name": "default",
    "description": "",
    "parameters": {},
    "parameter_schema": {},
    "schedules": [],
    "tags": [],
    "work_queue": "default",
    "concurrency_limit": 0,
    "paused": False,
    "retries": None,
    "retry_delay_seconds": None,
    "cpu": None,
    "memory": None,
    "env": {},
    "image": "",
    "job_variables": {},
    "results_prefix": None,     # defaults to name
    "results_read_prefixes": [],
    "demo": True,
}
SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "active", "slug", "anchor_date", "day_or", "parameters"}
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$")
ENTRYPOINT = re.compile(r"^[^:/][^:]*\.py:[A-Za-z_][A-Za-z0-9_]*$")
PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_TAG = "stack:"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, str) and value.isdigit())


def _label(index: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"prefect_flow_catalogue[{index}]" + (f" ({name})" if name else "")


def _schedule_errors(where: str, schedules: Any) -> list[str]:
    if not isinstance(schedules, list):
        return [f"{where}: schedules must be a list (got {type(schedules).__name__})"]
    errors, slugs = [], set()
    for i, schedule in enumerate(schedules):
        at = f"{where}: schedules[{i}]"
        if not isinstance(schedule, dict):
            errors.append(f"{at} must be a mapping with one of cron, interval, rrule")
            continue
        unknown = sorted(set(schedule) - SCHEDULE_KEYS)
        if unknown:
            errors.append(f"{at} has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(SCHEDULE_KEYS))})")
        kinds = [k for k in ("cron", "interval", "rrule") if schedule.get(k) not in (None, "")]
        if len(kinds) != 1:
            errors.append(f"{at} needs exactly one of cron, interval, rrule (got {', '.join(kinds) or 'none'})")
        if "cron" in kinds and cron_error(str(schedule["cron"])):
            errors.append(f"{at}.cron {cron_error(str(schedule['cron']))} (got '{schedule['cron']}')")
        if "interval" in kinds:
            try:
                ok = float(schedule["interval"]) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                errors.append(f"{at}.interval must be a number of seconds > 0 (got {schedule['interval']!r})")
        if "rrule" in kinds and "FREQ=" not in str(schedule["rrule"]).upper():
            errors.append(f"{at}.rrule must be an iCalendar RRULE with FREQ= (got '{schedule['rrule']}')")
        if "timezone" in schedule and not timezone_ok(str(schedule["timezone"] or "")):
            errors.append(f"{at}.timezone must be an IANA timezone such as UTC or Australia/Sydney "
                          f"(got '{schedule['timezone']}')")
        if "active" in schedule and not isinstance(schedule["active"], bool):
            errors.append(f"{at}.active must be true or false (got {schedule['active']!r})")
        slug = schedule.get("slug")
        if slug is not None:
            if not SLUG.match(str(slug)):
                errors.append(f"{at}.slug must be lowercase letters, digits and '-' (got '{slug}')")
            elif slug in slugs:
                errors.append(f"{at}.slug '{slug}' is used twice in this entry")
            slugs.add(slug)
    return errors


def catalogue_errors(catalogue: Any, pool_cpu: Any = 512, pool_memory: Any = 1024) -> list[str]:
    """Every broken rule of the catalogue; each message names the entry and the field."""
    if not isinstance(catalogue, list):
        return [f"prefect_flow_catalogue must be a list of flow entries (got {type(catalogue).__name__})"]
    if not catalogue:
        return ["prefect_flow_catalogue is empty: list at least one flow (see the role README, 'Add a flow')"]
    errors: list[str] = []
    names: dict[str, int] = {}
    deployments: dict[tuple[str, str], int] = {}
    packages: dict[str, str] = {}
    results: dict[str, int] = {}
    for index, entry in enumerate(catalogue):
        where = _label(index, entry)
        if not isinstance(entry, dict):
            errors.append(f"{where} must be a mapping (got {type(entry).__name__})")
            continue
        unknown = sorted(set(entry) - set(ENTRY_DEFAULTS))
        if unknown:
            errors.append(f"{where}: unknown field(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(ENTRY_DEFAULTS)})")
        for field in ("name", "source_dir", "entrypoint"):
            if not isinstance(entry.get(field), str) or not entry.get(field):
                errors.append(f"{where}: {field} is required (a non-empty string)")
        name = entry.get("name")
        if isinstance(name, str) and name:
            if not NAME.match(name):
                errors.append(f"{where}: name must be 1-24 lowercase letters, digits and '-', not starting or "
                              f"ending with '-' (it names the flow's IAM role and code prefix; got '{name}')")
            if name in names:
                errors.append(f"{where}: name '{name}' duplicates prefect_flow_catalogue[{names[name]}]")
            else:
                names[name] = index
        flow_name = entry.get("flow_name") or name
        dep_name = entry.get("deployment_name", ENTRY_DEFAULTS["deployment_name"])
        if prefect_name_error(dep_name):
            errors.append(f"{where}: deployment_name {prefect_name_error(dep_name)} (got {dep_name!r})")
        elif isinstance(flow_name, str) and flow_name:
            key = (flow_name, dep_name)
            if key in deployments:
                errors.append(f"{where}: deployment {flow_name}/{dep_name} duplicates the one of "
                              f"prefect_flow_catalogue[{deployments[key]}]")
            else:
                deployments[key] = index
        source, entrypoint = entry.get("source_dir"), entry.get("entrypoint")
        if isinstance(source, str) and source:
            if not os.path.isabs(source):
                errors.append(f"{where}: source_dir must be an absolute path (got '{source}')")
            elif not os.path.isdir(source):
                errors.append(f"{where}: source_dir {source} is not a directory")
            package = os.path.basename(source.rstrip("/"))
            real = os.path.realpath(source)
            if package in packages and packages[package] != real:
                errors.append(f"{where}: source_dir {source} has the same package name '{package}' as another "
                              f"entry's ({packages[package]}): flows share one image, so package names are unique")
            packages.setdefault(package, real)
            if isinstance(entrypoint, str) and entrypoint:
                if not ENTRYPOINT.match(entrypoint):
                    errors.append(f"{where}: entrypoint must be <package>/<file.py>:<function> (got '{entrypoint}')")
                elif entrypoint.split("/")[0] != package:
                    errors.append(f"{where}: entrypoint must start with the package folder of source_dir "
                                  f"({package}/...; got '{entrypoint}')")
                elif os.path.isdir(source):
                    path = os.path.join(os.path.dirname(source.rstrip("/")), entrypoint.rsplit(":", 1)[0])
                    if not os.path.isfile(path):
                        errors.append(f"{where}: entrypoint file {path} does not exist")
        for field, kind in (("parameters", dict), ("parameter_schema", dict), ("env", dict),
                            ("job_variables", dict), ("tags", list), ("results_read_prefixes", list)):
            if field in entry and not isinstance(entry[field], kind):
                errors.append(f"{where}: {field} must be a {'mapping' if kind is dict else 'list'} "
                              f"(got {type(entry[field]).__name__})")
        for field in ("paused", "demo"):
            if field in entry and not isinstance(entry[field], bool):
                errors.append(f"{where}: {field} must be true or false (got {entry[field]!r})")
        for field in ("description", "work_queue", "image"):
            if field in entry and not isinstance(entry[field], str):
                errors.append(f"{where}: {field} must be a string (got {entry[field]!r})")
        if not str(entry.get("work_queue", "default")).strip():
            errors.append(f"{where}: work_queue must not be empty")
        tags = entry.get("tags", [])
        if isinstance(tags, list):
            bad = [t for t in tags if not isinstance(t, str) or not t or t.startswith(RESERVED_TAG)]
            if bad:
                errors.append(f"{where}: tags must be non-empty strings; '{RESERVED_TAG}...' is reserved for the "
                              f"stack tag (got {bad})")
        limit = entry.get("concurrency_limit", 0)
        if not _is_int(limit) or int(limit) < 0:
            errors.append(f"{where}: concurrency_limit must be an integer >= 0, 0 = no limit (got {limit!r})")
        retries = entry.get("retries")
        if retries is not None and (not _is_int(retries) or int(retries) < 0):
            errors.append(f"{where}: retries must be an integer >= 0 (got {retries!r})")
        delay = entry.get("retry_delay_seconds")
        if delay is not None:
            try:
                ok = float(delay) >= 0 and not isinstance(delay, bool)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                errors.append(f"{where}: retry_delay_seconds must be a number >= 0 (got {delay!r})")
        cpu, memory = entry.get("cpu"), entry.get("memory")
        if cpu is not None or memory is not None:
            pair = (pool_cpu if cpu is None else cpu, pool_memory if memory is None else memory)
            if not fargate_pair_ok(*pair):
                errors.append(f"{where}: cpu / memory {pair[0]} / {pair[1]} is not a Fargate combination "
                              f"({FARGATE_PAIRS})")
        env = entry.get("env", {})
        if isinstance(env, dict):
            bad = [k for k, v in env.items() if not ENV_NAME.match(str(k)) or isinstance(v, (dict, list))]
            if bad:
                errors.append(f"{where}: env must map variable names to plain values (bad: {bad})")
        image = entry.get("image", "")
        if isinstance(image, str) and image and (" " in image or image.startswith(("http://", "https://"))):
            errors.append(f"{where}: image must be an image reference such as <registry>/<repo>:<tag> (got '{image}')")
        prefix = entry.get("results_prefix") or name
        if isinstance(prefix, str) and prefix:
            if not PREFIX.match(prefix):
                errors.append(f"{where}: results_prefix must be S3 key characters without leading/trailing '/' "
                              f"(got '{prefix}')")
            elif prefix in results:
                errors.append(f"{where}: results_prefix '{prefix}' is the one of prefect_flow_catalogue"
                              f"[{results[prefix]}]: each flow writes only under its own prefix")
            else:
                results[prefix] = index
        reads = entry.get("results_read_prefixes", [])
        if isinstance(reads, list):
            bad = [p for p in reads if not isinstance(p, str) or not PREFIX.match(p)]
            if bad:
                errors.append(f"{where}: results_read_prefixes must be S3 key prefixes (bad: {bad})")
        errors.extend(_schedule_errors(where, entry.get("schedules", [])))
    for owner in sorted(results):
        for other in sorted(results):
            if owner != other and other.startswith(owner + "/"):
                errors.append(f"{_label(results[other], catalogue[results[other]])}: results_prefix '{other}' lies "
                              f"under '{owner}' of prefect_flow_catalogue[{results[owner]}]")
    return errors


def catalogue(entries: list[dict]) -> list[dict]:
    """The entries with every field present (defaults filled), in catalogue order."""
    out = []
    for entry in entries:
        full = {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in ENTRY_DEFAULTS.items()}
        full.update({k: v for k, v in entry.items() if v is not None or ENTRY_DEFAULTS.get(k) is None})
        full["flow_name"] = full["flow_name"] or full["name"]
        full["results_prefix"] = full["results_prefix"] or full["name"]
        full["source_dir"] = full["source_dir"].rstrip("/")
        full["package"] = os.path.basename(full["source_dir"])
        full["entrypoint_path"] = os.path.join(os.path.dirname(full["source_dir"]), full["entrypoint"])
        out.append(full)
    return out


def code(files: list[dict], entries: list[dict], storage_prefix: str = "flows") -> dict[str, dict]:
    """Per package: content hash of its files and where they go.

    ``files``: ``ansible.builtin.find`` results over every source_dir (with sha256 checksums). The hash
    covers relative paths and contents, so it changes exactly when that package changes; the code lives
    under ``<storage_prefix>/<package>/<hash>/<package>/...`` (one prefix per flow package, what its
    task role may read).
    """
    out: dict[str, dict] = {}
    for entry in entries:
        package, source = entry["package"], entry["source_dir"]
        if package in out:
            continue
        root = os.path.dirname(source)
        mine = sorted((f for f in files if f["path"].startswith(source + os.sep)), key=lambda f: f["path"])
        rel = [os.path.relpath(f["path"], root) for f in mine]
        manifest = "\n".join(f"{r} {f['checksum']}" for r, f in zip(rel, mine))
        digest = hashlib.sha256(manifest.encode("utf-8")).hexdigest()[:16]
        base = "/".join(p for p in (storage_prefix, package) if p)
        out[package] = {
            "hash": digest,
            "base": base,
            "folder": f"{base}/{digest}",
            "files": [[f["path"], f"{base}/{digest}/{r}"] for f, r in zip(mine, rel)],
        }
    return out


def job_variables(entry: dict, task_role_arn: str = "") -> dict:
    """Deployment-level job variables of an entry: overrides of the pool's defaults."""
    variables = dict(entry.get("job_variables") or {})
    for field in ("cpu", "memory"):
        if entry.get(field) is not None:
            variables[field] = int(entry[field])
    if entry.get("image"):
        variables["image"] = entry["image"]
    env = dict(variables.get("env") or {})
    env.update({str(k): str(v) for k, v in (entry.get("env") or {}).items()})
    # Prefect 3's DeploymentCreate has no retries: a flow without its own @flow(retries=...) takes
    # these settings when the flow-run container loads it.
    if entry.get("retries") is not None:
        env["PREFECT_FLOWS_DEFAULT_RETRIES"] = str(int(entry["retries"]))
    if entry.get("retry_delay_seconds") is not None:
        env["PREFECT_FLOWS_DEFAULT_RETRY_DELAY_SECONDS"] = str(entry["retry_delay_seconds"])
    if env:
        variables["env"] = env
    if task_role_arn:
        variables["task_role_arn"] = task_role_arn
    return variables


def deployments(entries: list[dict], code_by_package: dict, schemas: dict, bucket: str, pool: str,
                task_roles: dict | None = None) -> list[dict]:
    """The catalogue as the ``deployments`` option of prefect_deployment's catalogue mode."""
    task_roles = task_roles or {}
    out = []
    for entry in entries:
        package = code_by_package[entry["package"]]
        schedules = []
        for schedule in entry["schedules"]:
            item = {k: v for k, v in schedule.items() if v is not None}
            item.setdefault("timezone", "UTC")
            schedules.append(item)
        out.append({
            "flow_name": entry["flow_name"],
            "name": entry["deployment_name"],
            "description": entry["description"],
            "entrypoint": entry["entrypoint"],
            "pull_steps": [{"prefect_aws.deployments.steps.pull_from_s3": {
                "requires": "prefect-aws>=0.5", "bucket": bucket, "folder": package["folder"]}}],
            "parameters": entry["parameters"],
            "parameter_openapi_schema": entry["parameter_schema"] or schemas[entry["entrypoint_path"]],
            "work_pool_name": pool,
            "work_queue_name": entry["work_queue"],
            "job_variables": job_variables(entry, task_roles.get(entry["name"], "")),
            "schedules": schedules,
            "tags": list(entry["tags"]),
            "paused": bool(entry["paused"]),
            "concurrency_limit": int(entry["concurrency_limit"]),
            "version": package["hash"],
        })
    return out


def deployment_names(entries: list[dict]) -> list[dict]:
    """``{flow_name, name}`` of each entry's deployment (what the delete path removes besides the tagged ones)."""
    return [{"flow_name": e["flow_name"], "name": e["deployment_name"]} for e in entries]


class FilterModule:
    def filters(self):
        return {
            "prefect_flow_catalogue_errors": catalogue_errors,
            "prefect_flow_catalogue": catalogue,
            "prefect_flow_code": code,
            "prefect_flow_job_variables": job_variables,
            "prefect_flow_deployments": deployments,
            "prefect_flow_deployment_names": deployment_names,
        }
