"""Run the molecule scenarios (full stack against the local stack). `make test` runs these last."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
POLICY = REPO / "docs" / "deployer-policy.json"
pytestmark = [pytest.mark.molecule, pytest.mark.integration, pytest.mark.slow]


def download_recording(path: Path) -> None:
    """Stop the emulator's recorder (started by the scenario's create.yml) and save what it recorded."""
    moto = f"http://127.0.0.1:{os.environ['MOTO_PORT']}"
    urllib.request.urlopen(urllib.request.Request(f"{moto}/moto-api/recorder/stop-recording", data=b"",
                                                  method="POST"), timeout=30).close()
    with urllib.request.urlopen(f"{moto}/moto-api/recorder/download-recording", timeout=120) as resp:
        path.write_bytes(resp.read())


@pytest.mark.parametrize("scenario", sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml")))
def test_scenario(scenario, local_stack):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    proc = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / f"molecule-{scenario}.log").write_text(output)
    recording = REPO / ".cache" / f"molecule-{scenario}-recording.jsonl"
    download_recording(recording)
    assert proc.returncode == 0, output[-8000:]
    # The Prefect credential of inventories/local must never reach the output (no_log end to end).
    assert "not-a-secret" not in output
    # create.yml starts the recorder; molecule skips create when it believes the instance exists (a
    # destroy that failed before): an empty recording must not pass the policy check below.
    assert recording.stat().st_size > 0, "nothing recorded: did molecule skip create.yml?"
    # Every AWS action the deployer (Ansible) called in check, converge, idempotence, verify and teardown
    # is granted by the shipped deployer policy; the failure names the missing actions.
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "deployer_policy.py"), str(recording),
                            "--check", str(POLICY)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
