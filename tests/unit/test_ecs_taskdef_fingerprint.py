"""The task-definition fingerprint both ECS roles compare (plugins/filter/ecs_taskdef.py, filter
dataops.prefect_fargate.ecs_taskdef_fingerprint): the worker's (ecs_fargate_agent) and the server's (prefect_server)
task definitions, each in the shape the role sends against what ecs_taskdefinition_info returns."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.dataops.prefect_fargate.plugins.filter.ecs_taskdef import FilterModule

fingerprint = FilterModule().filters()["ecs_taskdef_fingerprint"]
REPO = Path(__file__).resolve().parents[2]


def _taskdef(family: str, role: str, cpu: str, memory: str, **container) -> dict:
    return {
        "family": family, "taskRoleArn": role, "executionRoleArn": "arn:exec", "networkMode": "awsvpc",
        "cpu": cpu, "memory": memory, "requiresCompatibilities": ["FARGATE"],
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "containerDefinitions": [{
            "essential": True,
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": f"/ecs/{family}"}},
            **container,
        }],
    }


# What each role sends (vars/main.yml of ecs_fargate_agent and prefect_server, reduced).
WORKER = _taskdef(
    "w", "arn:task", "512", "1024", name="prefect-worker", image="img:1", command=["prefect", "worker", "start"],
    secrets=[{"name": "PREFECT_API_KEY", "valueFrom": "arn:secret"}],
    portMappings=[{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
    healthCheck={"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60})
SERVER = _taskdef(
    "s", "", "1024", "2048", name="prefect-server", image="img:1",
    command=["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"],
    secrets=[{"name": "PREFECT_SERVER_API_AUTH_STRING", "valueFrom": "arn:auth"}],
    portMappings=[{"containerPort": 4200, "protocol": "tcp"}])
WANTED = {"worker": WORKER, "server": SERVER}


def described(wanted: dict, **changes) -> dict:
    """What ecs_taskdefinition_info returns: snake_case, ECS defaults filled, env order changed."""
    taskdef = {**copy.deepcopy(wanted), "status": "ACTIVE", "revision": 3,
               "taskDefinitionArn": f"arn:td/{wanted['family']}:3", **changes}
    container = taskdef["containerDefinitions"][0]
    container["environment"].reverse()
    container.update(mountPoints=[], volumesFrom=[], systemControls=[])
    container["portMappings"] = [dict(p, hostPort=p.get("hostPort") or p["containerPort"])
                                 for p in container["portMappings"]]
    return camel_dict_to_snake_dict(taskdef)


def with_container(wanted: dict, **changes) -> dict:
    changed = copy.deepcopy(wanted)
    changed["containerDefinitions"][0].update(changes)
    return changed


@pytest.fixture(params=sorted(WANTED))
def wanted(request) -> dict:
    return WANTED[request.param]


def test_unchanged_definition_matches_what_ecs_returns(wanted):
    assert fingerprint(wanted) == fingerprint(described(wanted))


@pytest.mark.parametrize("change", [
    {"cpu": "4096"}, {"memory": "8192"}, {"executionRoleArn": "arn:other"}, {"taskRoleArn": "arn:other"},
    {"networkMode": "bridge"}, {"runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}},
])
def test_task_level_changes_are_detected(wanted, change):
    assert fingerprint(wanted) != fingerprint(described(wanted, **change))


@pytest.mark.parametrize("change", [
    {"image": "img:2"},
    {"command": ["prefect", "version"]},
    {"entryPoint": ["/bin/sh", "-c"]},
    {"healthCheck": {"command": ["CMD-SHELL", "exit 0"], "interval": 10}},
    {"secrets": [{"name": "X", "valueFrom": "arn:x"}]},
    {"environment": [{"name": "PREFECT_UI_API_URL", "value": "http://b/api"}]},
    {"readonlyRootFilesystem": True},
])
def test_container_changes_are_detected(wanted, change):
    assert fingerprint(with_container(wanted, **change)) != fingerprint(described(wanted))


def test_a_changed_server_entry_point_or_health_check_registers_a_new_revision():
    """The server's copy of the fingerprint once dropped entryPoint and healthCheck: a change of either compared
    equal to the running revision, so prefect_server never registered it."""
    running = described(SERVER)
    for change in ({"entryPoint": ["tini", "--"]},
                   {"healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost:4200/api/health"]}}):
        assert fingerprint(with_container(SERVER, **change)) != fingerprint(running), change
    with_health = with_container(SERVER, healthCheck={"command": ["CMD-SHELL", "true"], "startPeriod": 60})
    longer_start = with_container(with_health, healthCheck={"command": ["CMD-SHELL", "true"], "startPeriod": 120})
    assert fingerprint(longer_start) != fingerprint(described(with_health))
    assert fingerprint(with_health) == fingerprint(described(with_health))


def test_missing_or_inactive_definition_is_empty(wanted):
    assert fingerprint({}) == {} and fingerprint(None) == {}
    assert fingerprint(described(wanted, status="INACTIVE")) == {}


def test_both_roles_use_the_collection_filter_not_a_copy():
    for role in ("ecs_fargate_agent", "prefect_server"):
        assert "dataops.prefect_fargate.ecs_taskdef_fingerprint" in (REPO / "roles" / role / "vars/main.yml").read_text()
    for path in (REPO / "roles").glob("*/filter_plugins/*.py"):
        text = path.read_text()
        assert "def taskdef_fingerprint" not in text and "def _container" not in text, path
