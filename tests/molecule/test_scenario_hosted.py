"""molecule/hosted (its own file, so the two pytest-xdist workers can run the scenarios side by side)."""

from __future__ import annotations

from tests.helpers.molecule_scenario import MARKS, run_scenario

pytestmark = MARKS


def test_scenario_hosted(local_stack):
    run_scenario("hosted")
