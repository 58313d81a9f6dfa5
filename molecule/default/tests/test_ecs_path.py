"""The ECS path of the deployed stack, as on AWS: worker service -> RunTask -> flow-run task -> S3.

Run by the scenario's verify.yml against the stack converge just deployed (not collected by the suite's
own pytest run: molecule/ is outside pytest.ini's testpaths). Every check goes through the AWS API of
the emulator and Prefect's REST API, as a user would check a real account:

- a flow run of the registered deployment runs as an ECS task of the flow-run task role and completes;
- a run whose image does not exist, and a run whose container exits non-zero, each end Crashed (the
  worker's observer reads the task-state-change events from the stack's queue) within CRASH_BOUND_S;
- a worker task killed from outside is replaced by the service and a worker comes back ONLINE.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
COMPLETE_BOUND_S = 180
# Task STOPPED -> EventBridge -> SQS -> observer (long-polls the queue) -> Crashed.
CRASH_BOUND_S = 120


def summary() -> dict:
    """What site.yml saved (verify.yml passes the inventory's stack_summary_file)."""
    return json.loads(Path(os.environ["STACK_SUMMARY_FILE"]).read_text())


def prefect(method: str, path: str, body: dict | None = None):
    url = summary()["prefect_api_url"] + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for attempt in range(5):  # a busy SQLite server answers 503
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
            return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 4:
                raise
            time.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def aws(service: str):
    # Credentials from the environment: verify.yml runs this as the harness principal (scripts/local_iam.py run).
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{os.environ['MOTO_PORT']}", region_name="us-east-1")


def wait_for_run(run_id: str, bound: float) -> tuple[dict, float]:
    start = time.monotonic()
    run = prefect("GET", f"/flow_runs/{run_id}")
    while run["state"]["type"] not in TERMINAL and time.monotonic() - start < bound:
        time.sleep(1)
        run = prefect("GET", f"/flow_runs/{run_id}")
    return run, time.monotonic() - start


def tasks_of_cluster(cluster: str) -> list[dict]:
    ecs = aws("ecs")
    arns = [arn for status in ("RUNNING", "STOPPED")
            for arn in ecs.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]]
    return ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"] if arns else []


def task_of_flow_run(cluster: str, run_id: str) -> dict | None:
    for task in tasks_of_cluster(cluster):
        if {"key": "prefect.io/flow-run-id", "value": run_id} in task.get("tags", []):
            return task
    return None


@pytest.fixture
def variant_deployment():
    """A copy of the stack's deployment with other job variables; deleted afterwards."""
    created = []

    def make(job_variables: dict) -> str:
        base = prefect("GET", f"/deployments/{summary()['deployment_id']}")
        body = {key: base[key] for key in ("flow_id", "work_pool_name", "work_queue_name", "entrypoint", "pull_steps",
                                           "parameters", "parameter_openapi_schema", "path")}
        body.update(name=f"verify-{uuid.uuid4().hex[:6]}", job_variables=job_variables, paused=False)
        deployment = prefect("POST", "/deployments/", body)
        created.append(deployment["id"])
        return deployment["id"]

    yield make
    for deployment_id in created:
        prefect("DELETE", f"/deployments/{deployment_id}")


def test_flow_run_is_an_ecs_task_of_the_flow_run_role_and_completes():
    stack = summary()
    run = prefect("POST", f"/deployments/{stack['deployment_id']}/create_flow_run", {})
    run, seconds = wait_for_run(run["id"], COMPLETE_BOUND_S)
    print(f"flow run {run['name']}: trigger -> {run['state']['type']} in {seconds:.1f}s")
    assert run["state"]["type"] == "COMPLETED", run["state"]

    # The flow reports Completed a moment before its container exits and the task is reported STOPPED.
    deadline = time.monotonic() + 30
    task = task_of_flow_run(stack["cluster"], run["id"])
    while task is not None and task["lastStatus"] != "STOPPED" and time.monotonic() < deadline:
        time.sleep(1)
        task = task_of_flow_run(stack["cluster"], run["id"])
    assert task is not None, "no ECS task carries the flow run's tag"
    assert task["lastStatus"] == "STOPPED" and task["launchType"] == "FARGATE"
    assert [c["exitCode"] for c in task["containers"]] == [0]
    definition = aws("ecs").describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["family"].startswith("prefect_")
    # prefect-aws passes the task role in RunTask's overrides (the task definition has none): the run acts
    # as its own flow's role from the catalogue, under the stack's /<stack>/flows/ path.
    flow_role = prefect("GET", f"/deployments/{stack['deployment_id']}")["job_variables"]["task_role_arn"]
    assert f":role/{stack['stack']}/flows/" in flow_role, flow_role
    assert task["overrides"].get("taskRoleArn") == flow_role, task["overrides"]
    keys = [o["Key"] for o in aws("s3").list_objects_v2(Bucket=stack["results_bucket"]).get("Contents", [])]
    assert any(run["id"] in key for key in keys), keys


