#!/usr/bin/env python3
"""`make demo`: the whole product on the local stack, end to end, with a summary a person wants.

1. ansible-playbook site.yml -i inventories/local   (VPC ... worker service, flow registered)
2. list every deployment of the flow catalogue; run each one marked for the demo (catalogue order: the
   top-gainers ELT first, so the weekly digest has a CSV to summarise) and wait for Completed
3. print what was created, where each run's results are, and the first rows of each CSV
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
PREFECT_PORT = os.environ.get("PREFECT_PORT", "4200")
MOTO_PORT = os.environ.get("MOTO_PORT", "5000")
API = f"http://127.0.0.1:{PREFECT_PORT}/api"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def api(method: str, path: str, body: dict | None = None, attempts: int = 5) -> dict:
    """One Prefect REST call; retries 5xx/connection errors (a busy SQLite server answers 503)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(API + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == attempts:
                raise SystemExit(f"demo: {method} {path} -> HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except urllib.error.URLError as exc:
            if attempt == attempts:
                raise SystemExit(f"demo: {method} {path} failed: {exc.reason}") from exc
        time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def run_site() -> float:
    step("ansible-playbook site.yml -i inventories/local")
    start = time.monotonic()
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "ansible-playbook"), "site.yml", "-i", "inventories/local"], cwd=REPO, env=env)
    if proc.returncode != 0:
        sys.exit(f"demo: site.yml failed (exit {proc.returncode}); see the output above")
    return time.monotonic() - start


def run_flow(deployment_id: str, name: str = "the deployment") -> tuple[dict, float]:
    step(f"Trigger one run of {name} and wait for it")
    start = time.monotonic()
    run = api("POST", f"/deployments/{deployment_id}/create_flow_run", {})
    print(f"    flow run {run['name']} ({run['id']})", flush=True)
    last = None
    while time.monotonic() - start < 300:
        run = api("GET", f"/flow_runs/{run['id']}")
        state = run["state"]["type"]
        if state != last:
            print(f"    {time.monotonic() - start:5.1f}s  {state}", flush=True)
            last = state
        if state in TERMINAL:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    if run["state"]["type"] != "COMPLETED":
        sys.exit(f"demo: flow run ended {run['state']['type']}: {run['state'].get('message')}")
    return run, elapsed


def results_csv(bucket: str, run_id: str, prefix: str = "") -> tuple[str, list[dict]]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{MOTO_PORT}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", []) if run_id in o["Key"]]
    if len(keys) != 1:
        sys.exit(f"demo: expected one CSV for run {run_id} in s3://{bucket}, found {keys}")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode()
    return keys[0], list(csv.DictReader(io.StringIO(body)))


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join("    " + line for line in lines)


def list_catalogue(summary: dict) -> list[dict]:
    step("Deployments of the flow catalogue")
    deployments = summary.get("deployments") or [{"deployment": summary["deployment"], "id": summary["deployment_id"],
                                                  "demo": True, "schedules": [], "results_prefix": ""}]
    for dep in deployments:
        schedules = ", ".join(next((f"{k} {v}" for k, v in s.items() if k in ("cron", "interval", "rrule")), "?")
                              for s in dep.get("schedules") or []) or "no schedule"
        marker = "runs in the demo" if dep.get("demo", True) else "not run by the demo"
        print(f"    {dep['deployment']:<40} {schedules:<22} {marker}")
    return [d for d in deployments if d.get("demo", True)]


def main() -> None:
    total_start = time.monotonic()
    site_seconds = run_site()
    # inventories/local's stack_summary_file: the instance's state folder (scripts/local_stack.py).
    summary_file = Path(os.environ.get("LOCAL_STACK_STATE") or REPO / ".local-stack") / "prefect-elt-local-summary.json"
    summary = json.loads(summary_file.read_text())
    runs = []
    for dep in list_catalogue(summary):
        run, seconds = run_flow(dep["id"], dep["deployment"])
        key, rows = results_csv(summary["results_bucket"], run["id"], (dep.get("results_prefix") or "").rstrip("/"))
        runs.append((dep, run, seconds, key, rows))

    step("Summary")
    azs = summary["availability_zones"]
    print(f"    VPC           {summary['vpc_id']} across {', '.join(azs)}")
    for tier in ("public", "private"):
        ids = summary[f"{tier}_subnet_ids"]
        if ids:
            print(f"    {tier + ' subnets':<13} " + ", ".join(f"{s} ({az})" for s, az in zip(ids, azs)))
    print(f"    ALB           {summary['alb_dns_name']}")
    print(f"    ECS           cluster {summary['cluster']}, service {summary['service']}")
    print(f"    Image         {summary['image']}")
    print(f"    Buckets       s3://{summary['flow_storage_bucket']} (flow code), s3://{summary['results_bucket']} (results)")
    print(f"    Prefect UI    {summary['prefect_ui_url'] or API.removesuffix('/api')}")
    print(f"    Work pool     {summary['work_pool']}")
    for dep, run, seconds, key, rows in runs:
        print(f"\n    Deployment    {dep['deployment']}")
        print(f"    Flow run      {run['name']} -> {run['state']['type']} in {seconds:.1f}s (trigger to Completed)")
        print(f"    Results       s3://{summary['results_bucket']}/{key} ({len(rows)} rows)\n")
        if rows and "price_usd" in rows[0]:
            ccy = next((c.removeprefix("price_") for c in rows[0] if c.startswith("price_") and c != "price_usd"), "aud")
            print(table(rows[:5], ["rank", "symbol", "name", "price_usd", f"price_{ccy}", "change_24h_pct", "fx_rate"]))
        elif rows:
            print(table(rows[:5], list(rows[0])[:7]))
    print(f"\n    site.yml {site_seconds:.0f}s, whole demo {time.monotonic() - total_start:.0f}s")
    print("\n    Next: make teardown      (ansible-playbook teardown.yml -i inventories/local)")
    print("          make down          (stop the local stack)")


if __name__ == "__main__":
    main()
