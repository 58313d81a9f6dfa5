#!/usr/bin/env python3
"""The local stack's Fargate stand-in: runs the emulator's ECS tasks as buildah containers.

ECS's control plane is the emulator (moto with scripts/moto_patches.py: RunTask, StopTask, the service
scheduler, task state-change events); this service stands in for Fargate's container runtime only. It
long-polls the control plane's private channel (POST <emulator>/_local_stack/fargate/poll: answered at
once when a task is to start or stop, else after LOCAL_STACK_FARGATE_POLL_SECONDS) and, for each task
it is given:

  PENDING   `buildah from --pull=always` of each container's image from the registry (an ECR registry
            host <account>.dkr.ecr.<region>.amazonaws.com is the stack's loopback registry; a missing
            tag stops the task: TaskFailedToStart, "CannotPullContainerError: ...")
  RUNNING   `buildah run --isolation chroot --network host` of entryPoint + command (the image's
            ENTRYPOINT/CMD where the task definition has none, as ECS does), the user and working
            directory, with the environment ECS gives a Fargate task: AWS_REGION, AWS_DEFAULT_REGION,
            AWS_EXECUTION_ENV=AWS_ECS_FARGATE, the task role's STS credentials (AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: in place of the container credentials endpoint),
            AWS_ENDPOINT_URL=<the emulator> (in place of AWS's network path), then the task
            definition's environment, RunTask's overrides and the resolved secrets. Output lines go to
            the container's awslogs stream (POST .../fargate/logs) and to this service's log.
  STOPPED   when an essential container exits ("Essential container in task exited",
            EssentialContainerExited, each container's exit code), or when the control plane asks
            (StopTask, the service scheduler): SIGTERM to the container's process, SIGKILL after its
            stopTimeout (default 30 s, capped by LOCAL_STACK_FARGATE_MAX_STOP_TIMEOUT, default 10 s).
Every state is reported with POST .../fargate/report. Buildah containers are always removed; the ones
of this stack instance (LOCAL_STACK_FARGATE_NAME_PREFIX) a crashed run left behind are removed at
start. SIGTERM (local_stack.py down) stops every task, reports it STOPPED and exits.

Environment:
  LOCAL_STACK_FARGATE_CONTROL_PLANE   the emulator's URL (required): the channel, and tasks' AWS_ENDPOINT_URL
  LOCAL_STACK_ECR_REGISTRY_URL        the loopback registry (http://host:port): ECR hosts map to it, no TLS
  CONTAINERS_STORAGE_CONF             the image storage buildah uses (the stack's <state>/containers)
  LOCAL_STACK_FARGATE_STATE           folder for the record of running containers (default: current folder)
  LOCAL_STACK_FARGATE_NAME_PREFIX     prefix of this instance's buildah container names (default fargate-)
  LOCAL_STACK_FARGATE_POLL_SECONDS    longest wait of one poll (default 1; also the retry delay after an error)
  LOCAL_STACK_FARGATE_MAX_STOP_TIMEOUT  cap of a container's stopTimeout in seconds (default 10)

Usage: fargate_standin.py [--host 127.0.0.1] [--port 5003]    health: GET /health (200 after a recent poll)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BUILDAH = shutil.which("buildah") or "/usr/bin/buildah"
CHANNEL = "/_local_stack/fargate"
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# What buildah itself prints about the command it ran (not the container's output).
BUILDAH_LINE = re.compile(r"^(subprocess exited (with status \d+|on .+)|Error: exit status \d+)$")
START_FAILURE = re.compile(r"process failed to start with error: (.*?)(process exited with error:.*)?$")
# Go's names of the signals (syscall.Signal.String()) buildah reports as "subprocess exited on <name>".
SIGNALS = {"hangup": 1, "interrupt": 2, "quit": 3, "illegal instruction": 4, "trace/breakpoint trap": 5,
           "aborted": 6, "bus error": 7, "floating point exception": 8, "killed": 9, "user defined signal 1": 10,
           "segmentation fault": 11, "user defined signal 2": 12, "broken pipe": 13, "alarm clock": 14,
           "terminated": 15}
ESSENTIAL_EXITED = "Essential container in task exited"
SHUTDOWN_REASON = "Task stopped: its container host stopped (the local Fargate stand-in shut down)"


def log(message: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    print(f"{stamp} {message}", flush=True)


# --- pure helpers (unit-tested) ----------------------------------------------------------------------


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def container_name(prefix: str, task_arn: str, name: str) -> str:
    """The buildah container of one task container: prefix + task id + container name."""
    return prefix + task_id(task_arn) + "-" + re.sub(r"[^a-zA-Z0-9_.-]", "_", name)


def registry_reference(image: str, loopback_registry: str) -> tuple[str, bool]:
    """(reference to pull, verify TLS) for an image of a task definition.

    ECR's registry side is the stack's loopback registry: an ECR registry host is replaced by it, and
    the loopback registry is plain HTTP. Any other registry is pulled as it is (offline: it fails as a
    Fargate task's pull would)."""
    loopback = loopback_registry.split("://", 1)[-1].rstrip("/")
    host, slash, rest = image.partition("/")
    if slash and loopback and ECR_HOST.match(host):
        return f"{loopback}/{rest}", False
    if slash and loopback and host in (loopback, loopback.replace("127.0.0.1", "localhost"),
                                       loopback.replace("localhost", "127.0.0.1")):
        return image, False
    return image, True


def resolve_argv(container: dict[str, Any], image_config: dict[str, Any]) -> list[str]:
    """The process of a container, as ECS (Docker's rules) makes it: the task definition's entryPoint
    replaces the image's ENTRYPOINT and then drops the image's CMD; its command replaces the CMD."""
    entry_point = container.get("entryPoint")
    command = container.get("command")
    if entry_point:
        return list(entry_point) + list(command or [])
    return list(image_config.get("Entrypoint") or []) + list(command or image_config.get("Cmd") or [])


def task_environment(spec: dict[str, Any], container: dict[str, Any], endpoint: str) -> dict[str, str]:
    """What a Fargate task's container sees, lowest precedence first: what ECS adds for every task
    (region, execution environment, the task role's credentials, and here the emulator's endpoint),
    then the task definition's environment, RunTask's overrides and the secrets (resolved by the
    control plane into container["environment"])."""
    env = {"AWS_REGION": spec["region"], "AWS_DEFAULT_REGION": spec["region"],
           "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE", "AWS_ENDPOINT_URL": endpoint}
    credentials = spec.get("credentials")
    if credentials:
        env.update({"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                    "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                    "AWS_SESSION_TOKEN": credentials["SessionToken"]})
    env.update({key: str(value) for key, value in (container.get("environment") or {}).items()})
    # On Fargate a task's only interface is its ENI, so binding every interface (the worker's health server,
    # PREFECT_WORKER_WEBSERVER_HOST=0.0.0.0) reaches the VPC alone. Here the task shares the host's network,
    # whose stand-in for that ENI is loopback: narrow a wildcard bind to it, so nothing listens beyond this machine.
    return {key: ("127.0.0.1" if value == "0.0.0.0" else value) for key, value in env.items()}


def exit_code(returncode: int, buildah_lines: list[str], signalled: int | None = None) -> int:
    """The container's exit code: buildah's own when the process exited, 128 + signal when killed.

    A process that exits non-zero is reported twice ("subprocess exited with status N" by buildah's
    chroot-exec, which waited for it, then by chroot-runtime, which waited for chroot-exec), one killed
    by a signal as "subprocess exited on <signal>" then "... with status 1". chroot-runtime relays
    chroot-exec's lines through a pipe it stops reading when chroot-exec exits, so now and then the
    inner line is lost (1 stop in 23 under load, measured): a lone "with status 1" then says only
    "exited 1 or killed". `signalled` is the signal the stand-in sent the process (StopTask); when it
    did, the lost line was that signal's, as it is for a process that does not trap it.
    """
    for line in buildah_lines:
        match = re.match(r"subprocess exited on (.+)$", line)
        if match and match.group(1) in SIGNALS:
            return 128 + SIGNALS[match.group(1)]
    if returncode < 0:  # buildah itself was killed (SIGKILL to the whole group after the stop timeout)
        return 128 - returncode
    if signalled and returncode == 1 and buildah_lines.count("subprocess exited with status 1") == 1:
        return 128 + signalled
    return returncode


def start_failure(output: list[str], returncode: int) -> str | None:
    """Why the container's process could not start (buildah could not exec it), or None if it ran."""
    for line in output:
        match = START_FAILURE.search(line)
        if match:
            return match.group(1).strip()
    if returncode == 125:  # buildah refused before running anything (e.g. an unknown user)
        errors = [line.removeprefix("Error: ") for line in output if line.startswith("Error: ")]
        return errors[-1] if errors else "the container runtime could not start the container"
    return None


def hostname(spec: dict[str, Any]) -> str | None:
    address = spec.get("privateIpv4Address")
    if not address:
        return None
    domain = "ec2.internal" if spec.get("region") == "us-east-1" else f"{spec.get('region')}.compute.internal"
    return f"ip-{address.replace('.', '-')}.{domain}"


# --- the control plane's channel ---------------------------------------------------------------------


class ControlPlane:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def post(self, route: str, body: dict[str, Any], timeout: float = 15) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"{self.url}{CHANNEL}/{route}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def post_with_retries(self, route: str, body: dict[str, Any], attempts: int = 20) -> tuple[int, dict[str, Any]]:
        """Retry while the emulator cannot be reached (a report must not be lost to a short outage)."""
        for attempt in range(attempts):
            try:
                return self.post(route, body)
            except (urllib.error.URLError, OSError) as err:
                if attempt == attempts - 1:
                    log(f"control plane unreachable, {route} dropped: {err}")
                    return 0, {}
                time.sleep(min(0.5 * 2 ** attempt, 5))
        return 0, {}


# --- buildah -----------------------------------------------------------------------------------------


def buildah(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([BUILDAH, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def children(pid: int) -> list[int]:
    """Child processes of pid (of any of its threads: Go forks from whichever thread runs)."""
    found: list[int] = []
    try:
        for thread in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(child) for child in (thread / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        return []
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return [part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    except OSError:
        return []


def container_process(buildah_pid: int) -> int | None:
    """The container's own process (what `docker stop` signals): the child buildah-chroot-exec exec'd."""
    pending = [buildah_pid]
    while pending:
        pid = pending.pop()
        parent = cmdline(pid)
        for child in children(pid):
            command = cmdline(child)
            if parent and Path(parent[0]).name == "buildah-chroot-exec":
                if command and Path(command[0]).name != "buildah-chroot-exec":
                    return child
                continue
            pending.append(child)
    return None


class Container:
    """One container of a task: its buildah container and `buildah run` process."""

    def __init__(self, runner: "TaskRunner", spec: dict[str, Any]) -> None:
        self.runner = runner
        self.spec = spec
        self.name = spec["name"]
        self.buildah_name = container_name(runner.agent.prefix, runner.arn, self.name)
        self.essential = spec.get("essential", True)
        self.created = False
        self.image_config: dict[str, Any] = {}
        self.image_digest: str | None = None
        self.runtime_id: str | None = None
        self.proc: subprocess.Popen | None = None
        self.main_pid: int | None = None
        self.signalled: int | None = None  # the signal terminate() sent the container's process
        self.output: list[str] = []  # buildah's own lines and the last lines of output
        self.buildah_lines: list[str] = []
        self.exit_code: int | None = None
        self.reader: threading.Thread | None = None
        self.pending_logs: list[dict[str, Any]] = []
        self.logs_lock = threading.Lock()

    def pull(self) -> str | None:
        """Create the buildah container from the registry's image; the failure message, or None."""
        reference, verify = registry_reference(self.spec["image"], self.runner.agent.registry)
        result = buildah("from", "--pull=always", f"--tls-verify={str(verify).lower()}", "--quiet", "--retry", "1",
                         "--name", self.buildah_name, reference)
        if result.returncode != 0:
            lines = [line.removeprefix("Error: ") for line in result.stderr.splitlines() if line.strip()]
            return (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
                    f"{self.spec['image']}: {lines[-1] if lines else 'pull failed'}")
        self.created = True
        inspected = buildah("inspect", "--type", "container", self.buildah_name)
        if inspected.returncode == 0:
            info = json.loads(inspected.stdout)
            self.image_config = (info.get("OCIv1") or {}).get("config") or {}
            self.image_digest = info.get("FromImageDigest")
            self.runtime_id = info.get("ContainerID")
        return None

    def start(self, env: dict[str, str], host: str | None) -> str | None:
        argv = resolve_argv(self.spec, self.image_config)
        if not argv:
            return "CannotStartContainerError: Error response from daemon: No command specified"
        # The environment goes into the container's configuration, not onto a command line `ps` shows.
        configured = buildah("config", *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
                             self.buildah_name)
        if configured.returncode != 0:
            return f"CannotStartContainerError: {configured.stderr.strip()}"
        command = ["run", "--isolation", "chroot", "--network", "host"]
        if host:
            command += ["--hostname", host]
        if self.spec.get("user"):
            command += ["--user", self.spec["user"]]
        if self.spec.get("workingDirectory"):
            command += ["--workingdir", self.spec["workingDirectory"]]
        self.proc = subprocess.Popen([BUILDAH, *command, self.buildah_name, "--", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.runner.agent.record(self.buildah_name, self.proc.pid)
        self.reader = threading.Thread(target=self.read_output, name=f"out-{self.buildah_name}", daemon=True)
        self.reader.start()
        return None

    def read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if BUILDAH_LINE.match(line) or START_FAILURE.search(line):
                self.buildah_lines.append(line)
                self.output.append(line)
                continue
            self.output = self.output[-50:] + [line]
            log(f"task {self.runner.id} {self.name}: {line}")
            with self.logs_lock:
                self.pending_logs.append({"timestamp": int(time.time() * 1000), "message": line})

    def wait_started(self, timeout: float = 10) -> None:
        """Wait until the process runs (buildah exec'd it) or has already exited."""
        deadline = time.monotonic() + timeout
        while self.proc and self.proc.poll() is None and time.monotonic() < deadline:
            self.main_pid = container_process(self.proc.pid)
            if self.main_pid:
                return
            time.sleep(0.02)

    def finished(self) -> bool:
        if self.proc is None:
            return True
        if self.proc.poll() is None:
            return False
        if self.exit_code is None:
            if self.reader:
                self.reader.join(5)
            self.exit_code = exit_code(self.proc.returncode, self.buildah_lines, self.signalled)
            if self.exit_code and len(self.output) == len(self.buildah_lines):
                log(f"task {self.runner.id} {self.name}: exit {self.exit_code} without any output "
                    f"(buildah: {' | '.join(self.buildah_lines) or 'nothing'})")
        return True

    def start_failure(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        if self.reader:
            self.reader.join(5)
        return start_failure(self.output, self.proc.returncode)

    def terminate(self, timeout: float) -> None:
        """SIGTERM to the container's process, SIGKILL to all of it after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        target = self.main_pid or container_process(self.proc.pid)
        try:
            if target:
                os.kill(target, signal.SIGTERM)
                self.signalled = int(signal.SIGTERM)
            else:
                os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def take_logs(self) -> list[dict[str, Any]]:
        with self.logs_lock:
            events, self.pending_logs = self.pending_logs, []
        return events

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        if self.created:
            result = buildah("rm", self.buildah_name)
            if result.returncode != 0:
                log(f"task {self.runner.id}: buildah rm {self.buildah_name} failed: {result.stderr.strip()}")
        self.runner.agent.unrecord(self.buildah_name)


class TaskRunner(threading.Thread):
    """Runs one task from PENDING to STOPPED and reports each state."""

    def __init__(self, agent: "Agent", spec: dict[str, Any]) -> None:
        super().__init__(name=f"task-{task_id(spec['taskArn'])}", daemon=True)
        self.agent = agent
        self.spec = spec
        self.arn = spec["taskArn"]
        self.id = task_id(self.arn)
        self.containers = [Container(self, container) for container in spec["containers"]]
        self.stop_requested = threading.Event()
        self.stop_reason = ""
        self.shutdown = False

    def request_stop(self, reason: str, shutdown: bool = False) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason, self.shutdown = reason, shutdown
            self.stop_requested.set()

    def report(self, status: str, **fields: Any) -> None:
        body = {"taskArn": self.arn, "lastStatus": status, "at": time.time(), **fields,
                "containers": [{"name": c.name, "runtimeId": c.runtime_id, "imageDigest": c.image_digest,
                                "exitCode": c.exit_code, **({"lastStatus": "RUNNING"} if status == "RUNNING" else {})}
                               for c in self.containers]}
        self.agent.control_plane.post_with_retries("report", body)

    def ship_logs(self) -> None:
        for container in self.containers:
            events = container.take_logs()
            if events:
                try:
                    self.agent.control_plane.post("logs", {"taskArn": self.arn, "container": container.name,
                                                           "events": events})
                except (urllib.error.URLError, OSError) as err:
                    log(f"task {self.id}: {len(events)} log lines of {container.name} lost: {err}")

    def stop_timeout(self, container: Container) -> float:
        cap = 10.0 if self.shutdown else self.agent.max_stop_timeout
        return float(min(int(container.spec.get("stopTimeout") or 30), cap))

    def run(self) -> None:
        try:
            self.lifecycle()
        except Exception as err:  # noqa: BLE001 - a task must always end STOPPED
            log(f"task {self.id}: stand-in error: {err!r}\n{traceback.format_exc()}")
            for container in self.containers:
                container.terminate(0)
            self.report("STOPPED", stoppedReason=f"CannotStartContainerError: {err}", stopCode="TaskFailedToStart")
        finally:
            for container in self.containers:
                container.remove()
            self.agent.forget(self)

    def fail(self, reason: str) -> None:
        log(f"task {self.id}: failed to start: {reason}")
        for container in self.containers:
            container.terminate(0)
            container.finished()
        self.ship_logs()
        self.report("STOPPED", stoppedReason=reason, stopCode="TaskFailedToStart")

    def lifecycle(self) -> None:
        log(f"task {self.id}: starting ({self.spec['taskDefinitionArn'].rsplit('/', 1)[-1]}, group {self.spec['group']})")
        self.report("PENDING", pullStartedAt=time.time())
        for container in self.containers:
            failure = container.pull()
            if failure:
                return self.fail(failure)
        pulled = time.time()
        if self.stop_requested.is_set():
            log(f"task {self.id}: stopped before start: {self.stop_reason}")
            return self.report("STOPPED")
        for container in self.containers:
            env = task_environment(self.spec, container.spec, self.agent.endpoint)
            failure = container.start(env, hostname(self.spec))
            if failure:
                return self.fail(failure)
        for container in self.containers:
            container.wait_started()
        for container in self.containers:
            failure = container.start_failure()
            if failure:
                return self.fail("CannotStartContainerError: ResourceInitializationError: failed to create new "
                                 f"container runtime task: failed to start container process: {failure}: unknown")
        self.report("RUNNING", pullStoppedAt=pulled)
        log(f"task {self.id}: RUNNING ({', '.join(f'{c.name} pid {c.main_pid}' for c in self.containers)})")
        reason, stop_code = self.supervise()
        self.ship_logs()
        codes = ", ".join(f"{c.name} exit {c.exit_code}" for c in self.containers)
        log(f"task {self.id}: STOPPED ({codes}): {reason or self.stop_reason}")
        fields = {"stoppedReason": reason, "stopCode": stop_code} if reason else {}
        if self.shutdown:
            fields = {"stoppedReason": SHUTDOWN_REASON}
        self.report("STOPPED", **fields)

    def supervise(self) -> tuple[str | None, str | None]:
        """Wait for an essential container to exit or for a stop request; stop the rest."""
        last_ship = time.monotonic()
        while True:
            if self.stop_requested.wait(0.2):
                log(f"task {self.id}: stopping: {self.stop_reason}")
                self.stop_all()
                return None, None
            if time.monotonic() - last_ship >= 1:
                self.ship_logs()
                last_ship = time.monotonic()
            exited = [container for container in self.containers if container.finished()]
            if any(container.essential for container in exited) or len(exited) == len(self.containers):
                self.stop_all()
                return ESSENTIAL_EXITED, "EssentialContainerExited"

    def stop_all(self) -> None:
        threads = [threading.Thread(target=container.terminate, args=(self.stop_timeout(container),))
                   for container in self.containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for container in self.containers:
            container.finished()


class Agent:
    def __init__(self) -> None:
        endpoint = os.environ.get("LOCAL_STACK_FARGATE_CONTROL_PLANE", "")
        if not endpoint:
            sys.exit("fargate-standin: LOCAL_STACK_FARGATE_CONTROL_PLANE (the emulator's URL) is required")
        self.endpoint = endpoint.rstrip("/")
        self.control_plane = ControlPlane(self.endpoint)
        self.registry = os.environ.get("LOCAL_STACK_ECR_REGISTRY_URL", "")
        self.prefix = os.environ.get("LOCAL_STACK_FARGATE_NAME_PREFIX", "fargate-")
        self.state = Path(os.environ.get("LOCAL_STACK_FARGATE_STATE") or ".")
        self.poll_seconds = float(os.environ.get("LOCAL_STACK_FARGATE_POLL_SECONDS", "1"))
        self.max_stop_timeout = float(os.environ.get("LOCAL_STACK_FARGATE_MAX_STOP_TIMEOUT", "10"))
        self.runners: dict[str, TaskRunner] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.last_poll = 0.0
        self.records_file = self.state / "fargate-containers.json"

    # Record of running `buildah run` process groups, so a crashed run's processes can be ended.
    def _records(self) -> dict[str, Any]:
        try:
            return json.loads(self.records_file.read_text())
        except (OSError, ValueError):
            return {}

    def record(self, name: str, pid: int) -> None:
        with self.lock:
            records = self._records()
            records[name] = {"pid": pid, "cmd": cmdline(pid)}
            self.records_file.write_text(json.dumps(records))

    def unrecord(self, name: str) -> None:
        with self.lock:
            records = self._records()
            if records.pop(name, None) is not None:
                self.records_file.write_text(json.dumps(records))

    def cleanup(self) -> None:
        """End the processes and remove the buildah containers a previous run of this instance left."""
        for name, record in self._records().items():
            if record.get("cmd") and cmdline(record["pid"]) == record["cmd"]:
                log(f"cleanup: ending leftover {name} (process group {record['pid']})")
                try:
                    os.killpg(record["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.records_file.unlink(missing_ok=True)
        listed = buildah("containers", "--json")
        for item in (json.loads(listed.stdout or "null") or []) if listed.returncode == 0 else []:
            name = item.get("containername") or ""
            if name.startswith(self.prefix):
                log(f"cleanup: removing leftover container {name}")
                buildah("rm", name)

    def forget(self, runner: TaskRunner) -> None:
        with self.lock:
            self.runners.pop(runner.arn, None)

    def poll_once(self) -> None:
        with self.lock:
            held = sorted(self.runners)
        status, answer = self.control_plane.post("poll", {"tasks": held, "wait": self.poll_seconds},
                                                 timeout=self.poll_seconds + 15)
        if status != 200:
            raise RuntimeError(f"poll answered {status}: {answer}")
        self.last_poll = time.time()
        for spec in answer.get("start", []):
            runner = TaskRunner(self, spec)
            with self.lock:
                self.runners[runner.arn] = runner
            runner.start()
        for item in answer.get("stop", []):
            with self.lock:
                runner = self.runners.get(item["taskArn"])
            if runner:
                runner.request_stop(item.get("reason") or "")

    def run(self) -> None:
        self.cleanup()
        log(f"fargate stand-in long-polling {self.endpoint} (at most {self.poll_seconds:g}s a poll) "
            f"(registry {self.registry or '-'}, containers {self.prefix}*)")
        last_error = ""
        while not self.stopping.is_set():
            try:
                self.poll_once()  # a long poll: the control plane answers at once when there is work
                last_error = ""
            except Exception as err:  # noqa: BLE001 - keep polling; say it once
                if str(err) != last_error:
                    log(f"poll failed: {err}")
                    last_error = str(err)
                self.stopping.wait(self.poll_seconds)
        self.shutdown()

    def shutdown(self) -> None:
        with self.lock:
            runners = list(self.runners.values())
        log(f"shutting down: stopping {len(runners)} task(s)")
        for runner in runners:
            runner.request_stop(SHUTDOWN_REASON, shutdown=True)
        deadline = time.monotonic() + 13  # local_stack.py's stop() sends SIGKILL 15 s after SIGTERM
        for runner in runners:
            runner.join(max(0.0, deadline - time.monotonic()))
        log("stopped")

    def healthy(self) -> bool:
        return time.time() - self.last_poll < max(10.0, 5 * self.poll_seconds)


def health_server(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/health":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with agent.lock:
                runners = dict(agent.runners)
            tasks = sorted(task_id(arn) for arn in runners)
            # The main process of each container: what an operator (or a test) kills "from outside".
            processes = {arn: {c.name: c.main_pid for c in runner.containers} for arn, runner in runners.items()}
            body = json.dumps({"status": "ok" if agent.healthy() else "control plane not reachable",
                               "tasks": tasks, "processes": processes, "lastPoll": agent.last_poll}).encode()
            self.send_response(200 if agent.healthy() else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5003)
    args = parser.parse_args()
    agent = Agent()

    def on_signal(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: shutting down")
        agent.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = health_server(agent, args.host, args.port)
    try:
        agent.run()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
