"""scripts/local_iam.py: IAM enforced on the emulator, the deployer acting with docs/deployer-policy.json only.

An in-process moto server (its IAM patches applied, scripts/moto_patches_iam.py) on a free port stands in
for the local stack's moto; local_iam.py and ansible-playbook run against it as subprocesses with the
instance variables pointing at it and at a temporary state folder.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from scripts import moto_patches_iam
from tests.helpers.moto_testing import threaded_moto_server

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_iam.py"
POLICY = json.loads((REPO / "docs" / "deployer-policy.json").read_text())
BIN = REPO / ".venv" / "bin"


@pytest.fixture(scope="module")
def moto_server():
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    undo = [patch() for patch in moto_patches_iam.PATCHES.values()]
    saved = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
    with threaded_moto_server() as url:
        yield url
    settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = saved
    for step in reversed(undo):
        step()


@pytest.fixture
def stack(moto_server, tmp_path):
    """The instance variables of a local stack whose moto is the test server; the emulator starts empty."""
    post(moto_server, "/moto-api/reset-auth", b"inf")
    post(moto_server, "/moto-api/reset")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCAL_STACK_"))}
    return {**env, "LOCAL_STACK_INSTANCE": "test", "LOCAL_STACK_STATE": str(tmp_path),
            "MOTO_PORT": moto_server.rsplit(":", 1)[1], "PATH": f"{BIN}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}


def post(base: str, path: str, data: bytes = b"") -> None:
    request = urllib.request.Request(base + path, data=data, method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=30).close()


def local_iam(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def keys(env: dict[str, str]) -> dict[str, dict[str, str]]:
    return json.loads((Path(env["LOCAL_STACK_STATE"]) / "iam" / "credentials.json").read_text())["principals"]


def aws(env: dict[str, str], service: str, key: dict[str, str]):
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{env['MOTO_PORT']}", region_name="us-east-1",
                        aws_access_key_id=key["access_key_id"], aws_secret_access_key=key["secret_access_key"])


TESTING = {"access_key_id": "testing", "secret_access_key": "testing"}


def test_enforce_makes_the_principals_writes_their_keys_and_switches_enforcement_on(stack):
    assert aws(stack, "sts", TESTING).get_caller_identity()  # open emulator: any key
    proc = local_iam(stack, "enforce")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    principals = keys(stack)
    path = Path(stack["LOCAL_STACK_STATE"]) / "iam" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for key in principals.values():
        assert key["secret_access_key"] not in proc.stdout + proc.stderr
    assert "IAM enforcement on" in proc.stdout

    harness = aws(stack, "iam", principals["harness"])
    assert harness.list_user_policies(UserName="local-stack-deployer")["PolicyNames"] == ["deployer-policy"]
    assert harness.list_attached_user_policies(UserName="local-stack-deployer")["AttachedPolicies"] == []
    document = harness.get_user_policy(UserName="local-stack-deployer", PolicyName="deployer-policy")["PolicyDocument"]
    assert document == POLICY  # the shipped file, as it is
    with pytest.raises(ClientError) as err:  # the open key is refused now
        aws(stack, "sts", TESTING).get_caller_identity()
    assert err.value.response["Error"]["Code"] == "InvalidClientTokenId"
    status = local_iam(stack, "status")
    assert status.returncode == 0 and "IAM enforcement on" in status.stdout and status.stdout.count("key accepted") == 2


def test_the_deployer_is_denied_what_its_policy_does_not_grant_naming_action_and_principal(stack):
    assert local_iam(stack, "enforce").returncode == 0
    deployer = keys(stack)["deployer"]
    principal = "arn:aws:iam::123456789012:user/local-stack-deployer"
    for service, call, action in (
        ("iam", lambda c: c.create_user(UserName="intruder"), "iam:CreateUser"),
        ("ec2", lambda c: c.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1), "ec2:RunInstances"),
        ("ecs", lambda c: c.run_task(cluster="prefect-elt-local", taskDefinition="x"), "ecs:RunTask"),
        ("s3", lambda c: c.create_bucket(Bucket="not-the-stacks"), "s3:CreateBucket"),
    ):
        with pytest.raises(ClientError) as err:
            call(aws(stack, service, deployer))
        assert err.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), service
        assert err.value.response["Error"]["Message"] == f"User: {principal} is not authorized to perform: {action}"
    # What the policy grants still works.
    aws(stack, "ec2", deployer).describe_vpcs()
    aws(stack, "s3", deployer).create_bucket(Bucket="prefect-elt-local-results")
    aws(stack, "ecs", deployer).create_cluster(clusterName="prefect-elt-local")
    assert aws(stack, "iam", keys(stack)["harness"]).list_users()["Users"]


def test_the_deployer_may_call_what_the_roles_call_under_enforcement(stack):
    """Actions the enforced molecule run found missing from docs/deployer-policy.json (each was denied)."""
    assert local_iam(stack, "enforce").returncode == 0
    deployer = keys(stack)["deployer"]
    aws(stack, "iam", deployer).list_roles(PathPrefix="/prefect-elt-local/flows/")  # prefect_flow's task roles


def test_enforce_is_idempotent_and_recreates_what_an_emulator_reset_wiped(stack, moto_server):
    assert local_iam(stack, "enforce").returncode == 0
    first = keys(stack)
    again = local_iam(stack, "enforce")
    assert again.returncode == 0 and again.stdout.count("unchanged") == 2 and keys(stack) == first

    post(moto_server, "/moto-api/reset")  # wipes the users, not the switch (measured on moto 5.2)
    status = local_iam(stack, "status")
    assert "IAM enforcement on" in status.stdout and "key NOT accepted" in status.stdout and status.returncode == 1
    assert local_iam(stack, "enforce").returncode == 0
    assert keys(stack)["deployer"]["access_key_id"] != first["deployer"]["access_key_id"]
    assert aws(stack, "sts", keys(stack)["deployer"]).get_caller_identity()["Arn"].endswith("user/local-stack-deployer")


def test_off_opens_the_emulator_again(stack):
    assert local_iam(stack, "enforce").returncode == 0
    proc = local_iam(stack, "off")
    assert proc.returncode == 0 and "IAM enforcement off" in proc.stdout
    assert aws(stack, "sts", TESTING).get_caller_identity()
    assert "IAM enforcement off" in local_iam(stack, "status").stdout


def test_run_hands_a_principal_key_to_a_command(stack):
    assert local_iam(stack, "enforce").returncode == 0
    code = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    proc = local_iam(stack, "run", "--as", "harness", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "arn:aws:iam::123456789012:user/local-stack-harness"


PLAYBOOK = """
- name: Act as the inventory's AWS principal
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/aws:
      region: "{{ aws_region }}"
      endpoint_url: "{{ aws_endpoint_url }}"
      access_key: "{{ aws_access_key }}"
      secret_key: "{{ aws_secret_key }}"
  tasks:
    - name: Create an IAM user (not in the deployer policy)
      amazon.aws.iam_user:
        name: intruder
        state: present
      ignore_errors: true
    - name: Run a task (not in the deployer policy)
      community.aws.ecs_task:
        operation: run
        cluster: prefect-elt-local
        task_definition: prefect-elt-local-worker
        count: 1
        started_by: test
      ignore_errors: true
