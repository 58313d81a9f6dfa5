# -*- coding: utf-8 -*-
# Apache-2.0
"""Filters of the prefect_flow role.

``prefect_flow_fargate_pair_ok``: the flow-run task's cpu/memory must be a Fargate combination, or
RunTask fails only when the first flow run starts. Same table as the ecs_fargate_agent role's
``ecs_fargate_agent_fargate_pair_ok`` (role filters are not shared between roles).
"""

from __future__ import annotations

from typing import Any

# cpu units -> allowed memory MiB (Linux Fargate)
_FARGATE = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


def fargate_pair_ok(cpu: Any, memory: Any) -> bool:
    """True when cpu units / memory MiB are a valid Fargate (Linux) combination."""
    try:
        return int(memory) in _FARGATE.get(int(cpu), ())
    except (TypeError, ValueError):
        return False


class FilterModule:
    def filters(self):
        return {"prefect_flow_fargate_pair_ok": fargate_pair_ok}
