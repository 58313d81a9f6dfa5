"""site.yml / teardown.yml as a user runs them: teardown is guarded and
safe on an empty account, and none of it touches a demo stack a user has deployed (issue #19).
(The full converge/idempotence/teardown cycle is molecule/default.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import boto3
import pytest

from tests.helpers.moto_testing import free_port
from tests.helpers.stack import (REPO, STACK_SCRIPT, VENV_BIN, MotoRecorder, prefect_api, reset_account,
                                 run_playbook)

pytestmark = pytest.mark.integration
ROLES = ("vpc", "s3_buckets", "ecr_image", "alb", "prefect_server", "ecs_fargate_agent", "worker_autoscaling", "prefect_flow")
VALIDATION = re.compile(r"(^|: )(Validat|Check the build inputs)", re.I)
INSTANCE_VARIABLES = ("LOCAL_STACK_INSTANCE", "LOCAL_STACK_STATE", "MOTO_PORT", "PREFECT_PORT", "FIXTURES_PORT",
                      "REGISTRY_PORT", "WORKER_PORT", "FARGATE_PORT", "POSTGRES_PORT",
                      "SERVER_PORT")

# Bad input refused in preflight before any call: tests/integration/test_bad_input.py (the battery).


def test_teardown_of_a_real_environment_needs_confirmation():
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "teardown.yml", "-i", "inventories/prod"],
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode != 0
    assert "not confirmed" in proc.stdout and "teardown_confirm=prefect-elt-prod" in proc.stdout
    # Nothing ran after the refusal: no role's delete path was reached.
    assert "TASK [" not in proc.stdout.split("Refuse without confirmation", 1)[1]


# ------------------------------------------------------------------- a demo stack deployed next to the suite
def demo_stack(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STACK_SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def demo_snapshot(env: dict) -> dict:
    """What `make demo` leaves behind, read-only: VPCs, work pools and deployments of the demo instance."""
    ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    prefect = env["PREFECT_API_URL"]
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")),
        "work_pools": sorted(p["name"] for p in prefect_api("POST", "/work_pools/filter", {}, base=prefect)),
        "deployments": sorted(d["id"] for d in prefect_api("POST", "/deployments/filter", {}, base=prefect)),
    }


@pytest.fixture(scope="module")
def deployed_demo_stack(local_stack, tmp_path_factory):
    """The state a user has after `make demo`: the demo instance of the local stack, with the stack's
    VPC, work pool and deployment in it. A demo stack already running on this machine is used as it
    is, read-only; otherwise one is started (moto + Prefect, own state folder, free ports: another
    checkout's demo may hold the default ones) and a stack-shaped deployment is planted in it. That the
    two instances' defaults never collide is tests/unit/test_local_stack_instances.py's job.
    Yields (environment of the demo instance, snapshot)."""
    env = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARIABLES}  # as `make demo` runs
    started = demo_stack(env, "status").returncode != 0
    if started:
        env["LOCAL_STACK_STATE"] = str(tmp_path_factory.mktemp("demo-stack"))
        env.update({name: str(free_port()) for name in INSTANCE_VARIABLES if name.endswith("_PORT")})
        up = demo_stack(env, "up", "moto", "prefect")
        assert up.returncode == 0, up.stdout + up.stderr
    env.update(line.removeprefix("export ").split("=", 1) for line in demo_stack(env, "env").stdout.splitlines())
    assert env["MOTO_PORT"] != os.environ["MOTO_PORT"] and env["PREFECT_PORT"] != os.environ["PREFECT_PORT"]
    if started:
        ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        ec2.create_vpc(CidrBlock="10.40.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
            {"Key": "Name", "Value": "prefect-elt-local"}, {"Key": "Project", "Value": "prefect-elt"},
            {"Key": "Environment", "Value": "local"}]}])
        base = env["PREFECT_API_URL"]
        prefect_api("POST", "/work_pools/", {"name": "elt-local-ecs", "type": "ecs"}, base=base)
        flow = prefect_api("POST", "/flows/", {"name": "gainers-elt"}, base=base)
        prefect_api("POST", "/deployments/", {"name": "daily", "flow_id": flow["id"],
                                              "work_pool_name": "elt-local-ecs"}, base=base)
    before = demo_snapshot(env)
    if started:
        assert all(before.values()), before
    yield env, before
    if started:
        demo_stack(env, "down")


@pytest.mark.slow
def test_teardown_on_an_empty_account_changes_nothing(deployed_demo_stack):
    """Empty account = empty emulator and empty Prefect, on the suite's own instance; a deployed demo
    stack on this machine keeps every resource and deployment."""
    reset_account()
    recorder = MotoRecorder().start()
    run = run_playbook("teardown.yml")
    calls = recorder.mutating_calls()
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    assert run.changed_tasks == []
    # The stack lock is taken and released (README "Two runs at once"); nothing else is written.
    assert [c.action for c in calls if c.stack_lock] == ["PutParameter", "DeleteParameter"]
    mutating = [c for c in calls if not c.stack_lock]
    assert mutating == [], [(c.method, c.action, c.url) for c in mutating]
    demo_env, before = deployed_demo_stack
    assert demo_snapshot(demo_env) == before


@pytest.mark.slow
def test_site_check_mode_on_an_empty_account_writes_nothing(deployed_demo_stack):
    reset_account()
    recorder = MotoRecorder().start()
    run = run_playbook("site.yml", check=True, diff=True)
    mutating = recorder.mutating_calls()
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    assert run.changed_tasks, "check mode should predict changes on an empty account"
    assert mutating == [], [(c.method, c.action, c.url) for c in mutating]
    demo_env, before = deployed_demo_stack
    assert demo_snapshot(demo_env) == before
    # Validation once (issue #17): preflight checks every role's argument spec and cross-field rules once;
    # the deploy play runs no validation task of its own.
    ran = [(play["play"]["name"], task["task"]["name"]) for play in run.data["plays"] for task in play["tasks"]
           if any(not result.get("skipped") for result in task["hosts"].values())]
    specs = [task for play, task in ran if play.startswith("Preflight") and "arg spec" in task]
    # "<role> : Validating arguments against arg spec 'validate' - <short description>", once per role.
    assert sorted(task.split(" : ", 1)[0] for task in specs) == sorted(ROLES), specs
    assert all("arg spec 'validate'" in task for task in specs), specs
    for role in ROLES:
        assert sum(1 for play, task in ran if play.startswith("Preflight") and task.startswith(f"{role} : Validat")) >= 2, role
    # (The internal common role checks the arguments its callers build, not user input.)
    repeated = [task for play, task in ran if not play.startswith("Preflight") and VALIDATION.search(task)
                and not task.startswith("dataops.prefect_fargate.common : ")]
    assert repeated == [], repeated
