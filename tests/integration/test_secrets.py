"""Secrets never leave the vault (issue #15 part 6).

For every credential path (a Prefect Cloud API key and a self-hosted auth string, each stored in a secret the
stack creates; an existing secret given by ARN holding either kind), site.yml and teardown.yml run with `-vvv`
on an emptied local stack with a fresh random credential, every request the emulator receives is recorded,
and the credential is searched for in:

- everything ansible-playbook printed (stdout and stderr, both runs);
- every task definition registered (the worker's and the flow runs' prefect-aws registered: env and secrets);
- the Prefect work pool (base job template), every deployment (job variables) and flow run;
- every emulator request except the Secrets Manager write itself: RunTask and its overrides included;
- every file under the worktree and the stack's state folder (Prefect's database, logs, container storage).

The self-hosted path is the product's local path: the real site.yml, and one flow run started by the ECS
worker with RunTask. It must be found 0 times everywhere; the Secrets Manager write of the created-secret
paths must hold it (so the search can find it).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from tests.helpers.stack import REPO, VENV_BIN, _post, moto_url, prefect_api, reset_account, state_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET_WRITES = {"CreateSecret", "PutSecretValue", "UpdateSecret"}
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
STACK = "prefect-elt-local"


def aws(service: str):
    return boto3.client(service, endpoint_url=moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def ansible(playbook: str, extra_vars: dict) -> tuple[int, str]:
    """`ansible-playbook <playbook> -vvv` with the default output a user sees; (rc, stdout + stderr)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), playbook, "-i", "inventories/local", "-vvv",
                           "-e", json.dumps(extra_vars)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)
    return proc.returncode, proc.stdout + proc.stderr


def start_recording() -> None:
    _post("/moto-api/recorder/reset-recording")
    _post("/moto-api/recorder/start-recording")


def recorded_requests() -> list[tuple[str, str]]:
    """(action or URL, full request text) of every recorded emulator request."""
    _post("/moto-api/recorder/stop-recording")
    with urllib.request.urlopen(moto_url() + "/moto-api/recorder/download-recording", timeout=60) as resp:
        lines = resp.read().decode().splitlines()
    out = []
    for line in filter(str.strip, lines):
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
        action = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        if not action:
            params = urllib.parse.parse_qs(body if "=" in body else urllib.parse.urlparse(entry.get("url", "")).query)
            action = params.get("Action", [entry.get("method", "") + " " + entry.get("url", "")])[0]
        out.append((action, json.dumps(entry) + "\n" + body))
    return out


def task_definitions() -> list[dict]:
    ecs = aws("ecs")
    arns = [arn for status in ("ACTIVE", "INACTIVE")
            for page in ecs.get_paginator("list_task_definitions").paginate(status=status)
            for arn in page["taskDefinitionArns"]]
    return [ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"] for arn in arns]


def prefect_objects() -> dict:
    return {kind: prefect_api("POST", f"/{kind}/filter", {"limit": 200})
            for kind in ("work_pools", "deployments", "flow_runs")}


def ecs_tasks() -> list[dict]:
    ecs = aws("ecs")
    found = []
    for cluster in ecs.list_clusters()["clusterArns"]:
        arns = [arn for status in ("RUNNING", "STOPPED")
                for arn in ecs.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]]
        if arns:
            found += ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    return found


def run_one_flow() -> dict:
    """One run of the ELT deployment, started by the ECS worker with RunTask; returns the final flow run."""
    deployment = next(d for d in prefect_api("POST", "/deployments/filter", {}) if d["name"] == "daily")
    run = prefect_api("POST", f"/deployments/{deployment['id']}/create_flow_run", {})
    deadline = time.monotonic() + 240
    while run["state"]["type"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(2)
        run = prefect_api("GET", f"/flow_runs/{run['id']}")
    return run


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every regular file under root (symlinks not followed) whose bytes contain needle."""
    hits = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        hits.append(os.path.relpath(path, root))
            except OSError:
                continue
    return hits


def existing_secret(value: str) -> str:
    """A secret the user made beforehand (the write is not recorded: it is not the stack's)."""
    return aws("secretsmanager").create_secret(Name=f"user-owned-prefect-{uuid.uuid4().hex[:8]}",
                                               SecretString=value)["ARN"]


# path id -> (credential value, extra vars, the stack writes the secret, one flow run)
def paths() -> dict:
    token = uuid.uuid4().hex
    return {
        "auth_string": (f"local:{token}a", {"prefect_api_auth_string": f"local:{token}a"}, True, True),
        "api_key": (f"pnu_{token}b", {"prefect_api_key": f"pnu_{token}b", "prefect_api_auth_string": ""}, True, False),
        "arn_api_key": (f"pnu_{token}c", {"prefect_api_auth_string": "", "ecs_fargate_agent_secret_arn_kind": "api_key"},
                        False, False),
        "arn_auth_string": (f"local:{token}d", {"prefect_api_auth_string": "",
                                                "ecs_fargate_agent_secret_arn_kind": "auth_string"}, False, False),
    }


PATHS = list(paths())


@pytest.mark.parametrize("path", PATHS)
def test_the_credential_appears_nowhere(local_stack, path):
    secret, extra_vars, stack_writes, flow_run = paths()[path]
    started = time.monotonic()
    reset_account()
    if not stack_writes:
        extra_vars = {**extra_vars, "ecs_fargate_agent_secret_arn": existing_secret(secret)}
    start_recording()
    rc, site_output = ansible("site.yml", extra_vars)
    assert rc == 0, site_output[-5000:]
    run = run_one_flow() if flow_run else None
    definitions, prefect, tasks = task_definitions(), prefect_objects(), ecs_tasks()
    rc, teardown_output = ansible("teardown.yml", extra_vars)
    assert rc == 0, teardown_output[-5000:]
    requests = recorded_requests()
    seconds = time.monotonic() - started

    found = {
        "ansible output": site_output.count(secret) + teardown_output.count(secret),
        "task definitions": json.dumps(definitions).count(secret),
        "prefect pool/deployments/flow runs": json.dumps(prefect).count(secret),
        "ECS tasks (overrides)": json.dumps(tasks).count(secret),
        "emulator requests": sum(text.count(secret) for action, text in requests if action not in SECRET_WRITES),
        "files": files_holding(REPO, secret.encode()) + [
            f"state:{p}" for p in files_holding(state_dir(), secret.encode()) if not state_dir().is_relative_to(REPO)],
    }
    print(f"\n{path}: {seconds:.0f} s, occurrences {found}")
    assert all(not count for count in found.values()), found

    # The search can find it: the stack's own write holds it, and the worker got it by reference only.
    writes = [text for action, text in requests if action in SECRET_WRITES]
    assert any(secret in text for text in writes) == stack_writes, [w[:300] for w in writes]
    worker = [d for d in definitions if d["family"] == f"{STACK}-worker"]
    assert worker, [d["family"] for d in definitions]
    wanted = "PREFECT_API_KEY" if "api_key" in path else "PREFECT_API_AUTH_STRING"
    assert [s["name"] for d in worker for s in d["containerDefinitions"][0].get("secrets", [])] == [wanted] * len(worker)
    if flow_run:
        assert run["state"]["type"] == "COMPLETED", run["state"]
        runs = [r for r in requests if r[0] == "RunTask"]
        assert runs, "the worker started no flow run with RunTask"
