"""teardown.yml stops the ECS workers before the flow role deletes the deployment and the work pool
(issue #11 item 4): a running worker re-creates a missing pool on its next heartbeat."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_teardown_drains_the_workers_before_the_pool_is_deleted():
    plays = yaml.safe_load((REPO / "playbooks/teardown.yml").read_text())
    [play] = [p for p in plays if p.get("hosts") == "localhost" and "tasks" in p]
    # the roles run inside the block that holds the stack lock
    tasks = [inner for t in play["tasks"] for inner in (t.get("block") or [t])]
    steps = [(t.get("ansible.builtin.import_role") or t.get("ansible.builtin.include_role") or {}) for t in tasks]
    roles = [(s.get("name"), s.get("tasks_from", "main")) for s in steps]
    # The scalable target goes before the drain: Application Auto Scaling would scale a drained service back up.
    assert roles[:2] == [("worker_autoscaling", "main"), ("ecs_fargate_agent", "drain")], roles
    assert roles.index(("prefect_flow", "main")) < roles.index(("ecs_fargate_agent", "main"))


def test_teardown_deregisters_the_autoscaling_before_the_service_goes():
    plays = yaml.safe_load((REPO / "playbooks/teardown.yml").read_text())
    [play] = [p for p in plays if p.get("hosts") == "localhost" and "tasks" in p]
    assert play["vars"]["worker_autoscaling_state"] == "absent"
    tasks = [inner for t in play["tasks"] for inner in (t.get("block") or [t])]
    first = tasks[0]["ansible.builtin.import_role"]
    # also with --tags ecs_fargate_agent, which runs the drain
    assert first["name"] == "worker_autoscaling" and "ecs_fargate_agent" in tasks[0]["tags"]
    site = yaml.safe_load((REPO / "playbooks/site.yml").read_text())
    [deploy] = [p for p in site if p.get("hosts") == "localhost" and "tasks" in p]
    order = [t["ansible.builtin.import_role"]["name"] for t in deploy["tasks"] for t in (t.get("block") or [t])
             if "ansible.builtin.import_role" in t]
    assert order.index("worker_autoscaling") == order.index("ecs_fargate_agent") + 1, order


def test_the_drain_entry_point_scales_to_zero_and_waits():
    tasks = yaml.safe_load((REPO / "roles/ecs_fargate_agent/tasks/drain.yml").read_text())
    names = [t["name"] for t in tasks]
    scale = next(t for t in tasks if t["name"] == "Scale the worker service to zero")
    wait = next(t for t in tasks if t["name"].startswith("Wait until the worker service has no running"))
    assert scale["community.aws.ecs_service"]["desired_count"] == 0
    assert names.index(scale["name"]) < names.index(wait["name"])
    assert "runningCount" in wait["until"] and "pendingCount" in wait["until"] and wait["retries"] >= 30
    delete = yaml.safe_load((REPO / "roles/ecs_fargate_agent/tasks/delete.yml").read_text())
    assert delete[0].get("ansible.builtin.include_tasks") == "drain.yml"
