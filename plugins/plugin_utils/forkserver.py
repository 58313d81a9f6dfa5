# Copyright: (c) 2026, dataops.prefect_fargate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A warm Python that runs Ansible's pipelined module payloads in forks of itself.

Every AWS module task costs a new Python process that imports boto3/botocore before its first
request (about 0.3 s of CPU here, plus a process per task). This server imports them once; each
module payload (the AnsiballZ wrapper source that Ansible pipes to ``python`` on stdin) runs in a
``fork()`` of it, so it starts with those imports done and with a pristine copy of the server's
state: nothing one module does is seen by the next.

Started on demand by the ``dataops.prefect_fargate.local_forkserver`` connection plugin as
``<the module interpreter> forkserver.py <socket path>``; it exits after ``--idle`` seconds with no
request. Nothing from ``ansible`` is imported here: the payload brings its own copy (its zip goes
first on ``sys.path``), exactly as in a fresh process.

Wire format (one request per connection, both directions length-prefixed):
  request  ``!IQ`` header and payload lengths, the JSON header ``{"env": {...}, "cwd": "..."}``, the
           payload;
  response ``!iQQ`` exit status, stdout length, stderr length, then stdout and stderr;
  the client then sends ``DONE`` (one byte) and closes.
The module gets the client's pid (the kernel's SO_PEERCRED, not what the client says) as
``DATAOPS_FORKSERVER_CLIENT_PID``, its ancestry for code that looks for its ansible-playbook run.
If the client goes away without ``DONE`` (its run was killed), the module's process group gets SIGINT,
as from a terminal's Ctrl-C, so that the module removes its payload folder, and SIGKILL ``STOP_GRACE``
seconds later; after ``DONE`` nothing is touched, so a process the module left in the background lives
on, as it does under the stock ``local`` connection.

