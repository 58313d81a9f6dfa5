"""The Fargate stand-in runs ECS tasks for real (issue #12, part 1), seen only through the AWS APIs.

RunTask / StopTask / services go to the emulator; the stand-in (started by `local_stack.py up`) runs
the tasks from the loopback registry with buildah. The image is a tiny one made here (dash as /bin/sh,
sleep, cat), so these tests do not depend on the real base image.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.integration

REGION = "us-east-1"
IMAGE_NAME = "fargate-standin-tiny"
HOST_BINARIES = {"/bin/sh": "/bin/dash", "/bin/sleep": "/bin/sleep", "/bin/cat": "/bin/cat"}
LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)$")


def tiny_rootfs(path: Path) -> Path:
    """A root filesystem with the host's dash (as /bin/sh), sleep and cat and their shared libraries."""
    files: dict[str, bytes] = {}
    for target, source in HOST_BINARIES.items():
        files[target] = Path(source).read_bytes()
        out = subprocess.run(["ldd", source], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if match := LDD_PATH.search(line.strip()):
                files[match.group(1)] = Path(match.group(1)).read_bytes()
    files["/etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
    dirs = {"/tmp", "/root", "/app"} | {str(parent) for name in files for parent in Path(name).parents if str(parent) != "/"}
    with tarfile.open(path, "w") as tar:
        for directory in sorted(dirs):
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "/tmp" else 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def stack(local_stack, tmp_path_factory):
    """The suite's stack, an empty account, and the tiny image pushed to the loopback registry."""
    if not (local_stack.state_dir() / "fargate.pid").exists():
        pytest.skip("the Fargate stand-in is not running (buildah not installed?)")
    local_stack.reset_moto()
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(local_stack.state_dir() / "containers" / "fargate-storage.conf")}
    tar = tiny_rootfs(tmp_path_factory.mktemp("tiny") / "rootfs.tar")
    subprocess.run(["podman", "import", "--quiet", "--change", "ENV PATH=/bin", "--change", "WORKDIR /app",
                    "--change", 'CMD ["/bin/sh", "-c", "echo image default"]', str(tar), f"localhost/{IMAGE_NAME}:1"],
                   check=True, capture_output=True, env=env)
    subprocess.run(["podman", "push", "--quiet", "--tls-verify=false", f"localhost/{IMAGE_NAME}:1",
                    f"{local_stack.registry_address()}/{IMAGE_NAME}:1"], check=True, capture_output=True, env=env)
    return local_stack


def aws(service: str, local_stack, **credentials):
    return boto3.client(service, region_name=REGION, endpoint_url=local_stack.moto_url(),
                        aws_access_key_id=credentials.get("key", "testing"),
                        aws_secret_access_key=credentials.get("secret", "testing"),
                        aws_session_token=credentials.get("token"))


@pytest.fixture(scope="module")
def account(stack):
    """What the ecs_fargate_agent role makes around the tasks: network, cluster, log group, task role,
    and the observer's queue fed by the cluster's task state changes (roles/ecs_fargate_agent/tasks/events.yml)."""
    ec2, ecs, iam, logs, sqs, events = (aws(name, stack) for name in ("ec2", "ecs", "iam", "logs", "sqs", "events"))
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{n}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
               for n, az in ((1, "a"), (2, "b"))]
    cluster = ecs.create_cluster(clusterName="standin")["cluster"]["clusterArn"]
    logs.create_log_group(logGroupName="/ecs/standin")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="standin-task", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    queue = sqs.create_queue(QueueName="standin-ecs-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = events.put_rule(Name="standin-ecs-events", EventPattern=json.dumps({
        "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"], "detail": {"clusterArn": [cluster]}}))["RuleArn"]
    events.put_targets(Rule="standin-ecs-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule}}}]})})
    return {"subnets": subnets, "cluster": cluster, "role": role, "queue": queue,
            "image": f"{stack.registry_address()}/{IMAGE_NAME}:1", "ecs": ecs, "logs": logs, "sqs": sqs}


def task_definition(account, family: str, command: list[str], **container) -> str:
    return account["ecs"].register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        taskRoleArn=account["role"], containerDefinitions=[{
            "name": "app", "image": account["image"], "command": command, "essential": True,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/standin", "awslogs-region": REGION, "awslogs-stream-prefix": family}},
            **container}])["taskDefinition"]["taskDefinitionArn"]


def run_task(account, definition: str, **extra) -> str:
    return account["ecs"].run_task(cluster="standin", taskDefinition=definition, launchType="FARGATE",
                                   networkConfiguration={"awsvpcConfiguration": {"subnets": account["subnets"]}},
                                   **extra)["tasks"][0]["taskArn"]


def describe(account, arn: str) -> dict:
    return account["ecs"].describe_tasks(cluster="standin", tasks=[arn], include=["TAGS"])["tasks"][0]


