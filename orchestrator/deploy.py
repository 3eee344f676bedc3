"""Deploy the kit: yoyo migrations, then every function file, in one transaction.

yoyo-migrations tracks which migrations ran (its bookkeeping tables live in the
``maint`` schema, so uninstall removes them too). We drive yoyo's backend on our own
connection instead of calling ``apply_migrations``: yoyo would run each migration on
a separate connection, mark it applied in yet another transaction, and run post-apply
hooks only when a migration was pending. Here the advisory lock, the migrations, the
function files and the deployment record commit together or not at all.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri
from yoyo.internalmigrations import needs_upgrading, upgrade

from orchestrator import __version__, cron, db, trust
from orchestrator.db import error_line
from orchestrator.errors import NotInstalled, PgmaintError
from orchestrator.paths import sql_dir

SCHEMA = "maint"
EXEC_SCHEMA = "maint_exec"  # executors, created by migration 0090
EXEC_COMMENT_PREFIX = "pgmaint executors"
ARCHIVE_SCHEMA = "maint_archive"  # archive sets, created by migration 0093
# the kit's schemas besides maint, each told from someone else's by the comment the
# migration that created it gave it
SIDE_SCHEMAS = {EXEC_SCHEMA: EXEC_COMMENT_PREFIX, ARCHIVE_SCHEMA: "pgmaint archive sets"}
MIGRATION_TABLE = "_yoyo_migration"
# pg_advisory_lock(int, int) key of deploy/uninstall: class 'main', object 'depl'
DEPLOY_LOCK = (1835100526, 1684369516)
MIN_SERVER_VERSION = 130000
ROUTINE_RE = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+(?:FUNCTION|PROCEDURE)\s+maint\.([a-z_][a-z0-9_]*)\s*\(",
    re.IGNORECASE,
)


class DeployError(PgmaintError):
    """Deploy refused or failed; nothing was changed."""


@dataclass
class FileState:
    name: str
    sha256: str
    state: str  # new | changed | unchanged


@dataclass
class DeployPlan:
    database: str
    kit_version: str
    installed_version: str | None
    pending_migrations: list[str]
    files: list[FileState]

    @property
    def functions_changed(self) -> bool:
        return any(f.state != "unchanged" for f in self.files)

    @property
    def up_to_date(self) -> bool:
        return (
            self.installed_version == self.kit_version
            and not self.pending_migrations
            and not self.functions_changed
        )


@dataclass
class DeployResult:
    plan: DeployPlan
    applied_migrations: list[str] = field(default_factory=list)
    applied_files: list[str] = field(default_factory=list)
    stale_routines: list[str] = field(default_factory=list)
    changed: bool = False
    adopted: list[str] = field(default_factory=list)  # what deploy --adopt did
    # routines in maint the function files did not (re)write: adopt drops them
    untouched_routines: list[str] = field(default_factory=list, repr=False)


class _ConnectionBackend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend, bound to a connection we already hold."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._given = conn
        super().__init__(parse_uri("postgresql+psycopg:///"), MIGRATION_TABLE)

    def connect(self, dburi: object) -> psycopg.Connection:
        return self._given

    def get_log_data(self, migration=None, operation="apply"):  # type: ignore[no-untyped-def]
        # yoyo records socket.getfqdn(), which can stall for seconds on a host without
        # DNS; the plain host name is what we want in the log anyway
        return {
            "id": str(uuid.uuid1()),
            "migration_id": migration.id if migration else None,
            "migration_hash": migration.hash if migration else None,
            "username": getpass.getuser(),
            "hostname": socket.gethostname(),
            "created_at_utc": datetime.now(UTC).replace(tzinfo=None),
            "operation": operation,
        }


def _function_files(root: Path) -> list[Path]:
    return sorted((root / "functions").glob("*.sql"), key=lambda p: p.name)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _side_schemas(conn: psycopg.Connection) -> dict[str, bool]:
    """The kit's schemas besides maint that exist, and whether each is the kit's (a
    migration created it and gave it the kit's comment); one of its own is never touched."""
    return {
        str(name): bool(comment) and str(comment).startswith(SIDE_SCHEMAS[str(name)])
        for name, comment in conn.execute(
            "SELECT n.nspname, pg_catalog.obj_description(n.oid, 'pg_namespace')"
            " FROM pg_catalog.pg_namespace AS n WHERE n.nspname = ANY (%s::name[])",
            (list(SIDE_SCHEMAS),),
        )
    }


def _schema_state(conn: psycopg.Connection) -> str:
    """'absent', 'kit' (a pgmaint installation) or 'foreign' (someone else's schema maint,
    or someone else's schema maint_exec or maint_archive where the kit would create its own)."""
    row = conn.execute(
        "SELECT to_regnamespace('maint') IS NOT NULL, to_regclass('maint._yoyo_migration') IS NOT NULL"
    ).fetchone()
    assert row is not None
    exists, has_bookkeeping = row
    side = _side_schemas(conn)
    if not all(side.values()):
        return "foreign"
    if not exists:
        return "foreign" if side else "absent"
    return "kit" if has_bookkeeping else "foreign"


def _foreign_schema_error(conn: psycopg.Connection) -> DeployError:
    """Which schema is in the way (maint first, then maint_exec, maint_archive) and what is in it."""
    row = conn.execute(
        "SELECT to_regnamespace('maint') IS NOT NULL AND to_regclass('maint._yoyo_migration') IS NULL"
    ).fetchone()
    side = _side_schemas(conn)
    schema = SCHEMA if row and row[0] else next(
        (name for name in SIDE_SCHEMAS if name in side and not side[name]), next(iter(side), SCHEMA))
    objects = [
        r[0]
        for r in conn.execute(
            """
            SELECT format('%%s %%s', kind, name) FROM (
                SELECT 'relation' AS kind, c.oid::regclass::text AS name
                  FROM pg_catalog.pg_class c WHERE c.relnamespace = %(nsp)s::regnamespace
                UNION ALL
                SELECT 'function', p.oid::regprocedure::text
                  FROM pg_catalog.pg_proc p WHERE p.pronamespace = %(nsp)s::regnamespace
            ) AS o ORDER BY 1 LIMIT 5
            """,
            {"nsp": schema},
        )
    ]
    what = ", ".join(objects) if objects else "no objects"
    return DeployError(
        f'schema "{schema}" already exists in this database and is not a pgmaint installation '
        f"({what}); pgmaint needs that name: rename it (ALTER SCHEMA {schema} RENAME TO ...) "
        "and deploy again. Nothing was changed."
    )


def _installed(conn: psycopg.Connection) -> tuple[str | None, dict[str, str]]:
    if conn.execute("SELECT to_regclass('maint.deployments')").fetchone() == (None,):
        return None, {}
    row = conn.execute(
        "SELECT version, files FROM maint.deployments ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None, {}
    return row[0], dict(row[1])


def _applied_ids(conn: psycopg.Connection) -> set[str]:
    if conn.execute("SELECT to_regclass('maint._yoyo_migration')").fetchone() == (None,):
        return set()
    return {r[0] for r in conn.execute("SELECT migration_id FROM maint._yoyo_migration")}


def plan(conn: psycopg.Connection, root: Path | None = None, *, verify: bool = True) -> DeployPlan:
    """What a deploy would do, without changing anything.

    An existing installation is read only when the connecting role may trust it
    (:mod:`orchestrator.trust`); ``verify=False`` when the caller checked already."""
    return _plan(conn, root or sql_dir(), verify=verify)


def _plan(conn: psycopg.Connection, root: Path, *, verify: bool, adopting: bool = False) -> DeployPlan:
    _check_server(conn)
    state = _schema_state(conn)
    if state == "foreign":
        raise _foreign_schema_error(conn)
    if adopting:
        _check_adoptable(conn, state)
    elif state == "kit" and verify:
        trust.require(conn, deploying=True)
    migrations = read_migrations(str(root / "migrations"))
    applied = _applied_ids(conn) if state == "kit" else set()
    installed_version, recorded = _installed(conn) if state == "kit" else (None, {})
    files = []
    for path in _function_files(root):
        digest = _digest(path)
        old = recorded.get(path.name)
        files.append(
            FileState(
                path.name,
                digest,
                "new" if old is None else ("unchanged" if old == digest else "changed"),
            )
        )
    return DeployPlan(
        database=conn.info.dbname,
        kit_version=__version__,
        installed_version=installed_version,
        pending_migrations=[m.id for m in migrations if m.id not in applied],
        files=files,
    )


def _check_server(conn: psycopg.Connection) -> None:
    if conn.info.server_version < MIN_SERVER_VERSION:
        raise DeployError(
            f"PostgreSQL {conn.info.server_version // 10000} is too old; pgmaint needs 13 or newer"
        )
    if conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone() == (True,):
        raise DeployError("this server is a standby in recovery; deploy to the primary")


def deploy(
    conn: psycopg.Connection,
    root: Path | None = None,
    *,
    force: bool = False,
    lock_timeout: str = "60s",
    adopt: bool = False,
) -> DeployResult:
    """Apply pending migrations and the function files under one advisory lock.

    ``conn`` must be in autocommit mode. Everything happens in one transaction, except
    a migration marked ``-- transactional: false``, which commits what came before it.
    An existing installation must be trustworthy for the connecting role
    (:mod:`orchestrator.trust`); with ``adopt`` a superuser first takes it over: ownership
    and privileges (trust.take_over), then one forced deploy, then the routines the files
    do not define are dropped (trust.finish_takeover), and the deployment is recorded only
    if the kit is then trustworthy.
    """
    root = root or sql_dir()
    if not conn.autocommit:
        raise ValueError("deploy needs an autocommit connection")
    backend = _ConnectionBackend(conn)
    migrations = read_migrations(str(root / "migrations"))
    backend.begin()
    try:
        conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout))
        )
        # db.connect pins search_path for the session; deploy() also takes connections
        # opened elsewhere (tests, benchmarks), so its transaction pins it too
        db.pin_search_path(conn, local=True)
        _lock(conn, lock_timeout)
        if adopt and not db.is_superuser(conn):
            raise DeployError(
                f"--adopt takes ownership of the kit from another role and needs a superuser; "
                f"{conn.info.user} is not one. Nothing was changed."
            )
        # decided under the lock: a concurrent deploy may have just finished
        the_plan = _plan(conn, root, verify=True, adopting=adopt)
        takeover = _take_over(conn, root, the_plan) if adopt else None
        result = _deploy_locked(conn, backend, migrations, root, the_plan, force or adopt,
                                lock_timeout)
        if takeover is not None:
            result.adopted = trust.finish_takeover(conn, takeover, result.untouched_routines)
            me, found = trust.problems(conn)
            if found:
                raise trust.KitUntrusted(
                    f"cannot adopt the kit in database {conn.info.dbname!r}: even after taking it "
                    f"over, {trust.describe(me, found)}. Uninstall and deploy again instead. "
                    "Nothing was changed."
                )
        elif result.changed:
            # the migrations and files add no code of another role (grants an earlier
            # release gave, trust.left_by_earlier_release, are the migrations' to revoke,
            # and the CLI refuses the kit while one is left)
            me, found = trust.problems(conn)
            found = [p for p in found if not trust.left_by_earlier_release(p)]
            if found:
                raise trust.KitUntrusted(
                    f"refusing to deploy over pgmaint in database {conn.info.dbname!r}: after the "
                    f"migrations, {trust.describe(me, found)}. Nothing was changed."
                )
        if result.changed:
            _record(conn, result)
        backend.commit()
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            backend.rollback()
        raise
    finally:
        _unlock(conn)
    return result


