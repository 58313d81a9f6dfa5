"""local_forkserver: modules run in forks of one warm interpreter, isolated, interruptible, with fallbacks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.connection import local_forkserver
from ansible_collections.dataops.prefect_fargate.plugins.connection.local_forkserver import parse_module_command

REPO = Path(__file__).resolve().parents[4]
BIN = REPO / ".venv" / "bin"
PYTHON = str(BIN / "python")
CONNECTION = "dataops.prefect_fargate.local_forkserver"

# A module that reports what a fresh Python would not have: warm imports, a leak from an earlier run.
PROBE_MODULE = '''#!/usr/bin/python
import os, sys, tempfile
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_lock import playbook_process

def main():
    module = AnsibleModule(argument_spec=dict(mark=dict(type="str")), supports_check_mode=True)
    warm = "botocore" in sys.modules
    import botocore
    leaked = getattr(botocore, "_forkserver_probe", None)
    botocore._forkserver_probe = module.params["mark"]
    os.environ["FORKSERVER_PROBE_LEAK"] = "yes"
    module.exit_json(changed=False, warm=warm, leaked=leaked, pid=os.getpid(), ppid=os.getppid(),
                     env_leak=os.environ.get("FORKSERVER_PROBE_SEEN"), probe_env=os.environ.get("PROBE_ENV"),
                     cwd=os.getcwd(), run_pid=playbook_process(), tempdir=tempfile.gettempdir())

main()
'''


def test_parse_module_command():
    assert parse_module_command("/bin/sh -c /usr/bin/python3", "/bin/sh") == ("/usr/bin/python3", {})
    expected = ("/v/bin/python", {"A": "1", "B": "x y"})
    assert parse_module_command("/bin/sh -c 'A=1 B=\"x y\" /v/bin/python'", "/bin/sh") == expected
    for cmd in ("/bin/sh -c '/usr/bin/python3 /tmp/x.py'",  # a file, not pipelined
                "/bin/sh -c 'echo hi'",  # not a python
                "/bin/sh -c 'A=$HOME /usr/bin/python3'",  # a shell expansion
                "/bin/sh -c '/usr/bin/python3; rm -rf /tmp/x'",
                "/bin/bash -c /usr/bin/python3",  # another shell than the configured one
                "/bin/sh -c python3",  # not an absolute path
                "/bin/sh -c 'unbalanced"):
        assert parse_module_command(cmd, "/bin/sh") is None, cmd


def test_a_reply_is_complete_even_when_the_server_closed_before_the_acknowledgement():
    """The module ended and the server reaped it and closed its side before the client's DONE: the reply stands
    (CI: a podman build task came back unreachable from a BrokenPipeError on the acknowledgement)."""
    import socket

    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    import threading

    def serve(server, reply):
        with server:
            assert forkserver.recv_request(server) == ({}, b"payload")
            server.sendall(reply)  # then closes at once, before the client's DONE

    for reply, expected in ((forkserver.RESPONSE_HEADER.pack(0, 3, 0) + b"out", (0, b"out", b"")),
                            (forkserver.RESPONSE_HEADER.pack(0, 3, 0) + b"ou", None)):  # cut short: no reply
        client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        thread = threading.Thread(target=serve, args=(server, reply))
        thread.start()
        with client:
            if expected:
                assert local_forkserver.exchange(client, b"{}", b"payload") == expected
            else:
                with pytest.raises(local_forkserver.AnsibleConnectionFailure, match="without a reply"):
                    local_forkserver.exchange(client, b"{}", b"payload")
        thread.join(10)


def test_only_on_linux_and_never_with_become(monkeypatch):
    """Elsewhere (no fork-without-exec safety, no SO_PEERCRED) the connection is the stock local one."""
    from types import SimpleNamespace

    on = SimpleNamespace(get_option=lambda name: True, become=None)
    assert local_forkserver.Connection._forkserver_on(on) is (sys.platform == "linux")
    assert not local_forkserver.Connection._forkserver_on(SimpleNamespace(get_option=lambda name: True, become=object()))
    assert not local_forkserver.Connection._forkserver_on(SimpleNamespace(get_option=lambda name: False, become=None))
    monkeypatch.setattr(local_forkserver, "SUPPORTED", False)
    assert not local_forkserver.Connection._forkserver_on(on)


@pytest.fixture
def playground(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "forkserver_probe.py").write_text(PROBE_MODULE)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}",
           "ANSIBLE_LIBRARY": str(tmp_path / "library"), "DATAOPS_FORKSERVER_DIR": str(tmp_path / "fs"),
           "DATAOPS_FORKSERVER_IDLE": "20", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    yield tmp_path, env
    stop_servers(tmp_path / "fs")


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) from /proc (no procps needed)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[int(entry)] = (int(stat[stat.rindex(")") + 2:].split()[1]), cmdline.strip())
    return found


def pids(pattern: str) -> list[int]:
    return [pid for pid, (_parent, cmdline) in processes().items() if pattern in cmdline and pid != os.getpid()]


def pgrep(pattern: str) -> bool:
    return bool(pids(pattern))


def stop_servers(folder: Path) -> None:
    for pid in pids(f"forkserver.py {folder}"):
        os.kill(pid, signal.SIGTERM)


def playbook(tmp_path: Path, tasks: list, connection: str = CONNECTION) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks, "vars": {
        "ansible_connection": connection, "ansible_python_interpreter": PYTHON}}]))
    return path


def run(tmp_path: Path, env: dict, tasks: list, connection: str = CONNECTION) -> list[dict]:
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook(tmp_path, tasks, connection))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [task["hosts"]["localhost"] for task in json.loads(proc.stdout)["plays"][0]["tasks"]]


def test_modules_are_forked_from_one_warm_isolated_interpreter(playground):
    tmp_path, env = playground
    (tmp_path / "tmp").mkdir()
    tasks = [{"forkserver_probe": {"mark": "first"}, "environment": {"PROBE_ENV": "a b", "TMPDIR": str(tmp_path / "tmp")}},
             {"forkserver_probe": {"mark": "second"}},
             {"ansible.builtin.command": "printenv PROBE_ENV", "environment": {"PROBE_ENV": "from-env"}}]
    first, second, command = run(tmp_path, env, tasks)
    sockets = list((tmp_path / "fs").glob("*.sock"))
    assert len(sockets) == 1 and oct(sockets[0].stat().st_mode & 0o777) == "0o600"
    # both forked from the same server, which had botocore imported before the module asked for it
    assert first["ppid"] == second["ppid"] and first["pid"] != second["pid"]
    assert first["warm"] is True and second["warm"] is True
    # nothing the first module did is seen by the second
    assert first["leaked"] is None and second["leaked"] is None
    # the stack lock still finds the ansible-playbook run a forked module belongs to
    assert first["run_pid"] and first["run_pid"] == second["run_pid"]
    assert second["env_leak"] is None
    # the task's environment reaches the module and its subprocesses
    assert first["probe_env"] == "a b" and second["probe_env"] is None
    # temporary files go where the task's TMPDIR says, not where the server's first one did
    assert first["tempdir"] == str(tmp_path / "tmp") and second["tempdir"] != first["tempdir"]
    assert command["stdout"] == "from-env"


def test_a_module_belongs_to_its_own_run_while_another_run_started_the_server(playground):
    """Run A starts the server with a long task; run B's module must name run B (the stack lock's holder)."""
    tmp_path, env = playground
    marker = f"{time.time() % 1000:.3f}"
    first = tmp_path / "a"
    first.mkdir()
    a = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", "localhost,",
                          str(playbook(first, [{"ansible.builtin.command": f"sleep 3{marker}"}]))],
                         cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pgrep(f"sleep 3{marker}"):
            assert time.monotonic() < deadline and a.poll() is None, "run A never started its module"
            time.sleep(0.05)
        # the server is a daemon: below no run, so no run's kill takes it and no module inherits a run from it
        table = processes()
        forks = set(pids(f"forkserver.py {tmp_path / 'fs'}"))  # the server and its forked modules
        (server,) = [pid for pid in forks if table[pid][0] not in forks]
        assert "ansible-playbook" not in table.get(table[server][0], (0, ""))[1]
        b = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,",
                            str(playbook(tmp_path, [{"forkserver_probe": {"mark": "b"}}]))],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert b.returncode == 0, b.stdout[-2000:] + b.stderr[-2000:]
        (probe,) = [task["hosts"]["localhost"] for task in json.loads(b.stdout)["plays"][0]["tasks"]]
        assert probe["warm"] is True and a.poll() is None  # served by the server run A started, A still running
        assert probe["run_pid"] not in (None, a.pid)
    finally:
        a.terminate()  # Ctrl-C's effect: ansible-playbook stops its worker, and the server then the module
        a.wait(60)


def test_stock_local_connection_is_unchanged_when_switched_off(playground):
    tmp_path, env = playground
    (result,) = run(tmp_path, {**env, "DATAOPS_FORKSERVER": "false"}, [{"forkserver_probe": {"mark": "x"}}])
    assert result["warm"] is False and result["run_pid"]
    assert not (tmp_path / "fs").exists()


def test_a_server_that_cannot_start_falls_back_to_a_new_process(playground):
    tmp_path, env = playground
    (tmp_path / "not-a-folder").write_text("")
    (result,) = run(tmp_path, {**env, "DATAOPS_FORKSERVER_DIR": str(tmp_path / "not-a-folder" / "fs")},
                    [{"forkserver_probe": {"mark": "x"}}])
    assert result["warm"] is False  # ran, in a fresh Python


def test_failures_and_check_mode_come_back_as_from_a_new_process(playground):
    tmp_path, env = playground
    tasks = [{"ansible.builtin.command": "sh -c 'echo out; echo err >&2; exit 3'", "ignore_errors": True},
             {"ansible.builtin.file": {"path": str(tmp_path / "made"), "state": "directory"}, "check_mode": True}]
    failed, checked = run(tmp_path, env, tasks)
    assert failed["rc"] == 3 and failed["stdout"] == "out" and failed["stderr"] == "err" and failed["failed"]
    assert checked["changed"] is True and not (tmp_path / "made").exists()


def test_a_module_whose_run_is_gone_is_stopped(playground):
    """When the task's worker process dies (the run was killed), the forked module and its subprocesses stop.

    Ansible's workers run in their own sessions, so killing the run's process group leaves them (and a
    stock local module) running; the worker's end is what the server sees.
    """
    tmp_path, env = playground
    marker = f"{time.time() % 1000:.3f}"
    # where the module's payload folder goes; short, as ansible-playbook puts its own sockets there too
    scratch = Path(tempfile.mkdtemp(prefix="fs-gone-"))
    env = {**env, "TMPDIR": str(scratch)}
    path = playbook(tmp_path, [{"ansible.builtin.command": f"sleep 7{marker}"}])
    proc = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", "localhost,", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not pgrep(f"sleep 7{marker}"):
            assert time.monotonic() < deadline and proc.poll() is None, "the module never started"
            time.sleep(0.1)
        workers = [pid for pid, (parent, _cmd) in processes().items() if parent == proc.pid]
        for pid in [proc.pid, *workers]:
            os.kill(pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while pgrep(f"sleep 7{marker}") or list(scratch.glob("ansible_*_payload_*")):
            # stopped as by Ctrl-C, the module unwinds and removes its payload folder (SIGTERM left it behind)
            assert time.monotonic() < deadline, f"the module outlived its run: {os.listdir(scratch)}"
            time.sleep(0.1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for pid in pids(f"sleep 7{marker}"):
            os.kill(pid, signal.SIGKILL)


def test_a_process_a_module_leaves_in_the_background_lives_on(playground):
    """As under the stock connection: only a module whose run is gone is stopped, not what a finished one left."""
    tmp_path, env = playground
    marker = f"6{time.time() % 1000:.3f}"
    run(tmp_path, env, [{"ansible.builtin.shell": f"sleep {marker} > /dev/null 2>&1 &"}])
    try:
        time.sleep(1.0)  # well past the server's poll of its connections
        assert pgrep(f"sleep {marker}")
    finally:
        for pid in pids(f"sleep {marker}"):
            os.kill(pid, signal.SIGKILL)


def test_the_server_exits_when_idle_and_when_its_libraries_change(playground):
    tmp_path, env = playground
    run(tmp_path, {**env, "DATAOPS_FORKSERVER_IDLE": "1"}, [{"forkserver_probe": {"mark": "x"}}])
    deadline = time.monotonic() + 10
    while list((tmp_path / "fs").glob("*.sock")) or pgrep(f"forkserver.py {tmp_path / 'fs'}"):
        assert time.monotonic() < deadline, "the idle server did not exit"
        time.sleep(0.2)

    # a replaced library file (pip install) ends the server: the next request gets the new code
    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    lib = tmp_path / "lib.py"
    lib.write_text("")
    files = {str(lib): forkserver.identity(str(lib))}
    assert not forkserver.stale(files)
    lib.unlink()
    lib.write_text("# new version\n")
    os.utime(lib, ns=(1, 1))
    assert forkserver.stale(files)


@pytest.mark.skipif(sys.platform != "linux", reason="SO_PEERCRED")
def test_wire_format_roundtrip(tmp_path):
    """The server answers a hand-made request: exit status, stdout and stderr, in that order."""
    import socket

    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    path = str(tmp_path / "s.sock")
    server = subprocess.Popen([PYTHON, forkserver.__file__, path, "--idle", "5"], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        payload = b"import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nsys.exit(4)\n"
        header = json.dumps({"env": {"PATH": "/usr/bin"}, "cwd": str(tmp_path)}).encode()
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(path)
            conn.sendall(forkserver.REQUEST_HEADER.pack(len(header), len(payload)) + header + payload)
            status, out_len, err_len = forkserver.RESPONSE_HEADER.unpack(
                forkserver.recv_exact(conn, forkserver.RESPONSE_HEADER.size))
            assert (status, forkserver.recv_exact(conn, out_len), forkserver.recv_exact(conn, err_len)) == \
                (4, b"hello\n", b"oops\n")
    finally:
        server.terminate()
        server.wait(10)


CODE_CACHE_PROBE = r'''
import json, os, sys, traceback
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import forkserver
calls = []
import zipimport
original = zipimport._compile_source
def counting(pathname, source):
    calls.append(pathname)
    return original(pathname, source)
zipimport._compile_source = counting
assert forkserver.install_code_cache(sys.argv[2])
sys.path.insert(0, sys.argv[3])
import cached_probe
try:
    cached_probe.fail()
except RuntimeError:
    where = traceback.extract_tb(sys.exc_info()[2])[-1].filename
print(json.dumps({"compiled": len(calls), "value": cached_probe.VALUE, "where": where}))
'''


def test_code_compiled_from_a_payload_zip_is_reused_by_the_next_module(tmp_path):
    """zipimport compiles a zip's sources on every import; the server's forks reuse code compiled before."""
    import zipfile

    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    cache = tmp_path / "code-cache"
    (tmp_path / "probe.py").write_text(CODE_CACHE_PROBE)

    def import_from_zip(name: str, source: str) -> dict:
        archive = tmp_path / name
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("cached_probe.py", source)
        done = subprocess.run([PYTHON, str(tmp_path / "probe.py"), forkserver.__file__, str(cache), str(archive)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    source = "VALUE = 1\ndef fail():\n    raise RuntimeError('x')\n"
    first = import_from_zip("a.zip", source)
    assert first["compiled"] == 1 and first["value"] == 1 and len(list(cache.iterdir())) == 1
    # another payload (another zip) with the same source: no compile, and a traceback names this zip
    second = import_from_zip("b.zip", source)
    assert second == {"compiled": 0, "value": 1, "where": str(tmp_path / "b.zip" / "cached_probe.py")}
    # a changed source is compiled afresh
    third = import_from_zip("c.zip", source.replace("VALUE = 1", "VALUE = 2"))
    assert third["compiled"] == 1 and third["value"] == 2 and len(list(cache.iterdir())) == 2
    # a damaged cache entry only costs the compile
    for entry in cache.iterdir():
        entry.write_bytes(b"not marshal data")
    assert import_from_zip("d.zip", source)["value"] == 1


MODEL_SHARING_PROBE = r'''
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import forkserver
import botocore.loaders, botocore.session
assert forkserver.share_botocore_models()  # in the server, before any fork
read = []
original = botocore.loaders.JSONFileLoader.load_file
def counting(self, path):
    read.append(path)
    return original(self, path)
botocore.loaders.JSONFileLoader.load_file = counting
def client(service, **env):
    os.environ.update(env)
    session = botocore.session.get_session()  # a module's own session, as each boto3 module makes
    made = session.create_client(service, region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    return made.meta.service_model.operation_model("DescribeVpcs" if service == "ec2" else "ListFunctions").name
warm = client("ec2")
warm_reads = len(read)
cold = client("lambda")
cold_reads = len(read) - warm_reads
other = client("ec2", AWS_DATA_PATH=sys.argv[2])
print(json.dumps({"warm": warm, "warm_reads": warm_reads, "cold": cold, "cold_reads": cold_reads,
                  "other_path_reads": len(read) - warm_reads - cold_reads}))
'''


def test_botocore_models_are_parsed_once_in_the_server_for_every_session(tmp_path):
    """A warm service's model is not read again by a module's session; another service or data path is."""
    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    (tmp_path / "probe.py").write_text(MODEL_SHARING_PROBE)
    done = subprocess.run([PYTHON, str(tmp_path / "probe.py"), forkserver.__file__, str(tmp_path / "models")],
                          capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["warm"] == "DescribeVpcs" and seen["warm_reads"] == 0
    assert seen["cold"] == "ListFunctions" and seen["cold_reads"] > 0  # lambda is not among WARM_SERVICES
    assert seen["other_path_reads"] > 0  # a module with its own AWS_DATA_PATH reads its own files


def test_the_code_cache_is_emptied_once_it_holds_more_than_its_limit(tmp_path):
    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

    for index in range(5):
        (tmp_path / f"entry{index}").write_bytes(b"code")
    forkserver.bound_code_cache(str(tmp_path), limit=5)
    assert len(list(tmp_path.iterdir())) == 5  # at the limit: kept
    (tmp_path / "entry5").write_bytes(b"code")
    forkserver.bound_code_cache(str(tmp_path), limit=5)
    assert list(tmp_path.iterdir()) == []
    forkserver.bound_code_cache(str(tmp_path / "missing"), limit=5)  # no cache yet: nothing to do
