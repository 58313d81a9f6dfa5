# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""ECS task-definition filters shared by the roles that register one (ecs_fargate_agent, prefect_server).

``dataops.prefect_fargate.ecs_taskdef_fingerprint`` reduces a task definition to the content that matters,
so a role registers a new revision only when that content changes. It accepts both the shape the roles send
(camelCase, as RegisterTaskDefinition takes it) and what ``community.aws.ecs_taskdefinition_info`` returns
(snake_case), and fills the defaults ECS adds (hostPort, protocol, essential, empty lists), so an unchanged
definition compares equal. ``community.aws.ecs_taskdefinition`` alone is not enough: it ignores cpu, memory,
the execution role and network mode, and matches any ACTIVE revision rather than the latest.

Every container field a role may set is part of the fingerprint (command, entryPoint, environment, secrets,
port mappings, log configuration, healthCheck, readonlyRootFilesystem): a field left out would let a change of
it go unregistered.
"""

from __future__ import annotations

import re
from typing import Any


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(data: dict, key: str, default: Any = None) -> Any:
    """Read camelCase or snake_case keys alike (taskRoleArn / task_role_arn)."""
    if key in data:
        return data[key]
    return data.get(_snake(key), default)


def _pairs(items: list | None, value_key: str) -> list[list[str]]:
    return sorted([str(_get(item, "name")), str(_get(item, value_key))] for item in items or [])


def _container(container: dict) -> dict:
    log = _get(container, "logConfiguration") or {}
    health = _get(container, "healthCheck") or {}
    return {
        "name": _get(container, "name"),
        "image": _get(container, "image"),
        "essential": bool(_get(container, "essential", True)),
        "command": list(_get(container, "command") or []),
        "entry_point": list(_get(container, "entryPoint") or []),
        "environment": _pairs(_get(container, "environment"), "value"),
        "secrets": _pairs(_get(container, "secrets"), "valueFrom"),
        "port_mappings": sorted(
            [int(_get(p, "containerPort")), int(_get(p, "hostPort") or _get(p, "containerPort")),
             str(_get(p, "protocol") or "tcp")]
            for p in _get(container, "portMappings") or []
        ),
        "log_driver": _get(log, "logDriver"),
        # Option keys like "awslogs-group" are kept as they are by both shapes.
        "log_options": dict(sorted((_get(log, "options") or {}).items())),
        "health_check": {
            "command": list(_get(health, "command") or []),
            "interval": int(_get(health, "interval") or 30),
            "timeout": int(_get(health, "timeout") or 5),
            "retries": int(_get(health, "retries") or 3),
            "start_period": int(_get(health, "startPeriod") or 0),
        } if health else {},
        "readonly_root_filesystem": bool(_get(container, "readonlyRootFilesystem") or False),
    }


def taskdef_fingerprint(taskdef: dict | None) -> dict:
    """Normalised content of a task definition; {} for none (or an INACTIVE one)."""
    if not taskdef or not (_get(taskdef, "family") or "") or _get(taskdef, "status", "ACTIVE") != "ACTIVE":
        return {}
    platform = _get(taskdef, "runtimePlatform") or {}
    return {
        "family": _get(taskdef, "family"),
        "task_role_arn": _get(taskdef, "taskRoleArn") or "",
        "execution_role_arn": _get(taskdef, "executionRoleArn") or "",
        "network_mode": _get(taskdef, "networkMode") or "",
        "cpu": str(_get(taskdef, "cpu") or ""),
        "memory": str(_get(taskdef, "memory") or ""),
        "requires_compatibilities": sorted(_get(taskdef, "requiresCompatibilities") or []),
        "cpu_architecture": _get(platform, "cpuArchitecture") or "X86_64",
        "operating_system_family": _get(platform, "operatingSystemFamily") or "LINUX",
        "containers": sorted((_container(c) for c in _get(taskdef, "containerDefinitions") or []),
                             key=lambda c: c["name"] or ""),
    }


class FilterModule:
    def filters(self):
        return {
            "ecs_taskdef_fingerprint": taskdef_fingerprint,
        }
