"""The test suite's local stack and the demo's never share a port or a state folder (issue #19): `make test`
after `make demo` runs on its own instance and cannot wipe the demo's emulator or Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.stack import STACK_SCRIPT, local_stack_script

INSTANCE_VARIABLES = ("LOCAL_STACK_INSTANCE", "LOCAL_STACK_STATE", "MOTO_PORT", "PREFECT_PORT", "FIXTURES_PORT",
                      "REGISTRY_PORT", "WORKER_PORT", "FARGATE_PORT", "POSTGRES_PORT", "SERVER_PORT",
                      "PYTEST_XDIST_WORKER")


def instance_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARIABLES}
    proc = subprocess.run([sys.executable, str(STACK_SCRIPT), "env"], env={**env, **overrides},
                          capture_output=True, text=True, check=True)
    return dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines())


def ports(env: dict[str, str]) -> set[str]:
    return {v for k, v in env.items() if k.endswith("_PORT")}


def test_suite_and_demo_instances_are_disjoint():
    demo, suite = instance_env(), instance_env(LOCAL_STACK_INSTANCE="test")
    assert demo["LOCAL_STACK_INSTANCE"] == "demo" and demo["MOTO_PORT"] == "5000"
    assert demo["LOCAL_STACK_STATE"] != suite["LOCAL_STACK_STATE"]
    assert ports(demo) & ports(suite) == set()


def test_every_instance_has_its_own_postgres_port():
    """The local PostgreSQL server (the engine of RDS postgres instances) is per instance too."""
    envs = {name: instance_env(LOCAL_STACK_INSTANCE=name) for name in ("demo", "test", "test2", "test3", "test4")}
    wanted = {"demo": "5004", "test": "5104", "test2": "5204", "test3": "5304", "test4": "5404"}
    assert {name: env["POSTGRES_PORT"] for name, env in envs.items()} == wanted
    every = [port for env in envs.values() for port in ports(env)]
    assert len(every) == len(set(every)) == 8 * len(envs)  # no port twice, within or across instances


def test_every_instance_has_its_own_hosted_server_port():
    """The hosted Prefect server's task (prefect_server_mode: hosted) shares the host's network: its port is per
    instance and differs from the stack's own Prefect server (the demo's is 4200, the role's default)."""
    envs = {name: instance_env(LOCAL_STACK_INSTANCE=name) for name in ("demo", "test", "test2", "test3", "test4")}
    wanted = {"demo": "5005", "test": "5105", "test2": "5205", "test3": "5305", "test4": "5405"}
    assert {name: env["SERVER_PORT"] for name, env in envs.items()} == wanted
    assert all(env["SERVER_PORT"] != env["PREFECT_PORT"] for env in envs.values())


def test_each_test_worker_has_its_own_instance():
    """`make test` runs four pytest-xdist workers at once, each resetting its own emulator and Prefect server."""
    envs = [instance_env(LOCAL_STACK_INSTANCE=name) for name in ("demo", "test", "test2", "test3", "test4")]
    assert len({env["LOCAL_STACK_STATE"] for env in envs}) == len(envs)
    for index, env in enumerate(envs):
        others = set().union(*(ports(other) for other in envs[:index] + envs[index + 1:]))
        assert ports(env) & others == set(), env["LOCAL_STACK_INSTANCE"]
    workers = (None, "gw0", "gw1", "gw2", "gw3")
    assert [local_stack_script.test_instance(w) for w in workers] == ["test", "test", "test2", "test3", "test4"]
    with pytest.raises(LookupError, match="worker gw4 has no local-stack instance: .* at most -n 4"):
        local_stack_script.test_instance("gw4")


def test_importing_the_test_helpers_pins_the_suite_to_its_instance():
    assert os.environ["LOCAL_STACK_INSTANCE"] == local_stack_script.test_instance(os.environ.get("PYTEST_XDIST_WORKER"))
    assert local_stack_script.instance_env() == {k: os.environ[k] for k in local_stack_script.instance_env()}


def test_one_variable_overrides_one_value():
    suite = instance_env(LOCAL_STACK_INSTANCE="test", MOTO_PORT="5999")
    assert suite["MOTO_PORT"] == "5999" and suite["PREFECT_PORT"] == "4300"


def test_unknown_instance_is_refused():
    env = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARIABLES}
    proc = subprocess.run([sys.executable, str(STACK_SCRIPT), "env"], env={**env, "LOCAL_STACK_INSTANCE": "prod"},
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "LOCAL_STACK_INSTANCE='prod' is not one of demo, test, test2, test3, test4" in proc.stderr


def test_the_flow_package_tests_pin_the_test_instance_too():
    """flow_app/tests runs on its own (`pytest flow_app/tests`) without tests/conftest.py: it must not fall
    back to the demo instance's ports either."""
    env = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARIABLES}
    code = ("import os, runpy; runpy.run_path('flow_app/tests/conftest.py'); "
            "print(os.environ['LOCAL_STACK_INSTANCE'], os.environ['MOTO_PORT'], os.environ['PREFECT_PORT'])")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=STACK_SCRIPT.parents[1],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["test", "5100", "4300"]
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "PYTEST_XDIST_WORKER": "gw1"},
                          cwd=STACK_SCRIPT.parents[1], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["test2", "5200", "4400"]


def test_a_worker_drops_the_instance_its_controller_pinned_but_keeps_the_callers_values():
    """xdist's controller process pins "test" and its workers inherit that environment: worker gw1 must still
    land on "test2", while a port the caller set stays the caller's."""
    caller = {"PATH": "/usr/bin", "FIXTURES_PORT": "5999"}
    controller = dict(caller)
    assert local_stack_script.pin_test_instance(controller) is None
    assert controller["LOCAL_STACK_INSTANCE"] == "test" and controller["MOTO_PORT"] == "5100"
    worker = {**controller, "PYTEST_XDIST_WORKER": "gw1"}
    assert local_stack_script.pin_test_instance(worker) is None
    assert (worker["LOCAL_STACK_INSTANCE"], worker["MOTO_PORT"], worker["FIXTURES_PORT"]) == ("test2", "5200", "5999")
    assert worker["LOCAL_STACK_STATE"].endswith(".local-stack-test2")
    again = dict(worker)
    local_stack_script.pin_test_instance(again)
    assert again == worker
    fifth = {**controller, "PYTEST_XDIST_WORKER": "gw4"}
    assert "at most -n 4" in local_stack_script.pin_test_instance(fifth)
    chosen = {**caller, "LOCAL_STACK_INSTANCE": "test", "PYTEST_XDIST_WORKER": "gw1"}  # the caller's choice wins
    local_stack_script.pin_test_instance(chosen)
    assert chosen["LOCAL_STACK_INSTANCE"] == "test"


def test_postgres_lives_where_its_user_can_enter(tmp_path):
    """PostgreSQL refuses root, so it runs as `postgres`: a state folder that user cannot reach (pytest's tmp_path
    is under a 0700 folder; a checkout under /root) puts the server's folder under the system's temporary folder."""
    assert local_stack_script._others_may_enter(Path("/tmp")) is True
    closed = tmp_path / "closed"
    (closed / "state").mkdir(parents=True)
    closed.chmod(0o700)
    assert local_stack_script._others_may_enter(closed / "state") is False
    assert local_stack_script._others_may_enter(closed / "state" / "not-made-yet") is False
