"""Test helpers for the local stack: endpoints, emulator reset, request recording, playbook runs."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
STACK_SCRIPT = REPO / "scripts" / "local_stack.py"

# Read-only API verbs. Anything else recorded by moto counts as a write.
READ_PREFIXES = ("Describe", "List", "Get", "Head", "Search", "Lookup", "BatchGet")
READ_ACTIONS = {"GetCallerIdentity"}


def moto_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}"


def prefect_api_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api"


def fixtures_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('FIXTURES_PORT', '5002')}"


def registry_address() -> str:
    return f"127.0.0.1:{os.environ.get('REGISTRY_PORT', '5001')}"


def stack(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), str(STACK_SCRIPT), *args], check=check, text=True, capture_output=True)


def ensure_stack_up() -> None:
    result = stack("up", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"local stack did not start:\n{result.stdout}\n{result.stderr}")


def _post(path: str) -> bytes:
    req = urllib.request.Request(moto_url() + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def reset_moto() -> None:
    _post("/moto-api/reset")


@dataclass
class ApiCall:
    method: str
    url: str
    action: str

    @property
    def mutating(self) -> bool:
        if self.action:
            return not (self.action.startswith(READ_PREFIXES) or self.action in READ_ACTIONS)
        return self.method not in ("GET", "HEAD")


def _action(entry: dict) -> str:
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    if "x-amz-target" in headers:  # JSON protocol: "AmazonEC2ContainerServiceV20141113.CreateCluster"
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        import base64

        body = base64.b64decode(body).decode(errors="replace")
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
                calls.append(ApiCall(entry.get("method", ""), entry.get("url", ""), _action(entry)))
        return calls

    def mutating_calls(self) -> list[ApiCall]:
        return [call for call in self.calls() if call.mutating]


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
