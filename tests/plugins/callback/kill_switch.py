# -*- coding: utf-8 -*-
# Test-only callback: interrupts its own ansible-playbook at a chosen point (tests/integration/test_interrupted_runs.py).
"""Kill the running ansible-playbook at a named task, deterministically, and log what each task did.

Enabled only by the interrupted-run tests (ANSIBLE_CALLBACK_PLUGINS=tests/plugins/callback,
ANSIBLE_CALLBACKS_ENABLED=kill_switch); never shipped (galaxy.yml ignores tests/).

Environment:
  KILL_SWITCH_TASK      name of the task that triggers the kill (exact match; without a role prefix)
  KILL_SWITCH_ITEM      0 (default): when the task starts, before it runs; k > 0: after its k-th loop item
  KILL_SWITCH_OCCURRENCE  n (default 1): the n-th task of that name to start (an include task and the task
                        it includes may share a name)
  KILL_SWITCH_DELAY     seconds to wait after the trigger before the signal (default 0: at task start, at
                        once, before the task runs; after an item, SIGKILL at once, SIGINT 0.2 s later
                        from a timer thread, the item callback holding the run's result handling meanwhile)
  KILL_SWITCH_PROCESS   words, e.g. "podman push": the trigger is then a process of the run, started by the
                        named task, whose command is the first word with all the others among its arguments
                        (a module's own command in flight, however fast the steps before it were)
  KILL_SWITCH_SIGNAL    INT (Ctrl-C at a terminal) or KILL (default KILL: a lost machine or CI runner)
  KILL_SWITCH_LOG       JSON-lines file: one line per task result (role, task, changed, failed) and
                        one {"event": "kill", ...} line when the signal is sent

SIGINT goes to the process group of ansible-playbook (the test starts it in its own session), as Ctrl-C
at a terminal does: ansible-playbook stops its workers itself (they run in sessions of their own and do
not get the terminal's SIGINT). SIGKILL goes to every process of the run, the workers' sessions (the
module in flight, an image build) included, as when a CI runner or a machine is lost: a worker left
orphaned would finish its module behind the next run's back, which is not "the run stopped here".
A module forked by the local_forkserver connection's server is not below its worker: the commands it
started carry this run's KILL_SWITCH_RUN marker and get the SIGKILL too, and the server stops the
module itself as soon as its worker is gone.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: kill_switch
type: aggregate
short_description: Interrupt ansible-playbook at a chosen task (tests only)
description:
  - Sends SIGINT or SIGKILL to the playbook's process group when a named task starts, after its k-th loop
    item, or a delay later. Logs every task result as JSON lines. Configured through KILL_SWITCH_* variables.
requirements:
  - enabled through ANSIBLE_CALLBACKS_ENABLED
"""

import json
import os
import signal
import threading
import time

from ansible.plugins.callback import CallbackBase


def _command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def _matches(argv: list[str], words: list[str]) -> bool:
    """argv runs the program words[0] (by base name) with every other word among its arguments."""
    return bool(argv) and os.path.basename(argv[0]) == words[0] and all(word in argv[1:] for word in words[1:])


def _descendants(root: int) -> list[int]:
    """Every process below `root` (Linux /proc), children first listed after their parents."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    raw = handle.read()
                parents[int(entry)] = int(raw[raw.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _marked(marker: bytes) -> list[int]:
    """Processes started with ``marker`` in their environment: a forked module's subprocesses.

    With the dataops.prefect_fargate.local_forkserver connection a module runs in a fork of the module
    server, not below its worker, but the commands it starts inherit the task's environment (this run's
    marker). The forked module itself is stopped by the server once its worker is gone.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0") and not _is_forkserver(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _is_forkserver(pid: int) -> bool:
    """The module server and its forks keep the environment of the run whose worker started the server:
    they serve every run on the machine (other tests' runs too), so the marker says nothing about them."""
    return any(part.endswith("forkserver.py") for part in _command_line(pid))


