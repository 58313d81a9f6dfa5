"""alb role against the local stack (moto): the self-hosted Prefect server turned off on a stack that had it.

Converged with the server's inputs (alb_server_enabled: the server target group, the listener's default action to
it, the rule that keeps the worker's /health on the worker target group), then without them: check mode reports the
change and writes nothing; the run removes the server target group and the rule and points the listener back at the
worker target group; a second run changes and writes nothing; the teardown leaves nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = "tests/integration/playbooks/alb_server.yml"
NAME = "it-alb-srv"
WORKER_TG, SERVER_TG = f"{NAME}-tg", f"{NAME}-srv-tg"


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def run(stack, extra=None, check=False):
    recorder = stack.MotoRecorder().start()
    result = stack.run_playbook(PLAYBOOK, extra_vars=extra, check=check)
    return SimpleNamespace(run=result, writes=[f"{c.action} {c.url}" for c in recorder.calls() if c.deployer_write])


def target_groups(stack) -> dict[str, str]:
    groups = client(stack, "elbv2").describe_target_groups()["TargetGroups"]
    return {g["TargetGroupName"]: g["TargetGroupArn"] for g in groups}


def listener_state(stack):
    """The listener's default forward targets and its non-default rules as (path patterns, target group ARN)."""
    elb = client(stack, "elbv2")
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    (listener,) = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    rules = [r for r in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    return ([a["TargetGroupArn"] for a in listener["DefaultActions"]],
            [(r["Conditions"][0]["Values"], r["Actions"][0]["TargetGroupArn"]) for r in rules])


def egress_ports(stack) -> set[int]:
    (group,) = client(stack, "ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{NAME}-alb"]}])["SecurityGroups"]
    return {p["FromPort"] for p in group["IpPermissionsEgress"]}


@pytest.fixture(scope="module")
def runs(local_stack):
    local_stack.reset_moto()
    r = SimpleNamespace()
    r.on = run(local_stack)
    assert r.on.run.rc == 0, r.on.run.failed_messages or r.on.run.stdout[-3000:]
    r.on_groups, r.on_listener, r.on_egress = target_groups(local_stack), listener_state(local_stack), egress_ports(local_stack)
    r.off_check = run(local_stack, {"it_server": False}, check=True)
    r.after_check_groups, r.after_check_listener = target_groups(local_stack), listener_state(local_stack)
    r.off = run(local_stack, {"it_server": False})
    assert r.off.run.rc == 0, r.off.run.failed_messages or r.off.run.stdout[-3000:]
    r.off_groups, r.off_listener, r.off_egress = target_groups(local_stack), listener_state(local_stack), egress_ports(local_stack)
    r.off_again = run(local_stack, {"it_server": False})
    r.off_check_again = run(local_stack, {"it_server": False}, check=True)
    return r


def test_with_the_server_the_listener_forwards_to_it_and_keeps_the_worker_health_route(runs):
    assert set(runs.on_groups) == {WORKER_TG, SERVER_TG}
    assert runs.on_listener == ([runs.on_groups[SERVER_TG]], [(["/health"], runs.on_groups[WORKER_TG])])
    assert 4200 in runs.on_egress


def test_check_mode_reports_the_removal_and_writes_nothing(runs):
    assert runs.off_check.run.rc == 0, runs.off_check.run.failed_messages
    assert runs.off_check.writes == []
    changed = [name.split(" : ")[-1] for name in runs.off_check.run.changed_tasks]
    assert "Report the Prefect server target group that would be deleted (check mode)" in changed, changed
    assert "Ensure the load balancer and its listeners" in changed, changed
    assert (runs.after_check_groups, runs.after_check_listener) == (runs.on_groups, runs.on_listener)


def test_turning_the_server_off_removes_its_target_group_rule_and_default_action(runs):
    assert set(runs.off_groups) == {WORKER_TG}
    # The worker target group is the same one (not re-created).
    assert runs.off_groups[WORKER_TG] == runs.on_groups[WORKER_TG]
    assert runs.off_listener == ([runs.on_groups[WORKER_TG]], [])
    assert 4200 not in runs.off_egress
    changed = [name.split(" : ")[-1] for name in runs.off.run.changed_tasks]
    assert "Delete the Prefect server target group (the self-hosted server is off)" in changed, changed


def test_a_second_run_without_the_server_changes_and_writes_nothing(runs):
    assert runs.off_again.run.rc == 0, runs.off_again.run.failed_messages
    assert runs.off_again.run.changed_tasks == []
    assert runs.off_again.writes == []
    assert runs.off_check_again.run.rc == 0 and runs.off_check_again.run.changed_tasks == []


def test_teardown_after_the_switch_leaves_no_load_balancer_nor_target_group(runs, local_stack):
    gone = run(local_stack, {"it_server": False, "it_state": "absent"})
    assert gone.run.rc == 0, gone.run.failed_messages
    assert target_groups(local_stack) == {}
    assert client(local_stack, "elbv2").describe_load_balancers()["LoadBalancers"] == []
