"""Run one molecule scenario (the full stack against the local stack) and check what it did.

Each scenario has its own test file (tests/molecule/test_scenario_<name>.py), so `make test`'s two pytest-xdist
workers (--dist loadfile) can run two scenarios at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
BIN = REPO / ".venv" / "bin"
POLICY = REPO / "docs" / "deployer-policy.json"
LOCAL_IAM = REPO / "scripts" / "local_iam.py"
MARKS = [pytest.mark.molecule, pytest.mark.integration, pytest.mark.slow]


def download_recording(path: Path) -> None:
    """Stop the emulator's recorder (started by the scenario's create.yml) and save what it recorded."""
    moto = f"http://127.0.0.1:{os.environ['MOTO_PORT']}"
    urllib.request.urlopen(urllib.request.Request(f"{moto}/moto-api/recorder/stop-recording", data=b"",
                                                  method="POST"), timeout=30).close()
    with urllib.request.urlopen(f"{moto}/moto-api/recorder/download-recording", timeout=120) as resp:
        path.write_bytes(resp.read())


def iam_principals() -> dict[str, dict[str, str]]:
    """The principals scripts/local_iam.py created for the run (their keys), from its credentials file."""
    path = Path(os.environ["LOCAL_STACK_STATE"]) / "iam" / "credentials.json"
    return json.loads(path.read_text())["principals"] if path.exists() else {}


def signed_by(recording: Path, access_key_id: str) -> int:
    """How many recorded requests carry a SigV4 signature of that access key."""
    pattern = re.compile(rf"Credential={re.escape(access_key_id)}/")
    return sum(1 for line in recording.read_text().splitlines() if pattern.search(line))


def run_scenario(scenario: str) -> None:
    """`molecule test -s <scenario>`, then: no secret in its output, requests signed by the deployer, and every
    AWS action it called granted by the shipped deployer policy."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    # The scenario's playbooks act as the deployer (inventories/local reads local_iam.py's file): a key from
    # the caller's environment would bypass it.
    for name in ("LOCAL_STACK_AWS_ACCESS_KEY_ID", "LOCAL_STACK_AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    try:
        proc = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1800)
    finally:
        # destroy.yml switches IAM enforcement off; a run that never reached it must not leave it on for the
        # next test (the suite's helpers use the open `testing` key).
        subprocess.run([sys.executable, str(LOCAL_IAM), "off"], cwd=REPO, capture_output=True, timeout=60)
    output = proc.stdout + proc.stderr
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / f"molecule-{scenario}.log").write_text(output)
    recording = REPO / ".cache" / f"molecule-{scenario}-recording.jsonl"
    download_recording(recording)
    assert proc.returncode == 0, output[-8000:]
    # The Prefect credential of inventories/local and the emulator's IAM secret keys must never reach the
    # output (no_log end to end).
    assert "not-a-secret" not in output
    principals = iam_principals()
    assert set(principals) >= {"deployer", "harness"}, "create.yml did not switch IAM enforcement on"
    for name, key in principals.items():
        assert key["secret_access_key"] not in output, f"the {name} user's secret key is in molecule's output"
    # create.yml starts the recorder; molecule skips create when it believes the instance exists (a
    # destroy that failed before): an empty recording must not pass the policy check below.
    assert recording.stat().st_size > 0, "nothing recorded: did molecule skip create.yml?"
    # The playbooks really acted as the deployer user (under enforcement nothing else would have worked).
    assert signed_by(recording, principals["deployer"]["access_key_id"]) > 0, "no request signed by the deployer"
    # Every AWS action the deployer (Ansible) called in check, converge, idempotence, verify and teardown
    # is granted by the shipped deployer policy; the failure names the missing actions.
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "deployer_policy.py"), str(recording),
                            "--check", str(POLICY)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
