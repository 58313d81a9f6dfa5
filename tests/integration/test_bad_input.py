"""Bad input is refused before any call (issue #15 part 1).

Every case of tests/helpers/bad_inputs.py is checked with the AWS endpoint and the Prefect API URL on a
loopback port nothing listens on (bound, then closed): a case that made any AWS or Prefect call would fail
there with a connection error, so a refusal in a preflight validation task with the expected message proves
that no call was made. No local stack is needed.

Speed (2 shared cores): one `ansible-playbook` per case costs ~4.5 s of CPU (start-up and templating), so
the cases run as the hosts of ONE run of the preflight play (playbooks/preflight.yml, unchanged except
`hosts:`), each case a host of the local inventory's `local` group with its mistake as host variables.
Two real `site.yml -i inventories/local -e ...` runs anchor that: the control (no mistake) passes preflight
and fails at its first AWS call on the dead port, in a role; one case given with `-e` is refused in
preflight exactly as its host is.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.bad_inputs import CASES, BadInput

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PREFLIGHT_PLAY = "Preflight - validate every input before any AWS write"
# Tasks of the preflight play that validate (the role's cross-field asserts, its argument spec, the
# stack-wide rules); anything else failing means the case got further than validation.
VALIDATION_TASK = re.compile(r"(^|: )(Validat|Refuse|Fail when|Check that)", re.I)
GROUP = "bad_inputs"


def dead_port() -> int:
    """A loopback port nothing listens on: bound once by the kernel's choice, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_vars(port: int) -> dict:
    return {
        "aws_endpoint_url": f"http://127.0.0.1:{port}",
        "prefect_api_url": f"http://127.0.0.1:{port}/api",
        # An image given by URI: no builder probes (module runs per case), no stack state (the local
        # inventory's image build mounts the stack's CA bundle). The builder checks have their own tests.
        "ecr_image_build": False,
        "ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/prefect-elt-local/flow:0123456789abcdef",
    }


def ansible_playbook(args: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_DEPRECATION_WARNINGS": "0",
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = {}
    return proc, data


def failures(data: dict) -> dict[str, list[tuple[str, str, str]]]:
    """{host: [(play, task, message)]} of every failed task."""
    out: dict[str, list] = {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                if result.get("failed"):
                    items = [str(i.get("msg", "")) for i in result.get("results", [])
                             if i.get("failed") or i.get("evaluated_to") is False]
                    message = " ".join([str(result.get("msg", ""))] + items)
                    out.setdefault(host, []).append((play["play"]["name"], task["task"]["name"], message))
    return out


def run_site(extra_vars: dict) -> tuple[int, list, str]:
    proc, data = ansible_playbook(["site.yml", "-i", "inventories/local", "-e", json.dumps(extra_vars)])
    return proc.returncode, failures(data).get("localhost", []), proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def port() -> int:
    return dead_port()


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, port) -> dict:
    """Every case as a host of one preflight run; {case id: [(play, task, message)]}."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    inventory = {"all": {"children": {"local": {"children": {GROUP: {
        "hosts": {case.id: case.extra_vars for case in CASES},
        # Group vars of a child of `local`: they beat the local inventory's values, the case's host vars beat them.
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python"),
                 **base_vars(port)}}}}}}}
    (tmp / "cases.yml").write_text(yaml.safe_dump(inventory))
    # The preflight play itself, run for the case hosts instead of localhost.
    play = (REPO / "playbooks" / "preflight.yml").read_text()
    assert play.count("hosts: localhost") == 1
    (tmp / "preflight.yml").write_text(play.replace("hosts: localhost", f"hosts: {GROUP}"))
    started = time.monotonic()
    proc, data = ansible_playbook([str(tmp / "preflight.yml"), "-i", "inventories/local", "-i", str(tmp / "cases.yml")])
    print(f"\nbad-input battery: {len(CASES)} cases in one preflight run, {time.monotonic() - started:.0f} s")
    assert data.get("plays"), proc.stdout[-3000:] + proc.stderr[-3000:]
    found = failures(data)
    return {case.id: found.get(case.id, []) for case in CASES}


def test_the_dead_port_turns_any_call_into_a_connection_failure(port):
    """Without a mistake, site.yml passes preflight and its first AWS call fails on the dead port, in a role."""
    rc, failed, tail = run_site(base_vars(port))
    assert rc != 0 and len(failed) == 1, tail
    play, task, message = failed[0]
    assert play != PREFLIGHT_PLAY, (task, message)
    assert "Could not connect to the endpoint URL" in message, message


def test_a_case_given_with_extra_vars_is_refused_like_its_host(refusals, port):
    """The battery's hosts stand for `site.yml -e <mistake>`: the same refusal, from the real site.yml."""
    case = next(c for c in CASES if c.id == "pools-differ")  # a cross-role rule of preflight.yml
    rc, failed, tail = run_site({**base_vars(port), **case.extra_vars})
    assert rc != 0 and len(failed) == 1, tail
    assert failed == refusals[case.id]


def test_the_battery_is_large_and_every_case_is_distinct():
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
    assert len({json.dumps(case.extra_vars, sort_keys=True) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_in_preflight_before_any_call(refusals, case: BadInput):
    failed = refusals[case.id]
    assert len(failed) == 1, failed or f"{case.id} was not refused"
    play, task, message = failed[0]
    assert play == PREFLIGHT_PLAY, f"refused after preflight, in {play} / {task}: {message}"
    assert VALIDATION_TASK.search(task), f"the failing task is not a validation task: {task}: {message}"
    assert "Could not connect" not in message and "Failed to connect" not in message, message
    flat = " ".join(message.split())
    for part, what in ((case.variable, "the variable"), (case.given, "what was given"), (case.allowed, "what is allowed")):
        assert part in flat, f"the message does not name {what} ({part!r}): {flat}"
    for secret in case.hidden:
        assert secret not in flat, f"the message shows a credential value: {flat}"
