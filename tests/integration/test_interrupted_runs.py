"""Interrupted runs converge (issue 15, part 2).

ansible-playbook is interrupted (SIGINT as Ctrl-C does, SIGKILL as a lost CI runner does) at points
spread across site.yml, then teardown.yml. The kill points are chained in ONE sequence of runs: run 1
is killed at point 1, run 2 resumes and is killed at point 2, ..., then a full run finishes the work
and one more run must be changed=0; the account then holds exactly one stack (tests/helpers/duplicates.py).
Same for teardown, which must leave nothing (tests/helpers/leftovers.py). Each resumed site run may
report changed only in the step of site.yml it was interrupted in and the steps after it (SITE_STAGES).

The kill is deterministic: tests/plugins/callback/kill_switch.py, enabled only here, signals the
playbook's own process group when a named task starts, after its k-th loop item, a fixed delay
after the task starts (a module in flight: the health wait), or while a named command of the task runs
(the image push: `podman push` seen among the run's processes).
Total cost about one cold converge plus the no-op prefixes of the resumed runs (the figures are printed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from tests.helpers import duplicates, leftovers
from tests.helpers.stack import REPO, VENV_BIN, prefect_api, reset_account, run_playbook, state_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# site.yml's steps in order: the vpc role's route tables and S3 endpoint are collected after the load balancer
# (vpc_finish_later, tasks_from: finish), so they are a later step of their own.
SITE_STAGES = ["vpc", "s3_buckets", "ecr_image", "alb", "vpc finish", "ecs_fargate_agent", "prefect_flow"]
VPC_FINISH_FILES = {"finish.yml", "wait_route_tables.yml"}
STACK = "prefect-elt-local"


@dataclasses.dataclass(frozen=True)
class KillPoint:
    task: str
    signal: str = "KILL"
    item: int = 0  # 0: when the task starts; k: after its k-th loop item
    delay: float = 0.0  # seconds after the trigger: kills a module in flight
    role: str = ""
    occurrence: int = 1  # the n-th task of that name (an include and the task it includes may share one)
    process: str = ""  # trigger: this command of the task running (e.g. "podman push"), then `delay`


    def label(self) -> str:
        where = f"after item {self.item}" if self.item else "at start"
        where = f"while '{self.process}' runs" if self.process else where
        where += f" +{self.delay:g}s" if self.delay else ""
        return f"{self.role}: {self.task} ({where}, SIG{self.signal})"


SITE_POINTS = [
    KillPoint("Create the subnets", "KILL", item=2, role="vpc"),
    KillPoint("Create the NAT gateways", "INT", role="vpc"),  # the NAT's elastic IP is allocated, the NAT not yet
    KillPoint("Create the private route tables", "KILL", item=1, role="vpc"),
    KillPoint("Create the buckets (SSE, versioning, public access block, TLS-only policy)", "INT", item=1, role="s3_buckets"),
    # The push in flight. A fixed delay missed it: a build from the layer cache plus the push took under 1 s in CI.
    KillPoint("Build and push with podman", "KILL", process="podman push", role="ecr_image"),
    KillPoint("Ensure the load balancer and its listeners", "KILL", role="alb"),  # security group and target group made
    # The worker's two roles (execution, worker): after the first, the second not yet made.
    KillPoint("Ensure the task roles", "INT", item=1, role="ecs_fargate_agent"),
    KillPoint("Tag the worker task definition", "KILL", role="ecs_fargate_agent"),  # a revision registered, not tagged
    # Right after CreateService. A delay into "Ensure the worker service" cannot aim at the call in flight:
    # ecs_service finished within 1.2 s here and the signal landed in the next role.
    KillPoint("Export the worker facts", "KILL", role="ecs_fargate_agent"),
    KillPoint("Upload the flow code files missing under their content-hash prefix", "KILL", item=2, role="prefect_flow"),
    # In flight: a wait on a healthy worker returns in about 0.4 s with the forked module interpreter.
    KillPoint("Wait until the worker service is healthy", "INT", delay=0.2, role="prefect_flow"),
    KillPoint("Ensure the deployments of the catalogue", "KILL", delay=0.5, role="prefect_flow"),  # one module call, ~1 s
]

TEARDOWN_POINTS = [
    KillPoint("Wait until the worker service has no running or pending task", "INT", delay=1.0, role="ecs_fargate_agent"),
    KillPoint("Delete the ECS work pool", "KILL", role="prefect_flow"),
    KillPoint("Delete the IAM roles and their policies", "KILL", item=1, role="ecs_fargate_agent"),
    KillPoint("Delete the target group", "INT", role="alb"),
    KillPoint("Remove the subnets", "KILL", item=1, role="vpc"),
]


@dataclasses.dataclass
class Run:
    playbook: str
    point: KillPoint | None
    rc: int
    seconds: float
    entries: list[dict]
    output: Path
    second_sigint: bool = False

    @property
    def kill(self) -> dict | None:
        return next((e for e in self.entries if e["event"] == "kill"), None)

    @property
    def changed(self) -> list[tuple[str, str]]:
        """(step of site.yml, task) of each changed task: the role, or "vpc finish" for that entry point's tasks."""
        return [("vpc finish" if e["role"] == "vpc" and e.get("file") in VPC_FINISH_FILES else e["role"], e["task"])
                for e in self.entries if e["event"] == "result" and e["changed"] and not e["item"]]

    @property
    def changed_in_aws_or_prefect(self) -> list[tuple[str, str]]:
        """Changed tasks but the local summary file, which a run stopped before the summary play never wrote."""
        return [c for c in self.changed if c != ("", "Save the summary as JSON")]

    @property
    def stats(self) -> dict:
        return next((e["stats"]["localhost"] for e in self.entries if e["event"] == "stats"), {})


