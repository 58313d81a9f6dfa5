"""Test helpers for the local stack: endpoints, emulator reset, request recording, playbook runs.

The suite runs on its own instances of the local stack (LOCAL_STACK_INSTANCE=test, and test2 .. test4 for
the other pytest-xdist workers: own state folders, own ports), never on the demo stack `make demo` leaves deployed. Importing this module pins the
process and every child (ansible-playbook, molecule) to that instance through the environment; a
variable set by the caller (e.g. MOTO_PORT) still wins.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
STACK_SCRIPT = REPO / "scripts" / "local_stack.py"


def _load_stack_script():
    spec = importlib.util.spec_from_file_location("local_stack", STACK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Alone or as pytest-xdist worker gw0 the suite runs on "test", as gw1 on "test2", gw2 on "test3", gw3 on "test4"
# (`make test` runs four workers). The script binds its instance when loaded: load it once to pin the process, then for real.
_NO_INSTANCE = _load_stack_script().pin_test_instance(os.environ)
local_stack_script = _load_stack_script()
os.environ.update(local_stack_script.instance_env())

# Read-only API verbs. Anything else recorded by moto counts as a write.
READ_PREFIXES = ("Describe", "List", "Get", "Head", "Search", "Lookup", "BatchGet")
READ_ACTIONS = {"GetCallerIdentity"}


def moto_url() -> str:
    return f"http://127.0.0.1:{os.environ['MOTO_PORT']}"


def prefect_api_url() -> str:
    return f"http://127.0.0.1:{os.environ['PREFECT_PORT']}/api"


def fixtures_url() -> str:
    return f"http://127.0.0.1:{os.environ['FIXTURES_PORT']}"


def registry_address() -> str:
    return f"127.0.0.1:{os.environ['REGISTRY_PORT']}"


def state_dir() -> Path:
    return Path(os.environ["LOCAL_STACK_STATE"])


def stack(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), str(STACK_SCRIPT), *args], check=check, text=True, capture_output=True)


@contextlib.contextmanager
def host_worker(pool: str, worker_type: str = "process", timeout: float = 90) -> Iterator[subprocess.Popen]:
    """A Prefect worker of `worker_type` polling `pool` as a host process: a harness for module- and role-level tests.

    Not the product's path (that is the ECS worker service on the Fargate stand-in): it runs flow runs
    as host processes against the suite's Prefect server and moto. Stopped (whole process group) on exit.
    """
    env = {**os.environ, **local_stack_script.aws_env(), "PREFECT_API_URL": prefect_api_url(),
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}
    log = (state_dir() / f"host-worker-{pool}.log").open("ab")

    def child_setup() -> None:  # a backgrounded worker ignores SIGINT and hangs on SIGTERM otherwise
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", pool, "--type", worker_type],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=child_setup)
    try:
        deadline = time.monotonic() + timeout
        while not _online_workers(pool):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{worker_type} worker for pool {pool} did not come ONLINE; see {log.name}")
            time.sleep(1)
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
                break
        log.close()


def _online_workers(pool: str) -> list[dict]:
    """The pool's ONLINE workers ([] while the worker has not created the pool yet)."""
    try:
        workers = prefect_api("POST", f"/work_pools/{urllib.parse.quote(pool)}/workers/filter", {})
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return [w for w in workers if w.get("status") == "ONLINE"]


def ensure_stack_up() -> None:
    if _NO_INSTANCE:
        raise RuntimeError(_NO_INSTANCE)
    result = stack("up", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"local stack did not start:\n{result.stdout}\n{result.stderr}")


