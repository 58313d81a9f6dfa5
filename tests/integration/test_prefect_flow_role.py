"""The prefect_flow role on the local stack with a catalogue of two flows: check mode writes nothing, converge,
idempotent re-run with zero AWS and Prefect writes; changing one flow (parameters, then code) rewrites only
its deployment; removing an entry deletes its deployment (unless opted out), never a deployment that is not
the stack's; delete removes every deployment of the stack and the pool, nothing else.

The pool's default flow-run task role is this role's: one made the way the ecs_fargate_agent role made it before
(a stack deployed by that version) is adopted as it is (same role, not recreated), and delete removes it.

moto stands in for what the other roles make (bucket, network): created here with boto3.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import uuid
from pathlib import Path

import boto3
import pytest

from tests.helpers import stack as stack_helpers
from tests.helpers.stack import api

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = "tests/integration/playbooks/prefect_flow.yml"
FLOW_APP = Path(__file__).resolve().parents[2] / "flow_app"


def exists(path: str) -> bool:
    try:
        api(path)
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def deployment(full_name: str) -> dict:
    return api(f"/deployments/name/{full_name}")


def converge(variables: dict, **kw):
    run = stack_helpers.run_playbook(PLAYBOOK, extra_vars=variables, **kw)
    assert run.rc == 0, "\n".join(run.failed_messages) or run.stdout[-4000:] + run.stderr[-2000:]
    return run


def registration(run) -> dict:
    """The catalogue task's result."""
    return next(r for name, r in run.task_results() if name.endswith("Ensure the deployments of the catalogue"))


