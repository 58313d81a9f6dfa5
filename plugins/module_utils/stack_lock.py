# -*- coding: utf-8 -*-
# Apache-2.0
"""The stack lock: one site.yml or teardown.yml at a time per stack, across machines.

The lock is an SSM parameter (String, standard tier, free) created with ``PutParameter(Overwrite=false)``:
AWS creates it only when no parameter of that name exists, atomically, so of two runs that reach it at
the same moment exactly one gets it; the other gets ``ParameterAlreadyExists`` and reads who holds it.
It needs nothing of the stack to exist first, and the deployer only needs ``ssm:PutParameter``,
``ssm:GetParameter`` and ``ssm:DeleteParameter`` on ``parameter/<stack>/*``.

The value is a JSON record of the holder (run id, user, host, ansible-playbook pid and its start time,
the AWS principal that took it, playbook, when it started and when the lock expires). A held lock is taken over ("broken") only when

* it has expired (``ttl_seconds`` after it was taken), or
* it was taken on this host by an ansible-playbook process that no longer exists (Ctrl-C, kill -9, a
  crash: the next run on the same machine carries on without waiting), or
* the caller asks for it (``-e stack_lock_break=true``, after checking that no run is going on).

A takeover re-reads the parameter and deletes it only if it still holds the version it judged stale,
then competes for the lock again with ``Overwrite=false``, so two runs breaking the same stale lock
still end with one holder. Everything AWS-specific goes through the client given to ``StackLock``, so
the logic is tested with a fake client (tests/unit/plugins/module_utils/test_stack_lock.py).
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import time
import uuid


class LockHeld(Exception):
    """The lock is held by another run and could not be taken within the wait."""

    def __init__(self, holder: dict, name: str, waited: float):
        self.holder = holder
        self.name = name
        self.waited = waited
        super().__init__(describe_held(holder, name, waited))


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_held(holder: dict, name: str, waited: float = 0) -> str:
    """The message a run gets when another run holds the lock: who, since when, until when, what to do."""
    who = holder.get("owner") or "an unknown run"
    if holder.get("principal"):
        who += f" as {holder['principal']}"
    since = _iso(holder["started"]) if isinstance(holder.get("started"), (int, float)) else "an unknown time"
    until = _iso(holder["expires"]) if isinstance(holder.get("expires"), (int, float)) else "never"
    waited_text = f" after waiting {int(waited)} s" if waited else ""
    return (
        f"Another run holds the stack lock {name}{waited_text}: {who} ({holder.get('playbook') or 'a playbook'}) since {since} "
        f"(expires {until}). Two runs at once could create resources twice; this run changed nothing. Wait for it "
        f"(-e stack_lock_wait_seconds=600), or if that run is certainly gone (a CI job cancelled on another machine), "
        f"rerun with -e stack_lock_break=true."
    )


# ---------------------------------------------------------------------------------------------- who we are
def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            raw = handle.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return raw[raw.rindex(")") + 2:].split()


def process_start(pid: int) -> str:
    """The start time of a process in clock ticks since boot ('' when unknown): with the pid, it tells a
    live process from a later one that reused the pid."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def playbook_process(pid: int | None = None) -> int | None:
    """The outermost ansible-playbook process above `pid` (this process by default), or None where /proc
    cannot tell (not Linux, or not run by ansible-playbook). Its workers are forks with the same command
    line, so the outermost one is the run itself.

    A module run by the local_forkserver connection is a fork of the module server (a daemon, below no
    run), not a child of its worker: the walk then goes on from the worker, which the server names in
    DATAOPS_FORKSERVER_CLIENT_PID."""
    if pid is None:
        found = _outermost_playbook(os.getpid())
        client = os.environ.get("DATAOPS_FORKSERVER_CLIENT_PID", "")
        if found is None and client.isdigit():
            found = _outermost_playbook(int(client))
        return found
    return _outermost_playbook(pid)


def _outermost_playbook(pid: int) -> int | None:
    found = None
    for _ in range(64):
        fields = _proc_stat(pid)
        if not fields:
            break
        if "ansible-playbook" in _cmdline(pid):
            found = pid
        parent = int(fields[1])
        if parent <= 1:
            break
        pid = parent
    return found


