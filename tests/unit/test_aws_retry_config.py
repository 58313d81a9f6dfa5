"""Every AWS module of site.yml and teardown.yml retries throttling the AWS way: botocore's standard retry
mode with enough attempts, set once in the plays' module_defaults (issue #15, part 4; the integration proof
is tests/integration/test_throttling.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("playbook", ["playbooks/site.yml", "playbooks/teardown.yml"])
def test_the_aws_group_gets_the_botocore_retry_config(playbook):
    plays = yaml.safe_load((REPO / playbook).read_text())
    groups = [play["module_defaults"]["group/dataops.prefect_fargate.aws"] for play in plays if "module_defaults" in play]
    assert groups and all(group.get("aws_config") == "{{ aws_botocore_config }}" for group in groups)


def test_the_shared_retry_config_is_standard_mode_with_at_least_10_attempts():
    config = yaml.safe_load((REPO / "group_vars/all/stack.yml").read_text())["aws_botocore_config"]
    assert config["retries"]["mode"] == "standard" and config["retries"]["max_attempts"] >= 10