def run(playbook: str, point: KillPoint | None, logdir: Path, index: int, extra_vars: dict) -> Run:
    log = logdir / f"{index:02d}-{Path(playbook).stem}.jsonl"
    output = log.with_suffix(".out")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "tests" / "plugins" / "callback"),
           # ansible.cfg's callbacks too: the run is the one a user gets, plus the kill switch
           "ANSIBLE_CALLBACKS_ENABLED": "kill_switch,dataops.prefect_fargate.warm_workers", "KILL_SWITCH_LOG": str(log),
           # The async job files a killed run leaves (security groups, route tables) stay in the test's folder, not
           # in ~/.ansible_async; a resumed run never reads them (it adopts what the job made).
           "ANSIBLE_ASYNC_DIR": str(logdir / "ansible_async"),
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    if point:
        env.update(KILL_SWITCH_TASK=point.task, KILL_SWITCH_SIGNAL=point.signal, KILL_SWITCH_ITEM=str(point.item),
                   KILL_SWITCH_DELAY=str(point.delay), KILL_SWITCH_OCCURRENCE=str(point.occurrence),
                   KILL_SWITCH_PROCESS=point.process)
    cmd = [str(VENV_BIN / "ansible-playbook"), playbook, "-i", "inventories/local", "-e", json.dumps(extra_vars)]
    started = time.monotonic()
    with output.open("w") as out:
        # Own session: the callback signals this process group only (ansible-playbook, its workers, modules, builds).
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        again = wait_or_interrupt_again(proc, log, started)
    seconds = time.monotonic() - started
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Run(playbook, point, proc.returncode, seconds, entries, output, again)


def wait_or_interrupt_again(proc: subprocess.Popen, log: Path, started: float, grace: float = 30) -> bool:
    """Wait for the run. A run still alive `grace` seconds after its SIGINT gets a second one, as a person
    at the terminal does (ansible-playbook can hang on one Ctrl-C while it handles a loop's results).
    Returns whether that was needed."""
    killed_at = None
    again = False
    while proc.poll() is None:
        if time.monotonic() - started > 900:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{log.name}: no end after 900 s")
        if killed_at is None and log.exists() and '"event": "kill"' in log.read_text():
            killed_at = time.monotonic()
        if killed_at and not again and time.monotonic() - killed_at > grace:
            os.killpg(proc.pid, signal.SIGINT)
            again = True
        time.sleep(0.5)
    return again


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stack_deployments() -> list[dict]:
    """The deployments carrying a stack tag (prefect_flow_stack_tag)."""
    return [d for d in prefect_api("POST", "/deployments/filter", {"limit": 200})
            if any(t.startswith("stack:") for t in d.get("tags", []))]


def report(title: str, runs: list[Run]) -> None:
    print(f"\n{title}")
    for r in runs:
        what = r.point.label() if r.point else "full run"
        again = "  (needed a second Ctrl-C)" if r.second_sigint else ""
        print(f"  {r.seconds:6.1f} s  rc={r.rc:<4} changed={r.stats.get('changed', '-')!s:<4} {what}{again}")
    print(f"  {sum(r.seconds for r in runs):6.1f} s  total")


def forget_pushed_image() -> None:
    """Make the image push real: drop the flow repository from the loopback registry (the stand-in for
    ECR's registry side keeps its data across emulator resets; the layer cache of the builder stays)."""
    repositories = state_dir() / "registry" / "data" / "docker" / "registry" / "v2" / "repositories"
    shutil.rmtree(repositories / STACK, ignore_errors=True)


