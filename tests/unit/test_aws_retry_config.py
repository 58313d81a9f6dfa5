"""Every AWS module of every play retries throttling the AWS way: botocore's standard retry mode with enough
attempts, set once in group_vars/all/stack.yml (aws_module_defaults) and referenced by every play's
module_defaults (issue #15, part 4; issue #17: defined once; the integration proof is
tests/integration/test_throttling.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWS_GROUP = "group/dataops.prefect_fargate.aws"
PREFECT_GROUP = "group/dataops.prefect_fargate.prefect"
# Every play of the repo that calls AWS modules.
PLAYBOOKS = ["playbooks/site.yml", "playbooks/teardown.yml", "molecule/default/verify.yml",
             *sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/integration/playbooks").glob("*.yml"))]


def stack_vars() -> dict:
    return yaml.safe_load((REPO / "group_vars/all/stack.yml").read_text())


@pytest.mark.parametrize("playbook", ["playbooks/site.yml", "playbooks/teardown.yml"])
def test_the_aws_group_gets_the_botocore_retry_config(playbook):
    plays = yaml.safe_load((REPO / playbook).read_text())
    groups = [play["module_defaults"][AWS_GROUP] for play in plays if "module_defaults" in play]
    assert groups and all(group == "{{ aws_module_defaults }}" for group in groups)
    assert stack_vars()["aws_module_defaults"]["aws_config"] == "{{ aws_botocore_config }}"


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_play_takes_its_module_defaults_from_the_one_definition(playbook):
    """No play writes AWS (or Prefect) connection settings of its own: it names the shared definition."""
    plays = [play for play in yaml.safe_load((REPO / playbook).read_text()) if "module_defaults" in play]
    assert plays, f"{playbook} has no play with module_defaults"
    shared = {AWS_GROUP: "{{ aws_module_defaults }}", PREFECT_GROUP: "{{ prefect_module_defaults }}"}
    for play in plays:
        assert play["module_defaults"] and set(play["module_defaults"]) <= set(shared), play["module_defaults"]
        for group, value in play["module_defaults"].items():
            assert value == shared[group], (playbook, group, value)


def test_the_shared_retry_config_is_standard_mode_with_at_least_10_attempts():
    config = stack_vars()["aws_botocore_config"]
    assert config["retries"]["mode"] == "standard" and config["retries"]["max_attempts"] >= 10
