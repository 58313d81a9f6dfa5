"""The flow-run job template, from the inventory to the RunTask request prefect-aws would send.

Issue #11 items 2 and 5: for each way of giving the Prefect credential (a new secret made from an API
key or an auth string, or an existing secret of either kind), the ECS pool's job variables must name
the secret under the matching *_secret_arn, so prefect-aws puts it in the task definition's `secrets`
and drops the worker's own credential from the RunTask environment; and the flow-run log
configuration must not ask ECS to create the log group (the execution role may not).

The inventory -> job variables part runs the real group_vars and role vars through ansible-playbook
(tests/unit/playbooks/flow_run_wiring.yml); the job variables -> RunTask part runs prefect-aws 0.7.12's
own ECSWorker code on the pool's base job template as prefect_work_pool builds it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PLAYBOOK = "tests/unit/playbooks/flow_run_wiring.yml"
SECRET_ARN = "arn:aws:secretsmanager:ap-southeast-2:210987654321:secret:existing-prefect-AbCdEf"
KEY = "pnu_0123456789abcdefghijklmnopqrstuvwxyz"
AUTH = "admin:s3cret-pass"

# (case id, extra vars, kind of secret the flow runs must get, credential the worker holds)
CASES = [
    ("new-secret-api-key", {"prefect_api_key": KEY, "prefect_api_auth_string": ""}, "api_key", KEY),
    ("new-secret-auth-string", {"prefect_api_key": "", "prefect_api_auth_string": AUTH}, "auth_string", AUTH),
    ("existing-secret-api-key", {"prefect_api_key": "", "prefect_api_auth_string": "",
                                 "ecs_fargate_agent_secret_arn": SECRET_ARN,
                                 "ecs_fargate_agent_secret_arn_kind": "api_key"}, "api_key", KEY),
    ("existing-secret-auth-string", {"prefect_api_key": "", "prefect_api_auth_string": "",
                                     "ecs_fargate_agent_secret_arn": SECRET_ARN,
                                     "ecs_fargate_agent_secret_arn_kind": "auth_string"}, "auth_string", AUTH),
]
ENV_OF = {"api_key": "PREFECT_API_KEY", "auth_string": "PREFECT_API_AUTH_STRING"}


def wiring_facts(extra_vars: dict) -> dict:
    """Every fact the wiring playbook sets (its last value)."""
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), PLAYBOOK, "-i", "inventories/dev",
                           "-e", json.dumps(extra_vars)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    facts: dict = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                facts.update(result.get("ansible_facts", {}))
    return facts


def job_variables(extra_vars: dict) -> dict:
    found = wiring_facts(extra_vars).get("wiring_job_variables")
    assert found is not None
    return found


def base_job_template(variables: dict) -> dict:
    """The pool's template exactly as plugins/modules/prefect_work_pool.py builds it."""
    spec = importlib.util.spec_from_file_location("prefect_work_pool", REPO / "plugins/modules/prefect_work_pool.py")
    module_code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module_code)

    class Module:
        params = {"base_job_template": None, "type": "ecs", "job_variables": variables}

        def fail_json(self, **kwargs):
            raise AssertionError(kwargs)

    return module_code.desired_template(Module())


