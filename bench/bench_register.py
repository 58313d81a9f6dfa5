#!/usr/bin/env python3
"""Benchmark: register N deployments with prefect_deployment, then re-run unchanged and count writes.

Runs the real module code (argument parsing, read -> compare -> write, fetch_url HTTP) in-process against a
Prefect server, so the figure is the module's own cost plus the server's, not Ansible's per-task process
start-up (~0.3-1 s per task on this machine, which a playbook adds on top).

    PREFECT_PORT=4400 .venv/bin/python bench/bench_register.py [--count 100] [--api-url URL]

Targets: first pass <= 10 s for 100 deployments; unchanged pass makes 0 writes and bumps no `updated`.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.dataops.prefect_fargate.plugins.modules import (  # noqa: E402
    prefect_deployment,
    prefect_work_pool,
)

SCHEMA = {"type": "object", "title": "Parameters", "required": ["results_bucket"],
          "properties": {"results_bucket": {"type": "string", "title": "results_bucket", "position": 0},
                         "target_currency": {"type": "string", "title": "target_currency", "default": "AUD",
                                             "position": 1}}}


def run(module, args: dict) -> dict:
    """Run one module invocation in-process and return its JSON result."""
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    result = json.loads(out.getvalue())
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    return result


def deployment_args(api_url: str, flow: str, pool: str, index: int) -> dict:
    return {
        "api_url": api_url, "flow_name": flow, "name": f"bench-{index:03d}",
        "entrypoint": "gainers_elt/flow.py:top_gainers_elt",
        "pull_steps": [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "bench", "folder": "flows/abc"}}],
        "parameters": {"results_bucket": f"results-{index}"}, "parameter_openapi_schema": SCHEMA,
        "work_pool_name": pool, "schedules": [{"cron": "0 6 * * *", "timezone": "UTC", "slug": "daily"}],
        "tags": ["bench"], "version": "abc",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--api-url", default=f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api")
    parser.add_argument("--keep", action="store_true", help="leave the deployments and pool in place")
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:6]
    flow, pool = f"bench-flow-{suffix}", f"bench-pool-{suffix}"
    pool_args = {"api_url": args.api_url, "name": pool, "type": "process", "base_job_template": {}}
    run(prefect_work_pool, pool_args)

    start = time.perf_counter()
    first = [run(prefect_deployment, deployment_args(args.api_url, flow, pool, i)) for i in range(args.count)]
    create_seconds = time.perf_counter() - start
    ids = [r["id"] for r in first]
    updated_before = {i: _get(args.api_url, f"/deployments/{i}")["updated"] for i in ids}

    start = time.perf_counter()
    second = [run(prefect_deployment, deployment_args(args.api_url, flow, pool, i)) for i in range(args.count)]
    rerun_seconds = time.perf_counter() - start
    writes = sum(len(r["writes"]) for r in second)
    changed = sum(1 for r in second if r["changed"])
    bumped = sum(1 for i in ids if _get(args.api_url, f"/deployments/{i}")["updated"] != updated_before[i])

    baseline = server_floor(args.api_url, flow, pool, args.count)
    print(f"server floor (same {args.count} GET + POST flow + POST deployment with bare urllib): {baseline:.2f} s")
    print(f"register {args.count} deployments: {create_seconds:.2f} s "
          f"({sum(len(r['writes']) for r in first)} writes, {sum(r['changed'] for r in first)} changed)")
    print(f"re-run unchanged:          {rerun_seconds:.2f} s ({writes} writes, {changed} changed, "
          f"{bumped} 'updated' timestamps bumped)")

    if not args.keep:
        for i in range(args.count):
            run(prefect_deployment, {"api_url": args.api_url, "flow_name": flow, "name": f"bench-{i:03d}", "state": "absent"})
        run(prefect_work_pool, {"api_url": args.api_url, "name": pool, "state": "absent"})

    ok = create_seconds <= 10 * args.count / 100 and writes == 0 and changed == 0 and bumped == 0
    print("targets met" if ok else "TARGET MISSED (<= 10 s per 100 registrations, 0 writes on re-run)")
    return 0 if ok else 1


def server_floor(api_url: str, flow: str, pool: str, count: int) -> float:
    """The same create requests without the module (what the Prefect server alone costs here)."""
    ids = []
    start = time.perf_counter()
    for i in range(count):
        body = deployment_args(api_url, flow, pool, i)
        try:
            _get(api_url, f"/deployments/name/{flow}/floor-{i:03d}")
        except urllib.error.HTTPError:
            pass
        flow_id = _call(api_url, "POST", "/flows/", {"name": flow})["id"]
        dep = {k: body[k] for k in ("entrypoint", "pull_steps", "parameters", "parameter_openapi_schema",
                                    "work_pool_name", "tags", "version")}
        dep.update(name=f"floor-{i:03d}", flow_id=flow_id,
                   schedules=[{"schedule": {"cron": "0 6 * * *", "timezone": "UTC"}, "slug": "daily"}])
        ids.append(_call(api_url, "POST", "/deployments/", dep)["id"])
    elapsed = time.perf_counter() - start
    for dep_id in ids:
        _call(api_url, "DELETE", f"/deployments/{dep_id}")
    return elapsed


def _call(api_url: str, method: str, path: str, body: dict | None = None):
    for attempt in range(4):  # the loaded SQLite server answers 503 now and then, as the module retries
        req = urllib.request.Request(api_url + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
            return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 3:
                raise
            time.sleep(0.5 * 2 ** attempt)


def _get(api_url: str, path: str) -> dict:
    with urllib.request.urlopen(api_url + path, timeout=30) as resp:
        return json.loads(resp.read())


if __name__ == "__main__":
    sys.exit(main())
