"""The test-only kill switch (tests/plugins/callback/kill_switch.py) fires exactly where it is told:
at the n-th start of a task name, after the k-th loop item, and logs what each task did."""

from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location("kill_switch", REPO / "tests/plugins/callback/kill_switch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Task:
    def __init__(self, name: str, role: str = "vpc", path: str = "/repo/roles/vpc/tasks/create.yml:12"):
        self.name = name
        self._role = SimpleNamespace(get_name=lambda: role)
        self._path = path

    def get_name(self) -> str:
        return f"{self._role.get_name()} : {self.name}"

    def get_path(self) -> str:
        return self._path


def result(task: Task, changed: bool = False):
    return SimpleNamespace(_task=task, _result={"changed": changed})


@pytest.fixture
def switch(monkeypatch, tmp_path):
    module = load()
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(module.os, "killpg", lambda group, sig: sent.append(("group", sig)))
    monkeypatch.setattr(module.os, "kill", lambda pid, sig: sent.append(("pid", sig)))
    monkeypatch.setattr(module, "_descendants", lambda root: [11, 12])

    class Now:  # the timer fires at once, in this thread
        def __init__(self, delay, function):
            self.function = function

        def start(self):
            self.function()

    monkeypatch.setattr(module.threading, "Timer", Now)

    def make(**env):
        log = tmp_path / "log.jsonl"
        for key, value in {"KILL_SWITCH_LOG": str(log), **env}.items():
            monkeypatch.setenv(key, value)
        return module.CallbackModule(), sent, log

    make.module = module  # for tests that stub the process table
    return make


def test_fires_at_the_second_task_of_a_shared_name(switch):
    callback, sent, log = switch(KILL_SWITCH_TASK="Ensure the worker service", KILL_SWITCH_OCCURRENCE="2",
                                 KILL_SWITCH_SIGNAL="KILL")
    callback.v2_playbook_on_task_start(Task("Ensure the worker service", "ecs_fargate_agent"), False)  # the include
    assert sent == []
    callback.v2_playbook_on_task_start(Task("Read the worker service", "ecs_fargate_agent"), False)
    callback.v2_playbook_on_task_start(Task("Ensure the worker service", "ecs_fargate_agent"), False)
    assert sent == [("pid", signal.SIGKILL), ("pid", signal.SIGKILL), ("group", signal.SIGKILL)]  # workers too
    kill = [json.loads(line) for line in log.read_text().splitlines()][-1]
    assert kill["event"] == "kill" and kill["running"] == "Ensure the worker service"


def test_fires_after_the_kth_item_once_and_sigint_goes_to_the_group_only(switch):
    callback, sent, log = switch(KILL_SWITCH_TASK="Create the subnets", KILL_SWITCH_ITEM="2", KILL_SWITCH_SIGNAL="INT")
    task = Task("Create the subnets")
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_item_on_ok(result(task, changed=True))
    assert sent == []
    callback.v2_runner_item_on_ok(result(task, changed=True))
    callback.v2_runner_item_on_ok(result(task, changed=True))
    assert sent == [("group", signal.SIGINT)]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in entries] == ["result", "result", "kill", "result"]
    assert entries[0] == {"event": "result", "role": "vpc", "file": "create.yml", "task": "Create the subnets",
                          "status": "item ok", "changed": True, "item": True}


def test_without_a_task_it_only_logs(switch):
    callback, sent, log = switch(KILL_SWITCH_TASK="")
    task = Task("Create the VPC")
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_on_ok(result(task, changed=True))
    assert sent == [] and json.loads(log.read_text())["changed"] is True


def test_a_process_trigger_waits_for_the_command_then_fires_inside_the_task(switch, monkeypatch):
    callback, sent, log = switch(KILL_SWITCH_TASK="Build and push with podman", KILL_SWITCH_PROCESS="podman push")
    module = switch.module
    commands = iter([[], [["/usr/bin/podman", "build", "--isolation", "chroot", "/w/context"]],
                     [["/usr/bin/podman", "push", "--tls-verify=false", "repo:tag"]]])
    current: list[list[str]] = []

    def step(_seconds):  # each poll sees the next process table
        current[:] = next(commands, current)

    monkeypatch.setattr(module, "_descendants", lambda root: list(range(len(current))))
    monkeypatch.setattr(module, "_command_line", lambda pid: current[pid])
    monkeypatch.setattr(module.time, "sleep", step)
    monkeypatch.setattr(module.os, "killpg", lambda group, sig: sent.append(("group", sig, [c[1] for c in current])))
    monkeypatch.setattr(module.threading, "Thread", lambda target, args, daemon: SimpleNamespace(start=lambda: target(*args)))
    callback.v2_playbook_on_task_start(Task("Build and push with podman", "ecr_image"), False)
    assert sent[-1] == ("group", signal.SIGKILL, ["push"])  # once `podman push` ran: the build alone did not trigger
    kill = [json.loads(line) for line in log.read_text().splitlines()][-1]
    assert kill["event"] == "kill" and kill["running"] == "Build and push with podman"


def test_a_process_trigger_reports_a_miss_when_the_task_ends_first(switch, monkeypatch):
    callback, sent, log = switch(KILL_SWITCH_TASK="Build and push with podman", KILL_SWITCH_PROCESS="podman push")
    module = switch.module
    monkeypatch.setattr(module, "_descendants", lambda root: [])
    monkeypatch.setattr(module.time, "sleep", lambda s: callback.v2_playbook_on_task_start(Task("Record the push"), False))
    monkeypatch.setattr(module.threading, "Thread", lambda target, args, daemon: SimpleNamespace(start=lambda: target(*args)))
    callback.v2_playbook_on_task_start(Task("Build and push with podman", "ecr_image"), False)
    assert sent == []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["event"] == "missed" and entries[-1]["running"] == "Record the push"


def test_matching_takes_the_program_by_base_name_and_the_words_among_its_arguments():
    module = load()
    assert module._matches(["/usr/bin/podman", "push", "x"], ["podman", "push"])
    assert not module._matches(["/usr/bin/podman", "build", "pushy"], ["podman", "push"])
    assert not module._matches(["python", "podman", "push"], ["podman", "push"])
    assert not module._matches([], ["podman", "push"])


def test_the_run_marker_reaches_a_forked_modules_commands_but_not_the_shared_module_server(tmp_path):
    """SIGKILL goes to the commands carrying this run's marker; the module server (started by some run's worker,
    so carrying that run's marker) and its forks serve every run and are left alone."""
    import os
    import subprocess
    import sys
    import time

    module = load()
    marker = f"KILL_SWITCH_RUN=test-{os.getpid()}"
    env = {**os.environ, "KILL_SWITCH_RUN": marker.split("=", 1)[1]}
    fake_server = tmp_path / "forkserver.py"
    fake_server.write_text("import time\ntime.sleep(30)\n")
    command = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    server = subprocess.Popen([sys.executable, str(fake_server), "/tmp/x.sock"], env=env)
    try:
        deadline = time.monotonic() + 10
        while str(fake_server) not in " ".join(module._command_line(server.pid)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        found = module._marked(marker.encode())
        assert command.pid in found and server.pid not in found
    finally:
        command.kill()
        server.kill()
