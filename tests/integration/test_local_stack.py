"""The local stack script: up is idempotent, down stops exactly what up started, ports are checked."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers.moto_testing import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_stack.py"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def isolated_env():
    """A second stack on free ports with its own state folder, so the shared one is untouched."""
    # Not under pytest's tmp_path (mode 0700 above it): run as root, PostgreSQL runs as `postgres` and must
    # be able to enter the state folder.
    state = Path(tempfile.mkdtemp(prefix="local-stack-isolated-"))
    state.chmod(0o755)
    env = {**os.environ, "LOCAL_STACK_STATE": str(state)}
    for name in ("MOTO_PORT", "PREFECT_PORT", "FIXTURES_PORT", "REGISTRY_PORT", "WORKER_PORT", "FARGATE_PORT",
                 "POSTGRES_PORT", "SERVER_PORT"):
        env[name] = str(free_port())
    yield env
    subprocess.run([sys.executable, str(SCRIPT), "clean"], env=env, capture_output=True)
    shutil.rmtree(state, ignore_errors=True)


# Every service, but not the base image: importing 350 MB into each temporary state proves nothing
# here (tests/integration/test_base_image.py covers it).
SERVICES = ("up", "postgres", "moto", "prefect", "fixtures", "registry", "fargate")


def run(env, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


def pids(env) -> list[int]:
    state = Path(env["LOCAL_STACK_STATE"])
    return [json.loads(p.read_text())["pid"] for p in state.glob("*.pid")]


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's pid 1 may never reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_reuse_status_down(isolated_env):
    first = run(isolated_env, *SERVICES)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("started") >= 3
    started = pids(isolated_env)
    assert len(started) >= 3

    second = run(isolated_env, *SERVICES)
    assert second.returncode == 0
    assert "started" not in second.stdout and second.stdout.count("reused") >= 3
    assert sorted(pids(isolated_env)) == sorted(started)

    status = run(isolated_env, "status")
    assert status.returncode == 0 and status.stdout.count("healthy") >= 3

    down = run(isolated_env, "down")
    assert down.returncode == 0
    for pid in started:
        assert not running(pid), f"pid {pid} still running after down"
    assert run(isolated_env, "status").returncode == 1


def test_port_taken_by_a_stranger_is_refused(isolated_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(isolated_env["MOTO_PORT"])))
        squatter.listen()
        result = run(isolated_env, *SERVICES)
    assert result.returncode != 0
    assert f"port 127.0.0.1:{isolated_env['MOTO_PORT']} for moto is taken" in result.stderr
    assert "MOTO_PORT" in result.stderr
    assert pids(isolated_env) == []


def test_bad_port_value_is_refused(isolated_env):
    result = run({**isolated_env, "PREFECT_PORT": "banana"}, "status")
    assert result.returncode != 0 and "PREFECT_PORT='banana'" in result.stderr
