#!/usr/bin/env python3
"""Benchmark: register a catalogue of N flows through the prefect_flow role, then re-run it unchanged.

Runs ansible-playbook on tests/integration/playbooks/prefect_flow.yml (the role alone, module_defaults as in
site.yml) against the local stack: moto for the flow-storage bucket, the Prefect server for the pool and the
deployments. Every entry is a deployment of the ELT package (one code upload, shared); what grows with N is
the deployments. Prints, for the from-scratch run and the unchanged re-run: the playbook's wall time, the
catalogue task's own time, its Prefect API requests and writes. It measures and prints; it asserts nothing.

    LOCAL_STACK_INSTANCE=test ... .venv/bin/python bench/bench_catalogue.py [--count 100] [--keep]

Needs the local stack's moto and Prefect server (scripts/local_stack.py up moto prefect). Per-flow task roles
are off here (prefect_flow_task_role_path: ""): they are two IAM tasks looping over the catalogue, about
N x 1 s each on this machine, measured separately with --task-roles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
PLAYBOOK = "tests/integration/playbooks/prefect_flow.yml"
CATALOGUE_TASK = "Ensure the deployments of the catalogue"


def endpoints() -> tuple[str, str]:
    return (f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}",
            f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api")


def playbook(variables: dict) -> tuple[float, dict, dict]:
    """Run the role; return (wall seconds, the catalogue task's result, its start/end)."""
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible-playbook"), PLAYBOOK, "-i", "inventories/local",
                           "-e", json.dumps(variables)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3600)
    wall = time.perf_counter() - start
    data = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else {}
    for play in data.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"].endswith(CATALOGUE_TASK):
                return wall, task["hosts"]["localhost"], task["task"]["duration"]
    sys.exit(f"bench: the role failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")


def seconds(duration: dict) -> float:
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(duration["end"]) - parse(duration["start"])).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="leave the deployments, pool and bucket in place")
    parser.add_argument("--task-roles", action="store_true", help="also make one IAM task role per entry")
    args = parser.parse_args()

    import boto3

    moto, prefect = endpoints()
    suffix = uuid.uuid4().hex[:6]
    bucket = f"bench-flows-{suffix}"
    boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    elt = str(REPO / "flow_app" / "gainers_elt")
    catalogue = [{"name": f"bench-{i:03d}", "flow_name": f"bench-flow-{suffix}", "source_dir": elt,
                  "entrypoint": "gainers_elt/flow.py:top_gainers_elt", "deployment_name": f"bench-{i:03d}",
                  "schedules": [{"cron": "0 6 * * *", "slug": "daily"}], "tags": ["bench"],
                  "results_prefix": f"bench-{i:03d}", "parameters": {"results_bucket": f"results-{i}"}}
                 for i in range(args.count)]
    variables = {
        "prefect_flow_catalogue": catalogue, "prefect_flow_stack_tag": f"stack:bench-{suffix}",
        "prefect_flow_storage_bucket": bucket, "prefect_flow_work_pool_name": f"bench-{suffix}",
        "prefect_flow_ecs_cluster": "bench", "prefect_flow_image": "bench:latest", "prefect_flow_health_checks": [],
        "prefect_flow_auth_string_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
        "prefect_flow_task_role_path": f"/bench-{suffix}/flows/" if args.task_roles else "",
        "prefect_flow_default_task_role_name": "",  # the pool's default flow-run task role: not measured here
        "prefect_flow_results_bucket": f"bench-results-{suffix}",
    }

    cold_wall, cold, cold_time = playbook(variables)
    warm_wall, warm, warm_time = playbook(variables)
    print(f"catalogue of {args.count} flows through the prefect_flow role "
          f"({'with' if args.task_roles else 'without'} per-flow task roles)")
    for label, wall, result, duration in (("from scratch", cold_wall, cold, cold_time),
                                          ("unchanged re-run", warm_wall, warm, warm_time)):
        created = sum(1 for d in result["deployments"] if d["action"] == "created")
        print(f"  {label:<17} playbook {wall:6.1f} s | catalogue task {seconds(duration):5.2f} s, "
              f"{result['requests']:4d} Prefect API requests, {len(result['writes']):4d} writes, "
              f"{created} created, changed={result['changed']}")

    if not args.keep:
        playbook_absent = {**variables, "prefect_flow_state": "absent"}
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
        subprocess.run([str(BIN / "ansible-playbook"), PLAYBOOK, "-i", "inventories/local",
                        "-e", json.dumps(playbook_absent)], cwd=REPO, env=env, capture_output=True, timeout=3600)
        with urllib.request.urlopen(f"{prefect}/health", timeout=10):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
