"""Filters of the ecs_fargate_agent role: task-definition fingerprint (Fargate cpu/memory pairs: test_stack_rules.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

SPEC = importlib.util.spec_from_file_location(
    "ecs_fargate_agent_filters",
    Path(__file__).resolve().parents[2] / "roles/ecs_fargate_agent/filter_plugins/ecs_fargate_agent.py")
filters = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(filters)

WANTED = {
    "family": "w", "taskRoleArn": "arn:task", "executionRoleArn": "arn:exec", "networkMode": "awsvpc",
    "cpu": "512", "memory": "1024", "requiresCompatibilities": ["FARGATE"],
    "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "containerDefinitions": [{
        "name": "prefect-worker", "image": "img:1", "essential": True,
        "command": ["prefect", "worker", "start"],
        "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
        "secrets": [{"name": "PREFECT_API_KEY", "valueFrom": "arn:secret"}],
        "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/w"}},
        "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60},
    }],
}


def described(**changes):
    """What ecs_taskdefinition_info returns: snake_case, ECS defaults filled, env order changed."""
    taskdef = {**WANTED, "status": "ACTIVE", "revision": 3, "taskDefinitionArn": "arn:td/w:3", **changes}
    container = dict(taskdef["containerDefinitions"][0])
    container["environment"] = list(reversed(container["environment"]))
    container.update(mountPoints=[], volumesFrom=[], systemControls=[])
    container["portMappings"] = [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    taskdef["containerDefinitions"] = [container]
    return camel_dict_to_snake_dict(taskdef)


def test_unchanged_definition_matches_what_ecs_returns():
    assert filters.taskdef_fingerprint(WANTED) == filters.taskdef_fingerprint(described())


@pytest.mark.parametrize("change", [
    {"cpu": "1024"}, {"memory": "2048"}, {"executionRoleArn": "arn:other"}, {"taskRoleArn": "arn:other"},
])
def test_task_level_changes_are_detected(change):
    assert filters.taskdef_fingerprint(WANTED) != filters.taskdef_fingerprint(described(**change))


def test_container_changes_are_detected():
    changed = {**WANTED, "containerDefinitions": [{**WANTED["containerDefinitions"][0], "image": "img:2"}]}
    assert filters.taskdef_fingerprint(changed) != filters.taskdef_fingerprint(described())


def test_missing_or_inactive_definition_is_empty():
    assert filters.taskdef_fingerprint({}) == {}
    assert filters.taskdef_fingerprint(described(status="INACTIVE")) == {}