def _lock(conn: psycopg.Connection, lock_timeout: str) -> None:
    try:
        conn.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", DEPLOY_LOCK)
    except psycopg.errors.LockNotAvailable as exc:
        raise DeployError(
            f"another pgmaint deploy or uninstall holds the deploy lock on database "
            f"{conn.info.dbname!r} for more than {lock_timeout}; try again later"
        ) from exc


def _unlock(conn: psycopg.Connection) -> None:
    if conn.closed:
        return
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        conn.execute("ROLLBACK")
    conn.execute(
        "SELECT pg_catalog.pg_advisory_unlock(%s, %s) FROM pg_catalog.pg_locks"
        " WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()"
        " AND classid = %s::pg_catalog.oid AND objid = %s::pg_catalog.oid AND objsubid = 2",
        (*DEPLOY_LOCK, *DEPLOY_LOCK),
    )


def _set_local(conn: psycopg.Connection, lock_timeout: str) -> None:
    """Transaction settings of a deploy (again after a commit): yoyo's bookkeeping queries
    are unqualified, so they point at maint; DDL waits for locks at most lock_timeout."""
    conn.execute("SET LOCAL search_path = maint, pg_catalog")
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout)))


# routines in maint whose catalog row this transaction did not write: CREATE OR REPLACE
# rewrites the row of every routine a function file defines (xmin is the writing
# transaction; take_over changes routines in a subtransaction, which has an xid of its own)
UNTOUCHED_SQL = """
SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'maint'::pg_catalog.regnamespace
   AND p.xmin::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.<>)
       (pg_catalog.txid_current() OPERATOR(pg_catalog.%) 4294967296)
 ORDER BY 1
"""


