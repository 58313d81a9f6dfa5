"""The stack lock (issue 15, part 5): one run at a time per stack, a clear message, stale locks broken safely.

The logic runs against an in-memory SSM fake whose PutParameter(Overwrite=False) is atomic, as AWS's is
(races between threads are real races), with a fake clock; the module runs against moto's in-process
SSM (mock_aws), whose error codes the fake copies (test_fake_answers_like_ssm proves it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from botocore.exceptions import ClientError
from moto import mock_aws

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.dataops.prefect_fargate.plugins.module_utils import stack_lock
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_lock import LockHeld, StackLock
from ansible_collections.dataops.prefect_fargate.plugins.modules import stack_lock as stack_lock_module

from ..conftest import ModuleExit, ModuleFail

NAME = "/prefect-elt-dev/stack-lock"


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeSsm:
    """put/get/delete_parameter with SSM's semantics: create-if-absent is atomic; versions count puts."""

    def __init__(self):
        self.params: dict[str, dict] = {}
        self.mutex = threading.Lock()
        self.calls: list[str] = []

    def put_parameter(self, Name, Value, Type, Overwrite=False, Description=""):  # noqa: N803 (boto3's names)
        with self.mutex:
            self.calls.append("put")
            if Name in self.params and not Overwrite:
                raise _error("ParameterAlreadyExists", "PutParameter")
            version = self.params.get(Name, {}).get("Version", 0) + 1
            self.params[Name] = {"Name": Name, "Value": Value, "Type": Type, "Version": version}
            return {"Version": version}

    def get_parameter(self, Name):  # noqa: N803
        with self.mutex:
            self.calls.append("get")
            if Name not in self.params:
                raise _error("ParameterNotFound", "GetParameter")
            return {"Parameter": dict(self.params[Name])}

    def delete_parameter(self, Name):  # noqa: N803
        with self.mutex:
            self.calls.append("delete")
            if self.params.pop(Name, None) is None:
                raise _error("ParameterNotFound", "DeleteParameter")
            return {}


class Clock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def record(run_id: str, now: float, ttl: int = 3600, host: str = "ci-runner-1", pid: int | None = 4242) -> dict:
    return {"id": run_id, "owner": f"ci@{host}" + (f" pid {pid}" if pid else ""), "host": host, "pid": pid,
            "pid_start": "777", "playbook": "site.yml", "started": now, "expires": now + ttl if ttl else None}


def make_lock(ssm=None, clock=None, alive=lambda pid, start: True, host="ci-runner-2"):
    clock = clock or Clock()
    return StackLock(ssm or FakeSsm(), NAME, now=clock.now, sleep=clock.sleep, alive=alive, hostname=lambda: host), clock


def holder_of(ssm: FakeSsm) -> str:
    return json.loads(ssm.params[NAME]["Value"])["id"]


# ------------------------------------------------------------------------------------------ take and release
def test_free_lock_is_taken_and_released_by_its_holder_only():
    lock, clock = make_lock()
    assert lock.acquire(record("a", clock.now())) == {"broken": [], "waited": 0}
    assert holder_of(lock.client) == "a"
    assert lock.release("b") == "held by another run"
    assert NAME in lock.client.params
    assert lock.release("a") == "released"
    assert NAME not in lock.client.params
    assert lock.release("a") == "absent"


def test_an_uncontended_run_takes_and_releases_in_three_requests():
    """Every run of site.yml takes and releases the lock: one create, then one read and one delete."""
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now()))
    lock.release("a")
    assert lock.client.calls == ["put", "get", "delete"]


def test_held_lock_fails_at_once_with_a_message_naming_holder_and_the_way_out():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now()))
    with pytest.raises(LockHeld) as info:
        lock.acquire(record("b", clock.now()))
    message = str(info.value)
    assert NAME in message and "ci@ci-runner-1 pid 4242" in message and "site.yml" in message
    assert "2027-01-15T08:00:00Z" in message  # since (1_800_000_000 UTC)
    assert "stack_lock_break=true" in message and "stack_lock_wait_seconds" in message
    assert holder_of(lock.client) == "a"  # the refused run wrote nothing over it


def test_waiting_run_gets_the_lock_once_it_is_released():
    ssm = FakeSsm()
    lock, clock = make_lock(ssm)
    lock.acquire(record("a", clock.now()))
    polls = []

    def sleep(seconds):  # the holder finishes while the second run waits
        polls.append(seconds)
        clock.t += seconds
        if len(polls) == 3:
            StackLock(ssm, NAME).release("a")

    waiting = StackLock(ssm, NAME, now=clock.now, sleep=sleep, alive=lambda pid, start: True, hostname=lambda: "x")
    result = waiting.acquire(record("b", clock.now()), wait_seconds=60, poll_seconds=5)
    assert holder_of(ssm) == "b" and result["broken"] == [] and result["waited"] == 15 and polls == [5, 5, 5]


def test_waiting_gives_up_after_wait_seconds():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now()))
    with pytest.raises(LockHeld) as info:
        lock.acquire(record("b", clock.now()), wait_seconds=12, poll_seconds=5)
    assert clock.t - 1_800_000_000 == 12 and "after waiting 12 s" in str(info.value)


