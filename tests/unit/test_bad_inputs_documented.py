"""Every variable of the bad-input battery (tests/helpers/bad_inputs.py) is a documented input: an option of a
role's meta/argument_specs.yml, or a variable the README's Configuration tables list. A case about an
undocumented variable would test something a user cannot know about."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.helpers.bad_inputs import CASES

REPO = Path(__file__).resolve().parents[2]


def documented() -> set[str]:
    names: set[str] = set()
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= set(entry.get("options", {}))
    readme = REPO.joinpath("README.md").read_text()
    configuration = readme[readme.index("## Configuration"):]
    configuration = configuration[:configuration.index("\n## ", 3)]
    # First column of the Configuration tables: | `name` | or | `a` / `b` |
    for row in re.findall(r"^\| (`[^|]+`) \|", configuration, re.M):
        names |= set(re.findall(r"`([a-z_][a-z0-9_]*)`", row))
    return names


DOCUMENTED = documented()


def test_the_documented_set_is_read():
    assert {"vpc_cidr", "prefect_flow_catalogue", "stack_project", "prefect_api_url"} <= DOCUMENTED


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_variable_of_a_case_is_documented(case):
    variables = {case.variable, *case.extra_vars}
    assert variables <= DOCUMENTED, f"not documented in an argument spec or README's Configuration: {variables - DOCUMENTED}"