def _apply_function_files(
    conn: psycopg.Connection, root: Path, names: list[str]
) -> tuple[list[str], list[str]]:
    """Apply the function files (``CREATE OR REPLACE``) in name order, then revoke EXECUTE
    from PUBLIC on every routine of the kit; returns the files' names and the routines in
    maint the files did not write (told before the REVOKE, which rewrites every row)."""
    # pg_dump's habit: bodies are checked when called (and by the plpgsql_check test),
    # so files apply in name order without a dependency graph
    conn.execute("SET LOCAL check_function_bodies = off")
    conn.execute("SET LOCAL client_min_messages = warning")
    applied = []
    for name in names:
        path = root / "functions" / name
        try:
            conn.execute(path.read_text(encoding="utf-8"))  # no params: '%' stays literal
        except psycopg.Error as exc:
            raise DeployError(f"{name} failed: {error_line(exc)}") from exc
        applied.append(name)
    untouched = [r[0] for r in conn.execute(UNTOUCHED_SQL)]
    conn.execute("REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA maint FROM PUBLIC")
    return applied, untouched


# the privilege statements of the migrations: written at the start of a line (those inside
# DO blocks are indented), GRANT / REVOKE ... ON ... and ALTER DEFAULT PRIVILEGES
_PRIVILEGE_STATEMENT = re.compile(
    r"^(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\s[^;]*?\sON\s[^;]*;", re.MULTILINE
)


