"""Two runs at once (issue 15, part 5): the stack lock keeps them apart.

On a fresh account two site.yml runs start at the same moment, both willing to wait: exactly one takes
the lock and builds the stack, the other waits and then runs as a no-op (changed=0), which is the "one
more run" proving convergence. A third run started while the lock is held, not willing to wait, fails at
once with the message naming the holder and how to break a stale lock, having written nothing. The
account then holds one stack (tests/helpers/duplicates.py) and no lock. The lock logic itself is unit
tested (tests/unit/plugins/module_utils/test_stack_lock.py).
"""

from __future__ import annotations

import threading
import time

import boto3
import pytest

from tests.helpers import duplicates
from tests.helpers.stack import moto_url, prefect_api, reset_account, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOCK = "/prefect-elt-local/stack-lock"


def ssm():
    return boto3.client("ssm", endpoint_url=moto_url(), region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def lock_task(run) -> dict:
    return next(result for name, result in run.task_results() if name == "Take the stack lock")


def test_two_site_runs_at_once_build_one_stack(local_stack, monkeypatch):
    for variable, value in local_stack.local_stack_script.aws_env().items():
        monkeypatch.setenv(variable, value)  # for tests.helpers.duplicates
    reset_account()
    runs: dict[str, object] = {}
    seconds: dict[str, float] = {}

    def site(label: str, extra_vars: dict) -> None:
        started = time.monotonic()
        runs[label] = run_playbook("site.yml", extra_vars=extra_vars)
        seconds[label] = time.monotonic() - started

    started = time.monotonic()
    both = [threading.Thread(target=site, args=(label, {"stack_lock_wait_seconds": 900})) for label in ("a", "b")]
    for thread in both:
        thread.start()
    while True:  # once one of them holds the lock, a third run that does not wait
        try:
            ssm().get_parameter(Name=LOCK)
            break
        except ssm().exceptions.ParameterNotFound:
            assert time.monotonic() - started < 300, "neither run took the stack lock"
            time.sleep(0.5)
    site("c", {})
    for thread in both:
        thread.join(1200)
    total = time.monotonic() - started

    third = runs["c"]
    assert third.rc != 0
    message = " ".join(third.failed_messages)
    assert f"Another run holds the stack lock {LOCK}" in message and "stack_lock_break=true" in message, message
    assert third.changed_tasks == [] and [name for name, _ in third.task_results()][-1] == "Take the stack lock"

    first, second = sorted((runs["a"], runs["b"]), key=lambda r: lock_task(r)["waited"])
    assert first.rc == 0 and second.rc == 0, (first.failed_messages, second.failed_messages)
    assert lock_task(first)["waited"] < lock_task(second)["waited"]
    assert first.stats()["changed"] > 0
    assert second.stats()["changed"] == 0, f"the waiting run found work left: {second.changed_tasks}"
    assert lock_task(second)["broken"] == []

    deployments = [d for d in prefect_api("POST", "/deployments/filter", {"limit": 200})
                   if any(t.startswith("stack:") for t in d.get("tags", []))]
    assert duplicates.find_duplicates(deployments) == []
    assert deployments
    assert ssm().describe_parameters()["Parameters"] == []  # released at the end
    print(f"\ntwo site.yml at once: {total:.0f} s in all (a {seconds['a']:.0f} s, b {seconds['b']:.0f} s, "
          f"refused third run {seconds['c']:.0f} s); census {duplicates.census()}")