def process_alive(pid: int, start: str) -> bool:
    """Whether the process `pid` that started at `start` still runs on this host."""
    if not os.path.exists(f"/proc/{pid}"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True  # no /proc: the pid exists, assume it is the same process
    return not start or process_start(pid) == start


def holder_record(ttl_seconds: int, playbook: str, now: float, run_id: str = "", principal: str = "") -> dict:
    """The JSON record a run writes into the lock (``principal``: the caller's AWS ARN)."""
    pid = playbook_process()
    host = socket.gethostname()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        user = str(os.getuid())
    return {
        "id": run_id or uuid.uuid4().hex,
        "owner": f"{user}@{host}" + (f" pid {pid}" if pid else ""),
        "host": host,
        "principal": principal,
        "pid": pid,
        "pid_start": process_start(pid) if pid else "",
        "playbook": playbook,
        "started": now,
        "expires": now + ttl_seconds if ttl_seconds > 0 else None,
    }


# ---------------------------------------------------------------------------------------------- the lock
class StackLock:
    """Take, inspect and release the lock parameter `name` with an SSM client (boto3's, or a fake).

    `client` needs put_parameter, get_parameter and delete_parameter and raises exceptions whose
    ``response['Error']['Code']`` names the AWS error (botocore's ClientError does).
    """

    def __init__(self, client, name: str, now=time.time, sleep=time.sleep, alive=process_alive,
                 hostname=socket.gethostname):
        self.client = client
        self.name = name
        self.now = now
        self.sleep = sleep
        self.alive = alive
        self.hostname = hostname

    # ---- reads
    def read(self) -> tuple[dict, int] | None:
        """(holder record, parameter version), or None when nobody holds the lock."""
        try:
            parameter = self.client.get_parameter(Name=self.name)["Parameter"]
        except Exception as exc:  # pylint: disable=broad-except
            if _code(exc) == "ParameterNotFound":
                return None
            raise
        try:
            holder = json.loads(parameter["Value"])
        except ValueError:
            holder = {"owner": f"unreadable lock value {parameter['Value'][:80]!r}"}
        return (holder if isinstance(holder, dict) else {"owner": repr(holder)[:80]}), int(parameter.get("Version", 0))

    def stale_reason(self, holder: dict, break_lock: bool = False) -> str:
        """Why a held lock may be taken over ('' when it may not)."""
        if break_lock:
            return "stack_lock_break=true"
        expires = holder.get("expires")
        if isinstance(expires, (int, float)) and self.now() >= expires:
            return f"it expired at {_iso(expires)}"
        pid = holder.get("pid")
        if isinstance(pid, int) and holder.get("host") == self.hostname() and not self.alive(pid, holder.get("pid_start", "")):
            return f"its run (pid {pid} on this host) is gone"
        return ""

    # ---- writes
    def _create(self, holder: dict) -> bool:
        try:
            self.client.put_parameter(Name=self.name, Value=json.dumps(holder, sort_keys=True), Type="String",
                                      Overwrite=False, Description="Stack lock: one site.yml/teardown.yml at a time")
        except Exception as exc:  # pylint: disable=broad-except
            if _code(exc) == "ParameterAlreadyExists":
                return False
            raise
        return True

    def _delete_if_held_by(self, holder_id, version: int) -> None:
        """Delete the lock only while it still holds that record (a new parameter starts at version 1 again,
        so the holder's id decides, the version only guards against an in-place overwrite)."""
        current = self.read()
        if current is None or current[0].get("id") != holder_id or current[1] != version:
            return  # someone else released or took it over meanwhile: compete again
        self._delete()

    def _delete(self) -> None:
        try:
            self.client.delete_parameter(Name=self.name)
        except Exception as exc:  # pylint: disable=broad-except
            if _code(exc) != "ParameterNotFound":
                raise

    def acquire(self, holder: dict, wait_seconds: float = 0, poll_seconds: float = 5, break_lock: bool = False,
                settle_seconds: float = 2) -> dict:
        """Take the lock for `holder` (a record with a unique 'id'). Returns {'broken': [takeovers], 'waited': s};
        raises LockHeld when another run holds it for longer than `wait_seconds`.

        After a takeover the lock is read again `settle_seconds` later: two runs that judged the same lock
        stale may both have deleted and re-created it; only the one whose record is there goes on."""
        started = self.now()
        broken: list[dict] = []
        while True:
            if self._create(holder):
                if broken:
                    self.sleep(settle_seconds)
                    current = self.read()
                    if current is None or current[0].get("id") != holder.get("id"):
                        continue  # another run's takeover won: compete again (it is not stale)
                return {"broken": broken, "waited": round(self.now() - started, 1)}
            current = self.read()
            if current is None:
                continue  # released between our create and our read: try again at once
            other, version = current
            if other.get("id") == holder.get("id"):
                return {"broken": broken, "waited": round(self.now() - started, 1)}  # ours already (a retried task)
            reason = self.stale_reason(other, break_lock and not broken)
            if reason:
                broken.append({"holder": other, "reason": reason})
                self._delete_if_held_by(other.get("id"), version)
                continue
            waited = self.now() - started
            if waited >= wait_seconds:
                raise LockHeld(other, self.name, waited)
            self.sleep(max(0.1, min(poll_seconds, wait_seconds - waited)))

    def release(self, run_id: str) -> str:
        """Delete the lock if run `run_id` holds it. Returns 'released', 'absent' or 'held by another run'."""
        current = self.read()
        if current is None:
            return "absent"
        holder, version = current
        if holder.get("id") != run_id:
            return "held by another run"
        # The record was read just now: no second read before the delete (a takeover needs the lock expired or
        # its run gone, and this run is alive and releasing).
        self._delete()
        return "released"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")