def _migration_grants(root: Path) -> list[str]:
    """Every privilege statement of the migrations, in the order they ran: replayed after
    adopt revoked everything, they give the kit's roles exactly what a deploy gave them."""
    return [m.group(0)
            for path in sorted((root / "migrations").glob("*.sql"))
            if not path.name.endswith(".rollback.sql")
            for m in _PRIVILEGE_STATEMENT.finditer(path.read_text(encoding="utf-8"))]


def _check_adoptable(conn: psycopg.Connection, state: str) -> None:
    """--adopt needs an installation whose bookkeeping is plain tables: they are read below
    as they are (a plain table runs no code of its owner when a superuser reads it: no
    triggers on SELECT, row security bypassed; a view would)."""
    if state == "absent":
        raise NotInstalled(
            f"pgmaint is not installed in database {conn.info.dbname!r}: nothing to adopt; "
            "run 'pgmaint deploy'"
        )
    not_tables = [r[0] for r in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c"
        " WHERE c.oid IN (to_regclass('maint._yoyo_migration'), to_regclass('maint.deployments'))"
        "   AND c.relkind <> 'r'")]
    if not_tables:
        raise trust.KitUntrusted(
            f"cannot adopt the kit in database {conn.info.dbname!r}: {not_tables[0]} is not a "
            "table any more. Uninstall and deploy again instead. Nothing was changed."
        )


