# Copyright: (c) 2026, dataops.prefect_fargate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: local_forkserver
short_description: Run on the controller, with Python modules forked from a warm interpreter
description:
  - The stock C(ansible.builtin.local) connection, except that a Python module's payload is run in a
    C(fork) of a long-lived interpreter that has already imported boto3 and botocore, instead of a new
    Python process that imports them again (about 0.3 s of CPU per AWS module task on a 2-core machine).
  - Each module runs in its own forked process with the environment and working folder the stock
    connection would give it, so modules cannot see each other's state.
  - The interpreter server is started on first use, one per module interpreter and per version of the
    server's code, listens on a C(0600) Unix socket under O(forkserver_dir), and exits after
    O(forkserver_idle) seconds without a request.
  - The code zipimport compiles from a payload's zip is kept in C(code-cache) under O(forkserver_dir), keyed
    by the sha256 of the source (emptied once it holds more than 5000 entries), so the next module that
    imports the same file does not compile it again;
    the botocore models of the AWS services the collection calls are parsed once, in the server.
  - Anything that is not a pipelined Python module (raw commands, file transfers, async tasks, become)
    and any failure to reach or start the server falls back to the stock C(local) behaviour.
  - If the Ansible worker that asked for a module goes away before it has the module's whole reply (the run
    was killed), the module's process group gets SIGINT, as from a terminal's Ctrl-C, so that the module
    removes its temporary files; whatever still runs 10 s later is killed. (Under the stock connection such
    a module runs on to its end.) A process that a finished module left in the background is not touched.
  - Linux controllers only (C(fork) without C(exec), C(SO_PEERCRED)); on other systems this connection is
    exactly C(ansible.builtin.local).
author:
  - Prefect Fargate maintainers (@dataops)
options:
  forkserver:
    description:
      - Run pipelined Python modules in the warm interpreter. V(false) is exactly C(ansible.builtin.local).
    type: bool
    default: true
    env:
      - name: DATAOPS_FORKSERVER
    vars:
      - name: dataops_forkserver
  forkserver_idle:
    description: Seconds without a request after which the server exits.
    type: float
    default: 120
    env:
      - name: DATAOPS_FORKSERVER_IDLE
  forkserver_dir:
    description: Folder (created C(0700)) for the servers' sockets.
    type: path
    default: ~/.ansible/forkserver
    env:
      - name: DATAOPS_FORKSERVER_DIR
  pipelining:
    description:
      - Pipelining for everything else, as in C(ansible.builtin.local).
      - Python modules are always pipelined while O(forkserver) is on.
    type: bool
    default: false
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
"""

import fcntl
import hashlib
import json
import os
import shlex
import re
import socket
import struct
import subprocess
import sys
import typing as t

import ansible.constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import forkserver

display = Display()

SERVER_SOURCE = forkserver.__file__
# fork() without exec and SO_PEERCRED: Linux controllers; elsewhere this is exactly ansible.builtin.local.
SUPPORTED = sys.platform.startswith("linux") and hasattr(socket, "SO_PEERCRED")
START_TIMEOUT = 20.0
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class ForkserverUnavailable(Exception):
    """The server could not be reached or started: nothing was run, the stock path may run it."""


def parse_module_command(cmd: str, executable: str) -> tuple[str, dict[str, str]] | None:
    """``(interpreter, env)`` when ``cmd`` is the stock pipelined module command, else None.

    Ansible pipelines a module as ``<shell> -c '[VAR=value ...] <python>'``; anything else (a shell
    expansion, a second command, become) is left to the stock connection.
    """
    try:
        outer = shlex.split(cmd)
    except ValueError:
        return None
    if len(outer) != 3 or outer[0] != executable or outer[1] != "-c":
        return None
    inner = outer[2]
    if any(ch in inner for ch in "$`;|&<>(){}\\\n"):
        return None
    try:
        words = shlex.split(inner)
    except ValueError:
        return None
    env = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if len(words) != 1 or not os.path.isabs(words[0]) or "python" not in os.path.basename(words[0]):
        return None
    return words[0], env


def exchange(conn: socket.socket, header: bytes, payload: bytes) -> tuple[int, bytes, bytes]:
    """Send one request, return the module's (status, stdout, stderr), then acknowledge the reply."""
    try:
        conn.sendall(forkserver.REQUEST_HEADER.pack(len(header), len(payload)) + header + payload)
        status, out_len, err_len = forkserver.RESPONSE_HEADER.unpack(
            forkserver.recv_exact(conn, forkserver.RESPONSE_HEADER.size))
        stdout = forkserver.recv_exact(conn, out_len)
        stderr = forkserver.recv_exact(conn, err_len)
    except (OSError, EOFError, struct.error) as exc:
        raise AnsibleConnectionFailure(f"the module's forked interpreter ended without a reply: {exc}") from exc
    try:
        conn.sendall(forkserver.DONE)
    except OSError:
        pass  # the module has ended and the server has closed its side already: the reply is complete
    return status, stdout, stderr


