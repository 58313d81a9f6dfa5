#!/usr/bin/env python3
"""Start, stop and inspect the local stack: everything `inventories/local` talks to, on loopback.

Services (each with a health check, a pid file and a log under the state folder):
  moto      AWS API emulator               MOTO_PORT       (default 5000)
  prefect   Prefect server, SQLite          PREFECT_PORT    (default 4200)
  fixtures  recorded CoinMarketCap + FX     FIXTURES_PORT   (default 5002)
  registry  container registry (Debian)     REGISTRY_PORT   (default 5001)
  worker    Prefect process worker          WORKER_PORT     (default 8080), started on demand
and, when podman is installed, a stand-in for the Prefect base image (nothing can be pulled here) in
image storage under the state folder, so the ecr_image role builds the real flow_app/Dockerfile.

Usage: local_stack.py up [SERVICE ...] | down | status | reset | env | clean | worker-start --pool P | worker-stop

Two instances never share a port or a state folder (LOCAL_STACK_INSTANCE, default "demo"):
  demo  what `make up` / `make demo` / `make site` use: state <repo>/.local-stack, the ports above
  test  what the test suite uses:  state <repo>/.local-stack-test, each port + 100 (worker 8180)
so `make test` never touches (or wipes) a deployed demo stack. Each variable still overrides one value.

Only processes recorded in our pid files are ever stopped, never "by name".
State folder: LOCAL_STACK_STATE (default: the instance's folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# Per instance: state folder and default ports. The test suite's instance is disjoint from the demo's.
INSTANCES = {
    "demo": {"state": ".local-stack", "MOTO_PORT": 5000, "PREFECT_PORT": 4200, "FIXTURES_PORT": 5002,
             "REGISTRY_PORT": 5001, "WORKER_PORT": 8080},
    "test": {"state": ".local-stack-test", "MOTO_PORT": 5100, "PREFECT_PORT": 4300, "FIXTURES_PORT": 5102,
             "REGISTRY_PORT": 5101, "WORKER_PORT": 8180},
}
INSTANCE = os.environ.get("LOCAL_STACK_INSTANCE") or "demo"
if INSTANCE not in INSTANCES:
    sys.exit(f"local-stack: LOCAL_STACK_INSTANCE={INSTANCE!r} is not one of {', '.join(INSTANCES)}")
STATE = Path(os.environ.get("LOCAL_STACK_STATE") or REPO / INSTANCES[INSTANCE]["state"]).resolve()


def port(name: str) -> int:
    value = os.environ.get(name) or str(INSTANCES[INSTANCE][name])
    if not value.isdigit() or not 0 < int(value) < 65536:
        sys.exit(f"local-stack: {name}={value!r} is not a TCP port (1-65535)")
    return int(value)


PORTS = {
    "moto": port("MOTO_PORT"),
    "prefect": port("PREFECT_PORT"),
    "fixtures": port("FIXTURES_PORT"),
    "registry": port("REGISTRY_PORT"),
    "worker": port("WORKER_PORT"),
}


def instance_env() -> dict[str, str]:
    """The variables that pin a process (ansible-playbook, pytest, molecule) to this instance."""
    return {"LOCAL_STACK_INSTANCE": INSTANCE, "LOCAL_STACK_STATE": str(STATE),
            **{f"{name.upper()}_PORT": str(number) for name, number in PORTS.items()}}
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@dataclass
class Service:
    name: str
    health_path: str
    timeout: float
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return PORTS[self.name]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pidfile(self) -> Path:
        return STATE / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return STATE / f"{self.name}.log"


def prefect_env() -> dict[str, str]:
    home = STATE / "prefect"
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_API_URL": f"http://{HOST}:{PORTS['prefect']}/api",
        "PREFECT_UI_API_URL": f"http://{HOST}:{PORTS['prefect']}/api",
        "PREFECT_API_URL": f"http://{HOST}:{PORTS['prefect']}/api",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


def aws_env() -> dict[str, str]:
    """What a local process needs to reach the emulator through boto3's default chain."""
    return {
        "AWS_ENDPOINT_URL": f"http://{HOST}:{PORTS['moto']}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


SERVICES = [
    Service(
        "moto",
        # The dashboard page: /moto-api/data.json gets slow with state and can 500 after some deletes.
        "/moto-api/",
        30,
        {
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
            "MOTO_ECS_SERVICE_RUNNING": os.environ.get("MOTO_ECS_SERVICE_RUNNING", "2"),
            "MOTO_RECORDER_FILEPATH": str(STATE / "moto_recording.jsonl"),
            "LOCAL_STACK_ECR_REGISTRY_URL": f"http://{HOST}:{PORTS['registry']}",
        },
    ),
    Service("prefect", "/api/health", 90, prefect_env()),
    Service("fixtures", "/healthz", 20),
    Service("registry", "/v2/", 20),
]
WORKER = Service("worker", "/health", 60)


def command(svc: Service, pool: str | None = None) -> list[str]:
    if svc.name == "moto":
        return [sys.executable, str(REPO / "scripts" / "moto_server.py"), "-H", HOST, "-p", str(svc.port)]
    if svc.name == "prefect":
        return [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(svc.port)]
    if svc.name == "fixtures":
        return [sys.executable, str(REPO / "scripts" / "fixture_server.py"), "--host", HOST, "--port", str(svc.port)]
    if svc.name == "registry":
        return [REGISTRY_BIN, "serve", str(registry_config())]
    if svc.name == "worker":
        return [str(BIN / "prefect"), "worker", "start", "--pool", pool or "", "--type", "process", "--with-healthcheck"]
    raise ValueError(svc.name)


def registry_config() -> Path:
    """A loopback-only registry config with storage under the state folder."""
    path = STATE / "registry" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {STATE / 'registry' / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {HOST}:{PORTS['registry']}\n"
    )
    return path


def healthy(svc: Service) -> bool:
    try:
        with urllib.request.urlopen(svc.url + svc.health_path, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_in_use(port_number: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port_number)) == 0


def read_pid(svc: Service) -> dict | None:
    try:
        return json.loads(svc.pidfile.read_text())
    except (OSError, ValueError):
        return None


def alive(record: dict | None) -> bool:
    """True when the recorded pid is running the very command we started (guards against pid reuse)."""
    if not record:
        return False
    try:
        cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    running = [c.decode(errors="replace") for c in cmdline if c]
    cmd = record["cmd"]
    # Scripts with a shebang show up as "<interpreter> <script> args...": match the tail.
    tail_matches = len(running) >= len(cmd) and running[len(running) - len(cmd) + 1:] == cmd[1:]
    return tail_matches and any(Path(part).name == Path(cmd[0]).name for part in running)


def start(svc: Service, pool: str | None = None, extra_env: dict[str, str] | None = None) -> str:
    record = read_pid(svc)
    if alive(record) and (pool is None or record.get("pool") == pool):
        if wait_healthy(svc, record):
            return "reused"
        # Never restart silently: for moto that would wipe the emulated account.
        sys.exit(f"local-stack: {svc.name} (pid {record['pid']}) is running but not healthy at "
                 f"{svc.url}{svc.health_path}; see {svc.logfile}, or `make down && make up` to restart it.")
    if alive(record):  # the worker, serving another pool
        stop(svc)
    if port_in_use(svc.port):
        sys.exit(
            f"local-stack: port {HOST}:{svc.port} for {svc.name} is taken by a process this stack did not "
            f"start. Stop it, or choose another port with {svc.name.upper()}_PORT=<port>."
        )
    if svc.name == "registry" and not Path(REGISTRY_BIN).exists():
        return "skipped (docker-registry not installed: apt-get install docker-registry)"
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "prefect").mkdir(exist_ok=True)
    env = {**os.environ, **svc.env, **(extra_env or {})}
    cmd = command(svc, pool)
    log = svc.logfile.open("ab")

    def child_setup() -> None:
        # A backgrounded process inherits SIGINT=ignored; restore defaults so it stops cleanly.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=REPO, start_new_session=True, preexec_fn=child_setup,
    )
    record = {"pid": proc.pid, "cmd": cmd, "port": svc.port, "pool": pool}
    svc.pidfile.write_text(json.dumps(record))
    if not wait_healthy(svc, record):
        tail = svc.logfile.read_text(errors="replace")[-2000:]
        stop(svc)
        sys.exit(f"local-stack: {svc.name} did not become healthy at {svc.url}{svc.health_path} "
                 f"within {svc.timeout:.0f}s. Last log lines ({svc.logfile}):\n{tail}")
    return f"started (pid {proc.pid})"