def _run_processes() -> list[int]:
    """Every process of this run: its descendants and the commands its forked modules started."""
    mine = _descendants(os.getpid())
    marker = f"KILL_SWITCH_RUN={os.getpid()}".encode()
    return mine + [pid for pid in _marked(marker) if pid not in mine and pid != os.getpid()]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_switch"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task = os.environ.get("KILL_SWITCH_TASK", "")
        self._item = int(os.environ.get("KILL_SWITCH_ITEM", "0") or 0)
        self._delay = float(os.environ.get("KILL_SWITCH_DELAY", "0") or 0)
        self._signal = getattr(signal, "SIG" + os.environ.get("KILL_SWITCH_SIGNAL", "KILL").upper())
        self._log = os.environ.get("KILL_SWITCH_LOG", "")
        self._occurrence = int(os.environ.get("KILL_SWITCH_OCCURRENCE", "1") or 1)
        self._process = os.environ.get("KILL_SWITCH_PROCESS", "").split()
        self._starts = 0
        self._items_seen = 0
        self._armed = bool(self._task)
        os.environ["KILL_SWITCH_RUN"] = str(os.getpid())  # inherited by the workers, so by every task's commands
        self._current = ""

    # ------------------------------------------------------------------ log
    def _write(self, entry: dict) -> None:
        if not self._log:
            return
        with open(self._log, "a", encoding="utf-8") as handle:  # flushed per line: SIGKILL loses nothing written
            handle.write(json.dumps(entry) + "\n")

    def _record(self, result, status: str) -> None:
        task = result._task
        role = task._role.get_name() if task._role else ""
        res = result._result
        path = (task.get_path() or "").rsplit(":", 1)[0]  # the task file: a role's later entry point is its own step
        self._write({"event": "result", "role": role, "file": os.path.basename(path), "task": self._bare_name(task),
                     "status": status, "changed": bool(res.get("changed")), "item": status.startswith("item")})

    # ------------------------------------------------------------------ kill
    def _fire(self, where: str) -> None:
        self._armed = False

        def send() -> None:
            self._write({"event": "kill", "task": self._task, "where": where, "signal": self._signal.name,
                         "delay": self._delay, "running": self._current, "time": time.time()})
            if self._signal == signal.SIGKILL:
                for pid in _run_processes():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            os.killpg(os.getpgid(0), self._signal)

        if self._process:
            threading.Thread(target=self._when_process_runs, args=(send,), daemon=True).start()
            return
        if where == "task start" and self._delay <= 0:
            send()  # before the task is dispatched: deterministic
            return
        if self._signal == signal.SIGKILL and self._delay <= 0:
            # A lost machine has no Ctrl-C handling to spare: killed right here, after exactly k items. (From a
            # timer, a next item or task as fast as a warm module could finish before the signal lands.)
            send()
            return
        # After a loop item: from a timer thread, as a Ctrl-C comes from outside. Sent from inside the item
        # callback, SIGINT would land in ansible-playbook's own result handling, which then hangs until a
        # second Ctrl-C (ansible-core 2.21), a spot no Ctrl-C at a terminal can aim at.
        timer = threading.Timer(max(self._delay, 0.2), send)
        timer.daemon = True
        timer.start()
        # This callback runs in ansible-playbook's results thread: holding it until the signal has landed keeps the
        # task's last results (and so the next task) from being processed first, however fast the next item is;
        # the main thread meanwhile waits for results, where a Ctrl-C at a terminal lands too.
        time.sleep(max(self._delay, 0.2) + 0.5)

    def _when_process_runs(self, send, timeout: float = 1800.0) -> None:
        """Poll the run's processes (every 20 ms) until the wanted command runs, then signal, still inside it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._current != self._task:
                self._write({"event": "missed", "task": self._task, "process": " ".join(self._process),
                             "running": self._current, "time": time.time()})
                return  # the task ended without running the command: the test reports no kill
            if any(_matches(_command_line(pid), self._process) for pid in _run_processes()):
                time.sleep(max(self._delay, 0))
                send()
                return
            time.sleep(0.02)

    @staticmethod
    def _bare_name(task) -> str:
        """The task's own name, without the "role : " prefix get_name() adds."""
        return task.get_name().split(" : ", 1)[-1]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._current = self._bare_name(task)
        if self._current == self._task:
            self._starts += 1
        if self._armed and self._current == self._task and self._starts == self._occurrence and self._item == 0:
            self._fire("task start")

    def v2_runner_item_on_ok(self, result):
        self._record(result, "item ok")
        self._count_item(result)

    def v2_runner_item_on_skipped(self, result):
        self._count_item(result)

    def v2_runner_item_on_failed(self, result):
        self._record(result, "item failed")
        self._count_item(result)

    def _count_item(self, result) -> None:
        if self._armed and self._item > 0 and self._bare_name(result._task) == self._task and self._starts == self._occurrence:
            self._items_seen += 1
            if self._items_seen >= self._item:
                self._fire(f"after item {self._items_seen}")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_playbook_on_stats(self, stats):
        self._write({"event": "stats", "stats": {host: stats.summarize(host) for host in stats.processed}})