def test_a_retried_acquire_of_the_same_run_keeps_its_lock():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now()))
    assert lock.acquire(record("a", clock.now()))["broken"] == []


# ------------------------------------------------------------------------------------------ stale locks
def test_expired_lock_is_taken_over_with_the_reason():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now(), ttl=600))
    clock.t += 601
    result = lock.acquire(record("b", clock.now()))
    assert holder_of(lock.client) == "b"
    assert [b["holder"]["id"] for b in result["broken"]] == ["a"] and "expired" in result["broken"][0]["reason"]


def test_lock_of_a_dead_run_on_this_host_is_taken_over_but_not_a_live_one_or_another_hosts():
    def alive(pid, start):
        return pid != 4242

    lock, clock = make_lock(alive=alive, host="ci-runner-1")
    lock.acquire(record("a", clock.now(), pid=9999))  # live process on this host: held
    with pytest.raises(LockHeld):
        lock.acquire(record("b", clock.now()))
    lock.release("a")
    lock.acquire(record("a", clock.now(), host="laptop", pid=4242))  # same pid, another host: cannot judge, held
    with pytest.raises(LockHeld):
        lock.acquire(record("b", clock.now()))
    lock.release("a")
    lock.acquire(record("a", clock.now(), pid=4242))  # killed run on this host: taken over
    result = lock.acquire(record("b", clock.now()))
    assert holder_of(lock.client) == "b" and "pid 4242 on this host) is gone" in result["broken"][0]["reason"]


def test_break_lock_takes_over_a_live_lock_once_only():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now()))
    result = lock.acquire(record("b", clock.now()), break_lock=True)
    assert holder_of(lock.client) == "b" and result["broken"][0]["reason"] == "stack_lock_break=true"


def test_never_expiring_lock_without_pid_stays_held():
    lock, clock = make_lock()
    lock.acquire(record("a", clock.now(), ttl=0, pid=None))
    clock.t += 10 * 365 * 86400
    with pytest.raises(LockHeld) as info:
        lock.acquire(record("b", clock.now()))
    assert "expires never" in str(info.value)


def test_takeover_deletes_only_the_lock_it_judged_stale():
    """Run b judged a's lock stale, but c took it over first: b must not delete c's lock."""
    ssm = FakeSsm()
    lock, clock = make_lock(ssm)
    lock.acquire(record("a", clock.now(), ttl=60))
    clock.t += 61
    StackLock(ssm, NAME).release("a")
    StackLock(ssm, NAME).acquire(record("c", clock.now()))
    lock._delete_if_held_by("a", 1)  # pylint: disable=protected-access  (b's late delete, same version number)
    assert holder_of(ssm) == "c"


def test_two_runs_breaking_the_same_stale_lock_end_with_one_holder():
    """b and c both judged the lock stale; b deleted it and took it, then c's late delete and create
    replaced b's lock (the window between a re-read and a delete). b's settle read sees c's record:
    b goes back to competing, finds a live lock and stops; only c goes on."""
    class LateBreaker(FakeSsm):
        def put_parameter(self, Name, Value, Type, Overwrite=False, Description=""):  # noqa: N803
            answer = super().put_parameter(Name, Value, Type, Overwrite, Description)
            if json.loads(Value)["id"] == "b":  # c's delete and create land right after b's create
                super().delete_parameter(Name=Name)
                super().put_parameter(Name, json.dumps(record("c", 1_800_000_005.0)), Type)
            return answer

    ssm = LateBreaker()
    clock = Clock()
    FakeSsm.put_parameter(ssm, Name=NAME, Value=json.dumps(record("stale", clock.now(), ttl=1)), Type="String")
    clock.t += 5
    lock, _ = make_lock(ssm, clock)
    with pytest.raises(LockHeld) as info:
        lock.acquire(record("b", clock.now()), settle_seconds=2)
    assert info.value.holder["id"] == "c" and holder_of(ssm) == "c"