zipimport compiles every source a payload imports from its zip, on every import; the server's forks
share a cache of that compiled code (``code-cache`` next to the socket, keyed by the source's sha256).
The botocore models of the services in ``WARM_SERVICES`` are parsed once, in the server, and shared by
every botocore session of its forks.
"""

from __future__ import annotations

import json
import marshal
import os
import selectors
import signal
import socket
import struct
import sys
import time

REQUEST_HEADER = struct.Struct("!IQ")
CLIENT_PID_VARIABLE = "DATAOPS_FORKSERVER_CLIENT_PID"
DONE = b"\x06"  # the client's acknowledgement of a complete reply
STOP_GRACE = 10.0  # seconds between SIGINT and SIGKILL for the module of a client that went away
RESPONSE_HEADER = struct.Struct("!iQQ")
# Imported once in the server; a module payload importing them finds them in sys.modules.
WARM_IMPORTS = (
    "base64", "datetime", "hashlib", "json", "shutil", "tempfile", "zipfile", "ssl", "http.client",
    "urllib.request", "email.utils", "uuid", "logging", "concurrent.futures", "xml.etree.ElementTree",
    "boto3", "boto3.session", "botocore", "botocore.session", "botocore.client", "botocore.config",
    "botocore.exceptions", "botocore.waiter", "botocore.paginate", "botocore.credentials",
    "botocore.awsrequest", "botocore.httpsession", "botocore.regions", "botocore.endpoint_provider",
)

# botocore models read once in the server (the services the collection's roles call); a module's client finds
# them parsed. Another service is read as in a new process.
WARM_SERVICES = (
    "ec2", "ecs", "ecr", "elbv2", "iam", "s3", "sts", "logs", "secretsmanager", "sqs", "ssm", "rds", "events",
    "application-autoscaling", "cloudwatch",
)


def share_botocore_models(warm: tuple[str, ...] = WARM_SERVICES) -> bool:
    """Let every botocore Loader of the process share the models any of them has read.

    botocore caches a parsed model per Loader, and every boto3 session has its own, so each module parses
    the JSON of each service it calls again (about 50 ms per client here). Shared by the files' search path
    and name, so a module with another AWS_DATA_PATH reads its own; botocore already hands one parsed model
    to every client of a session, so sharing it between sessions changes no model.
    """
    import functools

    try:
        from botocore import loaders
    except ImportError:
        return False

    def shared(method):
        cache: dict = {}

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            key = (tuple(self.search_paths), args, tuple(sorted(kwargs.items())))
            if key not in cache:
                cache[key] = method(self, *args, **kwargs)
            return cache[key]

        return wrapper

    for name in ("list_available_services", "determine_latest_version", "load_service_model",
                 "load_data_with_path"):
        setattr(loaders.Loader, name, shared(getattr(loaders.Loader, name)))
    # Read them now, in the server: what a fork reads dies with it. (A test process passes warm=(): it reads
    # each model once, when it first needs it.)
    import botocore.session

    session = botocore.session.get_session()
    for service in warm:
        try:
            session.create_client(service, region_name="us-east-1", aws_access_key_id="warm-up",
                                  aws_secret_access_key="warm-up")  # explicit: no credential look-up
        except Exception:  # noqa: BLE001 - a service this botocore lacks is just not warm
            continue
    return True


def warm_up() -> dict[str, tuple[int, int]]:
    """Import what AWS modules import; a library missing here is simply not warm.

    Returns the identity (inode, mtime) of each warm package's ``__init__`` so that an upgrade of the
    library (``pip install``) while the server runs can be noticed (``stale``).
    """
    import importlib

    files = {}
    for name in WARM_IMPORTS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        path = getattr(module, "__file__", None)
        if "." not in name and path:
            files[path] = identity(path)
    return files


def install_code_cache(folder: str) -> bool:
    """Let zipimport reuse the code it compiled for an earlier module instead of compiling it again.

    A payload's module_utils are imported from its zip, and zipimport compiles every ``.py`` source it
    imports, twice (for the spec's file name, then for the code), with no bytecode cache: about half of a
    warm module's time. The compiled code is kept in ``folder`` under the sha256 of the source (and of
    the interpreter's bytecode magic and optimisation level), so a changed source is compiled afresh,
    and it gets the file name of the zip it came from, as compiling it there would give.
    Returns False (and changes nothing) on an interpreter whose zipimport has no such hook.
    """
    import _imp
    import hashlib
    import importlib.util
    import zipimport

    compile_source = getattr(zipimport, "_compile_source", None)
    if compile_source is None or not hasattr(_imp, "_fix_co_filename"):
        return False
    bound_code_cache(folder)
    salt = importlib.util.MAGIC_NUMBER + bytes([sys.flags.optimize])
    seen: dict[tuple[str, str], object] = {}  # this process's: the second compile of the same file

    def cached_compile_source(pathname: str, source: bytes):
        key = hashlib.sha256(salt + source).hexdigest()
        code = seen.get((pathname, key))  # per file: the code object's file name is this file's
        if code is None:
            code = load_code(os.path.join(folder, key))
            if code is None:
                code = compile_source(pathname, source)
                store_code(folder, key, code)
            seen[(pathname, key)] = code
        _imp._fix_co_filename(code, pathname)  # tracebacks name this payload's file, not an earlier one's
        return code

    zipimport._compile_source = cached_compile_source
    return True


def load_code(path: str):
    """The code object marshalled in ``path``, or None when it is missing, unreadable or not code."""
    try:
        with open(path, "rb") as handle:
            code = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, type(load_code.__code__)) else None


def store_code(folder: str, name: str, code) -> None:
    """Marshal ``code`` to ``folder/name``, atomically (a concurrent reader never sees half a file); an
    unwritable folder only costs the next process the compile."""
    path = os.path.join(folder, name)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as handle:
            handle.write(marshal.dumps(code))
        os.replace(partial, path)
    except OSError:
        pass


CODE_CACHE_LIMIT = 5000  # entries; a few hundred per version of the collections' module code


def bound_code_cache(folder: str, limit: int = CODE_CACHE_LIMIT) -> None:
    """Empty the code cache once it holds more than ``limit`` entries (each upgrade of a collection adds the
    code of its changed sources), so it cannot grow without end; it refills with what modules import."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    if len(entries) > limit:
        for entry in entries:
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


def identity(path: str) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0)
    return (info.st_ino, info.st_mtime_ns)


def stale(files: dict[str, tuple[int, int]]) -> bool:
    """True once a warm library's files were replaced: new requests must not get the old code."""
    return any(identity(path) != seen for path, seen in files.items())


def recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the client closed the connection early")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_request(conn: socket.socket) -> tuple[dict, bytes]:
    header_size, payload_size = REQUEST_HEADER.unpack(recv_exact(conn, REQUEST_HEADER.size))
    header = json.loads(recv_exact(conn, header_size))
    return header, recv_exact(conn, payload_size)


def run_payload(conn: socket.socket, header: dict, payload: bytes) -> None:
    """In the forked child: run the payload as ``python`` would run it from stdin, reply, exit."""
    import atexit
    import tempfile
    import traceback
    import types

    os.setpgid(0, 0)  # its own group, so that a gone client's module is stopped with its subprocesses
    # The signal dispositions a new CPython starts with.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    devnull = os.open(os.devnull, os.O_RDONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(devnull, 0)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(header["env"])
    tempfile.tempdir = None  # as in a new process: the module's TMPDIR, not the one cached by the server
    try:
        os.chdir(header.get("cwd") or "/")
    except OSError:
        os.chdir("/")
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [""]
    sys.path[:] = [""] + [p for p in sys.path if p not in ("", os.path.dirname(os.path.abspath(__file__)))]
    status = 0
    try:
        exec(compile(payload, "<stdin>", "exec"), main.__dict__)
    except SystemExit as done:
        code = done.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            print(code, file=sys.stderr)
            status = 1
    except BaseException:  # noqa: BLE001 - what python prints for an uncaught exception
        traceback.print_exc()
        status = 1
    try:
        atexit._run_exitfuncs()  # e.g. AnsibleModule's removal of its temporary folder
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    try:
        conn.sendall(RESPONSE_HEADER.pack(status, len(stdout), len(stderr)) + stdout + stderr)
    except OSError:
        pass
    os._exit(status & 0xFF)


def serve(path: str, idle: float, ready_fd: int | None = None) -> None:
    warm_files = warm_up()
    share_botocore_models()
    install_code_cache(os.path.join(os.path.dirname(path), "code-cache"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.replace(tmp, path)  # atomic: a client never sees a socket nobody listens on
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    running: dict[int, socket.socket] = {}  # child pid -> its client's connection
    stopping: dict[int, float] = {}  # child pid -> when it is killed if it still runs
    last = time.monotonic()
    try:
        while running or stopping or time.monotonic() - last < idle:
            if stale(warm_files):
                break
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    last = time.monotonic()
                    accept(listener, selector, running)
                else:
                    # After its request the client sends one byte, DONE, once it has the whole reply; readable
                    # without it means the client went away (its run was killed) while the module ran.
                    selector.unregister(key.fileobj)
                    try:
                        done = key.fileobj.recv(1) == DONE
                    except OSError:
                        done = False
                    if not done and key.data in running:
                        # Ctrl-C's signal: the module unwinds and removes its payload folder (SIGTERM would
                        # leave it behind); what has not stopped after STOP_GRACE seconds is killed.
                        signal_group(key.data, signal.SIGINT)
                        stopping[key.data] = time.monotonic() + STOP_GRACE
            reap(selector, running)
            for pid, deadline in list(stopping.items()):
                if time.monotonic() > deadline:  # the module, or a subprocess of its group that ignored SIGINT
                    signal_group(pid, signal.SIGKILL)
                    del stopping[pid]
    finally:
        # Unlink first: a client that cannot connect from now on starts a new server, whose socket must not be
        # the one this server removes.
        try:
            os.unlink(path)
        except OSError:
            pass
        listener.close()


def signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass


def accept(listener: socket.socket, selector: selectors.BaseSelector, running: dict) -> None:
    conn, _ = listener.accept()
    client_pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid != os.getuid():  # the socket is 0600 already; this says why a stranger gets nothing
        conn.close()
        return
    try:
        conn.settimeout(30)
        header, payload = recv_request(conn)
        conn.settimeout(None)
        # The module is not below the process that asked for it: say which one it was (stack_lock walks up
        # from there to the ansible-playbook run that holds the lock).
        header["env"][CLIENT_PID_VARIABLE] = str(client_pid)
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        for other in running.values():
            other.close()
        try:
            run_payload(conn, header, payload)  # ends with os._exit
        finally:
            os._exit(70)  # never return into the server's loop, even if the child's setup raised
    running[pid] = conn
    selector.register(conn, selectors.EVENT_READ, pid)


def reap(selector: selectors.BaseSelector, running: dict) -> None:
    while running:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = running.pop(pid, None)
        if conn is None:
            continue
        try:
            selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--idle", type=float, default=120.0, help="exit after this many seconds without a request")
    parser.add_argument("--detach", action="store_true",
                        help="serve from a grandchild and exit 0 once it listens (1 if it could not)")
    args = parser.parse_args(argv)
    ready_fd = None
    if args.detach:
        # The server must not stay below the Ansible worker that started it: a module's ancestry would lead
        # to that worker's run, and a run killed with all its descendants would take the server with it.
        read_fd, ready_fd = os.pipe()
        if os.fork() > 0:
            os.close(ready_fd)
            return 0 if os.read(read_fd, 1) == b"1" else 1
        os.close(read_fd)
    serve(args.socket, args.idle, ready_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