def _take_over(conn: psycopg.Connection, root: Path, the_plan: DeployPlan) -> trust.Takeover:
    """Take over a kit another role deployed (superuser only), in the deploy transaction,
    before its forced deploy (see trust.take_over)."""
    if the_plan.pending_migrations:
        raise DeployError(
            f"--adopt works on an installation of this kit version, and migrations are pending "
            f"({', '.join(the_plan.pending_migrations)}): have its owner deploy first, or "
            "uninstall and deploy again. Nothing was changed."
        )
    return trust.take_over(conn, _migration_grants(root))


def _deploy_locked(
    conn: psycopg.Connection,
    backend: _ConnectionBackend,
    migrations: object,
    root: Path,
    the_plan: DeployPlan,
    force: bool,
    lock_timeout: str,
) -> DeployResult:
    """The migrations (yoyo's steps run only when some are pending) and the function files
    (with search_path pinned to pg_catalog); the caller records the deployment."""
    result = DeployResult(plan=the_plan)
    if the_plan.up_to_date and not force:
        return result

    if the_plan.pending_migrations:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        _set_local(conn, lock_timeout)
        if needs_upgrading(backend):
            upgrade(backend)
        backend._internal_schema_updated = True

        for migration in backend.to_apply(migrations):
            try:
                if migration.use_transactions:
                    migration.process_steps(backend, "apply")
                    backend.log_migration(migration, "apply")
                    backend.mark_one(migration, log=False)
                else:
                    # e.g. CREATE INDEX CONCURRENTLY: commit what came before, run it alone,
                    # and record it at once (it cannot be rolled back with a later failure)
                    backend.commit()
                    migration.process_steps(backend, "apply")
                    backend.begin()
                    _set_local(conn, lock_timeout)
                    backend.log_migration(migration, "apply")
                    backend.mark_one(migration, log=False)
                    backend.commit()
                    backend.begin()
                    _set_local(conn, lock_timeout)
            except psycopg.Error as exc:
                raise DeployError(f"migration {migration.id} failed: {error_line(exc)}") from exc
            result.applied_migrations.append(migration.id)
        db.pin_search_path(conn, local=True)  # yoyo's steps put maint first

    result.applied_files, result.untouched_routines = _apply_function_files(
        conn, root, [f.name for f in the_plan.files])

    declared = set()
    for fs in the_plan.files:
        declared |= {m.lower() for m in ROUTINE_RE.findall((root / "functions" / fs.name).read_text())}
    result.stale_routines = [
        r[0]
        for r in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p"
            " WHERE p.pronamespace = 'maint'::regnamespace AND NOT (p.proname = ANY(%s))"
            " ORDER BY 1",
            (sorted(declared),),
        )
    ]
    result.changed = True
    return result


def _record(conn: psycopg.Connection, result: DeployResult) -> None:
    """One row in maint.deployments: the kit version, the migrations applied, each file's sha256."""
    conn.execute(
        "INSERT INTO maint.deployments (version, migrations, files) VALUES (%s, %s, %s)",
        (
            result.plan.kit_version,
            result.applied_migrations,
            psycopg.types.json.Jsonb({f.name: f.sha256 for f in result.plan.files}),
        ),
    )


# --- uninstall ------------------------------------------------------------------------

