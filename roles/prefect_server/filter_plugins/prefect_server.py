# -*- coding: utf-8 -*-
# Apache-2.0
"""Filters of the prefect_server role.

``prefect_server_database_url`` builds the server's SQLAlchemy connection URL
(``postgresql+asyncpg://user:password@host:port/db``) with the user and password quoted, so a generated
password with any character stays one URL.

``prefect_server_public_url`` is the server's public URL: the one given, else ``<scheme>://<ALB DNS>``,
without a trailing slash; '' when neither is known.

The task-definition fingerprint is the collection's filter ``dataops.prefect_fargate.ecs_taskdef_fingerprint``
(plugins/filter/ecs_taskdef.py), shared with the ecs_fargate_agent role.
"""

from __future__ import annotations

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


class FilterModule:
    def filters(self):
        return {
            "prefect_server_database_url": database_url,
            "prefect_server_public_url": public_url,
        }
