#!/usr/bin/env python3
"""Start, stop and inspect the local stack: everything `inventories/local` talks to, on loopback.

Services (each with a health check, a pid file and a log under the state folder):
  postgres  PostgreSQL 15 (Debian): the     POSTGRES_PORT   (default 5004, 127.0.0.1 only)
            database engine of the emulator's RDS PostgreSQL instances (scripts/moto_patches_rds.py)
  moto      AWS API emulator               MOTO_PORT       (default 5000)
  prefect   Prefect server, SQLite          PREFECT_PORT    (default 4200)
  fixtures  recorded CoinMarketCap + FX     FIXTURES_PORT   (default 5002)
  registry  container registry (Debian)     REGISTRY_PORT   (default 5001)
  fargate   Fargate stand-in: runs the      FARGATE_PORT    (default 5003, health only)
            emulator's ECS tasks (buildah)
and two ports no service of the stack binds, as tasks share the host's network: WORKER_PORT (default 8080),
the ECS worker task's health port (inventories/local sets stack_worker_health_port from it), and SERVER_PORT
(default 5005), the port of the self-hosted Prefect server's task with prefect_server_mode: hosted
(inventories/local sets prefect_server_port and prefect_server_public_url from it).
With podman installed, `up` also imports the base image standing in for prefecthq/prefect (nothing can
be pulled here): Debian + CPython 3.12 + the pinned Prefect, built once per machine by
scripts/base_image.py, into image storage under the state folder, so the ecr_image role builds the real
flow_app/Dockerfile on it.

Usage: local_stack.py up [SERVICE ...] | down | status | reset | env | clean

Two instances never share a port or a state folder (LOCAL_STACK_INSTANCE, default "demo"):
  demo  what `make up` / `make demo` / `make site` use: state <repo>/.local-stack, the ports above
  test  what the test suite uses:  state <repo>/.local-stack-test, each port + 100 (worker 8180, fargate 5103)
  test2 the suite's second worker: state <repo>/.local-stack-test2, each port + 200
  test3 the suite's third worker:  state <repo>/.local-stack-test3, each port + 300
  test4 the suite's fourth worker: state <repo>/.local-stack-test4, each port + 400
so `make test` never touches (or wipes) a deployed demo stack. Each variable still overrides one value.

Only processes recorded in our pid files are ever stopped, never "by name".
State folder: LOCAL_STACK_STATE (default: the instance's folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# Per instance: state folder and default ports. The demo's ports are DEMO_PORTS; the test suite's instances,
# one per pytest-xdist worker (`make test` runs the integration files on several at once), are the demo's shifted
# by 100 each, so no two instances share a port.
DEMO_PORTS = {"MOTO_PORT": 5000, "PREFECT_PORT": 4200, "FIXTURES_PORT": 5002, "REGISTRY_PORT": 5001, "WORKER_PORT": 8080,
              "FARGATE_PORT": 5003, "POSTGRES_PORT": 5004, "SERVER_PORT": 5005}
# The suite's instances, one per pytest-xdist worker: gw0 runs on "test", gw1 on "test2", gw2 on "test3", gw3 on
# "test4".
TEST_INSTANCES = ("test", "test2", "test3", "test4")
INSTANCES = {"demo": {"state": ".local-stack", **DEMO_PORTS},
             **{name: {"state": ".local-stack-" + name, **{key: port + 100 * n for key, port in DEMO_PORTS.items()}}
                for n, name in enumerate(TEST_INSTANCES, start=1)}}


def test_instance(xdist_worker: str | None) -> str:
    """The instance a test process runs on: "test" alone or as worker gw0, "test2" as gw1, "test3" as gw2,
    "test4" as gw3.

    A worker past the last test instance has none: two workers on one instance would reset each other's
    emulator and Prefect server, so the caller is refused instead (see tests/helpers/stack.py)."""
    index = int(xdist_worker.removeprefix("gw")) if xdist_worker else 0
    if index >= len(TEST_INSTANCES):
        raise LookupError(f"pytest-xdist worker {xdist_worker} has no local-stack instance: run the integration "
                          f"tests with at most -n {len(TEST_INSTANCES)}")
    return TEST_INSTANCES[index]


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
    "fargate": port("FARGATE_PORT"),
    "postgres": port("POSTGRES_PORT"),
    # No service: the hosted Prefect server's task (prefect_server_mode: hosted) listens on it.
    "server": port("SERVER_PORT"),
}


def instance_env() -> dict[str, str]:
    """The variables that pin a process (ansible-playbook, pytest, molecule) to this instance."""
    return {"LOCAL_STACK_INSTANCE": INSTANCE, "LOCAL_STACK_STATE": str(STATE),
            **{f"{name.upper()}_PORT": str(number) for name, number in PORTS.items()}}


def pin_test_instance(environ) -> str | None:
    """Pin a test process and its children to its test instance, through `environ` (os.environ).

    The instance is LOCAL_STACK_INSTANCE if the caller set it, else test_instance() of the pytest-xdist
    worker; each variable the caller set still wins. The variables pinned here are listed in
    LOCAL_STACK_PINNED, so a worker started by an already pinned pytest (xdist's controller) drops its
    parent's instance instead of taking it for the caller's. Returns why there is no instance, or None."""
    for name in environ.pop("LOCAL_STACK_PINNED", "").split(","):
        environ.pop(name, None)
    try:
        name, missing = environ.get("LOCAL_STACK_INSTANCE") or test_instance(environ.get("PYTEST_XDIST_WORKER")), None
    except LookupError as error:  # unit tests may run on more workers than there are instances
        name, missing = "test", str(error)
    spec = INSTANCES[name]
    values = {"LOCAL_STACK_INSTANCE": name,
              "LOCAL_STACK_STATE": str(Path(environ.get("LOCAL_STACK_STATE") or REPO / spec["state"]).resolve()),
              **{key: environ.get(key) or str(spec[key]) for key in spec if key.endswith("_PORT")}}
    environ["LOCAL_STACK_PINNED"] = ",".join(key for key in values if key not in environ)
    environ.update(values)
    return missing


REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
# PostgreSQL 15 (Debian's postgresql-15): the engine of the emulator's RDS postgres instances.
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def _others_may_enter(folder: Path) -> bool:
    """Whether a user who is neither owner nor group (Debian's `postgres`) can reach `folder`: o+x on every
    existing folder down to it (the state folder itself is made 0755)."""
    for part in [*reversed(folder.parents), folder]:
        if part.exists() and not part.stat().st_mode & 0o001:
            return False
    return True


# mode 0700, the server's user's: data/, run/ (Unix socket), pg_hba.conf. In the state folder, unless the
# `postgres` user cannot reach it (a checkout under /root, a pytest tmp_path): then in the system's temporary
# folder, under a name taken from the state folder (`clean` removes it with the state).
POSTGRES_DIR = STATE / "postgres" if _others_may_enter(STATE) else \
    Path(tempfile.gettempdir()) / f"local-stack-postgres-{hashlib.sha256(str(STATE).encode()).hexdigest()[:12]}"
POSTGRES_DATA = POSTGRES_DIR / "data"
POSTGRES_SOCKETS = POSTGRES_DIR / "run"
POSTGRES_HBA = POSTGRES_DIR / "pg_hba.conf"
# The cluster's superuser: trusted on the Unix socket only (a folder only its user and root can enter);
# over TCP (127.0.0.1) every role logs in with its password (SCRAM). Not `postgres`: RDS master usernames may be.
POSTGRES_ADMIN = "local_stack"


@dataclass
class Service:
    name: str
    health_path: str
    timeout: float
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    # What `down` sends its process group first (then SIGKILL): PostgreSQL's fast shutdown is SIGINT, its
    # SIGTERM waits for every client to disconnect.
    stop_signal: int = signal.SIGTERM

    @property
    def port(self) -> int:
        return PORTS[self.name]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

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


def postgres_env() -> dict[str, str]:
    """Where moto's RDS patch (scripts/moto_patches_rds.py) finds the local PostgreSQL server."""
    return {
        "LOCAL_STACK_POSTGRES_PORT": str(PORTS["postgres"]),
        "LOCAL_STACK_POSTGRES_SOCKET_DIR": str(POSTGRES_SOCKETS),
        "LOCAL_STACK_POSTGRES_ADMIN": POSTGRES_ADMIN,
    }


SERVICES = [
    # First: moto's RDS patch creates the roles and databases of RDS postgres instances on it.
    Service("postgres", "", 60, scheme="postgresql", stop_signal=signal.SIGINT),
    Service(
        "moto",
        # The dashboard page: /moto-api/data.json gets slow with state and can 500 after some deletes.
        "/moto-api/",
        30,
        {
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
            "MOTO_RECORDER_FILEPATH": str(STATE / "moto_recording.jsonl"),
            "LOCAL_STACK_ECR_REGISTRY_URL": f"http://{HOST}:{PORTS['registry']}",
            **postgres_env(),
        },
    ),
    Service("prefect", "/api/health", 90, prefect_env()),
    # 20 s was too short for each of these once with the machine loaded (load 12; the fixtures server, which
    # starts in 0.2 s idle, had not answered nor logged a line): the wait ends as soon as the process exits.
    Service("fixtures", "/healthz", 60),
    Service("registry", "/v2/", 60),
    # Last: it needs moto and the registry, and `down` stops it first (its tasks report STOPPED to moto).
    Service("fargate", "/health", 30, {
        "LOCAL_STACK_FARGATE_CONTROL_PLANE": f"http://{HOST}:{PORTS['moto']}",
        "LOCAL_STACK_ECR_REGISTRY_URL": f"http://{HOST}:{PORTS['registry']}",
        "CONTAINERS_STORAGE_CONF": str(STATE / "containers" / "fargate-storage.conf"),
        "LOCAL_STACK_FARGATE_STATE": str(STATE),
        "LOCAL_STACK_FARGATE_NAME_PREFIX": f"fargate-{INSTANCE}-",
    }),
]
def command(svc: Service) -> list[str]:
    if svc.name == "moto":
        return [sys.executable, str(REPO / "scripts" / "moto_server.py"), "-H", HOST, "-p", str(svc.port)]
    if svc.name == "prefect":
        return [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(svc.port)]
    if svc.name == "fixtures":
        return [sys.executable, str(REPO / "scripts" / "fixture_server.py"), "--host", HOST, "--port", str(svc.port)]
    if svc.name == "registry":
        return [REGISTRY_BIN, "serve", str(registry_config())]
    if svc.name == "fargate":
        return [sys.executable, str(REPO / "scripts" / "fargate_standin.py"), "--host", HOST, "--port", str(svc.port)]
    if svc.name == "postgres":
        return [str(POSTGRES_BIN / "postgres"), "-D", str(POSTGRES_DATA), "-p", str(svc.port),
                "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={POSTGRES_SOCKETS}",
                "-c", f"hba_file={POSTGRES_HBA}", "-c", "synchronous_commit=off"]
    raise ValueError(svc.name)


def postgres_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: run as root, the stack runs it as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        sys.exit("local-stack: postgres: PostgreSQL refuses to run as root and there is no `postgres` user "
                 "(apt-get install postgresql-15 creates it)")


def as_postgres_user() -> dict:
    """subprocess keyword arguments running a command as postgres_user() (none when not root)."""
    user = postgres_user()
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}


def prepare_postgres() -> None:
    """The server's folder (its user's, mode 0700), the client rules, and the cluster (initdb, once)."""
    user = postgres_user()
    for folder in (POSTGRES_DIR, POSTGRES_SOCKETS):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        if user:
            os.chown(folder, user.pw_uid, user.pw_gid)
    POSTGRES_HBA.write_text(
        "# Written by scripts/local_stack.py at every start.\n"
        f"local all {POSTGRES_ADMIN} trust\n"
        "host  all all 127.0.0.1/32 scram-sha-256\n"
    )
    if user:
        os.chown(POSTGRES_HBA, user.pw_uid, user.pw_gid)
    if (POSTGRES_DATA / "PG_VERSION").exists():
        return
    shutil.rmtree(POSTGRES_DATA, ignore_errors=True)  # an initdb that did not finish
    proc = subprocess.run(
        [str(POSTGRES_BIN / "initdb"), "-D", str(POSTGRES_DATA), "-U", POSTGRES_ADMIN, "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"],
        cwd=POSTGRES_DIR, capture_output=True, text=True, **as_postgres_user())
    if proc.returncode != 0:
        sys.exit(f"local-stack: postgres: initdb of {POSTGRES_DATA} failed (run as root, the `postgres` user must be able "
                 f"to enter every folder above it):\n{proc.stdout}{proc.stderr}")


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


def fargate_storage_conf() -> Path:
    """The image storage the Fargate stand-in runs tasks from: the stack's, in the layout the ecr_image
    role writes for ecr_image_storage_dir=<state>/containers (so it sees the images the role built)."""
    containers = STATE / "containers"
    path = containers / "fargate-storage.conf"
    containers.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{containers}/storage"\nrunroot = "{containers}/run"\n')
    return path


def healthy(svc: Service) -> bool:
    if svc.name == "postgres":
        ready = [str(POSTGRES_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(svc.port), "-t", "2"]
        return subprocess.run(ready, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0
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


def start(svc: Service) -> str:
    record = read_pid(svc)
    if alive(record):
        if wait_healthy(svc, record):
            return "reused"
        # Never restart silently: for moto that would wipe the emulated account.
        sys.exit(f"local-stack: {svc.name} (pid {record['pid']}) is running but not healthy at "
                 f"{svc.url}{svc.health_path}; see {svc.logfile}, or `make down && make up` to restart it.")
    refuse_taken_port(svc)
    if svc.name == "registry" and not Path(REGISTRY_BIN).exists():
        return "skipped (docker-registry not installed: apt-get install docker-registry)"
    if svc.name == "fargate":
        if not shutil.which("buildah"):
            return "skipped (buildah not installed: apt-get install buildah)"
        fargate_storage_conf()
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "prefect").mkdir(exist_ok=True)
    options: dict = {"cwd": REPO}
    if svc.name == "postgres":
        if not (POSTGRES_BIN / "postgres").exists():
            return "skipped (PostgreSQL 15 not installed: apt-get install postgresql-15)"
        prepare_postgres()
        options = {"cwd": POSTGRES_DIR, **as_postgres_user()}
    env = {**os.environ, **svc.env}
    cmd = command(svc)
    log = svc.logfile.open("ab")

    def child_setup() -> None:
        # A backgrounded process inherits SIGINT=ignored; restore defaults so it stops cleanly.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=child_setup, **options,
    )
    record = {"pid": proc.pid, "cmd": cmd, "port": svc.port}
    svc.pidfile.write_text(json.dumps(record))
    if not wait_healthy(svc, record):
        tail = svc.logfile.read_text(errors="replace")[-2000:]
        stop(svc)
        sys.exit(f"local-stack: {svc.name} did not become healthy at {svc.url}{svc.health_path} "
                 f"within {svc.timeout:.0f}s. Last log lines ({svc.logfile}):\n{tail}")
    return f"started (pid {proc.pid})"


def refuse_taken_port(svc: Service) -> None:
    """Exit when the port of a service we did not start (or whose process is gone) is taken."""
    if not alive(read_pid(svc)) and port_in_use(svc.port):
        sys.exit(
            f"local-stack: port {HOST}:{svc.port} for {svc.name} is taken by a process this stack did not "
            f"start. Stop it, or choose another port with {svc.name.upper()}_PORT=<port>."
        )


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
    for sig, wait in ((svc.stop_signal, 15), (signal.SIGKILL, 5)):
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


BASE_IMAGE = os.environ.get("LOCAL_BASE_IMAGE", "localhost/prefect-base:3.9.1-python3.12")
CONTAINERS = STATE / "containers"
# The CA bundle the host's pip trusts, for the RUN steps of image builds (inventories/local mounts it
# with ecr_image_build_volumes): pip in a build reaches PyPI as the host's pip does.
BUILD_CA = CONTAINERS / "build" / "ca-certificates.crt"


def ensure_base_image() -> str:
    """Import the base image (scripts/base_image.py) into the stack's image storage.

    Reused when it is the current recipe's; else imported from the per-machine cache (~20 s), which is
    built first on a new machine (about a minute, with a progress line per step)."""
    if not shutil.which("podman"):
        return "skipped (podman not installed: apt-get install podman)"
    CONTAINERS.mkdir(parents=True, exist_ok=True)
    conf = CONTAINERS / "base-storage.conf"
    # Same layout the ecr_image role writes for ecr_image_storage_dir=<state>/containers.
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{CONTAINERS}/storage"\nrunroot = "{CONTAINERS}/run"\n')
    sys.path.insert(0, str(REPO))
    from scripts import base_image

    try:
        base_image.write_build_ca(BUILD_CA)
        return base_image.ensure_image(conf, BASE_IMAGE)
    except base_image.BaseImageError as err:
        sys.exit(f"local-stack: base image: {err}")


def cmd_up(args: argparse.Namespace) -> None:
    wanted = args.services or [svc.name for svc in SERVICES] + ["base"]
    for svc in SERVICES:  # every port first: a refusal starts nothing
        if svc.name in wanted:
            refuse_taken_port(svc)
    for svc in SERVICES:
        if svc.name in wanted:
            print(f"  {svc.name:<9} {svc.url:<24} {start(svc)}", flush=True)
    if "base" in wanted:
        print(f"  {'base':<9} {BASE_IMAGE:<24} {ensure_base_image()}", flush=True)


def cmd_down(_: argparse.Namespace) -> None:
    for svc in reversed(SERVICES):
        print(f"  {svc.name:<9} {stop(svc)}", flush=True)


def cmd_status(_: argparse.Namespace) -> None:
    ok = True
    for svc in SERVICES:
        record = read_pid(svc)
        if alive(record):
            state = "healthy" if healthy(svc) else "UNHEALTHY"
            ok &= state == "healthy"
            print(f"  {svc.name:<9} {svc.url:<24} pid {record['pid']:<7} {state}")
        else:
            print(f"  {svc.name:<9} {svc.url:<24} stopped")
            ok &= (svc.name == "registry" and not Path(REGISTRY_BIN).exists()) \
                or (svc.name == "fargate" and not shutil.which("buildah")) \
                or (svc.name == "postgres" and not (POSTGRES_BIN / "postgres").exists())
    sys.exit(0 if ok else 1)


def cmd_reset(_: argparse.Namespace) -> None:
    base = f"http://{HOST}:{PORTS['moto']}/moto-api"
    urllib.request.urlopen(urllib.request.Request(f"{base}/reset", method="POST"), timeout=10).close()
    # A reset wipes the IAM users, so enforcement left on (scripts/local_iam.py) would lock every
    # later caller out: "inf" initial no-auth requests turns it off, as local_iam.py off does.
    off = urllib.request.Request(f"{base}/reset-auth", data=b"inf", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(off, timeout=10).close()
    print("  moto      state reset, IAM enforcement off")
    # moto's reset dropped its instances' roles and databases (scripts/moto_patches_rds.py); this also drops
    # what an earlier emulator (before a restart) left.
    if alive(read_pid(next(svc for svc in SERVICES if svc.name == "postgres"))):
        sys.path.insert(0, str(REPO))
        from scripts import moto_patches_rds

        pg = moto_patches_rds.LocalPostgres.from_env(postgres_env())
        left = pg.drop_all() if pg else []
        print(f"  postgres  dropped {', '.join(left)}" if left else "  postgres  nothing left by RDS instances")


def cmd_clean(args: argparse.Namespace) -> None:
    """Stop everything, release the image storage's mounts and remove the state folder."""
    cmd_down(args)
    # containers/storage's overlay driver bind-mounts its own folder (and layers when mounted): a
    # plain `rm -rf` then fails with "Device or resource busy".
    mounts = [line.split()[1].encode().decode("unicode_escape") for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m == str(STATE) or m.startswith(f"{STATE}/")), reverse=True):
        subprocess.run(["umount", "-l", target], check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(POSTGRES_DIR, ignore_errors=True)  # outside the state folder when the postgres user cannot enter it
    print(f"  removed   {STATE}" if not STATE.exists() else f"  could not remove {STATE} completely")


def cmd_env(_: argparse.Namespace) -> None:
    for key, value in {**instance_env(), **aws_env(), "PREFECT_API_URL": prefect_env()["PREFECT_API_URL"]}.items():
        print(f"export {key}={value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start (or reuse) the services, then the base image")
    up.add_argument("services", nargs="*", choices=[svc.name for svc in SERVICES] + ["base"],
                    help="only these (default: all)")
    up.set_defaults(func=cmd_up)
    for name, func in (("down", cmd_down), ("status", cmd_status),
                       ("reset", cmd_reset), ("env", cmd_env),
                       ("clean", cmd_clean)):
        sub.add_parser(name).set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