def wait_for(check, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_status(account, arn: str, status: str, timeout: float = 20) -> dict:
    return wait_for(lambda: (task := describe(account, arn))["lastStatus"] == status and task,
                    timeout, f"task {arn} {status}")


def log_lines(account, family: str, arn: str) -> list[str]:
    events = account["logs"].get_log_events(logGroupName="/ecs/standin",
                                            logStreamName=f"{family}/app/{arn.split('/')[-1]}")["events"]
    return [event["message"] for event in events]


def queued_events(account) -> list[dict]:
    bodies = []
    while messages := account["sqs"].receive_message(QueueUrl=account["queue"], MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            account["sqs"].delete_message(QueueUrl=account["queue"], ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_run_task_runs_the_image_as_the_task_role_and_stops_with_its_exit_code(stack, account):
    sm = aws("secretsmanager", stack)
    whole = sm.create_secret(Name="standin-key", SecretString="pnu_whole")["ARN"]
    keyed = sm.create_secret(Name="standin-creds", SecretString=json.dumps({"password": "pa55"}))["ARN"]
    script = ("echo hello from the task; echo FOO=$FOO; echo KEY=$KEY; echo PASSWORD=$PASSWORD; "
              "echo EXEC=$AWS_EXECUTION_ENV; echo ENDPOINT=$AWS_ENDPOINT_URL; echo REGION=$AWS_REGION; "
              "echo ID=$AWS_ACCESS_KEY_ID; echo SECRET=$AWS_SECRET_ACCESS_KEY; echo TOKEN=$AWS_SESSION_TOKEN; exit 3")
    definition = task_definition(account, "exit3", ["sh", "-c", script], environment=[{"name": "FOO", "value": "definition"}],
                                 secrets=[{"name": "KEY", "valueFrom": whole},
                                          {"name": "PASSWORD", "valueFrom": f"{keyed}:password::"}])
    queued_events(account)
    started = time.monotonic()
    arn = run_task(account, definition, tags=[{"key": "prefect.io/flow-run-id", "value": "run-1"}], overrides={
        "containerOverrides": [{"name": "app", "environment": [{"name": "FOO", "value": "override"}]}]})
    task = wait_status(account, arn, "STOPPED")
    print(f"RunTask -> STOPPED of a task exiting at once: {time.monotonic() - started:.2f}s")
    assert (task["stopCode"], task["stoppedReason"]) == ("EssentialContainerExited", "Essential container in task exited")
    assert task["containers"][0]["exitCode"] == 3 and task["desiredStatus"] == "STOPPED"
    assert task["tags"] == [{"key": "prefect.io/flow-run-id", "value": "run-1"}]

    lines = wait_for(lambda: (found := log_lines(account, "exit3", arn)) and "TOKEN=" in found[-1] and found,
                     5, "the container's output in CloudWatch Logs")
    assert lines[0] == "hello from the task"
    values = dict(line.split("=", 1) for line in lines[1:])
    assert (values["FOO"], values["KEY"], values["PASSWORD"]) == ("override", "pnu_whole", "pa55")
    assert (values["EXEC"], values["ENDPOINT"], values["REGION"]) == ("AWS_ECS_FARGATE", stack.moto_url(), REGION)
    caller = aws("sts", stack, key=values["ID"], secret=values["SECRET"], token=values["TOKEN"]).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::123456789012:assumed-role/standin-task/{arn.split('/')[-1]}"

    mine = [event for event in queued_events(account) if event["detail"]["taskArn"] == arn]
    assert [event["detail"]["lastStatus"] for event in mine] == [
        "PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING", "STOPPED"]
    assert {(e["source"], e["detail-type"], e["resources"][0]) for e in mine} == {("aws.ecs", "ECS Task State Change", arn)}
    stopped = mine[-1]["detail"]
    assert (stopped["clusterArn"], stopped["stopCode"], stopped["containers"][0]["exitCode"]) == (
        account["cluster"], "EssentialContainerExited", 3)


def test_run_task_reaches_running_quickly_and_stop_task_stops_it_within_seconds(account):
    definition = task_definition(account, "sleeper", ["sleep", "300"])
    started = time.monotonic()
    arn = run_task(account, definition)
    running = wait_status(account, arn, "RUNNING", timeout=10)
    to_running = time.monotonic() - started
    assert running["startedAt"] and running["containers"][0]["lastStatus"] == "RUNNING"
    started = time.monotonic()
    asked = account["ecs"].stop_task(cluster="standin", task=arn, reason="Stopped by Prefect worker")["task"]
    assert (asked["lastStatus"], asked["desiredStatus"]) == ("RUNNING", "STOPPED")
    task = wait_status(account, arn, "STOPPED", timeout=10)
    to_stopped = time.monotonic() - started
    print(f"RunTask -> RUNNING {to_running:.2f}s, StopTask -> STOPPED {to_stopped:.2f}s")
    assert to_running < 5 and to_stopped < 5
    assert (task["stoppedReason"], task["stopCode"], task["containers"][0]["exitCode"]) == (
        "Stopped by Prefect worker", "UserInitiated", 143)  # sleep ended by SIGTERM


def test_a_missing_secret_stops_the_task_before_it_runs(account):
    definition = task_definition(account, "nosecret", ["sh", "-c", "echo never"], secrets=[
        {"name": "KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:standin-gone-AbCdEf"}])
    task = wait_status(account, run_task(account, definition), "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("ResourceInitializationError: unable to pull secrets or registry auth")
    assert "standin-gone-AbCdEf" in task["stoppedReason"]


def test_a_missing_image_tag_is_a_cannot_pull_container_error(account):
    definition = task_definition(account, "noimage", ["sh", "-c", "echo never"],
                                 image=account["image"].replace(":1", ":does-not-exist"))
    task = wait_status(account, run_task(account, definition), "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "does-not-exist" in task["stoppedReason"] and "exitCode" not in task["containers"][0]


def container_pid(stack, arn: str) -> int:
    """The container's process, from the stand-in's log line "task <id>: RUNNING (app pid <n>)"."""
    pattern = re.compile(rf"task {arn.split('/')[-1]}: RUNNING \(app pid (\d+)\)")
    return int(wait_for(lambda: pattern.search((stack.state_dir() / "fargate.log").read_text()), 5,
                        "the stand-in's RUNNING line").group(1))


def service_state(account):
    service = account["ecs"].describe_services(cluster="standin", services=["standin-svc"])["services"][0]
    arns = account["ecs"].list_tasks(cluster="standin", serviceName="standin-svc")["taskArns"]
    tasks = account["ecs"].describe_tasks(cluster="standin", tasks=arns)["tasks"] if arns else []
    return service, tasks


def test_a_service_keeps_its_task_running_replaces_a_killed_one_and_rolls_new_revisions(stack, account):
    first = task_definition(account, "svc", ["sleep", "300"])
    account["ecs"].create_service(cluster="standin", serviceName="standin-svc", taskDefinition=first, desiredCount=1,
                                  launchType="FARGATE",
                                  networkConfiguration={"awsvpcConfiguration": {"subnets": account["subnets"]}})

    def steady(definition):
        service, tasks = service_state(account)
        return (service["runningCount"] == 1 and len(tasks) == 1 and tasks[0]["lastStatus"] == "RUNNING"
                and tasks[0]["taskDefinitionArn"] == definition and len(service["deployments"]) == 1
                and service["deployments"][0]["rolloutState"] == "COMPLETED" and tasks[0])

    original = wait_for(lambda: steady(first), 15, "the service's first task RUNNING")
    assert original["group"] == "service:standin-svc" and original["startedBy"].startswith("ecs-svc/")

    os.kill(container_pid(stack, original["taskArn"]), signal.SIGKILL)  # killed from outside the stack
    replacement = wait_for(lambda: (task := steady(first)) and task["taskArn"] != original["taskArn"] and task,
                           15, "a replacement task RUNNING")
    dead = describe(account, original["taskArn"])
    assert (dead["lastStatus"], dead["stopCode"], dead["containers"][0]["exitCode"]) == (
        "STOPPED", "EssentialContainerExited", 137)

    second = task_definition(account, "svc", ["sleep", "301"])
    account["ecs"].update_service(cluster="standin", service="standin-svc", taskDefinition=second)
    rolled = wait_for(lambda: steady(second), 15, "the new revision's task RUNNING alone")
    old = describe(account, replacement["taskArn"])
    assert (old["lastStatus"], old["stopCode"]) == ("STOPPED", "ServiceSchedulerInitiated")
    assert old["stoppedAt"] >= rolled["startedAt"]  # the old task ran until the new one did
    stopped = account["ecs"].list_tasks(cluster="standin", serviceName="standin-svc", desiredStatus="STOPPED")["taskArns"]
    assert set(stopped) == {original["taskArn"], replacement["taskArn"]}

    account["ecs"].update_service(cluster="standin", service="standin-svc", desiredCount=0)
    wait_for(lambda: service_state(account)[0]["runningCount"] == 0 and not service_state(account)[1], 15,
             "the service scaled to zero")
    account["ecs"].delete_service(cluster="standin", service="standin-svc")


def test_down_stops_every_task_and_leaves_no_buildah_container(stack, account):
    definition = task_definition(account, "shutdown", ["sleep", "300"])
    arn = run_task(account, definition)
    wait_status(account, arn, "RUNNING")
    fargate = next(svc for svc in stack.local_stack_script.SERVICES if svc.name == "fargate")
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": fargate.env["CONTAINERS_STORAGE_CONF"]}
    prefix = fargate.env["LOCAL_STACK_FARGATE_NAME_PREFIX"]

    def ours() -> list[str]:
        out = subprocess.run(["buildah", "containers", "--json"], env=env, capture_output=True, text=True, check=True)
        return [c["containername"] for c in json.loads(out.stdout or "null") or [] if c["containername"].startswith(prefix)]

    assert ours()
    try:
        stack.local_stack_script.stop(fargate)  # what `local_stack.py down` does to it (SIGTERM)
        task = describe(account, arn)
        assert task["lastStatus"] == "STOPPED" and "container host stopped" in task["stoppedReason"]
        assert ours() == []
    finally:
        stack.stack("up", "fargate")