class Connection(LocalConnection):
    """Local connection; Python modules run in forks of a warm interpreter."""

    transport = "dataops.prefect_fargate.local_forkserver"

    def _forkserver_on(self) -> bool:
        return SUPPORTED and bool(self.get_option("forkserver")) and not self.become

    def is_pipelining_enabled(self, wrap_async: bool = False) -> bool:
        if self._forkserver_on() and not wrap_async:
            return True
        return super().is_pipelining_enabled(wrap_async)

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        parsed = None
        if in_data is not None and self._forkserver_on():
            executable = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else "/bin/sh"
            parsed = parse_module_command(cmd, executable)
        if parsed is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        interpreter, extra_env = parsed
        try:
            conn = self._forkserver_connect(interpreter)
        except ForkserverUnavailable as exc:
            display.vvv(f"FORKSERVER unavailable ({exc}); running the module in a new process",
                        host=self._play_context.remote_addr)
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"FORKSERVER EXEC {interpreter}", host=self._play_context.remote_addr)
        env = dict(os.environ)
        env.update(extra_env)
        header = json.dumps({"env": env, "cwd": self.cwd or os.getcwd()}).encode()
        with conn:
            return exchange(conn, header, in_data)

    def _forkserver_connect(self, interpreter: str) -> socket.socket:
        """A connection to the server for this interpreter, starting the server if there is none."""
        folder = os.path.expanduser(self.get_option("forkserver_dir"))
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if os.stat(folder).st_uid != os.getuid():
                raise ForkserverUnavailable(f"{folder} belongs to another user")
            with open(SERVER_SOURCE, "rb") as source:
                code = source.read()
        except OSError as exc:
            raise ForkserverUnavailable(str(exc)) from exc
        # The interpreter as named, not its realpath: each virtualenv's python is a symlink to the same binary,
        # and a server must only serve the virtualenv (sys.path) it was started from.
        key = hashlib.sha256(os.path.abspath(interpreter).encode() + b"\0" + code).hexdigest()[:16]
        path = os.path.join(folder, f"{key}.sock")
        if len(path.encode()) > 100:  # sun_path holds 108 bytes
            raise ForkserverUnavailable(f"the socket path {path} is too long for a Unix socket")
        conn = self._forkserver_try(path)
        if conn is not None:
            return conn
        # One starter at a time: the others wait on the lock, then find the socket.
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            conn = self._forkserver_try(path)
            if conn is not None:
                return conn
            try:
                # --detach: the server runs as a grandchild, so it belongs to no run; this exits once it listens.
                status = subprocess.run(
                    [interpreter, SERVER_SOURCE, path, "--detach", "--idle", str(self.get_option("forkserver_idle"))],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True, close_fds=True, cwd="/", timeout=START_TIMEOUT, check=False,
                ).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ForkserverUnavailable(f"cannot start the server with {interpreter}: {exc}") from exc
            if status != 0:
                raise ForkserverUnavailable(f"the server did not start (status {status})")
            conn = self._forkserver_try(path)
            if conn is None:
                raise ForkserverUnavailable(f"the server started but {path} does not answer")
            return conn

    @staticmethod
    def _forkserver_try(path: str) -> t.Optional[socket.socket]:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
        except OSError:
            conn.close()
            return None
        return conn