@pytest.mark.parametrize(("job_variables", "expected"), [
    ({"image": "{registry}/does-not-exist:missing"}, "CannotPullContainerError"),
    ({"command": "python -c 'import sys; sys.exit(7)'"}, "exit code"),
], ids=["missing-image", "exit-7"])
def test_a_task_that_fails_ends_the_flow_run_crashed(variant_deployment, job_variables, expected):
    stack = summary()
    registry = stack["image"].split("/", 1)[0]
    variables = {k: v.format(registry=registry) for k, v in job_variables.items()}
    run = prefect("POST", f"/deployments/{variant_deployment(variables)}/create_flow_run", {})
    run, seconds = wait_for_run(run["id"], CRASH_BOUND_S)
    print(f"{variables}: {run['state']['type']} after {seconds:.1f}s: {run['state'].get('message')}")
    assert run["state"]["type"] == "CRASHED", run["state"]
    task = task_of_flow_run(stack["cluster"], run["id"])
    assert task is not None and task["lastStatus"] == "STOPPED"
    reasons = " ".join([task.get("stoppedReason", "")] + [str(c.get("reason", "")) for c in task["containers"]]
                       + [f"exit code {c.get('exitCode')}" for c in task["containers"]])
    assert expected in reasons, task
    # The user sees why: prefect-aws's observer words the Crashed state (or a flow-run log line) from the event.
    logs = prefect("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
    messages = [line["message"] for line in logs] + [run["state"].get("message") or ""]
    assert any(expected in m or "stopped with a non-zero exit code" in m for m in messages), messages


def test_a_killed_worker_task_is_replaced_and_the_worker_comes_back():
    stack = summary()
    ecs = aws("ecs")
    service_tasks = ecs.list_tasks(cluster=stack["cluster"], serviceName=stack["service"], desiredStatus="RUNNING")
    assert len(service_tasks["taskArns"]) == 1, service_tasks
    old = service_tasks["taskArns"][0]
    fargate = f"http://127.0.0.1:{os.environ['FARGATE_PORT']}"
    with urllib.request.urlopen(f"{fargate}/health", timeout=10) as resp:
        processes = json.loads(resp.read())["processes"]
    pid = next(iter(processes[old].values()))
    assert pid, processes
    pool = urllib.parse.quote(stack["work_pool"])
    before = {w["name"] for w in prefect("POST", f"/work_pools/{pool}/workers/filter", {})}
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # the container's main process, as the OOM killer would

    deadline = killed_at + 120
    replacement, stopped = None, None
    while time.monotonic() < deadline and not (replacement and stopped):
        time.sleep(1)
        stopped = ecs.describe_tasks(cluster=stack["cluster"], tasks=[old])["tasks"][0]
        stopped = stopped if stopped["lastStatus"] == "STOPPED" else None
        arns = ecs.list_tasks(cluster=stack["cluster"], serviceName=stack["service"], desiredStatus="RUNNING")["taskArns"]
        described = ecs.describe_tasks(cluster=stack["cluster"], tasks=arns)["tasks"] if arns else []
        replacement = next((t for t in described if t["taskArn"] != old and t["lastStatus"] == "RUNNING"), None)
    assert stopped is not None, "the killed task was not reported STOPPED"
    assert stopped["containers"][0].get("exitCode") not in (None, 0), stopped["containers"]
    assert replacement is not None, "the service did not replace the killed task"

    # The replacement task's worker registers under a new name (the killed one's heartbeat just ages out).
    online, workers = [], []
    while time.monotonic() < deadline + 60 and not online:
        time.sleep(2)
        workers = prefect("POST", f"/work_pools/{pool}/workers/filter", {})
        online = [w for w in workers if w["status"] == "ONLINE" and w["name"] not in before]
    assert online, workers
    print(f"worker task replaced and a worker ONLINE {time.monotonic() - killed_at:.1f}s after the kill")
