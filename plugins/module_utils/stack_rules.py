# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Input rules shared by the preflight play and the roles: Fargate cpu/memory pairs, cron expressions, IANA
timezones, Prefect object names, AWS region names. Plain Python: the collection's filters (plugins/filter/stack_rules.py) expose
them to playbooks and roles, the prefect_flow role's catalogue filter imports them, unit tests call them.
"""

from __future__ import annotations

import re
from typing import Any

# cpu units -> allowed memory MiB (Linux Fargate)
FARGATE = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
FARGATE_PAIRS = (
    "256 -> 512, 1024, 2048; 512 -> 1024-4096; 1024 -> 2048-8192; 2048 -> 4096-16384; "
    "4096 -> 8192-30720 (1024 steps); 8192 -> 16384-61440 (4096 steps); 16384 -> 32768-122880 (8192 steps)"
)

# <area>-<direction>-<n> (the European Sovereign Cloud's eusc-de-east-1 and GovCloud/ISO included): a typo in
# the direction (us-est-1) or an availability zone (us-east-1a) would only fail at the first call, as an endpoint
# that does not resolve.
REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|eusc-[a-z]{2})(-gov|-iso[a-z]?)?"
                    r"-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]{1,2}$")
TIMEZONE = re.compile(r"^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+)+|Etc/[A-Za-z0-9+-]+)$")
# Characters Prefect refuses in object names (prefect.types.names.BANNED_CHARACTERS).
PREFECT_BANNED = ("/", "%", "&", ">", "<")


def fargate_pair_ok(cpu: Any, memory: Any) -> bool:
    """True when cpu units / memory MiB are a valid Fargate (Linux) combination."""
    try:
        return int(memory) in FARGATE.get(int(cpu), ())
    except (TypeError, ValueError):
        return False


# Standard cron fields (what Prefect's CronSchedule, on croniter, takes): name, low, high, names allowed.
_CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
                ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
                ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron_value_ok(value: str, low: int, high: int, names: tuple) -> bool:
    if value.upper() in names:
        return True
    return value.isdigit() and low <= int(value) <= high


def cron_error(text: str) -> str:
    """Why a cron expression is not a valid 5-field one ('' when it is)."""
    if text.strip().lower() in _CRON_MACROS:
        return ""
    fields = text.split()
    if len(fields) != 5:
        return f"must be a 5-field cron expression (minute hour day-of-month month day-of-week), got {len(fields)} field(s)"
    for value, (label, low, high, names) in zip(fields, _CRON_FIELDS):
        for part in value.split(","):
            body, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) < 1):
                return f"has a bad step '/{step}' in the {label} field"
            if body == "*" or (label in ("day of month", "day of week") and body == "?"):
                continue
            bounds = body.split("-") if "-" in body[1:] else [body]
            if len(bounds) > 2 or not all(_cron_value_ok(b, low, high, names) for b in bounds):
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                return f"has '{part}' in the {label} field (allowed: *, {allowed}, ranges a-b, lists a,b, steps /n)"
    return ""


def timezone_ok(name: str) -> bool:
    """An IANA timezone the controller's zone database knows (the shape alone when it has none)."""
    if not TIMEZONE.match(name):
        return False
    try:
        import zoneinfo

        if not zoneinfo.available_timezones():
            return True
        zoneinfo.ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError (a KeyError), ValueError, OSError
        return False
    return True


def region_error(value: Any) -> str:
    """Why a value is not an AWS region name ('' when it is one)."""
    if isinstance(value, str) and REGION.match(value):
        return ""
    return ("is not an AWS region name: <area>-<direction>-<number> such as us-east-1, eu-central-1 or "
            "ap-southeast-2 (not an availability zone such as us-east-1a)")


def prefect_name_error(value: Any) -> str:
    """Why a Prefect object name (work pool, deployment) would be refused ('' when fine)."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty name"
    bad = [c for c in PREFECT_BANNED if c in value]
    if bad:
        return f"must not contain {' '.join(PREFECT_BANNED)} (Prefect refuses them; found {' '.join(bad)})"
    return ""
