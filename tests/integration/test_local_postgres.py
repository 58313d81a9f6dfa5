"""RDS PostgreSQL on the local stack (issue #16): an RDS postgres instance created through the emulator is a
real database on the stack's PostgreSQL server (scripts/moto_patches_rds.py), reachable at the endpoint
DescribeDBInstances returns with the master password; deleting the instance (or resetting the emulator)
leaves nothing on the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.parse
import uuid

import asyncpg
import boto3
import pytest

from scripts import moto_patches_rds
from tests.helpers.stack import VENV_BIN, local_stack_script, moto_url, stack, state_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aws():
    """The two services this needs (reused when running): the PostgreSQL server and moto."""
    result = stack("up", "postgres", "moto", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    kwargs = {"endpoint_url": moto_url(), "region_name": "us-east-1", "aws_access_key_id": "testing",
              "aws_secret_access_key": "testing"}
    return boto3.client("rds", **kwargs), boto3.client("secretsmanager", **kwargs)


@pytest.fixture
def server():
    """The server's admin side, to see what exists there."""
    return moto_patches_rds.LocalPostgres.from_env(local_stack_script.postgres_env())


def _names(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _query(endpoint: dict, user: str, password: str, database: str, *statements: str) -> list:
    async def run() -> list:
        conn = await asyncpg.connect(host=endpoint["Address"], port=endpoint["Port"], user=user, password=password,
                                     database=database, timeout=10)
        try:
            return [await conn.fetchval(statement) for statement in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


def _refused(endpoint: dict, user: str, password: str, database: str) -> bool:
    try:
        _query(endpoint, user, password, database, "select 1")
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        return True
    return False


def test_instance_is_a_real_database_at_its_endpoint_and_gone_after_delete(aws, server):
    rds, secrets = aws
    identifier, user, database = _names("pg-"), _names("prefect_"), _names("prefect_")
    instance = rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", EngineVersion="15.8",
                                      DBInstanceClass="db.t4g.micro", AllocatedStorage=20, MasterUsername=user,
                                      ManageMasterUserPassword=True, DBName=database)["DBInstance"]
    try:
        endpoint = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]
        assert endpoint == {"Address": "127.0.0.1", "Port": int(local_stack_script.PORTS["postgres"])}
        secret_arn = instance["MasterUserSecret"]["SecretArn"]
        credentials = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
        assert credentials["username"] == user

        # What Prefect's server does on start: connect, migrate (its migrations create pg_trgm).
        assert _query(endpoint, user, credentials["password"], database, "select 1",
                      "create extension if not exists pg_trgm", "create table flow_run (id int)",
                      "select current_user") == [1, None, None, user]
        assert _refused(endpoint, user, "not-the-password", database)

        rds.modify_db_instance(DBInstanceIdentifier=identifier, RotateMasterUserPassword=True, ApplyImmediately=True)
        rotated = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])["password"]
        assert rotated != credentials["password"] and _refused(endpoint, user, credentials["password"], database)
        assert _query(endpoint, user, rotated, database, "select count(*) from flow_run") == [0]
        catalog = server.catalog()
        assert user in catalog["roles"] and database in catalog["databases"]
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)

    catalog = server.catalog()
    assert user not in catalog["roles"] and database not in catalog["databases"]
    assert _refused(endpoint, user, rotated, "postgres")


def test_instance_without_dbname_works_in_postgres_and_a_new_password_applies(aws, server):
    rds, _ = aws
    identifier, user = _names("pg-"), _names("admin_")
    endpoint = rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t4g.micro",
                                      AllocatedStorage=20, MasterUsername=user,
                                      MasterUserPassword="first-Password-1")["DBInstance"]["Endpoint"]
    try:
        # No DBName: no database beyond `postgres`, where the master user may create, as on RDS.
        assert _query(endpoint, user, "first-Password-1", "postgres", f"create table {user}_t (x int)", "select 1") == [None, 1]
        rds.modify_db_instance(DBInstanceIdentifier=identifier, MasterUserPassword="second-Password-2", ApplyImmediately=True)
        assert _refused(endpoint, user, "first-Password-1", "postgres")
        assert _query(endpoint, user, "second-Password-2", "postgres", f"select count(*) from {user}_t") == [0]
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
    assert user not in server.catalog()["roles"]
    # Its table in `postgres` went with it (DROP OWNED).
    async def tables() -> list:
        conn = await asyncpg.connect(host=server.socket_dir, port=server.port, user=server.admin, database="postgres")
        try:
            return await conn.fetch("select tablename from pg_tables where tablename = $1", f"{user}_t")
        finally:
            await conn.close()
    assert asyncio.run(tables()) == []


def test_a_master_username_another_live_instance_holds_is_refused(aws, server):
    rds, _ = aws
    first, user = _names("pg-"), _names("owner_")
    common = {"Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "AllocatedStorage": 20, "MasterUsername": user,
              "MasterUserPassword": "a-Password-123"}
    rds.create_db_instance(DBInstanceIdentifier=first, **common)
    try:
        with pytest.raises(rds.exceptions.ClientError, match=f"MasterUsername '{user}' is already taken"):
            rds.create_db_instance(DBInstanceIdentifier=_names("pg-"), **common)
        assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]
                if d["MasterUsername"] == user] == [first]
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=first, SkipFinalSnapshot=True)


def test_prefect_server_migrates_its_database_as_the_master_user(aws, server):
    """What the hosted Prefect server's task does first, with the managed secret's credentials (a generated
    password has URL-reserved characters: the connection URL quotes them)."""
    rds, secrets = aws
    identifier, database = _names("pg-"), _names("prefect_")
    instance = rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t4g.micro",
                                      AllocatedStorage=20, MasterUsername=_names("prefect_"),
                                      ManageMasterUserPassword=True, DBName=database)["DBInstance"]
    try:
        credentials = json.loads(secrets.get_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"])["SecretString"])
        endpoint = instance["Endpoint"]
        user, password = (urllib.parse.quote(credentials[key], safe="") for key in ("username", "password"))
        url = f"postgresql+asyncpg://{user}:{password}@{endpoint['Address']}:{endpoint['Port']}/{database}"
        env = {**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": url,
               "PREFECT_HOME": str(state_dir() / "prefect-on-rds"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        proc = subprocess.run([str(VENV_BIN / "prefect"), "server", "database", "upgrade", "-y"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0 and "Migrations succeeded" in proc.stdout, proc.stdout + proc.stderr
        assert credentials["password"] not in proc.stdout + proc.stderr
        tables = _query(endpoint, credentials["username"], credentials["password"], database,
                        "select count(*) from pg_tables where tablename = 'flow_run'")
        assert tables == [1]
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
    assert database not in server.catalog()["databases"]


def test_reset_leaves_nothing_on_the_server(aws, server):
    rds, _ = aws
    user, database = _names("reset_"), _names("reset_")
    rds.create_db_instance(DBInstanceIdentifier=_names("pg-"), Engine="postgres", DBInstanceClass="db.t4g.micro",
                           AllocatedStorage=20, MasterUsername=user, MasterUserPassword="a-Password-123", DBName=database)
    assert user in server.catalog()["roles"]
    result = stack("reset", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    catalog = server.catalog()
    assert user not in catalog["roles"] and database not in catalog["databases"]
    assert not [name for name, owner in {**catalog["roles"], **catalog["databases"]}.items() if owner]
