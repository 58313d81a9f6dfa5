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

All four run the real site.yml as one sequence from an empty account (the first converge cold, each next one
switching the running stack to the next credential), with one flow run started by the ECS worker with RunTask
for each kind the flow runs reference (the created auth string and API key), then one teardown.yml. Each
value must be found 0 times everywhere; the Secrets Manager write that stored it must hold it (so the search
can find it). Measured on the shared 2-core machine under load (avg 5-8): 16-24 min (6 min CPU); see the module's
fixture output (`-s`).
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


# The four credential paths, in the order one sequence converges them: (extra vars, the stack writes the secret).
# An existing secret is made by the user beforehand (that write is the user's, not the stack's).
PATHS = ("auth_string", "api_key", "arn_api_key", "arn_auth_string")


def credential(path: str) -> str:
    token = uuid.uuid4().hex
    return f"pnu_{token}" if "api_key" in path else f"local:{token}"


def path_vars(path: str, secret: str) -> dict:
    if path == "auth_string":
        return {"prefect_api_auth_string": secret}
    if path == "api_key":
        return {"prefect_api_key": secret, "prefect_api_auth_string": ""}
    return {"prefect_api_auth_string": "", "ecs_fargate_agent_secret_arn": existing_secret(secret),
            "ecs_fargate_agent_secret_arn_kind": path.removeprefix("arn_")}


@pytest.fixture(scope="module")
def sequence(local_stack):
    """From an empty account: site.yml -vvv per path (the first cold, the others switch the credential of the
    running stack: new secret value or reference, task definition revision, rolled worker, re-registered pool),
    one flow run per path through the ECS worker, then teardown.yml -vvv; everything recorded."""
    reset_account()
    _post("/moto-api/recorder/reset-recording")
    _post("/moto-api/recorder/start-recording")
    secrets, outputs, seconds, runs = {}, {}, {}, {}
    for path in PATHS:
        secrets[path] = credential(path)
        extra_vars = path_vars(path, secrets[path])
        started = time.monotonic()
        rc, outputs[path] = ansible("site.yml", extra_vars)
        assert rc == 0, outputs[path][-5000:]
        # RunTask overrides for each kind of secret the flow runs reference (api_key / auth_string); the
        # existing-secret paths differ from those only in the ARN (their pool and job variables are searched).
        runs[path] = run_one_flow() if not path.startswith("arn_") else None
        seconds[path] = time.monotonic() - started
    definitions, prefect, tasks = task_definitions(), prefect_objects(), ecs_tasks()
    started = time.monotonic()
    rc, outputs["teardown"] = ansible("teardown.yml", extra_vars)
    assert rc == 0, outputs["teardown"][-5000:]
    seconds["teardown"] = time.monotonic() - started
    requests = recorded_requests()
    started = time.monotonic()
    files = {path: files_holding(REPO, secret.encode()) + (
        [] if state_dir().is_relative_to(REPO) else [f"state:{f}" for f in files_holding(state_dir(), secret.encode())])
        for path, secret in secrets.items()}
    seconds["file search"] = time.monotonic() - started
    print(f"\nsecrets sequence, seconds: {json.dumps({k: round(v) for k, v in seconds.items()})}")
    return {"secrets": secrets, "outputs": outputs, "runs": runs, "definitions": definitions, "prefect": prefect,
            "tasks": tasks, "requests": requests, "files": files}


@pytest.mark.parametrize("path", PATHS)
def test_the_credential_appears_nowhere(sequence, path):
    secret = sequence["secrets"][path]
    dump = lambda value: json.dumps(value, default=str)  # noqa: E731
    found = {
        "ansible output": sum(text.count(secret) for text in sequence["outputs"].values()),
        "task definitions": dump(sequence["definitions"]).count(secret),
        "prefect pool/deployments/flow runs": dump(sequence["prefect"]).count(secret),
        "ECS tasks (RunTask overrides)": dump(sequence["tasks"]).count(secret),
        "emulator requests": sum(text.count(secret) for action, text in sequence["requests"] if action not in SECRET_WRITES),
        "files": len(sequence["files"][path]),
    }
    print(f"\n{path}: occurrences {found} {sequence['files'][path] or ''}")
    assert not any(found.values()), (found, sequence["files"][path])


@pytest.mark.parametrize("path", PATHS)
def test_each_path_ran_for_real(sequence, path):
    """The search can find it: the stack's own write holds a created secret; each path's flow run completed,
    started by the worker with RunTask, and the worker got the credential by reference under the right name."""
    secret = sequence["secrets"][path]
    writes = [text for action, text in sequence["requests"] if action in SECRET_WRITES and secret in text]
    stack_writes = [text for text in writes if f"{STACK}/prefect-credential" in text]
    assert bool(stack_writes) == (not path.startswith("arn_")), [w[:300] for w in writes]
    assert len(writes) == len(stack_writes) or len(writes) == 1, "only the stack's writes, or the user's one, hold it"
    run = sequence["runs"][path]
    if run is not None:
        assert run["state"]["type"] == "COMPLETED", run["state"]
        assert any(action == "RunTask" and run["id"] in text for action, text in sequence["requests"])
    wanted = "PREFECT_API_KEY" if "api_key" in path else "PREFECT_API_AUTH_STRING"
    references = {(s["name"], s["valueFrom"]) for d in sequence["definitions"] if d["family"] == f"{STACK}-worker"
                  for s in d["containerDefinitions"][0].get("secrets", [])}
    assert wanted in {name for name, _ in references}, references


def test_teardown_keeps_the_users_own_secrets_and_removes_the_stacks(sequence):
    """teardown ran with an existing secret's ARN: the users' secrets stay, and the one the stack made for the
    first two paths (still holding the api_key path's credential) is gone too."""
    names = [s["Name"] for s in aws("secretsmanager").list_secrets()["SecretList"]]
    assert len([n for n in names if n.startswith("user-owned-prefect-")]) == 2, names
    assert f"{STACK}/prefect-credential" not in names