def run_task_request(template: dict, holds: str, credential: str) -> tuple[dict, dict]:
    """What prefect-aws's ECS worker, holding `credential`, registers and sends to RunTask."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL, temporary_settings
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker

    settings = {PREFECT_API_URL: "https://api.prefect.cloud/api/accounts/a/workspaces/w",
                PREFECT_API_KEY if holds == "api_key" else PREFECT_API_AUTH_STRING: credential}
    with temporary_settings(updates=settings):
        config = asyncio.run(ECSJobConfiguration.from_template_and_values(template, {}))
        flow_run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(), name="r")
        config.prepare_for_flow_run(flow_run)
        worker = ECSWorker(work_pool_name="elt-dev-ecs")
        # The only AWS call on this path checks that the VPC and subnets exist (DescribeVpcs/Subnets).
        worker._custom_network_configuration = lambda vpc_id, network, cfg: {"awsvpcConfiguration": network}
        task_definition = worker._prepare_task_definition(config, region="ap-southeast-2", flow_run=flow_run)
        request = worker._prepare_task_run_request(config, task_definition, "arn:td", True)
    return task_definition, request


@pytest.mark.parametrize(("extra_vars", "kind", "credential"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_flow_runs_read_the_credential_from_the_secret_never_in_plain_text(extra_vars, kind, credential):
    variables = job_variables(extra_vars)
    other = "auth_string" if kind == "api_key" else "api_key"
    secret_arn = extra_vars.get("ecs_fargate_agent_secret_arn") or variables[f"prefect_{kind}_secret_arn".replace(
        "prefect_auth_string", "prefect_api_auth_string")]
    assert variables["prefect_api_key_secret_arn" if kind == "api_key" else "prefect_api_auth_string_secret_arn"] == secret_arn
    assert variables["prefect_api_auth_string_secret_arn" if kind == "api_key" else "prefect_api_key_secret_arn"] is None, other

    task_definition, request = run_task_request(base_job_template(variables), kind, credential)
    container = task_definition["containerDefinitions"][0]
    assert {"name": ENV_OF[kind], "valueFrom": secret_arn} in container.get("secrets", [])
    # The credential appears nowhere in what is registered or sent (DescribeTasks, CloudTrail).
    assert credential not in json.dumps(task_definition) and credential not in json.dumps(request)
    environment = [e["name"] for o in request["overrides"]["containerOverrides"] for e in o.get("environment", [])]
    assert "PREFECT_API_KEY" not in environment and "PREFECT_API_AUTH_STRING" not in environment


def test_flow_run_logs_go_to_the_existing_group_without_create_group():
    variables = job_variables(CASES[0][1])
    task_definition, _ = run_task_request(base_job_template(variables), "api_key", KEY)
    options = task_definition["containerDefinitions"][0]["logConfiguration"]["options"]
    assert options["awslogs-create-group"] == "false"
    assert options["awslogs-group"] == "/ecs/prefect-elt-dev"


def test_the_worker_role_exports_the_kind_the_wiring_playbook_uses():
    """The wiring playbook mirrors the create path's export: keep the two the same expression."""
    create = (REPO / "roles/ecs_fargate_agent/tasks/create.yml").read_text()
    assert re.search(r'ecs_fargate_agent__secret_kind: "\{\{ ecs_fargate_agent__secret_kind_wanted \}\}"', create)


def test_the_worker_may_pass_exactly_the_roles_flow_runs_use():
    """Issue #17: the flow-run task roles are prefect_flow's (per-flow ones under a path, the pool's default one by
    name), the execution role the worker's; the worker's iam:PassRole names exactly those, wired in roles.yml."""
    facts = wiring_facts(CASES[0][1])
    variables = facts["wiring_job_variables"]
    stack_name = facts["wiring_stack_name"]
    account_roles = "arn:aws:iam::210987654321:role"
    # The pool's default task role is the one prefect_flow makes, under the name the worker role used to give it.
    assert variables["task_role_arn"] == f"{account_roles}/{stack_name}-flow-run-task"
    assert variables["execution_role_arn"] == f"{account_roles}/{stack_name}-execution"
    used = [variables["execution_role_arn"], variables["task_role_arn"], *facts["wiring_flow_task_roles"]]
    assert len(facts["wiring_flow_task_roles"]) >= 2

    policy = json.loads(facts["wiring_worker_policy"]) if isinstance(facts["wiring_worker_policy"], str) else facts["wiring_worker_policy"]
    [statement] = [st for st in policy["Statement"] if st["Action"] == "iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    passed = statement["Resource"]
    # every role a flow run uses is passable, and every grant is one of them or the per-flow path
    assert all(any(fnmatch.fnmatchcase(arn, grant) for grant in passed) for arn in used), (used, passed)
    flow_path = f"{account_roles}/{stack_name}/flows/*"
    assert sorted(passed) == sorted([variables["execution_role_arn"], variables["task_role_arn"], flow_path])
    assert all(arn.startswith(flow_path[:-1]) for arn in facts["wiring_flow_task_roles"])