"""


def test_inventories_local_acts_as_the_deployer_and_a_denial_names_action_and_principal(stack, tmp_path):
    playbook = tmp_path / "deny.yml"
    playbook.write_text(PLAYBOOK)

    assert local_iam(stack, "enforce").returncode == 0
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", str(playbook)], cwd=REPO,
                          env=stack, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output  # ignore_errors: the failures are in the output
    principal = "arn:aws:iam::123456789012:user/local-stack-deployer"
    # The modules' first calls (iam_user reads the user, ecs_task lists the tasks) are already refused.
    assert (f"(AccessDenied) when calling the GetUser operation: User: {principal} is not authorized to perform: "
            "iam:GetUser") in output
    assert f"User: {principal} is not authorized to perform: ecs:ListTasks" in output
    assert "AccessDeniedException" in output
    assert keys(stack)["deployer"]["secret_access_key"] not in output


def test_credentials_helper_reads_the_file_or_falls_back_to_the_open_key(stack, tmp_path):
    from scripts import local_iam as module

    missing = tmp_path / "none.json"
    assert module.credentials("harness", missing) == {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    assert local_iam(stack, "enforce").returncode == 0
    path = Path(stack["LOCAL_STACK_STATE"]) / "iam" / "credentials.json"
    harness = keys(stack)["harness"]
    assert module.credentials_env("harness", path) == {"AWS_ACCESS_KEY_ID": harness["access_key_id"],
                                                       "AWS_SECRET_ACCESS_KEY": harness["secret_access_key"]}
