"""The input rules shared by preflight and the roles (issue #17): plugins/module_utils/stack_rules.py, exposed
as the collection's filters dataops.prefect_fargate.* (plugins/filter/stack_rules.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.filter.stack_rules import FilterModule

FILTERS = FilterModule().filters()


@pytest.mark.parametrize(("cpu", "memory", "ok"), [
    (256, 512, True), (256, 4096, False), (512, 1024, True), (512, 4096, True), (512, 5120, False),
    (1024, 8192, True), (4096, 30720, True), (4096, 31744, False), (8192, 20480, True), (8192, 17408, False),
    (300, 1024, False), ("x", 1024, False),
])
def test_fargate_pairs(cpu, memory, ok):
    assert FILTERS["fargate_pair_ok"](cpu, memory) is ok


def test_the_pairs_text_names_every_cpu_size():
    text = FILTERS["fargate_pairs"](None)
    assert all(f"{cpu} -> " in text for cpu in (256, 512, 1024, 2048, 4096, 8192, 16384)), text


@pytest.mark.parametrize(("name", "error"), [("elt-ecs", ""), ("elt/ecs", "must not contain"), ("", "non-empty"),
                                             ("a<b", "found <")])
def test_prefect_name_error(name, error):
    got = FILTERS["prefect_name_error"](name)
    assert (got == "") if error == "" else (error in got), got


REGIONS = [("us-east-1", True), ("eu-central-1", True), ("ap-southeast-2", True), ("us-gov-west-1", True),
           ("eusc-de-east-1", True), ("us-east-1a", False), ("us-est-1", False), ("", False), (None, False),
           ("US-EAST-1", False)]


@pytest.mark.parametrize(("region", "ok"), REGIONS)
def test_region_error(region, ok):
    got = FILTERS["region_error"](region)
    assert (got == "") is ok, got
    assert ok or "such as us-east-1" in got


def test_the_roles_use_the_shared_rules_not_copies():
    """One Fargate table and one Prefect-name rule: the roles' own filter files no longer define them."""
    repo = Path(__file__).resolve().parents[2]
    for path in (repo / "roles").glob("*/filter_plugins/*.py"):
        text = path.read_text()
        assert "def fargate_pair_ok" not in text and "def prefect_name_error" not in text and "16384:" not in text, path