def wait_healthy(svc: Service, record: dict, quiet: bool = False) -> bool:
    deadline = time.monotonic() + (5 if quiet else svc.timeout)
    while time.monotonic() < deadline:
        if healthy(svc):
            return True
        if not alive(record):
            return False
        time.sleep(0.3)
    return False


def stop(svc: Service) -> str:
    record = read_pid(svc)
    if not record:
        return "not running"
    if not alive(record):
        svc.pidfile.unlink(missing_ok=True)
        return "not running (stale pid file removed)"
    pid = record["pid"]
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)  # the service and its children (own session, started by us)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(record):
            time.sleep(0.2)
        if not alive(record):
            break
    svc.pidfile.unlink(missing_ok=True)
    return f"stopped (pid {pid})"


BASE_IMAGE = os.environ.get("LOCAL_BASE_IMAGE", "localhost/prefect-standin:3.9.1-python3.12")
CONTAINERS = STATE / "containers"


def ensure_base_image() -> str:
    """Import the stand-in base image into the stack's image storage (once)."""
    podman = shutil.which("podman")
    if not podman:
        return "skipped (podman not installed: apt-get install podman)"
    CONTAINERS.mkdir(parents=True, exist_ok=True)
    conf = CONTAINERS / "base-storage.conf"
    # Same layout the ecr_image role writes for ecr_image_storage_dir=<state>/containers.
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{CONTAINERS}/storage"\nrunroot = "{CONTAINERS}/run"\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    if subprocess.run([podman, "image", "exists", BASE_IMAGE], env=env, capture_output=True).returncode == 0:
        return "reused"
    sys.path.insert(0, str(REPO))
    from tests.fixtures.base_image.make_base import build_base_image

    build_base_image(conf, BASE_IMAGE, CONTAINERS / "work")
    return "imported"


