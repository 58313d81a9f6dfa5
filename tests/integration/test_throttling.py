"""AWS throttling (issue #15, part 4): with 20 % of AWS requests answered with AWS's throttling error
(scripts/moto_patches_faults.py: ThrottlingException / RequestLimitExceeded / Throttling / SlowDown, seeded),
site.yml and teardown.yml still converge: every module, bundled or ours, retries with backoff. The faults
are counted (more than 0 per run, or the run proved nothing) and no run prints a Python traceback.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers.leftovers import find_leftovers
from tests.helpers.stack import local_stack_script, moto_url, reset_account, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE, SEED = 0.2, 15


def faults(**body) -> dict:
    """Switch the emulator's fault injection (POST with a body) or read its counters (GET)."""
    data = json.dumps(body).encode() if body else None
    req = urllib.request.Request(moto_url() + "/_local_stack/faults", data=data, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def throttled(local_stack):
    try:
        faults(rate=0)
    except urllib.error.HTTPError as exc:
        pytest.fail(f"the emulator has no fault switch ({exc.code}): restart the local stack "
                    "(scripts/local_stack.py down && up) so moto loads scripts/moto_patches_faults.py")
    reset_account()
    yield
    faults(rate=0)


def throttled_run(playbook: str, **kwargs):
    faults(rate=RATE, seed=SEED)
    start = time.monotonic()
    run = run_playbook(playbook, **kwargs)
    seconds = time.monotonic() - start
    counted = faults()  # the counters of the run (switching off resets them)
    faults(rate=0)
    print(f"{playbook} throttled at {RATE:.0%}: rc {run.rc}, {seconds:.0f} s, {counted['injected']} faults injected "
          f"in {counted['seen']} AWS requests {counted['by_code']} {counted['by_service']}")
    return run, counted


def assert_converged(run, counted) -> None:
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    assert counted["injected"] > 0, counted
    for stream in (run.stdout, run.stderr):
        assert "Traceback (most recent call last)" not in stream, stream[stream.find("Traceback") - 2000:][:4000]


def test_site_and_teardown_converge_with_a_fifth_of_aws_requests_throttled(throttled, monkeypatch):
    site, site_faults = throttled_run("site.yml")
    assert_converged(site, site_faults)
    # every kind of answer was met: JSON, EC2, the other query services and S3
    assert {"ThrottlingException", "RequestLimitExceeded", "Throttling", "SlowDown"} <= set(site_faults["by_code"])

    teardown, teardown_faults = throttled_run("teardown.yml", extra_vars={"teardown_delete_data": True})
    assert_converged(teardown, teardown_faults)
    for key, value in local_stack_script.aws_env().items():  # find_leftovers reads the standard AWS environment
        monkeypatch.setenv(key, value)
    assert find_leftovers() == []
