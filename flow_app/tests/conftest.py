"""Fixtures for the flow's tests.

Unit tests need nothing running. Tests marked ``integration`` use ``flow_stack``, which brings up the
local stack (moto, Prefect server, fixture server) with ``scripts/local_stack.py up`` and fails, never
skips, when it cannot. Like the rest of the suite, they run on the test instance of the local stack
(LOCAL_STACK_INSTANCE=test: its own ports and state folder), never on the demo stack `make demo`
leaves deployed; MOTO_PORT, PREFECT_PORT, ... set by the caller still win.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

FLOW_APP = Path(__file__).resolve().parents[1]
REPO = FLOW_APP.parent
FIXTURES = FLOW_APP / "tests" / "fixtures"
sys.path.insert(0, str(FLOW_APP))  # `import gainers_elt` exactly as the deployment's pull step lays it out
STACK_SCRIPT = REPO / "scripts" / "local_stack.py"


def _pin_test_instance() -> None:
    """Export the test instance's state folder and ports, for this process and every child it starts
    (workers gw1 .. gw3 of `make test` run on "test2" .. "test4": scripts/local_stack.py pin_test_instance)."""
    spec = importlib.util.spec_from_file_location("local_stack_pin", STACK_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclasses look their module up there
    spec.loader.exec_module(script)
    script.pin_test_instance(os.environ)


_pin_test_instance()

MARKERS = {
    "integration": "needs the local stack (moto, Prefect server, fixture server)",
    "slow": "takes more than a few seconds",
    "molecule": "runs a molecule scenario",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers unless the repository's pytest.ini already does."""
    ini = configparser.ConfigParser()
    ini.read(REPO / "pytest.ini")
    registered = ini.get("pytest", "markers", fallback="")
    for name, help_text in MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: {help_text}")


@dataclass(frozen=True)
class FlowStack:
    moto_url: str
    prefect_api_url: str
    fixtures_url: str

    def aws_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.moto_url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def flow_stack() -> FlowStack:
    """The local stack, started (or reused) via scripts/local_stack.py with the environment's ports."""
    result = subprocess.run([sys.executable, str(STACK_SCRIPT), "up", "moto", "prefect", "fixtures"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    if result.returncode != 0:
        pytest.fail(f"local stack did not start (rc={result.returncode}):\n{result.stdout}\n{result.stderr}")
    host = "http://127.0.0.1"
    return FlowStack(
        moto_url=f"{host}:{os.environ['MOTO_PORT']}",
        prefect_api_url=f"{host}:{os.environ['PREFECT_PORT']}/api",
        fixtures_url=f"{host}:{os.environ['FIXTURES_PORT']}",
    )


@pytest.fixture
def aws(flow_stack: FlowStack, monkeypatch: pytest.MonkeyPatch):
    """boto3's default chain pointed at the moto server (as the local worker's environment does)."""
    for key, value in flow_stack.aws_env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    import boto3

    return boto3.client("s3")


@pytest.fixture
def results_bucket(aws) -> str:
    """A fresh, empty bucket per test, so "zero objects written" means exactly that.

    Left in place afterwards on purpose: with moto 5.2.5, deleting a bucket that held an overwritten
    (or read) object makes ``GET /moto-api/data.json`` answer 500 for good, which local_stack.py reads
    as "moto unhealthy" and answers by restarting it (wiping every other test's state).
    ``local_stack.py reset`` clears them.
    """
    name = f"flow-test-{uuid.uuid4().hex[:12]}"
    aws.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def cmc_page():
    """Read a recorded CoinMarketCap page by file name."""
    return lambda name: (FIXTURES / "coinmarketcap" / name).read_bytes()
