"""Session fixtures shared by every test directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The repo is the dataops.prefect_fargate collection; this makes its modules importable in tests.
sys.path.insert(0, str(REPO / ".collections"))
sys.path.insert(0, str(REPO))

from tests.helpers import stack  # noqa: E402

# Many tests run moto in-process, where every mock_aws() session builds moto's EC2 backend again: without its
# default AMIs (no test starts an instance) that costs a third less. And the hundreds of botocore clients the
# tests create share each parsed service model, as the forkserver's modules do, instead of parsing it per client.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver  # noqa: E402

forkserver.share_botocore_models(warm=())


@pytest.fixture(scope="session")
def local_stack():
    """Bring the local stack up (reused when already running) and hand out its endpoints."""
    stack.ensure_stack_up()
    return stack


# The longest files, measured in CI (stop 25, three workers): interrupted runs 750 s + 2 min (two tests), secrets
# about 9 min, molecule hosted 423 s, molecule default 351 s, throttling 309 s, drift 250 s, two runs at once 135 s.
# `make test` runs the files on three pytest-xdist workers (--dist loadfile, one stack instance each) in this order;
# xdist hands each worker two files up front (gw0: 1st + 4th, gw1: 2nd + 5th, gw2: 3rd + 6th) and the next file to whichever
# runs low, so the longest start first, the unit tests fill in at the end, and the workers finish at about the
# same time.
LONGEST_FIRST = ("test_interrupted_runs.py", "test_scenario_hosted.py", "test_secrets.py", "test_scenario_default.py",
                 "test_throttling.py", "test_drift.py", "test_concurrent_runs.py",
                 # then the files of 3-7 min (stop 25's CI, under load), so that none of them is the last to start
                 "test_prefect_server_role.py", "test_alb_ecs.py", "test_vpc.py", "test_bad_input.py",
                 "test_ecs_fargate_agent_aws.py", "test_prefect_flow_role.py")


def _file_rank(item: pytest.Item) -> int:
    if item.path.name in LONGEST_FIRST:
        return LONGEST_FIRST.index(item.path.name)
    return len(LONGEST_FIRST) + (0 if item.get_closest_marker("integration") else 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_file_rank)  # stable: a file's tests keep their order
