"""The local stack's moto patch layer, RDS: moto 5.2 keeps an RDS DB instance's description but runs no
database engine. For engine `postgres` the local stack's PostgreSQL server (scripts/local_stack.py service
`postgres`, 127.0.0.1 only) is the engine: every instance is a role (its master user) and, when DBName is
given, a database owned by it, on that one server; its endpoint is that server's address.

Each function's docstring says what AWS does, what moto 5.2 does and what the patch changes;
tests/unit/test_moto_patches_rds.py shows each gap without the patch and gone with it.

  rds_postgres_create_database    CreateDBInstance (engine postgres) creates the master user (LOGIN,
                                  CREATEDB, CREATEROLE, the master password) and the DBName database
                                  owned by it on the local PostgreSQL server (no DBName: no extra database,
                                  the master user may create in `postgres`, as on RDS).
  rds_postgres_endpoint           Endpoint of such an instance: Address 127.0.0.1, Port the local server's.
  rds_managed_master_secret       ManageMasterUserPassword: the `rds!db-<uuid>` secret holds the instance's
                                  master username and a generated password (moto: admin / a fixed one).
  rds_rotate_master_user_password RotateMasterUserPassword puts a new generated password as AWSCURRENT
                                  (moto left the secret without an AWSCURRENT version).
  rds_postgres_master_password    ModifyDBInstance changing the password (MasterUserPassword, managing it
                                  in Secrets Manager or not, rotation) changes the role's password.
  rds_postgres_delete_database    DeleteDBInstance drops the instance's databases, what its master user
                                  owns and the role.
  rds_reset_drops_local_databases moto's reset (POST /moto-api/reset) drops them too: an emptied emulator
                                  leaves nothing in the local server.

Where the server is: LOCAL_STACK_POSTGRES_PORT (TCP port on 127.0.0.1, what endpoints report),
LOCAL_STACK_POSTGRES_SOCKET_DIR (its Unix socket folder; the admin connects there),
LOCAL_STACK_POSTGRES_ADMIN (the cluster's superuser, trusted on the socket only). local_stack.py passes
them to moto; without LOCAL_STACK_POSTGRES_PORT every patch keeps moto's behaviour (unit tests of other
services, a moto started alone).

Not stood in for: Multi-AZ, read replicas (moto copies the primary: a replica reports the primary's endpoint,
reads its database, and its delete leaves it), backups and snapshots (a restored instance gets no database),
parameter and option groups, IAM database authentication, TLS, engine versions (the server is PostgreSQL 15),
storage.
All instances share one server: two live instances cannot have the same master username or DBName
(refused with InvalidParameterValue naming the other instance), roles left by a stopped emulator are
dropped when a new instance takes their name, when moto starts and on `local_stack.py reset`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

Undo = Callable[[], None]
T = TypeVar("T")

PORT_ENV = "LOCAL_STACK_POSTGRES_PORT"
SOCKET_DIR_ENV = "LOCAL_STACK_POSTGRES_SOCKET_DIR"
ADMIN_ENV = "LOCAL_STACK_POSTGRES_ADMIN"
DEFAULT_ADMIN = "local_stack"
HOST = "127.0.0.1"
# Comment on every role and database the patch creates: what `drop_all` may drop, and who owns it.
MARK = "local-stack rds "
ENGINE = "postgres"
DEFAULT_DATABASE = "postgres"
# RDS's generated passwords: printable ASCII except / " @ and space (the characters RDS refuses in one).
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#$%&()*+,-.:;<=>?[]^_{|}~"
_MISSING = object()


def _replace(owner: Any, name: str, new: Any) -> Undo:
    """Set owner.name to new (inherited attributes too); the returned callable puts things back."""
    original = owner.__dict__.get(name, _MISSING)

    def undo() -> None:
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)

    setattr(owner, name, new)
    return undo


def generate_password(length: int = 28) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


class LocalPostgres:
    """The admin side of the local PostgreSQL server: its superuser over the Unix socket, one connection per
    call (moto's request threads have no event loop: each call runs its own)."""

    def __init__(self, port: int, socket_dir: str, admin: str = DEFAULT_ADMIN) -> None:
        self.port, self.socket_dir, self.admin = port, socket_dir, admin

    @classmethod
    def from_env(cls, environ: Any = os.environ) -> LocalPostgres | None:
        port = environ.get(PORT_ENV, "")
        if not port.isdigit():
            return None
        return cls(int(port), environ.get(SOCKET_DIR_ENV) or "/var/run/postgresql", environ.get(ADMIN_ENV) or DEFAULT_ADMIN)

    def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        import asyncpg

        async def main() -> T:
            try:
                conn = await asyncpg.connect(host=self.socket_dir, port=self.port, user=self.admin,
                                             database=DEFAULT_DATABASE, timeout=10)
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as err:
                raise LocalPostgresUnavailable(
                    f"local stack: the local PostgreSQL server (socket {self.socket_dir}, port {self.port}) is not "
                    f"reachable: {err}. Is the stack's postgres service up (scripts/local_stack.py status)?") from err
            try:
                # Role DDL carries passwords: a failing statement must not be written to the server's log.
                await conn.execute("set log_min_error_statement = panic")
                return await work(conn)
            finally:
                await conn.close()

        return asyncio.run(main())

    @staticmethod
    async def _ddl(conn: Any, template: str, *values: str) -> None:
        """Run a utility statement (no bind parameters there) built by the server's own quoting: format()'s
        %I (identifier) and %L (literal)."""
        params = "".join(f", ${i}::text" for i in range(2, len(values) + 2))
        await conn.execute(await conn.fetchval(f"select format($1::text{params})", template, *values))

    def catalog(self) -> dict[str, dict[str, str | None]]:
        """{"roles": {name: owner ARN or None}, "databases": {...}}: owner from our mark, None when unmarked."""
        async def work(conn: Any) -> dict[str, dict[str, str | None]]:
            def owners(rows: list[Any]) -> dict[str, str | None]:
                return {row[0]: row[1][len(MARK):] if (row[1] or "").startswith(MARK) else None for row in rows}
            roles = await conn.fetch("select rolname, shobj_description(oid, 'pg_authid') from pg_roles")
            databases = await conn.fetch("select datname, shobj_description(oid, 'pg_database') from pg_database")
            return {"roles": owners(roles), "databases": owners(databases)}
        return self._run(work)

    def create_master(self, owner: str, username: str, password: str, db_name: str | None) -> None:
        """The master user (and the DBName database owned by it), marked as `owner`'s; undone on failure."""
        async def work(conn: Any) -> None:
            await self._ddl(conn, "create role %I login createdb createrole password %L", username, password)
            try:
                await self._ddl(conn, "comment on role %I is %L", username, MARK + owner)
                # As RDS's master user (rds_superuser) may, in the default database too (PostgreSQL 15
                # revoked CREATE on public from PUBLIC).
                await self._ddl(conn, "grant create, connect, temporary on database %I to %I", DEFAULT_DATABASE, username)
                await self._ddl(conn, "grant usage, create on schema public to %I", username)
                if db_name and db_name != DEFAULT_DATABASE:
                    await self._ddl(conn, "create database %I owner %I", db_name, username)
                    await self._ddl(conn, "comment on database %I is %L", db_name, MARK + owner)
            except Exception:
                await self._drop_master(conn, username)
                raise
        self._run(work)

    def set_password(self, username: str, password: str) -> None:
        async def work(conn: Any) -> None:
            await self._ddl(conn, "alter role %I password %L", username, password)
        self._run(work)

    @classmethod
    async def _drop_master(cls, conn: Any, username: str) -> None:
        if not await conn.fetchval("select 1 from pg_roles where rolname = $1", username):
            return
        owned = await conn.fetch("select datname from pg_database d join pg_roles r on r.oid = d.datdba "
                                 "where r.rolname = $1", username)
        for row in owned:
            await cls._ddl(conn, "drop database if exists %I with (force)", row[0])
        await cls._ddl(conn, "drop owned by %I cascade", username)  # its objects and grants in `postgres`
        await cls._ddl(conn, "drop role if exists %I", username)

    def drop_master(self, username: str) -> None:
        """The role, the databases it owns and what it owns in the default database."""
        async def work(conn: Any) -> None:
            await self._drop_master(conn, username)
        self._run(work)

    def drop_database(self, name: str) -> None:
        async def work(conn: Any) -> None:
            await self._ddl(conn, "drop database if exists %I with (force)", name)
        self._run(work)

    def drop_all(self) -> list[str]:
        """Every role and database the patch created (marked), whoever owns it; returns their names."""
        async def work(conn: Any) -> list[str]:
            dropped = []
            marked = "select %s from %s where coalesce(shobj_description(oid, '%s'), '') like 'local-stack rds %%'"
            for row in await conn.fetch(marked % ("rolname", "pg_roles", "pg_authid")):
                await self._drop_master(conn, row[0])
                dropped.append(row[0])
            for row in await conn.fetch(marked % ("datname", "pg_database", "pg_database")):
                await self._ddl(conn, "drop database if exists %I with (force)", row[0])
                dropped.append(row[0])
            return dropped
        return self._run(work)


class LocalPostgresUnavailable(RuntimeError):
    pass


def local_postgres() -> LocalPostgres | None:
    """The server the environment names, or None (then moto's behaviour is kept). Unit tests replace it."""
    return LocalPostgres.from_env()


def _rds_error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def owns_local_database(database: Any) -> bool:
    """True for an instance whose role and databases this patch created. Not for a read replica (moto copies
    its primary, attributes included: it reads the primary's database), nor a restored instance."""
    return getattr(database, "local_postgres_key", None) == id(database)


def _live_owners() -> Iterator[str]:
    """The marks (ARN at creation, kept through a rename) of the live instances with a local database."""
    from moto.rds.models import rds_backends

    for regions in list(rds_backends.values()):
        for backend in list(regions.values()):
            for database in list(backend.databases.values()):
                if owns_local_database(database):
                    yield database.local_postgres_owner


def _is_standalone_postgres(database: Any) -> bool:
    return database.engine == ENGINE and getattr(database, "db_cluster_identifier", None) is None


def master_password(database: Any) -> str | None:
    """The instance's current master password: its managed secret's AWSCURRENT value, else the one given."""
    secret_holder = getattr(database, "master_user_secret", None)
    if getattr(database, "manage_master_user_password", False) and secret_holder is not None:
        secret = secret_holder.secret
        version = secret.versions.get(secret.default_version_id or "", {})
        return json.loads(version.get("secret_string") or "{}").get("password")
    return database.__dict__.get("_master_user_password")


def _claim_names(pg: LocalPostgres, username: str, db_name: str | None) -> None:
    """Refuse names another live instance holds on the shared server; drop what a gone instance left."""
    if username == pg.admin or username.startswith("pg_"):
        raise _rds_error("InvalidParameterValue", f"MasterUsername {username} cannot be used as it is a reserved word "
                         "used by the engine")
    live = set(_live_owners())
    for kind, name, parameter in (("roles", username, "MasterUsername"), ("databases", db_name, "DBName")):
        if not name or (kind == "databases" and name == DEFAULT_DATABASE):
            continue
        catalog = pg.catalog()[kind]  # read again: dropping a gone instance's role dropped its databases
        if name not in catalog:
            continue
        owner = catalog[name]
        if owner is None or owner in live:
            holder = f"DB instance {owner}" if owner else "the local PostgreSQL server itself"
            raise _rds_error("InvalidParameterValue",
                             f"local stack: {parameter} {name!r} is already taken on the one local PostgreSQL server "
                             f"all RDS postgres instances share (by {holder}); choose another {parameter}")
        if kind == "roles":
            pg.drop_master(name)
        else:
            pg.drop_database(name)


def rds_postgres_create_database() -> Undo:
    """AWS: CreateDBInstance with engine postgres runs a PostgreSQL server whose master user (LOGIN, CREATEDB,
    CREATEROLE, member of rds_superuser) has the master password (or the managed secret's); with DBName it
    also creates that database, without DBName no database beyond `postgres`.
    moto 5.2: records the instance; no server, nothing accepts the master user's login.
    Patch: when LOCAL_STACK_POSTGRES_PORT names the local server, create the master role with that password,
    allowed to create in `postgres`, and the DBName database owned by it; both marked with the instance's ARN.
    A failure (name taken by another live instance, server down) fails the call and leaves no instance."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.create_db_instance
    original_delete = RDSBackend.delete_db_instance

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = original(self, db_kwargs)
        pg = local_postgres()
        # A restore (from a snapshot or a point in time) passes the source's attributes, ours too: no database.
        if pg is None or not _is_standalone_postgres(database) or "local_postgres_owner" in db_kwargs:
            return database
        try:
            username = database.master_username
            if not username:
                raise _rds_error("InvalidParameterValue",
                                 "The parameter MasterUsername must be provided and must not be blank.")
            password = master_password(database)
            if not password:
                raise _rds_error("InvalidParameterValue", "The parameter MasterUserPassword is not a valid password "
                                 "because it is empty (or set ManageMasterUserPassword).")
            try:
                _claim_names(pg, username, database.db_name)
                pg.create_master(database.db_instance_arn, username, password, database.db_name)
            except LocalPostgresUnavailable as err:
                raise _rds_error("InsufficientDBInstanceCapacity", str(err)) from err
        except Exception:
            # As if never created: moto's own delete also removes the managed secret and automated snapshots.
            database.deletion_protection = False
            original_delete(self, database.db_instance_identifier, skip_final_snapshot=True)
            raise
        database.local_postgres_port = pg.port
        database.local_postgres_password = password
        database.local_postgres_owner = database.db_instance_arn
        database.local_postgres_key = id(database)
        return database

    return _replace(RDSBackend, "create_db_instance", create_db_instance)


def rds_postgres_endpoint() -> Undo:
    """AWS: Endpoint.Address is the instance's DNS name, Endpoint.Port the port its server listens on.
    moto 5.2: `<id>.aaaaaaaaaa.<region>.rds.amazonaws.com` (resolves nowhere) and the requested port.
    Patch: an instance with a local database (rds_postgres_create_database) reports 127.0.0.1 and the local
    server's port (the Fargate stand-in's tasks share the host's network, so they reach it there).
    DbInstancePort keeps the requested port."""
    from moto.rds.models import DBInstance

    original_address, original_endpoint = DBInstance.__dict__["address"], DBInstance.__dict__["endpoint"]

    def address(self: Any) -> str:
        return HOST if getattr(self, "local_postgres_port", None) else original_address.fget(self)

    def endpoint(self: Any) -> dict[str, Any]:
        port = getattr(self, "local_postgres_port", None)
        return {"Address": HOST, "Port": port} if port else original_endpoint.fget(self)

    undo_address = _replace(DBInstance, "address", property(address))
    undo_endpoint = _replace(DBInstance, "endpoint", property(endpoint))

    def undo() -> None:
        undo_endpoint()
        undo_address()

    return undo


def rds_managed_master_secret() -> Undo:
    """AWS: with ManageMasterUserPassword=true, RDS generates the master password and keeps it in a secret
    `rds!db-<uuid>` (owned by rds) whose value is {"username": <master username>, "password": <generated>}.
    moto 5.2: the secret's value is always {"username": "admin", "password": "P@55w0rd!"}.
    Patch: the instance's (or cluster's) master username and a generated 28-character password."""
    from moto.rds.models import MasterUserSecret

    def _generate_secret_string(self: Any) -> str:
        return json.dumps({"username": self.resource.master_username, "password": generate_password()})

    return _replace(MasterUserSecret, "_generate_secret_string", _generate_secret_string)


def rds_rotate_master_user_password() -> Undo:
    """AWS: ModifyDBInstance RotateMasterUserPassword=true (with ApplyImmediately) rotates the managed secret at
    once: a new generated password is AWSCURRENT, the old one AWSPREVIOUS.
    moto 5.2: starts a Secrets Manager rotation without a rotation function; the secret is left with no
    AWSCURRENT version (GetSecretValue fails).
    Patch: put the new credentials as AWSCURRENT (the status reads "rotating" once, then "active")."""
    from moto.rds.models import MasterUserSecret

    def rotate_secret(self: Any) -> None:
        self._status = "rotating"
        value = json.dumps({"username": self.resource.master_username, "password": generate_password()})
        self.secretsmanager.put_secret_value(self.secret.arn, value, None, None, ["AWSCURRENT"])

    return _replace(MasterUserSecret, "rotate_secret", rotate_secret)


def rds_postgres_master_password() -> Undo:
    """AWS: a new master password (MasterUserPassword, ManageMasterUserPassword on or off, a rotation) is the
    one the server's master user logs in with from then on.
    moto 5.2: stores it; no server.
    Patch: after ModifyDBInstance, an instance with a local database whose current password (the managed
    secret's, else the given one) changed gets ALTER ROLE ... PASSWORD."""
    from moto.rds.models import DBInstance

    original = DBInstance.update

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if not owns_local_database(self):
            return
        password = master_password(self)
        if password and password != getattr(self, "local_postgres_password", None):
            pg = local_postgres()
            if pg is None:
                return
            pg.set_password(self.master_username, password)
            self.local_postgres_password = password

    return _replace(DBInstance, "update", update)


def rds_postgres_delete_database() -> Undo:
    """AWS: DeleteDBInstance deletes the server and its data (bar a final snapshot).
    moto 5.2: forgets the instance; no server.
    Patch: drop the instance's databases, what its master user owns in `postgres`, and the role (a read
    replica's delete leaves its primary's)."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.delete_db_instance

    def delete_db_instance(self: Any, *args: Any, **kwargs: Any) -> Any:
        database = original(self, *args, **kwargs)
        pg = local_postgres()
        if pg is not None and owns_local_database(database):
            pg.drop_master(database.master_username)
        return database

    return _replace(RDSBackend, "delete_db_instance", delete_db_instance)


def rds_reset_drops_local_databases() -> Undo:
    """AWS: (no reset.) moto's reset (POST /moto-api/reset) empties the emulator.
    moto 5.2: forgets every instance; nothing else to do without a server.
    Patch: first drop each instance's role and databases from the local server, so an emptied emulator leaves
    nothing there (a failure is logged to moto's log, the reset still happens)."""
    from moto.core.base_backend import BaseBackend
    from moto.rds.models import RDSBackend

    original = RDSBackend.__dict__.get("reset", BaseBackend.reset)

    def reset(self: Any) -> None:
        pg = local_postgres()
        for database in list(getattr(self, "databases", {}).values()):
            if pg is not None and owns_local_database(database):
                try:
                    pg.drop_master(database.master_username)
                except Exception as err:  # noqa: BLE001 - a reset must not fail on the side database
                    print(f"moto_patches_rds: reset could not drop {database.master_username!r}: {err}",
                          file=sys.stderr, flush=True)
        original(self)

    return _replace(RDSBackend, "reset", reset)


def drop_leftovers() -> list[str]:
    """Drop every role and database an earlier emulator left on the local server (moto starts empty);
    scripts/moto_server.py calls it at start. Returns their names; [] when no server is configured."""
    pg = local_postgres()
    return pg.drop_all() if pg is not None else []


# gp3 baseline of RDS (PostgreSQL, MySQL, MariaDB): below 400 GiB 3000 IOPS and 125 MiB/s, from 400 GiB 12000 and 500.
GP3_LARGE_GIB = 400
GP3_BASELINE = {False: (3000, 125), True: (12000, 500)}


def rds_gp3_baseline_performance() -> Undo:
    """AWS: a gp3 instance always reports Iops and StorageThroughput, the storage's baseline when none was provisioned
    (3000 IOPS and 125 MiB/s below 400 GiB, 12000 and 500 from 400 GiB).
    moto 5.2: both are missing unless given, and amazon.aws.rds_instance, which compares them on every run after
    the first, fails with KeyError 'StorageThroughput'.
    Patch: a gp3 instance without provisioned values reports the baseline; given values and other storage types
    are unchanged."""
    from moto.rds.models import DBInstance

    original_throughput = DBInstance.__dict__["storage_throughput"]

    def baseline(self: Any) -> tuple[int, int] | None:
        if getattr(self, "storage_type", None) != "gp3":
            return None
        return GP3_BASELINE[int(getattr(self, "allocated_storage", 0) or 0) >= GP3_LARGE_GIB]

    def get_throughput(self: Any) -> int | None:
        value = original_throughput.fget(self)
        return value if value is not None or baseline(self) is None else baseline(self)[1]

    def get_iops(self: Any) -> int | None:
        value = self.__dict__.get("_provisioned_iops")
        return value if value is not None or baseline(self) is None else baseline(self)[0]

    def set_iops(self: Any, value: int | None) -> None:
        self.__dict__["_provisioned_iops"] = value

    undo_throughput = _replace(DBInstance, "storage_throughput", property(get_throughput, original_throughput.fset))
    undo_iops = _replace(DBInstance, "iops", property(get_iops, set_iops))

    def undo() -> None:
        undo_iops()
        undo_throughput()

    return undo


PATCHES: dict[str, Callable[[], Undo]] = {
    "rds_gp3_baseline_performance": rds_gp3_baseline_performance,
    "rds_postgres_create_database": rds_postgres_create_database,
    "rds_postgres_endpoint": rds_postgres_endpoint,
    "rds_managed_master_secret": rds_managed_master_secret,
    "rds_rotate_master_user_password": rds_rotate_master_user_password,
    "rds_postgres_master_password": rds_postgres_master_password,
    "rds_postgres_delete_database": rds_postgres_delete_database,
    "rds_reset_drops_local_databases": rds_reset_drops_local_databases,
}
