"""site.yml / teardown.yml as a user runs them: bad input stops in preflight, teardown is guarded and
safe on an empty account. (The full converge/idempotence/teardown cycle is molecule/default.)"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.stack import REPO, VENV_BIN, MotoRecorder, reset_moto, run_playbook

pytestmark = pytest.mark.integration

BAD_INPUTS = [
    ({"vpc_cidr": "banana"}, "vpc_cidr"),
    ({"vpc_layout": "public", "vpc_nat_gateways": "single"}, "vpc_nat_gateways"),
    ({"vpc_azs": ["us-east-1a"]}, "vpc_azs"),
    ({"s3_buckets_results_name": "Bad_Bucket"}, "s3_buckets_results_name"),
    ({"s3_buckets_encryption": "rot13"}, "s3_buckets_encryption"),
    ({"ecr_image_builder": "kaniko"}, "ecr_image_builder"),
    ({"alb_listener_https": True}, "alb_certificate_arn"),
    ({"ecs_fargate_agent_desired_count": 0}, "ecs_fargate_agent_desired_count"),
    ({"ecs_fargate_agent_cpu": 256, "ecs_fargate_agent_memory": 4096}, "ecs_fargate_agent_memory"),
    ({"prefect_api_url": ""}, "prefect_api_url"),
    ({"stack_env": "staging"}, "stack_env"),
]


@pytest.mark.parametrize(("extra_vars", "variable"), BAD_INPUTS, ids=[v for _, v in BAD_INPUTS])
def test_bad_input_fails_in_preflight_before_any_aws_call(local_stack, extra_vars, variable):
    recorder = MotoRecorder().start()
    run = run_playbook("site.yml", extra_vars=extra_vars)
    calls = recorder.calls()
    assert run.rc != 0
    messages = " ".join(run.failed_messages)
    assert variable in messages, messages or run.stdout[-3000:]
    assert calls == [], f"preflight must not call AWS, saw {[(c.method, c.action) for c in calls]}"


def test_teardown_of_a_real_environment_needs_confirmation():
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "teardown.yml", "-i", "inventories/prod"],
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode != 0
    assert "not confirmed" in proc.stdout and "teardown_confirm=prefect-elt-prod" in proc.stdout
    # Nothing ran after the refusal: no role's delete path was reached.
    assert "TASK [" not in proc.stdout.split("Refuse without confirmation", 1)[1]


@pytest.mark.slow
def test_teardown_on_an_empty_account_changes_nothing(local_stack):
    reset_moto()
    recorder = MotoRecorder().start()
    run = run_playbook("teardown.yml")
    mutating = recorder.mutating_calls()
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    assert run.changed_tasks == []
    assert mutating == [], [(c.method, c.action, c.url) for c in mutating]


@pytest.mark.slow
def test_site_check_mode_on_an_empty_account_writes_nothing(local_stack):
    reset_moto()
    recorder = MotoRecorder().start()
    run = run_playbook("site.yml", check=True, diff=True)
    mutating = recorder.mutating_calls()
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    assert run.changed_tasks, "check mode should predict changes on an empty account"
    assert mutating == [], [(c.method, c.action, c.url) for c in mutating]
