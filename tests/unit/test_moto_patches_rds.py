"""RDS gaps of moto 5.2 (scripts/moto_patches_rds.py): each test shows the gap without the patch and AWS's
behaviour with it. moto runs in-process (`mock_aws`); the local PostgreSQL server is a fake recording what
the patch asks of it (tests/integration/test_local_postgres.py runs the real one)."""

from __future__ import annotations

import asyncio
import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from scripts import moto_patches, moto_patches_rds
from tests.helpers.moto_testing import REGION, fake_aws_env

ACCOUNT = "123456789012"
PORT = 5999


class FakePostgres:
    """The admin side of moto_patches_rds.LocalPostgres, in memory: roles and databases with their owners."""

    port, admin = PORT, moto_patches_rds.DEFAULT_ADMIN

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.roles: dict[str, str | None] = {self.admin: None}
        self.databases: dict[str, str | None] = {"postgres": None, "template0": None, "template1": None}
        self.passwords: dict[str, str] = {}

    def catalog(self):
        return {"roles": dict(self.roles), "databases": dict(self.databases)}

    def create_master(self, owner, username, password, db_name):
        self.calls.append(("create_master", username, db_name))
        self.roles[username], self.passwords[username] = owner, password
        if db_name and db_name != "postgres":
            self.databases[db_name] = owner

    def set_password(self, username, password):
        self.calls.append(("set_password", username))
        self.passwords[username] = password

    def drop_master(self, username):
        self.calls.append(("drop_master", username))
        owner = self.roles.pop(username, None)
        self.passwords.pop(username, None)
        self.databases = {name: o for name, o in self.databases.items() if o is None or o != owner}

    def drop_database(self, name):
        self.calls.append(("drop_database", name))
        self.databases.pop(name, None)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    fake_aws_env(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def pg(monkeypatch):
    fake = FakePostgres()
    monkeypatch.setattr(moto_patches_rds, "local_postgres", lambda: fake)
    return fake


def _create(identifier="prefect-db", username="prefect", db_name="prefect", engine="postgres", **extra):
    params = {"DBInstanceIdentifier": identifier, "Engine": engine, "DBInstanceClass": "db.t4g.micro",
              "MasterUsername": username, "AllocatedStorage": 20, **extra}
    if db_name:
        params["DBName"] = db_name
    if "ManageMasterUserPassword" not in extra:
        params.setdefault("MasterUserPassword", "first-password-1")
    return boto3.client("rds").create_db_instance(**params)["DBInstance"]


def _describe(identifier="prefect-db"):
    return boto3.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _secret(instance):
    value = boto3.client("secretsmanager").get_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"])
    return json.loads(value["SecretString"])


def _arn(identifier="prefect-db"):
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{identifier}"


def test_patches_are_registered_in_the_patch_layer():
    assert set(moto_patches_rds.PATCHES) <= set(moto_patches.PATCHES)


# --- rds_postgres_create_database -----------------------------------------------------------------


def test_create_asks_no_database_of_anyone_without_the_patch(pg):
    _create()
    assert pg.calls == []


def test_create_makes_the_master_role_and_database_with_the_patch(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    assert pg.calls == [("create_master", "prefect", "prefect")]
    assert pg.roles["prefect"] == _arn() and pg.databases["prefect"] == _arn()
    assert pg.passwords["prefect"] == "first-password-1"


def test_create_without_dbname_makes_no_extra_database(pg, patched):
    patched("rds_postgres_create_database")
    _create(db_name=None)
    assert pg.calls == [("create_master", "prefect", None)]
    assert set(pg.databases) == {"postgres", "template0", "template1"}


def test_create_leaves_other_engines_and_an_unconfigured_stack_alone(pg, patched, monkeypatch):
    patched("rds_postgres_create_database")
    _create(identifier="mysql", engine="mysql", db_name="app")
    monkeypatch.setattr(moto_patches_rds, "local_postgres", lambda: None)
    _create(identifier="unconfigured")
    assert pg.calls == []


def test_create_refuses_a_master_username_another_live_instance_holds(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    with pytest.raises(ClientError, match=r"MasterUsername 'prefect' is already taken .*by DB instance "
                                          + re.escape(_arn())):
        _create(identifier="second", db_name="other")
    assert [d["DBInstanceIdentifier"] for d in boto3.client("rds").describe_db_instances()["DBInstances"]] == ["prefect-db"]


def test_create_refuses_a_dbname_another_live_instance_holds(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    with pytest.raises(ClientError, match="DBName 'prefect' is already taken"):
        _create(identifier="second", username="other")


def test_create_refuses_the_servers_own_names(pg, patched):
    patched("rds_postgres_create_database")
    with pytest.raises(ClientError, match="MasterUsername local_stack cannot be used as it is a reserved word"):
        _create(username="local_stack")
    with pytest.raises(ClientError, match="DBName 'template1' is already taken .* the local PostgreSQL server itself"):
        _create(db_name="template1")
    assert pg.calls == []


def test_create_takes_over_what_a_gone_instance_left(pg, patched):
    """An emulator restarted (or reset while the server was down) forgot the instance; the server did not."""
    patched("rds_postgres_create_database")
    pg.roles["prefect"] = pg.databases["prefect"] = _arn("gone")
    _create()
    assert pg.calls == [("drop_master", "prefect"), ("create_master", "prefect", "prefect")]
    assert pg.roles["prefect"] == _arn()


def test_create_fails_and_leaves_no_instance_when_the_server_is_down(patched, monkeypatch):
    patched("rds_postgres_create_database", "rds_managed_master_secret")

    class Down(FakePostgres):
        def catalog(self):
            raise moto_patches_rds.LocalPostgresUnavailable("local stack: the local PostgreSQL server is not reachable")

    monkeypatch.setattr(moto_patches_rds, "local_postgres", Down)
    with pytest.raises(ClientError, match="not reachable"):
        _create(ManageMasterUserPassword=True)
    assert boto3.client("rds").describe_db_instances()["DBInstances"] == []
    assert boto3.client("secretsmanager").list_secrets()["SecretList"] == []


# --- rds_postgres_endpoint ------------------------------------------------------------------------


def test_endpoint_is_an_unresolvable_name_without_the_patch(pg, patched):
    patched("rds_postgres_create_database")
    assert _create()["Endpoint"] == {"Address": f"prefect-db.aaaaaaaaaa.{REGION}.rds.amazonaws.com", "Port": 5432}


def test_endpoint_is_the_local_server_with_the_patch(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_endpoint")
    assert _create()["Endpoint"] == {"Address": "127.0.0.1", "Port": PORT}
    described = _describe()
    assert described["Endpoint"] == {"Address": "127.0.0.1", "Port": PORT} and described["DbInstancePort"] == 5432
    assert _create(identifier="mysql", engine="mysql", db_name=None)["Endpoint"]["Address"].endswith(".amazonaws.com")


# --- rds_managed_master_secret --------------------------------------------------------------------


def test_managed_secret_holds_a_fixed_admin_password_without_the_patch():
    assert _secret(_create(ManageMasterUserPassword=True)) == {"username": "admin", "password": "P@55w0rd!"}


def test_managed_secret_holds_the_master_username_and_a_generated_password_with_the_patch(patched):
    patched("rds_managed_master_secret")
    first, second = _create(ManageMasterUserPassword=True), _create(identifier="two", ManageMasterUserPassword=True)
    name = boto3.client("secretsmanager").describe_secret(SecretId=first["MasterUserSecret"]["SecretArn"])["Name"]
    assert re.fullmatch(r"rds!db-[0-9a-f-]{36}", name)
    assert _secret(first)["username"] == "prefect" and len(_secret(first)["password"]) == 28
    assert _secret(first)["password"] != _secret(second)["password"]
    assert not set(_secret(first)["password"]) & set('/"@ ')


def test_managed_password_is_the_roles_password(pg, patched):
    patched("rds_postgres_create_database", "rds_managed_master_secret")
    instance = _create(ManageMasterUserPassword=True)
    assert pg.passwords["prefect"] == _secret(instance)["password"]


# --- rds_rotate_master_user_password --------------------------------------------------------------


def _rotate():
    return boto3.client("rds").modify_db_instance(DBInstanceIdentifier="prefect-db", RotateMasterUserPassword=True,
                                                  ApplyImmediately=True)["DBInstance"]


def test_rotation_leaves_no_current_secret_value_without_the_patch(patched):
    patched("rds_managed_master_secret")
    instance = _create(ManageMasterUserPassword=True)
    _rotate()
    with pytest.raises(ClientError, match="staging label: AWSCURRENT"):
        _secret(instance)


def test_rotation_puts_a_new_current_password_with_the_patch(patched):
    patched("rds_managed_master_secret", "rds_rotate_master_user_password")
    instance = _create(ManageMasterUserPassword=True)
    before = _secret(instance)
    assert _rotate()["MasterUserSecret"]["SecretStatus"] == "rotating"
    after = _secret(instance)
    assert after["username"] == "prefect" and after["password"] != before["password"]
    previous = boto3.client("secretsmanager").get_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"],
                                                               VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"]) == before


# --- rds_postgres_master_password -----------------------------------------------------------------


def test_new_master_password_stays_in_moto_without_the_patch(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    boto3.client("rds").modify_db_instance(DBInstanceIdentifier="prefect-db", MasterUserPassword="second-password-2",
                                           ApplyImmediately=True)
    assert pg.passwords["prefect"] == "first-password-1"


def test_new_master_password_is_the_roles_with_the_patch(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_master_password")
    _create()
    rds = boto3.client("rds")
    rds.modify_db_instance(DBInstanceIdentifier="prefect-db", MasterUserPassword="second-password-2", ApplyImmediately=True)
    assert pg.passwords["prefect"] == "second-password-2"
    rds.modify_db_instance(DBInstanceIdentifier="prefect-db", BackupRetentionPeriod=3, ApplyImmediately=True)
    assert pg.calls.count(("set_password", "prefect")) == 1  # an unrelated change leaves the role alone


def test_managed_password_switch_and_rotation_reach_the_role_with_the_patch(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_master_password", "rds_managed_master_secret",
            "rds_rotate_master_user_password")
    _create()
    rds = boto3.client("rds")
    instance = rds.modify_db_instance(DBInstanceIdentifier="prefect-db", ManageMasterUserPassword=True,
                                      ApplyImmediately=True)["DBInstance"]
    assert pg.passwords["prefect"] == _secret(instance)["password"]
    _rotate()
    assert pg.passwords["prefect"] == _secret(instance)["password"]
    assert pg.calls.count(("set_password", "prefect")) == 2


# --- rds_postgres_delete_database -----------------------------------------------------------------


def test_delete_leaves_the_role_and_database_without_the_patch(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    boto3.client("rds").delete_db_instance(DBInstanceIdentifier="prefect-db", SkipFinalSnapshot=True)
    assert "prefect" in pg.roles and "prefect" in pg.databases


def test_delete_drops_the_role_and_database_with_the_patch(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_delete_database")
    _create()
    _create(identifier="mysql", engine="mysql", username="admin", db_name="app")
    rds = boto3.client("rds")
    rds.delete_db_instance(DBInstanceIdentifier="prefect-db", SkipFinalSnapshot=True)
    rds.delete_db_instance(DBInstanceIdentifier="mysql", SkipFinalSnapshot=True)
    assert pg.calls[-1] == ("drop_master", "prefect") and ("drop_master", "admin") not in pg.calls
    assert "prefect" not in pg.roles and "prefect" not in pg.databases


def test_deleting_a_read_replica_leaves_its_primarys_database(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_delete_database", "rds_postgres_master_password")
    _create()
    rds = boto3.client("rds")
    rds.create_db_instance_read_replica(DBInstanceIdentifier="replica", SourceDBInstanceIdentifier="prefect-db")
    rds.delete_db_instance(DBInstanceIdentifier="replica", SkipFinalSnapshot=True)
    assert pg.calls == [("create_master", "prefect", "prefect")] and "prefect" in pg.roles


def test_a_restored_instance_gets_no_database(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_endpoint")
    _create()
    rds = boto3.client("rds")
    rds.create_db_snapshot(DBInstanceIdentifier="prefect-db", DBSnapshotIdentifier="snap")
    restored = rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="restored", DBSnapshotIdentifier="snap")
    restored = restored["DBInstance"]
    assert pg.calls == [("create_master", "prefect", "prefect")]
    assert restored["Endpoint"]["Address"].endswith(".amazonaws.com")


def test_a_renamed_instance_keeps_its_names(pg, patched):
    patched("rds_postgres_create_database", "rds_postgres_delete_database")
    _create()
    rds = boto3.client("rds")
    rds.modify_db_instance(DBInstanceIdentifier="prefect-db", NewDBInstanceIdentifier="renamed", ApplyImmediately=True)
    with pytest.raises(ClientError, match="MasterUsername 'prefect' is already taken"):
        _create(identifier="second", db_name="other")
    rds.delete_db_instance(DBInstanceIdentifier="renamed", SkipFinalSnapshot=True)
    assert "prefect" not in pg.roles


# --- rds_reset_drops_local_databases --------------------------------------------------------------


def _reset_rds():
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT][REGION].reset()


def test_reset_leaves_the_role_and_database_without_the_patch(pg, patched):
    patched("rds_postgres_create_database")
    _create()
    _reset_rds()
    assert boto3.client("rds").describe_db_instances()["DBInstances"] == [] and "prefect" in pg.roles


def test_reset_drops_the_role_and_database_with_the_patch(pg, patched):
    patched("rds_postgres_create_database", "rds_reset_drops_local_databases")
    _create()
    _reset_rds()
    assert boto3.client("rds").describe_db_instances()["DBInstances"] == []
    assert pg.calls[-1] == ("drop_master", "prefect") and "prefect" not in pg.roles


def test_reset_happens_when_the_server_is_down(pg, patched, monkeypatch):
    patched("rds_postgres_create_database", "rds_reset_drops_local_databases")
    _create()

    def down(username):
        raise moto_patches_rds.LocalPostgresUnavailable(f"down, {username} stays")

    monkeypatch.setattr(pg, "drop_master", down)
    _reset_rds()
    assert boto3.client("rds").describe_db_instances()["DBInstances"] == []


# --- the admin connection's SQL (LocalPostgres) ---------------------------------------------------


class RecordingConnection:
    """asyncpg's connection as LocalPostgres uses it: format() done here with PostgreSQL's %I / %L rules."""

    def __init__(self, rows=None) -> None:
        self.statements: list[str] = []
        self.rows = rows or {}

    @staticmethod
    def _format(template, *values):
        quoted = iter(values)

        def one(match):
            value = next(quoted)
            return '"' + value.replace('"', '""') + '"' if match.group(1) == "I" else "'" + value.replace("'", "''") + "'"

        return re.sub(r"%([IL])", one, template)

    async def fetchval(self, query, *args):
        if query.startswith("select format("):
            return self._format(*args)
        return self.rows.get(query.split(" where")[0], 1)

    async def fetch(self, query, *args):
        return self.rows.get(query, [])

    async def execute(self, statement):
        self.statements.append(statement)


def _run_on(conn, monkeypatch):
    monkeypatch.setattr(moto_patches_rds.LocalPostgres, "_run", lambda self, work: asyncio.run(work(conn)))
    return moto_patches_rds.LocalPostgres(PORT, "/tmp/sockets")


def test_from_env_needs_the_port():
    assert moto_patches_rds.LocalPostgres.from_env({}) is None
    pg = moto_patches_rds.LocalPostgres.from_env({"LOCAL_STACK_POSTGRES_PORT": "5104",
                                                  "LOCAL_STACK_POSTGRES_SOCKET_DIR": "/s"})
    assert (pg.port, pg.socket_dir, pg.admin) == (5104, "/s", "local_stack")


def test_create_master_quotes_names_and_password_server_side(monkeypatch):
    conn = RecordingConnection()
    _run_on(conn, monkeypatch).create_master("arn:x", 'we"ird', "pa'ss", "app")
    assert conn.statements == [
        """create role "we""ird" login createdb createrole password 'pa''ss'""",
        """comment on role "we""ird" is 'local-stack rds arn:x'""",
        """grant create, connect, temporary on database "postgres" to "we""ird\"""",
        """grant usage, create on schema public to "we""ird\"""",
        """create database "app" owner "we""ird\"""",
        """comment on database "app" is 'local-stack rds arn:x'""",
    ]


def test_drop_master_drops_its_databases_objects_and_role(monkeypatch):
    owned = "select datname from pg_database d join pg_roles r on r.oid = d.datdba where r.rolname = $1"
    conn = RecordingConnection({owned: [("app",), ("scratch",)]})
    _run_on(conn, monkeypatch).drop_master("prefect")
    assert conn.statements == ['drop database if exists "app" with (force)', 'drop database if exists "scratch" with (force)',
                               'drop owned by "prefect" cascade', 'drop role if exists "prefect"']


# --- rds_gp3_baseline_performance -----------------------------------------------------------------


def test_gp3_reports_no_iops_or_throughput_without_the_patch():
    described = _describe(_create(StorageType="gp3")["DBInstanceIdentifier"])
    assert "Iops" not in described and "StorageThroughput" not in described


def test_gp3_reports_its_baseline_and_keeps_provisioned_values_with_the_patch(patched):
    patched("rds_gp3_baseline_performance")
    small = _describe(_create(StorageType="gp3")["DBInstanceIdentifier"])
    assert (small["Iops"], small["StorageThroughput"]) == (3000, 125)
    large = _describe(_create("big-db", "big", "big", StorageType="gp3", AllocatedStorage=400)["DBInstanceIdentifier"])
    assert (large["Iops"], large["StorageThroughput"]) == (12000, 500)
    given = _describe(_create("fast-db", "fast", "fast", StorageType="gp3", AllocatedStorage=400, Iops=15000,
                              StorageThroughput=600)["DBInstanceIdentifier"])
    assert (given["Iops"], given["StorageThroughput"]) == (15000, 600)
    gp2 = _describe(_create("old-db", "old", "old", StorageType="gp2")["DBInstanceIdentifier"])
    assert "Iops" not in gp2 and "StorageThroughput" not in gp2
