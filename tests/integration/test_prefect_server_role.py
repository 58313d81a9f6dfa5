"""prefect_server role (prefect_server_mode: hosted) against the local stack (moto), with the alb role's server
target group: check mode writes nothing, create, converge (changed=0, no write, the generated master password not
rotated), the database has the settings asked (encrypted, Multi-AZ, backups, private, its security group open on
5432 to the server's tasks only), no secret value in the task definition or the output, then the delete path keeps
the database by default, refuses it clearly under deletion protection, and removes it with the data opt-in.

What this does not prove: that the server starts. moto's RDS has no database engine and the image is never pushed
here, so the local Fargate stand-in fails the server's task fast (as Fargate would); the registration's wait on the
server's /api/health (prefect_flow_server_health_url) is not part of this playbook. A real PostgreSQL behind the
emulated instance is the local stack's (scripts/local_stack.py), and the end-to-end hosted run is molecule's.
"""

from __future__ import annotations

import json
import urllib.request
from types import SimpleNamespace

import boto3
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = "tests/integration/playbooks/prefect_server.yml"
NAME = "it-srv"
DB = f"{NAME}-server-db"
CLUSTER = SERVICE = FAMILY = f"{NAME}-server"
MASTER, URL_SECRET, AUTH_SECRET = (f"{NAME}/prefect-server/{n}" for n in ("db-master", "database-url", "auth-string"))
AUTH = "it-admin:it-server-auth-not-shown"  # tests/integration/playbooks/prefect_server.yml


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def recording(stack) -> list[dict]:
    with urllib.request.urlopen(stack.moto_url() + "/moto-api/recorder/download-recording", timeout=30) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def run(stack, entries: list, extra=None, check=False):
    recorder = stack.MotoRecorder().start()
    result = stack.run_playbook(PLAYBOOK, extra_vars=extra, check=check)
    calls = recorder.calls()
    entries += recording(stack)
    return SimpleNamespace(run=result, writes=[c for c in calls if c.deployer_write])


def secret_names(stack) -> set[str]:
    return {s["Name"] for s in client(stack, "secretsmanager").list_secrets()["SecretList"]}


def master_password(stack) -> str:
    return json.loads(client(stack, "secretsmanager").get_secret_value(SecretId=MASTER)["SecretString"])["password"]


