"""Session fixtures shared by every test directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The repo is the dataops.prefect_fargate collection; this makes its modules importable in tests.
sys.path.insert(0, str(REPO / ".collections"))
sys.path.insert(0, str(REPO))

from tests.helpers import stack  # noqa: E402


@pytest.fixture(scope="session")
def local_stack():
    """Bring the local stack up (reused when already running) and hand out its endpoints."""
    stack.ensure_stack_up()
    return stack
