# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Input rules shared by the preflight play and the roles (plugins/module_utils/stack_rules.py).

- ``fargate_pair_ok(cpu, memory)``: true when cpu units / memory MiB are a Fargate (Linux) combination.
- ``fargate_pairs``: the allowed combinations, as text for messages (``{{ None | dataops.prefect_fargate.fargate_pairs }}``).
- ``prefect_name_error``: why Prefect would refuse a work pool or deployment name ('' when fine).
- ``cron_error``: why a cron expression is not a 5-field one Prefect accepts ('' when fine).
- ``timezone_ok``: true for an IANA timezone name.
- ``region_error``: why a value is not an AWS region name ('' when it is one).
"""

from __future__ import annotations

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_rules import (
    FARGATE_PAIRS,
    cron_error,
    fargate_pair_ok,
    prefect_name_error,
    region_error,
    timezone_ok,
)


def fargate_pairs(_value=None) -> str:
    return FARGATE_PAIRS


class FilterModule:
    def filters(self):
        return {
            "fargate_pair_ok": fargate_pair_ok,
            "fargate_pairs": fargate_pairs,
            "prefect_name_error": prefect_name_error,
            "cron_error": cron_error,
            "timezone_ok": timezone_ok,
            "region_error": region_error,
        }