@pytest.fixture(scope="module")
def world(local_stack, tmp_path_factory):
    """Stand-ins for the outputs of s3_buckets / vpc / ecs_fargate_agent, unique per run, and a catalogue of
    the ELT plus a copy of the digest package (so the test can change its code). The worker service is stood
    in for by an ECS worker process on the host polling the pool (the role waits for it to be ONLINE)."""
    suffix = uuid.uuid4().hex[:6]
    kw = dict(endpoint_url=stack_helpers.moto_url(), region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    s3, ec2, iam = (boto3.client(n, **kw) for n in ("s3", "ec2", "iam"))
    storage, results = f"it-flows-{suffix}", f"it-results-{suffix}"
    s3.create_bucket(Bucket=storage)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"it-{suffix}", Description="it", VpcId=vpc)["GroupId"]
    digest_dir = tmp_path_factory.mktemp("flows") / "gainers_digest"
    shutil.copytree(FLOW_APP / "gainers_digest", digest_dir, ignore=shutil.ignore_patterns("__pycache__"))
    elt = {"name": "top-gainers-elt", "source_dir": str(FLOW_APP / "gainers_elt"),
           "entrypoint": "gainers_elt/flow.py:top_gainers_elt", "deployment_name": f"it-{suffix}",
           "tags": ["elt"], "schedules": [{"cron": "0 6 * * *", "timezone": "UTC", "slug": "daily"}],
           "results_prefix": "top-gainers",
           "parameters": {"results_bucket": results,
                          "source_url": stack_helpers.fixtures_url() + "/gainers-losers/",
                          "fx_api_url": stack_helpers.fixtures_url() + "/latest"}}
    digest = {"name": "gainers-digest", "source_dir": str(digest_dir),
              "entrypoint": "gainers_digest/flow.py:gainers_digest", "deployment_name": f"it-{suffix}",
              "schedules": [{"cron": "0 7 * * 1", "slug": "weekly"}], "cpu": 256, "memory": 512,
              "env": {"DIGEST_MODE": "weekly"}, "retries": 1, "concurrency_limit": 1,
              "results_read_prefixes": ["top-gainers"],
              "parameters": {"results_bucket": results, "source_prefix": "top-gainers"}}
    variables = {
        "prefect_flow_catalogue": [elt, digest],
        "prefect_flow_stack_tag": f"stack:it-{suffix}",
        "prefect_flow_storage_bucket": storage,
        "prefect_flow_work_pool_name": f"it-ecs-{suffix}",
        "prefect_flow_ecs_cluster": f"it-{suffix}",
        "prefect_flow_health_checks": ["workers"],
        "prefect_flow_vpc_id": vpc,
        "prefect_flow_subnet_ids": [subnet],
        "prefect_flow_security_group_ids": [sg],
        "prefect_flow_execution_role_arn": "arn:aws:iam::123456789012:role/it-execution",
        "prefect_flow_default_task_role_name": f"it-{suffix}-flow-run-task",
        "prefect_flow_default_task_role_results_prefix": "adhoc/",
        "prefect_flow_image": "127.0.0.1:5000/flow:it",
        "prefect_flow_auth_string_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:it",
        "prefect_flow_log_group": f"/it/{suffix}",
        "prefect_flow_region": "us-east-1",
        "prefect_flow_health_delay": 2,
        "prefect_flow_health_retries": 45,
        "prefect_flow_results_bucket": results,
        "prefect_flow_task_role_path": f"/it-{suffix}/flows/",
        "prefect_flow_task_role_prefix": f"it-{suffix}-flow-",
    }
    # The pool's default flow-run task role as the ecs_fargate_agent role made it before prefect_flow owned it.
    account = boto3.client("sts", **kw).get_caller_identity()["Account"]
    legacy = variables["prefect_flow_default_task_role_name"]
    iam.create_role(RoleName=legacy, Path="/", Description=f"Task role of flow runs started by it-{suffix}: read flow code, write results",
                    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}),
                    Tags=[{"Key": "Name", "Value": legacy}])
    iam.put_role_policy(RoleName=legacy, PolicyName="prefect-flow-run", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "ListFlowCode", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{storage}"},
            {"Sid": "ReadFlowCode", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{storage}/*"},
            {"Sid": "WriteResultsUnderThePrefix", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
             "Resource": f"arn:aws:s3:::{results}/results/*"}]}))
    yield variables, s3, digest_dir, suffix, iam
    stack_helpers.run_playbook(PLAYBOOK, extra_vars={**variables, "prefect_flow_state": "absent"})


def test_catalogue_converge_change_one_remove_one_teardown(world):
    variables, s3, digest_dir, suffix, iam = world
    path = variables["prefect_flow_task_role_path"]

    def flow_roles() -> dict[str, dict]:
        """Role name -> its inline S3 policy, for the roles under the per-flow path."""
        roles = iam.list_roles(PathPrefix=path)["Roles"]
        return {r["RoleName"]: iam.get_role_policy(RoleName=r["RoleName"], PolicyName="prefect-flow-run")["PolicyDocument"]
                for r in roles}
    elt_name, digest_name = f"top-gainers-elt/it-{suffix}", f"gainers-digest/it-{suffix}"
    stack_tag = variables["prefect_flow_stack_tag"]
    storage = variables["prefect_flow_storage_bucket"]
    default_role = variables["prefect_flow_default_task_role_name"]
    legacy = iam.get_role(RoleName=default_role)["Role"]

    # check mode on nothing registered yet: succeeds, uploads and registers nothing
    run = converge(variables, check=True)
    assert s3.list_objects_v2(Bucket=storage).get("KeyCount", 0) == 0
    assert not exists(f"/deployments/name/{elt_name}") and not exists(f"/deployments/name/{digest_name}")

    # A deployment in the same workspace that is not this stack's: never touched.
    flow_id = api("/flows/", "POST", {"name": "gainers-digest"})["id"]
    foreign = api("/deployments/", "POST", {"name": f"foreign-{suffix}", "flow_id": flow_id,
                                            "entrypoint": "x/flow.py:f", "tags": ["stack:someone-else"]})

    with stack_helpers.host_worker(variables["prefect_flow_work_pool_name"], worker_type="ecs"):
        run = converge(variables)
        records = run.facts("prefect_flow__deployments")
        assert [r["deployment"] for r in records] == [elt_name, digest_name]
        assert run.facts("prefect_flow__deployment_name") == elt_name  # the first entry, for the summary
        assert run.facts("prefect_flow__deployment_id") == records[0]["id"]
        elt, digest = deployment(elt_name), deployment(digest_name)
        assert stack_tag in elt["tags"] and stack_tag in digest["tags"] and "elt" in elt["tags"]
        assert elt["schedules"][0]["schedule"] == {"cron": "0 6 * * *", "timezone": "UTC", "day_or": True}
        assert elt["schedules"][0]["slug"] == "daily"
        assert digest["schedules"][0]["schedule"]["cron"] == "0 7 * * 1"
        assert "results_bucket" in digest["parameter_openapi_schema"]["required"]
        assert digest["job_variables"]["cpu"] == 256 and digest["job_variables"]["memory"] == 512
        assert digest["job_variables"]["env"] == {"DIGEST_MODE": "weekly", "PREFECT_FLOWS_DEFAULT_RETRIES": "1"}
        # one task role per flow: its own code prefix to read, its own results prefix to write
        roles = flow_roles()
        assert set(roles) == {f"it-{suffix}-flow-top-gainers-elt", f"it-{suffix}-flow-gainers-digest"}
        assert digest["job_variables"]["task_role_arn"].endswith(f":role{path}it-{suffix}-flow-gainers-digest")
        assert elt["job_variables"]["task_role_arn"].endswith(f":role{path}it-{suffix}-flow-top-gainers-elt")
        statements = {st["Sid"]: st for st in roles[f"it-{suffix}-flow-gainers-digest"]["Statement"]}
        results = variables["prefect_flow_results_bucket"]
        assert statements["WriteOwnResults"]["Resource"] == f"arn:aws:s3:::{results}/gainers-digest/*"
        assert statements["ReadOwnFlowCode"]["Resource"] == f"arn:aws:s3:::{storage}/flows/gainers_digest/*"
        assert statements["ReadReadableResults"]["Resource"] == [f"arn:aws:s3:::{results}/top-gainers/*"]
        elt_statements = {st["Sid"]: st for st in roles[f"it-{suffix}-flow-top-gainers-elt"]["Statement"]}
        assert elt_statements["WriteOwnResults"]["Resource"] == f"arn:aws:s3:::{results}/top-gainers/*"
        assert "ReadReadableResults" not in elt_statements
        assert digest["global_concurrency_limit"]["limit"] == 1
        # each package under its own prefix and content hash
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=storage)["Contents"]]
        assert any(k.startswith("flows/gainers_elt/") and k.endswith("/gainers_elt/flow.py") for k in keys)
        assert any(k.startswith("flows/gainers_digest/") and k.endswith("/gainers_digest/flow.py") for k in keys)
        assert elt["pull_steps"][0]["prefect_aws.deployments.steps.pull_from_s3"]["folder"].startswith(
            "flows/gainers_elt/")
        pool = api(f"/work_pools/{variables['prefect_flow_work_pool_name']}")
        defaults = {k: v.get("default") for k, v in pool["base_job_template"]["variables"]["properties"].items()}
        assert pool["type"] == "ecs" and defaults["cluster"] == variables["prefect_flow_ecs_cluster"]
        # the pool's default flow-run task role: the legacy one adopted (same RoleId, path /), now this role's
        adopted = iam.get_role(RoleName=default_role)["Role"]
        assert (adopted["RoleId"], adopted["Path"]) == (legacy["RoleId"], "/")
        assert adopted["Description"].startswith("Default task role of the flow runs of work pool ")
        assert defaults["task_role_arn"] == adopted["Arn"]
        default_statements = {st["Sid"]: st for st in iam.get_role_policy(
            RoleName=default_role, PolicyName="prefect-flow-run")["PolicyDocument"]["Statement"]}
        assert default_statements["WriteResultsUnderThePrefix"]["Resource"] == f"arn:aws:s3:::{results}/adhoc/*"
        assert default_statements["ReadFlowCode"]["Resource"] == f"arn:aws:s3:::{storage}/*"
        assert defaults["cloudwatch_logs_options"]["awslogs-create-group"] == "false"

        # second run: nothing changes, no mutating AWS call, no Prefect write, deployments not touched
        recorder = stack_helpers.MotoRecorder().start()
        run = converge(variables)
        assert run.changed_tasks == [], run.changed_tasks
        assert recorder.mutating_calls() == []
        assert registration(run)["writes"] == []
        assert deployment(elt_name)["updated"] == elt["updated"]
        assert deployment(digest_name)["updated"] == digest["updated"]

        # check mode on the deployed stack: nothing to change
        run = converge(variables, check=True)
        assert run.changed_tasks == [], run.changed_tasks

        # change one flow's parameters: only its deployment is written
        changed = json.loads(json.dumps(variables))
        changed["prefect_flow_catalogue"][1]["parameters"]["top"] = 5
        run = converge(changed, diff=True)
        writes = registration(run)["writes"]
        assert writes and all(w.endswith(digest["id"]) for w in writes), writes
        assert deployment(elt_name)["updated"] == elt["updated"]
        assert deployment(digest_name)["parameters"]["top"] == 5

        # change one flow's code: a new content hash, only its files uploaded, only its deployment written
        (digest_dir / "extra.py").write_text("VALUE = 1\n")
        recorder = stack_helpers.MotoRecorder().start()
        run = converge(changed)
        puts = recorder.mutating_calls()
        # the digest's new files, and its role's policy (its code prefix is unchanged: no IAM write expected)
        assert puts and all("gainers_digest" in str(c) for c in puts), puts
        writes = registration(run)["writes"]
        assert writes and all(w.endswith(digest["id"]) for w in writes), writes
        new_folder = deployment(digest_name)["pull_steps"][0]["prefect_aws.deployments.steps.pull_from_s3"]["folder"]
        assert new_folder != digest["pull_steps"][0]["prefect_aws.deployments.steps.pull_from_s3"]["folder"]
        assert deployment(elt_name)["updated"] == elt["updated"]

        # remove the digest from the catalogue with the opt-out: it is kept (its role too)
        only_elt = {**changed, "prefect_flow_catalogue": changed["prefect_flow_catalogue"][:1]}
        run = converge({**only_elt, "prefect_flow_prune_deployments": False})
        assert registration(run)["removed"] == [] and exists(f"/deployments/name/{digest_name}")
        assert len(flow_roles()) == 2

        # remove it for real: its deployment goes; the ELT and the foreign deployment stay
        run = converge(only_elt)
        assert registration(run)["removed"] == [digest_name]
        assert not exists(f"/deployments/name/{digest_name}")
        assert set(flow_roles()) == {f"it-{suffix}-flow-top-gainers-elt"}
        assert deployment(elt_name)["updated"] == elt["updated"]
        assert exists(f"/deployments/{foreign['id']}")

    # teardown: every deployment of the stack, then the pool; nothing else; a second delete changes nothing
    absent = {**only_elt, "prefect_flow_state": "absent"}
    run = converge(absent)
    assert not exists(f"/deployments/{elt['id']}")
    assert not exists(f"/work_pools/{variables['prefect_flow_work_pool_name']}")
    assert exists(f"/deployments/{foreign['id']}")
    assert flow_roles() == {}
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"] == default_role]
    run = converge(absent)
    assert run.changed_tasks == [], run.changed_tasks
    api(f"/deployments/{foreign['id']}", "DELETE")
