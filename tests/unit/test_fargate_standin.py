"""The Fargate stand-in (scripts/fargate_standin.py) and its private channel (scripts/moto_server.py).

What the stand-in decides by itself, without buildah or the emulator: which registry an image comes
from, the process and environment of a container (ECS's rules), what buildah's output means, and
that it cleans up after a crashed run. tests/integration/test_fargate_standin.py runs real tasks.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scripts import fargate_standin as standin

LOOPBACK = "http://127.0.0.1:5101"


@pytest.mark.parametrize("image, expected", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/prefect-elt:abc", ("127.0.0.1:5101/prefect-elt:abc", False)),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app@sha256:00", ("127.0.0.1:5101/app@sha256:00", False)),
    ("127.0.0.1:5101/prefect-elt:abc", ("127.0.0.1:5101/prefect-elt:abc", False)),
    ("localhost:5101/prefect-elt:abc", ("localhost:5101/prefect-elt:abc", False)),
    ("docker.io/prefecthq/prefect:3-python3.12", ("docker.io/prefecthq/prefect:3-python3.12", True)),
    ("prefecthq/prefect:3", ("prefecthq/prefect:3", True)),
    ("127.0.0.1:5999/other:1", ("127.0.0.1:5999/other:1", True)),
])
def test_images_come_from_the_loopback_registry_where_ecr_would_serve_them(image, expected):
    assert standin.registry_reference(image, LOOPBACK) == expected


@pytest.mark.parametrize("container, image, argv", [
    ({"entryPoint": ["/bin/sh", "-c"], "command": ["echo hi"]}, {"Entrypoint": ["/init"], "Cmd": ["serve"]},
     ["/bin/sh", "-c", "echo hi"]),
    # Docker's rule, which ECS follows: a new entry point drops the image's CMD.
    ({"entryPoint": ["/bin/true"]}, {"Entrypoint": ["/init"], "Cmd": ["serve"]}, ["/bin/true"]),
    ({"command": ["worker", "start"]}, {"Entrypoint": ["/init"], "Cmd": ["serve"]}, ["/init", "worker", "start"]),
    ({}, {"Entrypoint": ["/init"], "Cmd": ["serve"]}, ["/init", "serve"]),
    ({}, {"Cmd": ["/bin/sh"]}, ["/bin/sh"]),
    ({}, {}, []),
])
def test_the_process_follows_ecs_entry_point_and_command_rules(container, image, argv):
    assert standin.resolve_argv(container, image) == argv


def test_the_environment_is_what_fargate_gives_then_the_task_definition():
    spec = {"region": "ap-southeast-2", "credentials": {
        "AccessKeyId": "ASIA1", "SecretAccessKey": "s3cr3t", "SessionToken": "tok", "RoleArn": "arn:aws:iam::1:role/r"}}
    container = {"environment": {"PREFECT_API_URL": "http://api", "AWS_REGION": "us-west-2", "N": 1}}
    env = standin.task_environment(spec, container, "http://127.0.0.1:5100")
    assert env == {
        "AWS_REGION": "us-west-2",  # the task definition's own value wins, as on ECS
        "AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5100",
        "AWS_ACCESS_KEY_ID": "ASIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok",
        "PREFECT_API_URL": "http://api", "N": "1",
    }
    assert "AWS_ACCESS_KEY_ID" not in standin.task_environment({"region": "us-east-1"}, {}, "http://e")


def test_a_wildcard_bind_is_narrowed_to_loopback_the_local_stand_in_for_the_tasks_eni():
    container = {"environment": {"PREFECT_WORKER_WEBSERVER_HOST": "0.0.0.0", "OTHER": "0.0.0.0/0"}}
    env = standin.task_environment({"region": "us-east-1"}, container, "http://e")
    assert env["PREFECT_WORKER_WEBSERVER_HOST"] == "127.0.0.1"
    assert env["OTHER"] == "0.0.0.0/0"


def test_buildah_output_says_how_the_process_ended():
    # Lines buildah 1.28 prints (measured here), which are not the container's output.
    assert all(standin.BUILDAH_LINE.match(line) for line in (
        "subprocess exited with status 3", "subprocess exited on terminated", "Error: exit status 1"))
    assert not standin.BUILDAH_LINE.match("Error: the flow failed")
    exited_3 = ["subprocess exited with status 3", "subprocess exited with status 3", "Error: exit status 3"]
    assert standin.exit_code(3, exited_3) == standin.exit_code(3, exited_3, signalled=15) == 3
    assert standin.exit_code(1, ["subprocess exited on terminated", "subprocess exited with status 1"]) == 143
    assert standin.exit_code(1, ["subprocess exited on killed"]) == 137
    assert standin.exit_code(0, []) == standin.exit_code(0, [], signalled=15) == 0
    assert standin.exit_code(-9, []) == 137  # buildah itself killed with the whole group


def test_a_lost_signal_line_is_the_signal_the_stand_in_sent():
    # buildah's chroot-runtime sometimes drops chroot-exec's last line (seen in a suite's fargate.log:
    # SIGTERM to `sleep`, then only the outer "with status 1" line).
    lost = ["subprocess exited with status 1", "Error: exit status 1"]
    assert standin.exit_code(1, lost, signalled=15) == 143
    assert standin.exit_code(1, lost) == 1  # nothing was sent: it exited 1 (or was killed by someone else)
    # A process that traps SIGTERM and exits 1 is reported by both: its exit code stands.
    trapped = ["subprocess exited with status 1", "subprocess exited with status 1", "Error: exit status 1"]
    assert standin.exit_code(1, trapped, signalled=15) == 1


def test_a_process_that_could_not_start_is_told_apart_from_one_that_failed():
    not_found = ['process failed to start with error: exec: "nope": executable file not found in $PATHprocess '
                 'exited with error: exec: not startedsubprocess exited with status 1', "Error: exit status 1"]
    assert standin.start_failure(not_found, 1) == 'exec: "nope": executable file not found in $PATH'
    unknown_user = ['Error: determining run uid: user: unknown user error looking up user "ghost"']
    assert standin.start_failure(unknown_user, 125) == 'determining run uid: user: unknown user error looking up user "ghost"'
    assert standin.start_failure(["hello", "subprocess exited with status 1"], 1) is None


def test_names_and_hostname():
    arn = "arn:aws:ecs:us-east-1:123456789012:task/c/0f4e8a7d2b6c4d1e9f0a1b2c3d4e5f60"
    assert standin.container_name("fargate-test-", arn, "prefect worker") == \
        "fargate-test-0f4e8a7d2b6c4d1e9f0a1b2c3d4e5f60-prefect_worker"
    assert standin.hostname({"region": "us-east-1", "privateIpv4Address": "10.0.1.4"}) == "ip-10-0-1-4.ec2.internal"
    assert standin.hostname({"region": "eu-west-1", "privateIpv4Address": "10.0.1.4"}) == \
        "ip-10-0-1-4.eu-west-1.compute.internal"


def test_the_container_process_is_the_child_buildah_chroot_exec_started(tmp_path):
    fake = tmp_path / "buildah-chroot-exec"
    fake.symlink_to("/bin/sh")
    outer = subprocess.Popen(["/bin/sh", "-c", f"{fake} -c 'sleep 30; :'; :"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        found = None
        while found is None and time.monotonic() < deadline:
            found = standin.container_process(outer.pid)
            time.sleep(0.02)
        assert found and standin.cmdline(found) == ["sleep", "30"]
    finally:
        os.killpg(outer.pid, signal.SIGKILL)
        outer.wait()


def test_cleanup_ends_recorded_leftovers_and_removes_this_instance_s_containers(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_STACK_FARGATE_CONTROL_PLANE", "http://127.0.0.1:1")
    monkeypatch.setenv("LOCAL_STACK_FARGATE_STATE", str(tmp_path))
    monkeypatch.setenv("LOCAL_STACK_FARGATE_NAME_PREFIX", "fargate-test-")
    calls = []

    def fake_buildah(*args, **_):
        calls.append(args)
        listing = [{"containername": "fargate-test-abc-app"}, {"containername": "fargate-demo-abc-app"},
                   {"containername": "buildah-working-container"}]
        return subprocess.CompletedProcess(args, 0, json.dumps(listing) if args[0] == "containers" else "", "")

    monkeypatch.setattr(standin, "buildah", fake_buildah)
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(61)"], start_new_session=True)
    try:
        agent = standin.Agent()
        agent.record("fargate-test-abc-app", leftover.pid)
        records = json.loads((tmp_path / "fargate-containers.json").read_text())
        records["fargate-test-old-app"] = {"pid": stranger.pid, "cmd": ["something", "else"]}  # pid reused since
        (tmp_path / "fargate-containers.json").write_text(json.dumps(records))
        agent.cleanup()
        assert leftover.wait(5) == -signal.SIGKILL
        assert stranger.poll() is None  # not ours any more: never signalled
        assert ("rm", "fargate-test-abc-app") in calls and ("rm", "fargate-demo-abc-app") not in calls
        assert not (tmp_path / "fargate-containers.json").exists()
    finally:
        for proc in (leftover, stranger):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- the private channel (scripts/moto_server.py) ----------------------------------------------------


def call_channel(method: str, path: str, body: bytes = b"") -> tuple[str, dict]:
    from scripts import moto_server

    answer = {}

    def start_response(status, headers):
        answer["status"] = status

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    data = b"".join(moto_server.fargate_channel(environ, start_response))
    return answer["status"], json.loads(data)


def test_channel_routes():
    assert call_channel("POST", "/_local_stack/fargate/nope")[0] == "404 Not Found"
    assert call_channel("GET", "/_local_stack/fargate/poll")[0] == "405 Method Not Allowed"
    assert call_channel("POST", "/_local_stack/fargate/poll", b"{not json")[0] == "400 Bad Request"
    status, answer = call_channel("POST", "/_local_stack/fargate/report", json.dumps({"taskArn": "x"}).encode())
    assert status == "400 Bad Request" and "lastStatus" in answer["message"]
    status, answer = call_channel("POST", "/_local_stack/fargate/report", json.dumps(
        {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/none", "lastStatus": "RUNNING"}).encode())
    assert (status, answer["known"]) == ("404 Not Found", False)
    assert call_channel("POST", "/_local_stack/fargate/poll", b'{"tasks": []}') == ("200 OK", {"start": [], "stop": []})


def test_the_channel_is_served_before_moto_s_apis():
    from scripts import moto_server

    class Dispatcher:
        def __call__(self, environ, start_response):
            return [b"moto"]

    app = moto_server.with_fargate_channel(Dispatcher)()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/_local_stack/fargate/poll", "CONTENT_LENGTH": "2",
               "wsgi.input": io.BytesIO(b"{}")}
    assert json.loads(b"".join(app(environ, lambda *a: None))) == {"start": [], "stop": []}
    assert app({"PATH_INFO": "/"}, lambda *a: None) == [b"moto"]
