# -*- coding: utf-8 -*-
# Apache-2.0
"""Filters of the prefect_server role.

``prefect_server_database_url`` builds the server's SQLAlchemy connection URL
(``postgresql+asyncpg://user:password@host:port/db``) with the user and password quoted, so a generated
password with any character stays one URL.

``prefect_server_taskdef_fingerprint`` reduces a task definition to the content the role sets, in both
the shape the role sends (camelCase, as RegisterTaskDefinition takes it) and what
``community.aws.ecs_taskdefinition_info`` returns (snake_case), so the role registers a new revision only
when that content changes (``community.aws.ecs_taskdefinition`` matches any ACTIVE revision and ignores
cpu, memory and the execution role).

``prefect_server_public_url`` is the server's public URL: the one given, else ``<scheme>://<ALB DNS>``,
without a trailing slash; '' when neither is known.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote


def database_url(password: str, username: str, host: str, port: Any = 5432, database: str = "prefect") -> str:
    """postgresql+asyncpg URL of the server's database, user and password percent-quoted."""
    if not host:
        raise ValueError("prefect_server_database_url needs the database host")
    return (f"postgresql+asyncpg://{quote(str(username), safe='')}:{quote(str(password), safe='')}"
            f"@{host}:{int(port)}/{quote(str(database), safe='')}")


def public_url(given: str, scheme: str = "http", dns_name: str = "") -> str:
    if given:
        return str(given).rstrip("/")
    if dns_name:
        return f"{scheme}://{str(dns_name).lower()}"
    return ""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(data: dict, key: str, default: Any = None) -> Any:
    if key in data:
        return data[key]
    return data.get(_snake(key), default)


def _pairs(items: list | None, value_key: str) -> list[list[str]]:
    return sorted([str(_get(item, "name")), str(_get(item, value_key))] for item in items or [])


def _container(container: dict) -> dict:
    log = _get(container, "logConfiguration") or {}
    return {
        "name": _get(container, "name"),
        "image": _get(container, "image"),
        "essential": bool(_get(container, "essential", True)),
        "command": list(_get(container, "command") or []),
        "environment": _pairs(_get(container, "environment"), "value"),
        "secrets": _pairs(_get(container, "secrets"), "valueFrom"),
        "port_mappings": sorted(
            [int(_get(p, "containerPort")), int(_get(p, "hostPort") or _get(p, "containerPort")),
             str(_get(p, "protocol") or "tcp")]
            for p in _get(container, "portMappings") or []
        ),
        "log_driver": _get(log, "logDriver"),
        "log_options": dict(sorted((_get(log, "options") or {}).items())),
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
        "containers": sorted((_container(c) for c in _get(taskdef, "containerDefinitions") or []),
                             key=lambda c: c["name"] or ""),
    }


class FilterModule:
    def filters(self):
        return {
            "prefect_server_database_url": database_url,
            "prefect_server_public_url": public_url,
            "prefect_server_taskdef_fingerprint": taskdef_fingerprint,
        }