def cmd_up(args: argparse.Namespace) -> None:
    wanted = args.services or [svc.name for svc in SERVICES] + ["base"]
    for svc in SERVICES:
        if svc.name in wanted:
            print(f"  {svc.name:<9} {svc.url:<24} {start(svc)}", flush=True)
    if "base" in wanted:
        print(f"  {'base':<9} {BASE_IMAGE:<24} {ensure_base_image()}", flush=True)


def cmd_down(_: argparse.Namespace) -> None:
    for svc in [WORKER, *reversed(SERVICES)]:
        print(f"  {svc.name:<9} {stop(svc)}", flush=True)


def cmd_status(_: argparse.Namespace) -> None:
    ok = True
    for svc in [*SERVICES, WORKER]:
        record = read_pid(svc)
        if alive(record):
            state = "healthy" if healthy(svc) else "UNHEALTHY"
            ok &= state == "healthy"
            extra = f" pool={record['pool']}" if record.get("pool") else ""
            print(f"  {svc.name:<9} {svc.url:<24} pid {record['pid']:<7} {state}{extra}")
        else:
            print(f"  {svc.name:<9} {svc.url:<24} stopped")
            ok &= svc is WORKER or (svc.name == "registry" and not Path(REGISTRY_BIN).exists())
    sys.exit(0 if ok else 1)


def cmd_reset(_: argparse.Namespace) -> None:
    req = urllib.request.Request(f"http://{HOST}:{PORTS['moto']}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    print("  moto      state reset")


def cmd_clean(args: argparse.Namespace) -> None:
    """Stop everything, release the image storage's mounts and remove the state folder."""
    cmd_down(args)
    # containers/storage's overlay driver bind-mounts its own folder (and layers when mounted): a
    # plain `rm -rf` then fails with "Device or resource busy".
    mounts = [line.split()[1].encode().decode("unicode_escape") for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m == str(STATE) or m.startswith(f"{STATE}/")), reverse=True):
        subprocess.run(["umount", "-l", target], check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    print(f"  removed   {STATE}" if not STATE.exists() else f"  could not remove {STATE} completely")


def cmd_env(_: argparse.Namespace) -> None:
    for key, value in {**instance_env(), **aws_env(), "PREFECT_API_URL": prefect_env()["PREFECT_API_URL"]}.items():
        print(f"export {key}={value}")


def cmd_worker_start(args: argparse.Namespace) -> None:
    env = {**prefect_env(), **aws_env(),
           "PREFECT_WORKER_WEBSERVER_HOST": HOST,
           "PREFECT_WORKER_WEBSERVER_PORT": str(PORTS["worker"]),
           "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}
    for item in args.env or []:
        key, _, value = item.partition("=")
        env[key] = value
    print(f"  worker    pool={args.pool} {start(WORKER, pool=args.pool, extra_env=env)}", flush=True)


def cmd_worker_stop(_: argparse.Namespace) -> None:
    print(f"  worker    {stop(WORKER)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start (or reuse) the services, then the base image")
    up.add_argument("services", nargs="*", choices=[svc.name for svc in SERVICES] + ["base"],
                    help="only these (default: all)")
    up.set_defaults(func=cmd_up)
    for name, func in (("down", cmd_down), ("status", cmd_status),
                       ("reset", cmd_reset), ("env", cmd_env), ("worker-stop", cmd_worker_stop),
                       ("clean", cmd_clean)):
        sub.add_parser(name).set_defaults(func=func)
    worker = sub.add_parser("worker-start", help="start (or reuse) the local process worker")
    worker.add_argument("--pool", required=True)
    worker.add_argument("--env", action="append", help="extra KEY=VALUE for the worker environment")
    worker.set_defaults(func=cmd_worker_start)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