# objects outside the kit's schemas (%(kit)s: maint, and maint_exec when it is the kit's)
# that depend on objects inside them
FOREIGN_DEPENDENTS_SQL = """
WITH kit AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY (%(kit)s::name[])
), members AS (
    SELECT 'pg_class'::regclass AS classid, c.oid AS objid FROM pg_catalog.pg_class c
     WHERE c.relnamespace IN (SELECT oid FROM kit)
    UNION ALL
    SELECT 'pg_proc'::regclass, p.oid FROM pg_catalog.pg_proc p
     WHERE p.pronamespace IN (SELECT oid FROM kit)
    UNION ALL
    SELECT 'pg_type'::regclass, t.oid FROM pg_catalog.pg_type t
     WHERE t.typnamespace IN (SELECT oid FROM kit)
), deps AS (
    -- a view depends on tables through its _RETURN rule: name the view itself
    SELECT CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 'pg_class'::regclass
                ELSE d.classid END AS classid,
           CASE WHEN d.classid = 'pg_rewrite'::regclass
                THEN (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
                ELSE d.objid END AS objid,
           CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 0 ELSE d.objsubid END AS objsubid
      FROM pg_catalog.pg_depend d
      JOIN members m ON m.classid = d.refclassid AND m.objid = d.refobjid
     WHERE d.deptype IN ('n', 'a')
), dependents AS (
    SELECT DISTINCT d.classid, d.objid, d.objsubid,
           CASE d.classid
               WHEN 'pg_class'::regclass
                   THEN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = d.objid)
               WHEN 'pg_proc'::regclass
                   THEN (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.objid)
               WHEN 'pg_type'::regclass
                   THEN (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.objid)
               WHEN 'pg_constraint'::regclass
                   THEN (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = d.objid)
               WHEN 'pg_trigger'::regclass
                   THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger t
                           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE t.oid = d.objid)
               WHEN 'pg_attrdef'::regclass
                   THEN (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a
                           JOIN pg_catalog.pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)
               WHEN 'pg_policy'::regclass
                   THEN (SELECT c.relnamespace FROM pg_catalog.pg_policy p
                           JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE p.oid = d.objid)
           END AS nsp
      FROM deps d
)
SELECT pg_catalog.pg_describe_object(classid, objid, objsubid)
  FROM dependents
 WHERE nsp IS NULL OR nsp NOT IN (SELECT oid FROM kit)
 ORDER BY 1
"""


@dataclass
class UninstallResult:
    database: str
    removed_jobs: list[str]
    cron_note: str | None
    dropped_schemas: list[str] = field(default_factory=lambda: [SCHEMA])


def uninstall(conn: psycopg.Connection, dsn: str, *, lock_timeout: str = "60s",
              before_drop: Callable[[psycopg.Connection], None] | None = None) -> UninstallResult:
    """Drop schema maint (with yoyo's bookkeeping in it), the kit's schemas maint_exec (with
    the executors in it, owned by table owners) and maint_archive (archive sets, owned by
    table owners) and this database's maint: jobs.

    ``before_drop`` is called inside the transaction, under the deploy lock, just before
    anything is dropped (the CLI checks there that no more archived rows are at risk than
    the user confirmed); an exception from it changes nothing.

    Refuses, changing nothing, when objects outside those schemas depend on them. Roles
    stay: they are cluster-wide and other databases may use them. Needs no trust in the
    installation (it is the way out of one a superuser must not use): it reads only
    pg_catalog and pg_cron's tables, and dropping runs no code of the kit's owner.
    """
    if not conn.autocommit:
        raise ValueError("uninstall needs an autocommit connection")
    conn.execute("BEGIN")
    try:
        db.pin_search_path(conn, local=True)  # as in deploy(): any connection may be passed
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout)))
        _lock(conn, lock_timeout)
        row = conn.execute(
            "SELECT to_regnamespace('maint') IS NOT NULL,"
            "       to_regclass('maint._yoyo_migration') IS NOT NULL"
        ).fetchone()
        assert row is not None
        exists, has_bookkeeping = row
        if not exists:
            raise NotInstalled(f"pgmaint is not installed in database {conn.info.dbname!r}")
        if not has_bookkeeping:
            raise PgmaintError(
                f'schema "maint" in database {conn.info.dbname!r} is not a pgmaint installation; '
                "not touching it"
            )
        side = _side_schemas(conn)
        schemas = [SCHEMA] + [name for name in SIDE_SCHEMAS if side.get(name)]
        if before_drop is not None:
            before_drop(conn)
        dependents = [r[0] for r in conn.execute(FOREIGN_DEPENDENTS_SQL, {"kit": schemas})]
        if dependents:
            shown = "; ".join(dependents[:10])
            more = f" and {len(dependents) - 10} more" if len(dependents) > 10 else ""
            raise PgmaintError(
                f"objects outside schema {' and '.join(schemas)} depend on it and would be "
                f"dropped too: {shown}{more}. Remove or change them first; nothing was changed."
            )
        for schema in reversed(schemas):
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        removed, note = cron.unschedule_kit_jobs(conn, dsn, conn.info.dbname)
        conn.execute("COMMIT")
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise
    finally:
        _unlock(conn)
    return UninstallResult(conn.info.dbname, removed, note, schemas)