def _post(path: str) -> bytes:
    req = urllib.request.Request(moto_url() + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def reset_moto() -> None:
    _post("/moto-api/reset")


def prefect_api(method: str, path: str, body: dict | None = None, base: str | None = None):
    """One call to a local Prefect server's REST API (the suite's, unless `base` is given)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request((base or prefect_api_url()) + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    for attempt in range(6):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
            return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            # 503: the server's SQLite was busy (a worker of an earlier test still heartbeating); try again.
            if exc.code != 503 or attempt == 5:
                raise
            time.sleep(1 + attempt)


def api(path: str, method: str = "GET", body: dict | None = None):
    """prefect_api with the path first and GET by default, as the role and module tests read the suite's server."""
    return prefect_api(method, path, body)


def reset_prefect() -> None:
    """Empty the suite's Prefect server (deployments, work pools, flows): "an empty account" on the
    Prefect side, like reset_moto() on the AWS side. Only ever the suite's own instance."""
    if os.environ.get("LOCAL_STACK_INSTANCE") not in local_stack_script.TEST_INSTANCES:
        raise RuntimeError("reset_prefect() only empties a test instance (LOCAL_STACK_INSTANCE="
                           f"{' or '.join(local_stack_script.TEST_INSTANCES)})")
    for kind, key in (("deployments", "id"), ("work_pools", "name"), ("flows", "id")):
        while page := prefect_api("POST", f"/{kind}/filter", {"limit": 200}):  # the API pages results
            for item in page:
                prefect_api("DELETE", f"/{kind}/{urllib.parse.quote(str(item[key]))}")


def reset_account() -> None:
    """An empty AWS account and an empty Prefect workspace on the suite's own stack."""
    reset_moto()
    reset_prefect()


@dataclass
class ApiCall:
    method: str
    url: str
    action: str
    user_agent: str = ""
    body: str = ""

    @property
    def stack_lock(self) -> bool:
        """Taking or releasing the stack lock (playbooks' stack_lock, an SSM parameter): the one write a
        site.yml or teardown.yml makes on a stack that needs nothing."""
        return self.action in ("PutParameter", "DeleteParameter") and "stack-lock" in self.body

    @property
    def from_ecs_task(self) -> bool:
        """Sent from inside an ECS task (the worker, a flow run: botocore says exec-env/AWS_ECS_FARGATE),
        not by the playbook."""
        return "exec-env/AWS_ECS_FARGATE" in self.user_agent

    @property
    def deployer_write(self) -> bool:
        """A write sent by the playbook, not by a worker or flow run an earlier test left running."""
        return self.mutating and not self.from_ecs_task

    @property
    def mutating(self) -> bool:
        if self.action:
            return not (self.action.startswith(READ_PREFIXES) or self.action in READ_ACTIONS)
        return self.method not in ("GET", "HEAD")


def _body(entry: dict) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        import base64

        body = base64.b64decode(body).decode(errors="replace")
    return body if isinstance(body, str) else json.dumps(body)


def _action(entry: dict) -> str:
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    if "x-amz-target" in headers:  # JSON protocol: "AmazonEC2ContainerServiceV20141113.CreateCluster"
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    body = _body(entry)
    query = urllib.parse.urlparse(entry.get("url", "")).query
    for source in (body, query):
        params = urllib.parse.parse_qs(source) if "=" in source else {}
        if "Action" in params:  # query protocol (EC2, IAM, ELBv2, STS)
            return params["Action"][0]
    return ""  # REST protocol (S3, logs REST): judged by HTTP method


class MotoRecorder:
    """Record every request moto receives between start() and calls()."""

    def start(self) -> "MotoRecorder":
        _post("/moto-api/recorder/reset-recording")
        _post("/moto-api/recorder/start-recording")
        return self

    def calls(self) -> list[ApiCall]:
        _post("/moto-api/recorder/stop-recording")
        with urllib.request.urlopen(moto_url() + "/moto-api/recorder/download-recording", timeout=30) as resp:
            lines = resp.read().decode().splitlines()
        calls = []
        for line in lines:
            if line.strip():
                entry = json.loads(line)
                agent = next((v for k, v in entry.get("headers", {}).items() if k.lower() == "user-agent"), "")
                calls.append(ApiCall(entry.get("method", ""), entry.get("url", ""), _action(entry), agent, _body(entry)))
        return calls

    def mutating_calls(self) -> list[ApiCall]:
        """The playbook's writes: a worker left running by an earlier test polls its SQS queue from its ECS task
        (ReceiveMessage, DeleteMessage), which is not the playbook writing."""
        return [call for call in self.calls() if call.deployer_write]


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    def task_results(self) -> list[tuple[str, dict]]:
        out = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for result in task.get("hosts", {}).values():
                    out.append((task["task"]["name"], result))
        return out

    @property
    def changed_tasks(self) -> list[str]:
        return [name for name, result in self.task_results() if result.get("changed")]

    @property
    def failed_messages(self) -> list[str]:
        """Messages of failed tasks, including the failed items of looped tasks."""
        out = []
        for name, result in self.task_results():
            if not result.get("failed") or result.get("ignore_errors"):
                continue
            out.append(f"{name}: {result.get('msg')}")
            out += [f"{name} (item): {item.get('msg')}" for item in result.get("results", [])
                    if item.get("failed") or item.get("evaluated_to") is False]
        return out

    def stats(self, host: str = "localhost") -> dict:
        return self.data.get("stats", {}).get(host, {})

    def facts(self, key: str):
        """Last value of a fact set with set_fact (searched in task results)."""
        value = None
        for _, result in self.task_results():
            value = result.get("ansible_facts", {}).get(key, value)
        return value


def run_playbook(playbook: str, inventory: str = "inventories/local", extra_vars: dict | None = None,
                 check: bool = False, diff: bool = False, tags: str | None = None,
                 skip_tags: str | None = None, env: dict | None = None, timeout: int = 1200) -> PlaybookRun:
    cmd = [str(VENV_BIN / "ansible-playbook"), playbook, "-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if tags:
        cmd += ["--tags", tags]
    if skip_tags:
        cmd += ["--skip-tags", skip_tags]
    run_env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run(cmd, cwd=REPO, env=run_env, text=True, capture_output=True, timeout=timeout)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = {}
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data)


def failure_messages(playbook_run: PlaybookRun) -> str:
    """Messages of failed tasks, including the per-item messages of failed loops, one a line."""
    out = []
    for name, result in playbook_run.task_results():
        if result.get("failed"):
            out.append(f"{name}: {result.get('msg', '')}")
            out += [str(item.get("msg", "")) for item in result.get("results", [])
                    if item.get("failed") or item.get("evaluated_to") is False]
    return "\n".join(out)


def deploy(playbook: str, extra_vars: dict | None = None) -> PlaybookRun:
    """What a module-scoped "deployed" fixture does: empty the emulator, run the playbook, insist it converged."""
    reset_moto()
    run = run_playbook(playbook, extra_vars=extra_vars)
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    return run
