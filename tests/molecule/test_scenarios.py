"""Run the molecule scenarios (full stack against the local stack). `make test` runs these last."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
pytestmark = [pytest.mark.molecule, pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("scenario", sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml")))
def test_scenario(scenario, local_stack):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    proc = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / f"molecule-{scenario}.log").write_text(output)
    assert proc.returncode == 0, output[-8000:]
    # The Prefect credential of inventories/local must never reach the output (no_log end to end).
    assert "not-a-secret" not in output