def test_interrupted_site_and_teardown_runs_converge(local_stack, tmp_path, monkeypatch):
    for variable, value in local_stack.local_stack_script.aws_env().items():
        monkeypatch.setenv(variable, value)  # for tests.helpers.leftovers and duplicates
    reset_account()
    forget_pushed_image()
    site_runs: list[Run] = []
    for index, point in enumerate(SITE_POINTS):
        r = run("site.yml", point, tmp_path, index, {})
        site_runs.append(r)
        # the signal landed while that task ran (not after it, which a too long delay would do)
        assert r.kill and r.kill["running"] == point.task, \
            f"run {index} was not interrupted at {point.label()} (rc={r.rc}, kill {r.kill}):\n{tail(r.output)}"
        assert r.rc != 0
        if index > 0:
            # What the previous run finished is not touched again: changed only from the interrupted role on.
            resumed_from = SITE_STAGES.index(SITE_POINTS[index - 1].role)
            early = [(step, task) for step, task in r.changed_in_aws_or_prefect if step not in SITE_STAGES[resumed_from:]]
            assert early == [], f"run {index} (resuming {SITE_POINTS[index - 1].label()}) changed finished work: {early}"
    final = run("site.yml", None, tmp_path, len(SITE_POINTS), {})
    site_runs.append(final)
    assert final.rc == 0, tail(final.output)
    resumed_from = SITE_STAGES.index(SITE_POINTS[-1].role)
    assert [c for c in final.changed_in_aws_or_prefect if c[0] not in SITE_STAGES[resumed_from:]] == []
    again = run("site.yml", None, tmp_path, len(SITE_POINTS) + 1, {})
    site_runs.append(again)
    report("site.yml interrupted and resumed:", site_runs)
    assert again.rc == 0, tail(again.output)
    assert again.stats.get("changed") == 0, f"not converged, changed: {again.changed}"
    print(f"  census after converge: {duplicates.census()}")
    assert duplicates.find_duplicates(stack_deployments()) == []
    assert len(stack_deployments()) >= 1

    teardown_runs: list[Run] = []
    extra = {"teardown_delete_data": True}
    for index, point in enumerate(TEARDOWN_POINTS, start=100):
        r = run("teardown.yml", point, tmp_path, index, extra)
        teardown_runs.append(r)
        assert r.kill and r.kill["running"] == point.task, \
            f"teardown run {index} was not interrupted at {point.label()} (rc={r.rc}, kill {r.kill}):\n{tail(r.output)}"
        assert r.rc != 0
    final = run("teardown.yml", None, tmp_path, 200, extra)
    teardown_runs.append(final)
    assert final.rc == 0, tail(final.output)
    again = run("teardown.yml", None, tmp_path, 201, extra)
    teardown_runs.append(again)
    report("teardown.yml interrupted and resumed:", teardown_runs)
    assert again.rc == 0, tail(again.output)
    assert again.stats.get("changed") == 0, f"teardown not converged, changed: {again.changed}"
    assert leftovers.find_leftovers() == []
    assert stack_deployments() == []
    print(f"  site {len(SITE_POINTS)} kill points converged, teardown {len(TEARDOWN_POINTS)}; "
          f"{sum(r.seconds for r in site_runs + teardown_runs):.0f} s in all")


def test_gateway_left_detached_by_an_interrupted_run_is_adopted_then_removed(local_stack, monkeypatch):
    """ec2_vpc_igw creates the gateway (tagged), waits, then attaches it: a run killed in between leaves a
    detached gateway of the stack. The next site.yml adopts it instead of making a second one, and
    teardown.yml removes one it finds detached."""
    for variable, value in local_stack.local_stack_script.aws_env().items():
        monkeypatch.setenv(variable, value)
    reset_account()
    ec2 = boto3.client("ec2")
    tags = [{"Key": "Project", "Value": "prefect-elt"}, {"Key": "Environment", "Value": "local"},
            {"Key": "ManagedBy", "Value": "ansible"}, {"Key": "Name", "Value": f"{STACK}-igw"}]

    def plant() -> str:
        return ec2.create_internet_gateway(TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": tags}])[
            "InternetGateway"]["InternetGatewayId"]

    planted = plant()
    site = run_playbook("site.yml", tags="vpc")
    assert site.rc == 0, site.failed_messages
    gateways = ec2.describe_internet_gateways()["InternetGateways"]
    assert [g["InternetGatewayId"] for g in gateways] == [planted], gateways
    assert [a["VpcId"] for a in gateways[0]["Attachments"]] == [site.facts("vpc__vpc_id")]

    plant()
    teardown = run_playbook("teardown.yml", tags="vpc")
    assert teardown.rc == 0, teardown.failed_messages
    assert ec2.describe_internet_gateways()["InternetGateways"] == []
    assert leftovers.find_leftovers() == []