def test_many_runs_at_once_one_wins():
    ssm = FakeSsm()
    outcomes = []
    start = threading.Barrier(8)

    def contender(run_id):
        start.wait(timeout=5)
        try:
            StackLock(ssm, NAME, alive=lambda pid, start: True).acquire(record(run_id, 1_800_000_000.0))
            outcomes.append(run_id)
        except LockHeld:
            outcomes.append(None)

    threads = [threading.Thread(target=contender, args=(f"run{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [o for o in outcomes if o] == [holder_of(ssm)] and len(outcomes) == 8


def test_unreadable_lock_value_is_reported_not_crashed_on():
    ssm = FakeSsm()
    ssm.put_parameter(Name=NAME, Value="garbage", Type="String")
    lock, clock = make_lock(ssm)
    with pytest.raises(LockHeld) as info:
        lock.acquire(record("b", clock.now()))
    assert "unreadable lock value 'garbage'" in str(info.value)


# ------------------------------------------------------------------------------------------ who holds it
def test_holder_record_names_this_run():
    rec = stack_lock.holder_record(600, "teardown.yml", 100.0, "rid")
    assert rec["id"] == "rid" and rec["expires"] == 700.0 and rec["playbook"] == "teardown.yml"
    assert rec["host"] in rec["owner"]
    assert stack_lock.holder_record(0, "site.yml", 100.0)["expires"] is None


def test_the_message_names_the_aws_principal_that_holds_the_lock():
    arn = "arn:aws:sts::123456789012:assumed-role/ci-deployer/run-42"
    rec = stack_lock.holder_record(600, "site.yml", 100.0, "rid", principal=arn)
    assert rec["principal"] == arn
    assert f"{rec['owner']} as {arn} (site.yml)" in stack_lock.describe_held(rec, NAME)
    assert " as " not in stack_lock.describe_held(stack_lock.holder_record(600, "site.yml", 100.0), NAME).split("(")[0]


def test_playbook_process_is_the_outermost_ansible_playbook_ancestor(tmp_path):
    # this test process is no ansible-playbook: nothing found
    assert stack_lock.playbook_process() is None
    assert stack_lock.process_alive(os.getpid(), stack_lock.process_start(os.getpid()))
    assert not stack_lock.process_alive(os.getpid(), "1")  # same pid, another start time: a reused pid
    assert not stack_lock.process_alive(2 ** 22 + 1, "")


def test_playbook_process_of_a_forked_module_is_found_through_its_client(tmp_path, monkeypatch):
    """Under the local_forkserver connection the module's parent is the server; the worker's pid leads on."""
    fake = tmp_path / "ansible-playbook"
    fake.write_text("import time\ntime.sleep(60)\n")
    run = subprocess.Popen([sys.executable, str(fake)])
    try:
        deadline = time.monotonic() + 10
        while "ansible-playbook" not in stack_lock._cmdline(run.pid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        monkeypatch.setenv("DATAOPS_FORKSERVER_CLIENT_PID", str(run.pid))
        assert stack_lock.playbook_process() == run.pid
        monkeypatch.setenv("DATAOPS_FORKSERVER_CLIENT_PID", "not-a-pid")
        assert stack_lock.playbook_process() is None
    finally:
        run.kill()
        run.wait()


# ------------------------------------------------------------------------------------------ against moto's SSM
@mock_aws
def test_fake_answers_like_ssm():
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=NAME, Value="x", Type="String", Overwrite=False)
    with pytest.raises(ClientError) as exists:
        ssm.put_parameter(Name=NAME, Value="y", Type="String", Overwrite=False)
    ssm.delete_parameter(Name=NAME)
    with pytest.raises(ClientError) as missing:
        ssm.get_parameter(Name=NAME)
    ssm.put_parameter(Name=NAME, Value="z", Type="String", Overwrite=False)
    assert (exists.value.response["Error"]["Code"], missing.value.response["Error"]["Code"]) == \
        ("ParameterAlreadyExists", "ParameterNotFound")
    assert ssm.get_parameter(Name=NAME)["Parameter"]["Version"] == 1  # a re-created parameter starts again at 1


def run_module(args, check_mode=False, expect_fail=False):
    clients = {name: boto3.client(name, region_name="us-east-1") for name in ("ssm", "sts")}

    def fake_client(self, name, retry_decorator=None, **kwargs):
        assert name in clients and retry_decorator is not None
        return RetryingBotoClientWrapper(clients[name], retry_decorator)

    with patch_module_args({**args, "_ansible_check_mode": check_mode}), pytest.MonkeyPatch.context() as mp:
        mp.setattr(AnsibleAWSModule, "client", fake_client)
        with pytest.raises(ModuleFail if expect_fail else ModuleExit) as info:
            stack_lock_module.main()
    return info.value.result


@mock_aws
def test_module_takes_refuses_and_releases(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    first = run_module({"name": NAME, "playbook": "site.yml"})
    assert first["status"] == "acquired" and first["changed"] is False and first["run_id"]
    # the account of the credentials, which the playbooks hand to the roles as common_account
    assert first["account"] == {"id": "123456789012", "partition": "aws"}
    second = run_module({"name": NAME, "playbook": "site.yml"}, expect_fail=True)
    assert "Another run holds the stack lock /prefect-elt-dev/stack-lock" in second["msg"]
    assert second["holder"]["id"] == first["run_id"]
    assert second["holder"]["principal"].startswith("arn:aws:sts::123456789012:") and " as arn:aws:" in second["msg"]
    check = run_module({"name": NAME}, check_mode=True)
    assert check["status"] == "held" and check["run_id"] == "" and check["account"]["id"] == "123456789012"
    assert run_module({"name": NAME, "state": "absent", "run_id": "someone-else"})["status"] == "held by another run"
    assert run_module({"name": NAME, "state": "absent", "run_id": first["run_id"]})["status"] == "released"
    assert run_module({"name": NAME}, check_mode=True)["status"] == "free"
    broken = run_module({"name": NAME, "playbook": "teardown.yml"})
    taken = run_module({"name": NAME, "break_lock": True})
    assert taken["broken"][0]["holder"]["id"] == broken["run_id"] and taken["status"] == "acquired"