def primary_deployment(stack) -> str:
    service = client(stack, "ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    return next(d["id"] for d in service["deployments"] if d["status"] == "PRIMARY")


def short(names):
    return [n.split(" : ")[-1] for n in names]


@pytest.fixture(scope="module")
def runs(local_stack):
    local_stack.reset_moto()
    r = SimpleNamespace(entries=[])
    r.check_empty = run(local_stack, r.entries, check=True)
    r.create = run(local_stack, r.entries)
    assert r.create.run.rc == 0, r.create.run.failed_messages or r.create.run.stdout[-3000:]
    r.password_after_create = master_password(local_stack)
    r.converge = run(local_stack, r.entries)
    r.password_after_converge = master_password(local_stack)
    r.check_deployed = run(local_stack, r.entries, check=True)
    return r


def test_check_mode_on_an_empty_account_writes_nothing(runs):
    assert runs.check_empty.run.rc == 0, runs.check_empty.run.failed_messages
    assert runs.check_empty.writes == []
    assert "Predict in check mode what the calling role would create - the Prefect server and its database" in \
        short(runs.check_empty.run.changed_tasks)


def test_create_exports_the_server_facts(runs):
    facts = runs.create.run.facts
    assert facts("prefect_server__cluster_name") == CLUSTER
    assert facts("prefect_server__db_identifier") == DB
    assert facts("alb__server_target_group_arn")
    assert facts("prefect_server__api_url") == f"http://{facts('alb__dns_name').lower()}/api"


def test_database_is_encrypted_private_backed_up_as_asked(runs, local_stack):
    db = client(local_stack, "rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    # tests/integration/playbooks/prefect_server.yml asks for these (the defaults are db.t4g.micro, single-AZ, 7 days)
    assert db["DBInstanceClass"] == "db.t4g.small"
    assert db["MultiAZ"] is True
    assert db["BackupRetentionPeriod"] == 3
    assert db["DeletionProtection"] is False
    assert db["DBName"] == "prefect" and db["MasterUsername"] == "prefect"
    ec2 = client(local_stack, "ec2")
    private = {s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-private-*"]}])["Subnets"]}
    assert {s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]} == private
    # The database's group: 5432 from the server tasks' group only; the server's: its port from the ALB's only.
    (db_sg,) = ec2.describe_security_groups(GroupIds=[g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]])["SecurityGroups"]
    (server_sg,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{NAME}-server"]}])["SecurityGroups"]
    (alb_sg,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{NAME}-alb"]}])["SecurityGroups"]
    assert [(p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in db_sg["IpPermissions"]] == [(5432, 5432, [server_sg["GroupId"]], [])]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in server_sg["IpPermissions"]] == [(4200, [alb_sg["GroupId"]], [])]


def test_master_password_is_generated_once_and_kept(runs, local_stack):
    assert len(runs.password_after_create) == 40
    assert runs.password_after_converge == runs.password_after_create
    url = client(local_stack, "secretsmanager").get_secret_value(SecretId=URL_SECRET)["SecretString"]
    endpoint = client(local_stack, "rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["Endpoint"]
    assert url == f"postgresql+asyncpg://prefect:{runs.password_after_create}@{endpoint['Address']}:{endpoint['Port']}/prefect"


def test_no_secret_value_in_the_task_definition_or_the_output(runs, local_stack):
    td = client(local_stack, "ecs").describe_task_definition(taskDefinition=FAMILY)["taskDefinition"]
    text = json.dumps(td, default=str)
    for value in (runs.password_after_create, AUTH, AUTH.split(":")[1], "postgresql+asyncpg"):
        assert value not in text
        for r in (runs.check_empty, runs.create, runs.converge, runs.check_deployed):
            assert value not in r.run.stdout and value not in r.run.stderr
    (container,) = td["containerDefinitions"]
    assert container["command"] == ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "true"
    assert env["PREFECT_UI_API_URL"] == runs.create.run.facts("prefect_server__api_url")
    # The image's user (10001) cannot write into the Prefect package: the UI bundle goes to a writable folder.
    assert env["PREFECT_UI_STATIC_DIRECTORY"] == "/tmp/prefect-ui"
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert set(secrets) == {"PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_SERVER_API_AUTH_STRING"}
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    # The execution role reads exactly those two secrets.
    role = td["executionRoleArn"].split("/")[-1]
    iam = client(local_stack, "iam")
    (policy,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    (statement,) = doc["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert sorted(statement["Resource"]) == sorted(secrets.values())


def test_alb_forwards_to_the_server_and_keeps_the_worker_health_route(runs, local_stack):
    elb = client(local_stack, "elbv2")
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    (server_tg,) = elb.describe_target_groups(Names=[f"{NAME}-srv-tg"])["TargetGroups"]
    (worker_tg,) = elb.describe_target_groups(Names=[f"{NAME}-tg"])["TargetGroups"]
    assert server_tg["HealthCheckPath"] == "/api/health" and server_tg["Port"] == 4200
    (listener,) = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [a["TargetGroupArn"] for a in listener["DefaultActions"]] == [server_tg["TargetGroupArn"]]
    rules = [r for r in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert [(r["Conditions"][0]["Values"], r["Actions"][0]["TargetGroupArn"]) for r in rules] == \
        [(["/health"], worker_tg["TargetGroupArn"])]
    service = client(local_stack, "ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    assert [lb["targetGroupArn"] for lb in service["loadBalancers"]] == [server_tg["TargetGroupArn"]]
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"


def test_second_run_changes_and_writes_nothing(runs):
    assert runs.converge.run.rc == 0, runs.converge.run.failed_messages
    assert runs.converge.run.changed_tasks == []
    assert runs.converge.writes == []


def test_check_mode_on_the_deployed_stack_writes_nothing(runs):
    assert runs.check_deployed.run.rc == 0, runs.check_deployed.run.failed_messages
    assert runs.check_deployed.writes == []
    assert runs.check_deployed.run.changed_tasks == []


def test_drift_is_reported_in_check_mode_then_repaired(runs, local_stack):
    """The reader (stack_state_info, reader prefect_server) skips the write tasks only when nothing differs: drift
    behind the stack's back is reported by check mode (no write) and written back by the next run."""
    ec2, logs = client(local_stack, "ec2"), client(local_stack, "logs")
    (db_sg,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [DB]}])["SecurityGroups"]
    ec2.authorize_security_group_ingress(GroupId=db_sg["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    logs.put_retention_policy(logGroupName=f"/ecs/{NAME}-server", retentionInDays=1)
    client(local_stack, "iam").detach_role_policy(
        RoleName=f"{NAME}-server-execution", PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    # The auth string changed behind the stack: written back, and the server rolled (tasks read secrets at start).
    sm = client(local_stack, "secretsmanager")
    sm.put_secret_value(SecretId=AUTH_SECRET, SecretString="changed-behind-the-stack")
    deployment_before = primary_deployment(local_stack)
    auth_and_roll = {"Store the server's basic auth string", "Ensure the server service (private subnets, attached to the server target group)"}
    checked = run(local_stack, runs.entries, check=True)
    assert checked.run.rc == 0, checked.run.failed_messages
    assert checked.writes == []
    assert {"Ensure the database security group (PostgreSQL from the server tasks only)",
            "Ensure the server execution role (pull the image, write logs)", *auth_and_roll} <= set(short(checked.run.changed_tasks))
    repaired = run(local_stack, runs.entries)
    assert repaired.run.rc == 0, repaired.run.failed_messages
    assert {"Ensure the database security group (PostgreSQL from the server tasks only)", "Ensure the server log group",
            "Ensure the server execution role (pull the image, write logs)", *auth_and_roll} <= set(short(repaired.run.changed_tasks))
    assert sm.get_secret_value(SecretId=AUTH_SECRET)["SecretString"] == AUTH
    assert primary_deployment(local_stack) != deployment_before
    (db_sg,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [DB]}])["SecurityGroups"]
    assert all(not p.get("IpRanges") for p in db_sg["IpPermissions"])
    group = logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{NAME}-server")["logGroups"][0]
    assert group.get("retentionInDays") == 30
    again = run(local_stack, runs.entries)
    assert again.run.rc == 0 and again.run.changed_tasks == [] and again.writes == []


def test_delete_keeps_the_database_by_default_then_removes_it_with_the_opt_in(runs, local_stack):
    rds = client(local_stack, "rds")
    kept = run(local_stack, runs.entries, {"it_state": "absent"})
    assert kept.run.rc == 0, kept.run.failed_messages
    assert kept.run.facts("prefect_server__kept") == [DB]
    assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == [DB]
    assert secret_names(local_stack) == {MASTER}  # the URL and auth secrets go; the password stays with its database
    services = client(local_stack, "ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"]
    assert all(s["status"] != "ACTIVE" for s in services)
    assert client(local_stack, "ecs").list_task_definitions(familyPrefix=FAMILY, status="ACTIVE")["taskDefinitionArns"] == []

    # Deletion protection (on in inventories/prod): the opt-in is refused with a message that says what to do.
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=True, ApplyImmediately=True)
    refused = run(local_stack, runs.entries, {"it_state": "absent", "it_delete_data": True})
    assert refused.run.rc != 0
    message = "\n".join(refused.run.failed_messages)
    assert "deletion protection" in message and "prefect_server_db_deletion_protection" in message
    assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == [DB]
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=False, ApplyImmediately=True)

    dropped = run(local_stack, runs.entries, {"it_state": "absent", "it_delete_data": True})
    assert dropped.run.rc == 0, dropped.run.failed_messages
    assert rds.describe_db_instances()["DBInstances"] == []
    assert rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    assert secret_names(local_stack) == set()
    groups = client(local_stack, "ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{NAME}-server", DB]}])["SecurityGroups"]
    assert groups == []
    assert dropped.run.facts("prefect_server__kept") == []


def test_the_deployer_policy_grants_every_action_the_role_called(runs):
    """scripts/deployer_policy.py on the requests of every run of this module (the delete test runs before this
    one in file order): docs/deployer-policy.json grants each action."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "deployer_policy.py"
    spec = importlib.util.spec_from_file_location("deployer_policy", script)
    dp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dp)
    actions, unmapped = dp.derive(runs.entries)
    assert unmapped == []
    assert {"rds:CreateDBInstance", "rds:DeleteDBInstance", "rds:CreateDBSubnetGroup"} <= set(actions)
    policy = json.loads((script.parents[1] / "docs" / "deployer-policy.json").read_text())
    assert dp.missing_actions(actions, policy) == []
