"""Trust in the kit: the CLI refuses a kit that a role other than you (or a superuser)
controls, before it calls any kit function or reads any kit table (issue 10, item 5).

Real, separate login roles: ``dbo`` (a non-superuser database owner who deployed the kit),
``adm`` (maint_admin), ``mon`` (maint_monitor) and ``owner1`` (a table owner); the
superuser is the test server's own user.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner
from conftest import HAS_PG_CRON, PG_MAJOR
from psycopg import sql

from orchestrator import db as dbmod
from orchestrator import deploy, trust
from orchestrator.cli import cli
from tests.support import deploy_to


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def is_superuser(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def tamper(conn: psycopg.Connection, name: str, role: str) -> None:
    """Replace every routine maint.<name> (same signature) with one that makes ``role``
    superuser when a superuser calls it, as the database owner can do with its own kit."""
    body = sql.SQL("BEGIN EXECUTE {}; END").format(
        sql.Literal(f'ALTER ROLE "{role}" SUPERUSER')).as_string(conn)
    rows = conn.execute(
        "SELECT prokind, pg_get_function_arguments(oid), pg_get_function_result(oid)"
        " FROM pg_proc WHERE pronamespace = 'maint'::regnamespace AND proname = %s", (name,),
    ).fetchall()
    assert rows, f"no routine maint.{name} to tamper with"
    for kind, args, result in rows:
        head = (f"CREATE OR REPLACE PROCEDURE maint.{name}({args})" if kind == "p" else
                f"CREATE OR REPLACE FUNCTION maint.{name}({args}) RETURNS {result}")
        conn.execute(f"{head} LANGUAGE plpgsql AS $body${body}$body$")


@pytest.fixture
def dbo_kit(pg_server, make_role, make_database, db):
    """A database owned by the non-superuser ``dbo``, who deployed the kit into it (``db``:
    the template deploy, as a superuser, created the kit's roles)."""
    dbo = make_role()
    name = make_database(owner=dbo)
    deploy_to(pg_server.dsn(name, user=dbo))
    return name, dbo


def test_a_kit_the_database_owner_controls_is_refused_to_a_superuser(pg_server, admin, dbo_kit):
    name, dbo = dbo_kit
    as_dbo = pg_server.dsn(name, user=dbo)
    # dbo uses its own kit
    assert invoke("--dsn", as_dbo, "status").exit_code == 0
    ok = invoke("--dsn", as_dbo, "--json", "check", "--only", "superusers")
    assert ok.exit_code in (0, 1, 2), ok.output
    assert json.loads(ok.output)["rows"]

    with pg_server.connect(name, user=dbo) as conn:
        for routine in ("health_check", "record_health_check", "apply_retention"):
            tamper(conn, routine, dbo)

    superuser = pg_server.dsn(name)
    check = invoke("--dsn", superuser, "check")
    assert check.exit_code == 3  # UNKNOWN: the checks could not run
    line = check.stderr.strip()
    assert line.count("\n") == 0, line
    assert line.startswith(f"Error: refusing to use pgmaint in database {name!r}: schema maint is "
                           f"owned by {dbo}, which is neither you ({pg_server.user}) nor a superuser")
    assert f"Connect as {dbo}, or have it uninstalled and deployed again by a superuser." in line
    nagios = invoke("--dsn", superuser, "check", "--format", "nagios")
    assert nagios.exit_code == 3 and nagios.output.startswith("PGMAINT UNKNOWN: refusing to use pgmaint")

    for args in (["run", "retention"], ["run", "retention", "--execute"], ["check", "--record"]):
        result = invoke("--dsn", superuser, *args)
        assert result.exit_code in (1, 3), (args, result.output)
        assert "refusing to use pgmaint" in result.stderr, (args, result.stderr)
    assert not is_superuser(admin, dbo)

    # the tampered code is live: run by its owner it tries the escalation (and cannot)
    own = invoke("--dsn", as_dbo, "check", "--only", "superusers")
    assert own.exit_code == 3 and "ALTER ROLE" not in own.stderr
    assert "permission denied" in own.stderr or "must be superuser" in own.stderr, own.stderr
    assert not is_superuser(admin, dbo)


COMMANDS = [
    ["check"], ["run", "retention"], ["run", "orphans"], ["run", "duplicates"], ["run", "all"],
    ["run", "optimize"], ["run", "optimize", "--execute"], ["rules", "list"], ["undo", "1"],
    ["history"], ["status"], ["schedule", "list"], ["schedule", "install", "--dry-run"],
    ["schedule", "remove", "--all"], ["backup", "create"], ["backup", "list"],
    ["backup", "verify", "1"], ["backup", "prune", "--keep-last", "1"],
]


def test_every_command_that_uses_the_kit_is_covered(pg_server, admin, dbo_kit, tmp_path):
    name, _dbo = dbo_kit
    with pg_server.connect(name) as conn:
        journal_rows = conn.execute("SELECT count(*) FROM maint.runs").fetchone()[0]
    for args in COMMANDS:
        result = CliRunner().invoke(
            cli, ["--dsn", pg_server.dsn(name), *args], env={"PGMAINT_BACKUP_DIR": str(tmp_path)})
        assert result.exit_code in (1, 3), (args, result.output)
        assert "refusing to use pgmaint" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == journal_rows
    assert not list(tmp_path.iterdir())  # no backup was written


def test_deploy_over_a_kit_another_role_controls_is_refused(pg_server, dbo_kit):
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        tamper(conn, "health_check", dbo)
        deployments = conn.execute("SELECT count(*) FROM maint.deployments").fetchone()[0]
    for args in (["deploy"], ["deploy", "--force"], ["deploy", "--dry-run"]):
        result = invoke("--dsn", pg_server.dsn(name), *args)
        assert result.exit_code == 1, (args, result.output)
        line = result.stderr.strip()
        assert line.startswith(f"Error: refusing to deploy over pgmaint in database {name!r}: "
                               f"schema maint is owned by {dbo}"), line
        assert f"Deploy as {dbo}" in line and "pgmaint uninstall --yes" in line
        assert line.endswith("Nothing was changed.")
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM maint.deployments").fetchone()[0] == deployments
        assert "ALTER ROLE" in conn.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = 'maint.health_check(text[], text[])'::regprocedure"
        ).fetchone()[0]
    # its owner may upgrade it, and a superuser may remove it (reading only pg_catalog)
    assert invoke("--dsn", pg_server.dsn(name, user=dbo), "deploy", "--force").exit_code == 0
    removed = invoke("--dsn", pg_server.dsn(name), "uninstall", "--yes")
    assert removed.exit_code == 0, removed.output
    assert invoke("--dsn", pg_server.dsn(name), "deploy").exit_code == 0
    assert invoke("--dsn", pg_server.dsn(name), "status").exit_code == 0


def test_a_kit_deployed_by_a_superuser_is_usable_by_admin_and_monitor_logins(pg_server, make_role, db):
    adm, mon = make_role("maint_admin"), make_role("maint_monitor")
    db.execute("CALL maint.purge_runs(dry_run => true)")
    for role in (adm, mon):
        dsn = pg_server.dsn(db.info.dbname, user=role)
        history = invoke("--dsn", dsn, "--json", "history")
        assert history.exit_code == 0, history.output
        assert [r["task"] for r in json.loads(history.output)] == ["purge_runs"]
        check = invoke("--dsn", dsn, "check", "--only", "superusers")
        assert check.exit_code in (0, 1, 2), check.output
        with pg_server.connect(db.info.dbname, user=role) as conn:
            assert trust.problems(conn) == (role, [])


def test_an_untrusted_trigger_on_a_kit_table_is_caught(pg_server, make_role, db, admin):
    dbo = make_role()
    name = db.info.dbname
    db.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(dbo)))
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute(
            "CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN ALTER ROLE \"{dbo}\" SUPERUSER; RETURN NULL; END $$")
    # a superuser attaches it (or dbo does, given TRIGGER on the table): the trigger runs
    # dbo's function with the rights of whoever writes the journal
    db.execute("CREATE TRIGGER zz_audit AFTER INSERT ON maint.runs"
               " FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    result = invoke("--dsn", pg_server.dsn(name), "history")
    assert result.exit_code == 1
    assert (f"trigger zz_audit on table maint.runs uses function public.escalate(), owned by {dbo}"
            in result.stderr), result.stderr
    assert not is_superuser(admin, dbo)

    db.execute("DROP TRIGGER zz_audit ON maint.runs")
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA maint TO {0}; GRANT TRIGGER ON maint.runs TO {0}")
               .format(sql.Identifier(dbo)))
    granted = invoke("--dsn", pg_server.dsn(name), "history")
    assert granted.exit_code == 1
    assert f"maint.runs grants TRIGGER to {dbo}" in granted.stderr
    assert f"REVOKE TRIGGER ON TABLE maint.runs FROM {dbo}" in granted.stderr
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("CREATE TRIGGER zz_audit AFTER INSERT ON maint.runs"
                     " FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    again = invoke("--dsn", pg_server.dsn(name), "check")
    assert again.exit_code == 3 and "trigger zz_audit on table maint.runs uses" in again.stderr
    assert not is_superuser(admin, dbo)


def test_objects_and_privileges_in_schema_maint_are_checked(pg_server, make_role, db):
    dbo = make_role()
    db.execute(sql.SQL("GRANT CREATE ON SCHEMA maint TO {}").format(sql.Identifier(dbo)))
    _, found = trust.problems(db)
    assert found == [trust.Problem("schema maint", dbo, "CREATE")]
    with pg_server.connect(db.info.dbname, user=dbo) as conn:
        # a closer match than the kit's own maint.version() for a call with one argument
        conn.execute("CREATE FUNCTION maint.version(text) RETURNS text LANGUAGE sql AS $$ SELECT $1 $$")
        conn.execute("CREATE VIEW maint.zz_view AS SELECT 1 AS one")
    _, found = trust.problems(db)
    assert [p.what for p in found if p.reason == "owner"] == [
        "function maint.version(text)", "view maint.zz_view"]
    with pytest.raises(trust.KitUntrusted, match=r"function maint.version\(text\) is owned by"):
        trust.require(db)


def test_a_write_grant_on_a_kit_table_is_caught(pg_server, make_role, db):
    """The migrations grant nothing but SELECT on the kit's relations: a later direct write
    grant (table or column) to another role is a reason to refuse, with the REVOKE to run;
    SELECT grants are not."""
    plain = make_role()
    db.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA maint TO {}").format(sql.Identifier(plain)))
    assert trust.problems(db)[1] == []
    db.execute("GRANT INSERT ON maint.archive TO maint_admin")
    db.execute("GRANT UPDATE (warn, crit) ON maint.check_config TO maint_admin")
    db.execute("GRANT USAGE ON SEQUENCE maint.task_lock_keys TO PUBLIC")
    _, found = trust.problems(db)
    assert found == [
        trust.Problem("sequence maint.task_lock_keys", "PUBLIC", "USAGE"),
        trust.Problem("table maint.archive", "maint_admin", "INSERT"),
        trust.Problem("table maint.check_config", "maint_admin", "UPDATE (crit), UPDATE (warn)"),
    ]
    result = invoke("--dsn", pg_server.dsn(db.info.dbname), "history")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line == (
        f"Error: refusing to use pgmaint in database {db.info.dbname!r}: sequence "
        "maint.task_lock_keys grants USAGE to PUBLIC: any role could write the kit's data "
        "directly, which only the kit's functions do (pgmaint never grants that) (and 2 more). "
        "Have the kit's owner run REVOKE USAGE ON SEQUENCE maint.task_lock_keys FROM PUBLIC."), line
    db.execute("REVOKE USAGE ON SEQUENCE maint.task_lock_keys FROM PUBLIC")
    db.execute("REVOKE INSERT ON maint.archive FROM maint_admin")
    result = invoke("--dsn", pg_server.dsn(db.info.dbname), "history")
    assert "REVOKE UPDATE (crit), UPDATE (warn) ON TABLE maint.check_config FROM maint_admin" in result.stderr
    db.execute("REVOKE UPDATE (crit), UPDATE (warn) ON TABLE maint.check_config FROM maint_admin")
    assert invoke("--dsn", pg_server.dsn(db.info.dbname), "history").exit_code == 0


def test_executors_are_owned_by_table_owners_by_design(pg_server, make_role, db):
    owner1 = make_role()
    db.execute("CREATE FUNCTION maint_exec.run_as_owner1() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    db.execute(sql.SQL("ALTER FUNCTION maint_exec.run_as_owner1() OWNER TO {}").format(
        sql.Identifier(owner1)))
    assert trust.problems(db)[1] == []
    db.execute(sql.SQL("ALTER SCHEMA maint_exec OWNER TO {}").format(sql.Identifier(owner1)))
    assert trust.problems(db)[1] == [trust.Problem("schema maint_exec", owner1, "owner")]


def test_a_dependency_on_an_untrusted_type_is_caught_without_maint_exec(pg_server, make_role, db):
    """What the kit's objects use is checked whether or not schema maint_exec exists (an
    earlier query compared with its oid and skipped dependencies on types when it did not)."""
    owner1 = make_role()
    db.execute("CREATE SCHEMA zz_owner1")
    db.execute("CREATE DOMAIN zz_owner1.label AS text")
    db.execute(sql.SQL("ALTER DOMAIN zz_owner1.label OWNER TO {}").format(sql.Identifier(owner1)))
    db.execute("DROP SCHEMA maint_exec CASCADE")
    db.execute("ALTER TABLE maint.runs ADD COLUMN zz_label zz_owner1.label")
    _, found = trust.problems(db)
    assert [(p.what, p.role, p.reason) for p in found] == [
        ("column zz_label of table maint.runs uses type zz_owner1.label", owner1, "dependency")]


def test_what_hangs_on_the_kit_tables_is_checked_for_untrusted_code(pg_server, make_role, db):
    """Triggers, rules, policies, defaults and constraints on a kit table, and a domain's
    constraint in maint, each calling a function of a role you do not trust, are each a reason
    (a superuser added them, so none is an owner problem)."""
    owner1 = make_role()
    db.execute("CREATE SCHEMA zz_owner1")
    for name, result in (("t", "trigger"), ("r", "int"), ("p", "boolean"), ("d", "text"),
                         ("c", "boolean"), ("dc", "boolean")):
        body = {"trigger": "BEGIN RETURN NULL; END", "int": "BEGIN RETURN 1; END",
                "boolean": "BEGIN RETURN true; END", "text": "BEGIN RETURN 'x'; END"}[result]
        db.execute(f"CREATE FUNCTION zz_owner1.{name}() RETURNS {result} LANGUAGE plpgsql AS $${body}$$")
        db.execute(sql.SQL("ALTER FUNCTION zz_owner1.{}() OWNER TO {}").format(
            sql.Identifier(name), sql.Identifier(owner1)))
    db.execute("CREATE TRIGGER zz_t AFTER INSERT ON maint.runs FOR EACH STATEMENT"
               " EXECUTE FUNCTION zz_owner1.t()")
    db.execute("CREATE RULE zz_r AS ON UPDATE TO maint.check_config DO ALSO SELECT zz_owner1.r()")
    db.execute("CREATE POLICY zz_p ON maint.runs USING (zz_owner1.p())")
    db.execute("ALTER TABLE maint.runs ADD COLUMN zz_d text DEFAULT zz_owner1.d()")
    db.execute("ALTER TABLE maint.runs ADD CONSTRAINT zz_c CHECK (zz_owner1.c()) NOT VALID")
    db.execute("CREATE DOMAIN maint.zz_dom AS int CONSTRAINT zz_dc CHECK (zz_owner1.dc())")
    _, found = trust.problems(db)
    assert sorted((p.what, p.role, p.reason) for p in found) == sorted([
        ("trigger zz_t on table maint.runs uses function zz_owner1.t()", owner1, "dependency"),
        ("rule zz_r on table maint.check_config uses function zz_owner1.r()", owner1, "dependency"),
        ("policy zz_p on table maint.runs uses function zz_owner1.p()", owner1, "dependency"),
        ("default value for column zz_d of table maint.runs uses function zz_owner1.d()", owner1,
         "dependency"),
        ("constraint zz_c on table maint.runs uses function zz_owner1.c()", owner1, "dependency"),
        ("constraint zz_dc uses function zz_owner1.dc()", owner1, "dependency"),
    ])


def test_the_guard_checks_only_connections_to_the_kit_database(pg_server, dbo_kit, db):
    name, _dbo = dbo_kit
    dsn = pg_server.dsn(name)
    with dbmod.connection(dsn) as conn:  # outside a command: no guard
        assert conn.info.dbname == name
    trusted = pg_server.dsn(db.info.dbname)
    with dbmod.kit_guard(trusted):
        for autocommit in (True, False):
            with dbmod.connection(trusted, autocommit=autocommit) as conn:
                # checked, and the session resolves unqualified names in pg_catalog only
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                assert conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog, pg_temp"
    with dbmod.kit_guard(dsn):
        with pytest.raises(trust.KitUntrusted):
            dbmod.connect(dsn)
        with pytest.raises(trust.KitUntrusted):
            dbmod.connect(dsn, autocommit=False, application_name="pgmaint-progress")
        # pg_cron's database, restore scratch databases: other databases, never the kit
        with dbmod.connection(dsn, dbname="postgres") as other:
            assert other.info.dbname == "postgres"


def test_the_check_leaves_a_transaction_and_its_search_path_as_they_were(db):
    with psycopg.connect(db.info.dsn, autocommit=False) as conn:
        assert trust.problems(conn)[1] == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # allowed: idle
        conn.execute("SET LOCAL search_path = maint, pg_catalog")
        trust.require(conn)
        assert conn.execute("SHOW search_path").fetchone()[0] == "maint, pg_catalog"
        conn.rollback()


def test_uninstall_and_deploy_of_a_dbo_kit_as_superuser_run_none_of_its_code(pg_server, admin, dbo_kit):
    """dbo plants code where a superuser's deploy would run it (a trigger on yoyo's
    bookkeeping table): deploy refuses before touching it, uninstall never runs it."""
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute(
            "CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN ALTER ROLE \"{dbo}\" SUPERUSER; RETURN NULL; END $$")
        for table in ("_yoyo_migration", "deployments"):
            conn.execute(f"CREATE TRIGGER zz BEFORE INSERT OR UPDATE OR DELETE ON maint.{table}"
                         " FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    with pg_server.connect(name) as conn, pytest.raises(trust.KitUntrusted, match="refusing to deploy"):
        deploy.deploy(conn, force=True)
    assert not is_superuser(admin, dbo)
    with pg_server.connect(name) as conn:
        assert deploy.uninstall(conn, pg_server.dsn(name)).dropped_schemas == [
            "maint", "maint_exec", "maint_archive"]
    assert not is_superuser(admin, dbo)


# --- a superuser takes a kit over: pgmaint deploy --adopt -----------------------------------


def plant(conn: psycopg.Connection, dbo: str) -> None:
    """What a hostile kit owner can leave behind: tampered and extra routines (one granted
    to the monitor role), triggers on the bookkeeping, a rule, a policy, extra grants."""
    conn.execute("INSERT INTO maint.runs (task, dry_run, source, status, finished_at)"
                 " VALUES ('kept', true, 'sql', 'succeeded', now())")
    conn.execute(
        "CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN ALTER ROLE \"{dbo}\" SUPERUSER; RETURN NULL; END $$")
    tamper(conn, "health_check", dbo)
    conn.execute("CREATE FUNCTION maint.version(text) RETURNS text LANGUAGE plpgsql SECURITY DEFINER"
                 f" AS $$ BEGIN ALTER ROLE \"{dbo}\" SUPERUSER; RETURN $1; END $$")
    conn.execute("GRANT EXECUTE ON FUNCTION maint.version(text) TO maint_monitor, PUBLIC")
    for table in ("_yoyo_migration", "deployments", "runs"):
        conn.execute(f"CREATE TRIGGER zz BEFORE INSERT OR UPDATE OR DELETE ON maint.{table}"
                     " FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    conn.execute("CREATE RULE zz_rule AS ON UPDATE TO maint.check_config DO ALSO NOTIFY x")
    conn.execute("CREATE POLICY zz_policy ON maint.runs USING (true)")
    conn.execute("ALTER TABLE maint.backups ENABLE ROW LEVEL SECURITY")
    conn.execute("GRANT ALL ON maint.runs TO PUBLIC")
    # direct writes for the kit's roles, which the kit never grants
    conn.execute("GRANT INSERT, UPDATE, DELETE ON maint.archive, maint.cleanup_rules TO maint_admin")
    conn.execute("GRANT UPDATE (warn) ON maint.check_config TO maint_monitor")
    conn.execute("GRANT CREATE ON SCHEMA maint TO maint_admin")


# every privilege other roles hold on the kit's schemas, relations, columns and routines
KIT_ACLS = """
SELECT pg_describe_object(x.classid, x.objid, x.objsubid), a.grantee::regrole::text, a.privilege_type
  FROM (SELECT 'pg_namespace'::regclass AS classid, oid AS objid, 0 AS objsubid, nspacl AS acl
          FROM pg_namespace WHERE nspname IN ('maint', 'maint_exec')
        UNION ALL
        SELECT 'pg_class'::regclass, oid, 0, relacl FROM pg_class
         WHERE relnamespace = 'maint'::regnamespace
        UNION ALL
        SELECT 'pg_class'::regclass, attrelid, attnum, attacl FROM pg_attribute
         WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'maint'::regnamespace)
        UNION ALL
        SELECT 'pg_proc'::regclass, oid, 0, proacl FROM pg_proc
         WHERE pronamespace = 'maint'::regnamespace) AS x,
       LATERAL aclexplode(x.acl) AS a
 WHERE a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
"""


def kit_acls(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return set(conn.execute(KIT_ACLS).fetchall())


def test_a_superuser_takes_a_kit_over_keeping_its_data(pg_server, admin, dbo_kit, db, make_role):
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        plant(conn, dbo)
    refused = invoke("--dsn", pg_server.dsn(name, user=dbo), "deploy", "--adopt")
    assert refused.exit_code == 1 and "--adopt takes ownership" in refused.stderr

    result = invoke("--dsn", pg_server.dsn(name), "--json", "deploy", "--adopt")
    assert result.exit_code == 0, result.output
    adopted = json.loads(result.output)["adopted"]
    for needle in ("schema maint now owned by you", "schema maint_exec now owned by you",
                   "dropped trigger zz on maint._yoyo_migration", "dropped trigger zz on maint.runs",
                   "dropped trigger cleanup_rules_guard on maint.cleanup_rules (its function file "
                   "created it again)",
                   "dropped rule zz_rule on maint.check_config", "dropped policy zz_policy on maint.runs",
                   "disabled row level security on maint.backups",
                   "dropped routine maint.version(text) (not defined by the kit's files)",
                   "revoked DELETE, INSERT, " + ("MAINTAIN, " if PG_MAJOR >= 17 else "")
                   + "REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE on table maint.runs from PUBLIC",
                   "revoked DELETE, INSERT, UPDATE on table maint.archive from maint_admin",
                   "revoked DELETE, INSERT, UPDATE on table maint.cleanup_rules from maint_admin",
                   "revoked UPDATE on column warn of table maint.check_config from maint_monitor",
                   "revoked CREATE on schema maint from maint_admin"):
        assert needle in adopted, (needle, "\n".join(adopted))
    # what the kit grants itself is not reported as revoked: it is granted again
    assert not [line for line in adopted if "SELECT on table maint.runs from maint_monitor" in line]
    assert not is_superuser(admin, dbo)

    with pg_server.connect(name) as conn:
        # exactly the privileges of a kit a superuser deployed afresh
        assert kit_acls(conn) == kit_acls(db)
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'maint'::regnamespace"
                            " AND relrowsecurity").fetchone()[0] == 0

    with pg_server.connect(name) as conn:
        assert trust.problems(conn)[1] == []
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'maint'::regnamespace"
            " AND (proowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            "      OR strpos(prosrc, %s) > 0)", (dbo,)).fetchone()[0] == 0
        assert conn.execute("SELECT task FROM maint.runs").fetchall() == [("kept",)]
        # the kit's own trigger is back (re-created from its file), calling the kit's function
        assert conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'maint.cleanup_rules'::regclass"
            " AND NOT tgisinternal").fetchall() == [("cleanup_rules_guard",)]
    check = invoke("--dsn", pg_server.dsn(name), "check", "--only", "superusers")
    assert check.exit_code in (0, 1, 2), check.output
    assert not is_superuser(admin, dbo)
    kit_roles_still_work(pg_server, name, make_role)


def kit_roles_still_work(pg_server, name: str, make_role) -> None:
    """maint_admin has no direct write on the kit's tables but runs its tasks; maint_monitor
    reads the journal and runs the checks."""
    adm, mon = make_role("maint_admin"), make_role("maint_monitor")
    with pg_server.connect(name, user=adm) as conn:
        for statement in ("INSERT INTO maint.archive (run_id, source_table, \"row\") VALUES (1, 'x', '{}')",
                          "DELETE FROM maint.cleanup_rules", "UPDATE maint.check_config SET warn = 1",
                          "DELETE FROM maint.runs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    retention = invoke("--dsn", pg_server.dsn(name, user=adm), "run", "retention", "--execute")
    assert retention.exit_code == 0, retention.output
    history = invoke("--dsn", pg_server.dsn(name, user=mon), "--json", "history", "--task", "retention")
    assert history.exit_code == 0, history.output
    assert [r["status"] for r in json.loads(history.output)] == ["succeeded"]
    check = invoke("--dsn", pg_server.dsn(name, user=mon), "check", "--only", "superusers")
    assert check.exit_code in (0, 1, 2), check.output


def test_adopt_takes_away_a_write_grant_to_a_kit_role(pg_server, admin, dbo_kit, db, make_role):
    """The reviewer's reproduction: dbo gave maint_admin direct writes on kit tables; adopt
    exited 0 and maint_admin could still INSERT into maint.archive."""
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("GRANT INSERT, UPDATE, DELETE ON maint.archive, maint.cleanup_rules TO maint_admin")
    # dbo's own CLI now refuses its kit: the write grant is no grant of the kit's
    own = invoke("--dsn", pg_server.dsn(name, user=dbo), "history")
    assert own.exit_code == 1
    assert ("table maint.archive grants DELETE, INSERT, UPDATE to maint_admin, which does not own "
            "it") in own.stderr, own.stderr
    assert "REVOKE DELETE, INSERT, UPDATE ON TABLE maint.archive FROM maint_admin" in own.stderr
    result = invoke("--dsn", pg_server.dsn(name), "--json", "deploy", "--adopt")
    assert result.exit_code == 0, result.output
    assert "revoked DELETE, INSERT, UPDATE on table maint.archive from maint_admin" in json.loads(
        result.output)["adopted"]
    with pg_server.connect(name) as conn:
        assert trust.problems(conn)[1] == []
        assert kit_acls(conn) == kit_acls(db)
    kit_roles_still_work(pg_server, name, make_role)


def test_adopt_resolves_no_name_in_the_kit_it_takes_over(pg_server, admin, dbo_kit):
    """Until the kit is checked, adopt never puts schema maint on search_path: an operator
    dbo left there (a better match for `oid = regnamespace` than the catalog's) is never
    called, and adopt refuses the kit because of it. A sequence counts the calls: nextval
    is not undone by the rollback."""
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("CREATE SEQUENCE public.hits")
        conn.execute("GRANT USAGE ON SEQUENCE public.hits TO PUBLIC")
        conn.execute("CREATE FUNCTION public.hit(oid, regnamespace) RETURNS boolean LANGUAGE plpgsql"
                     " AS $$ BEGIN PERFORM nextval('public.hits'); RETURN $1 = $2::oid; END $$")
        conn.execute("CREATE OPERATOR maint.= (LEFTARG = oid, RIGHTARG = regnamespace,"
                     " FUNCTION = public.hit)")
        # live for a session that resolves names in maint first (as yoyo's steps do)
        conn.execute("SET search_path = maint, pg_catalog")
        conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'maint'::regnamespace")
        conn.execute("RESET search_path")
        calls = conn.execute("SELECT last_value FROM public.hits").fetchone()[0]
        assert calls > 0
    result = invoke("--dsn", pg_server.dsn(name), "deploy", "--adopt")
    assert result.exit_code == 1
    assert ("even after taking it over, operator maint.=(oid,regnamespace) uses function "
            f"public.hit(oid,regnamespace), owned by {dbo}") in result.stderr, result.stderr
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT last_value FROM public.hits").fetchone()[0] == calls
    assert not is_superuser(admin, dbo)


def test_adopt_refuses_what_it_cannot_make_trustworthy(pg_server, admin, dbo_kit):
    name, dbo = dbo_kit
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("CREATE FUNCTION public.stamp() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")
        conn.execute("ALTER TABLE maint.runs ADD COLUMN note text DEFAULT public.stamp()")
    result = invoke("--dsn", pg_server.dsn(name), "deploy", "--adopt")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"Error: cannot adopt the kit in database {name!r}: even after taking it "
                           "over, default value for column note of table maint.runs uses function "
                           f"public.stamp(), owned by {dbo}"), line
    assert line.endswith("Uninstall and deploy again instead. Nothing was changed.")
    with pg_server.connect(name) as conn:  # rolled back: still dbo's
        assert conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'maint'"
                            ).fetchone()[0] == dbo


# --- names a database owner can hijack --------------------------------------------------------


def test_commands_resolve_no_operator_of_the_database_owner(pg_server, admin, make_role, make_database,
                                                            monkeypatch):
    """In PostgreSQL 15 the database owner owns schema public: an operator there that matches
    a query's argument types better than the catalog's would run with the caller's rights.
    Every connection a command opens (to the kit or to pg_cron's database, guarded or not)
    resolves names in pg_catalog only, for its whole session."""
    dbo = make_role()
    name = make_database(owner=dbo)
    dsn = pg_server.dsn(name)
    deploy_to(dsn)  # the kit is the superuser's: trusted
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("CREATE TABLE public.hijacked (who text)")
        conn.execute("GRANT INSERT ON public.hijacked TO PUBLIC")
        conn.execute(
            "CREATE FUNCTION public.oid_eq_int(oid, integer) RETURNS boolean LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO public.hijacked VALUES (current_user);"
            f" BEGIN ALTER ROLE \"{dbo}\" SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END;"
            " RETURN $1 = $2::oid; END $$")
        conn.execute("CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer,"
                     " FUNCTION = public.oid_eq_int)")
        # the operator is live: a session that resolves names in public uses it
        conn.execute("SELECT count(*) FROM pg_catalog.pg_class WHERE oid = 1259")
        assert conn.execute("SELECT DISTINCT who FROM public.hijacked").fetchall() == [(dbo,)]
        conn.execute("DELETE FROM public.hijacked")

    # every pgmaint connection still has the pinned search_path when it is closed
    paths: list[tuple[str, str]] = []
    close = psycopg.Connection.close

    def closing(conn: psycopg.Connection) -> None:
        if (not conn.closed
                and (conn.info.parameter_status("application_name") or "").startswith("pgmaint")
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
            paths.append((conn.info.dbname, conn.execute("SHOW search_path").fetchone()[0]))
        close(conn)

    monkeypatch.setattr(psycopg.Connection, "close", closing)
    for args, codes in ((["deploy", "--force"], {0}), (["status"], {0}), (["check"], {0, 1, 2}),
                        (["run", "optimize"], {0, 3}), (["run", "optimize", "--execute"], {0, 3}),
                        (["schedule", "list"], {0} if HAS_PG_CRON else {1}), (["uninstall", "--yes"], {0})):
        paths.clear()
        result = invoke("--dsn", dsn, *args)
        assert result.exit_code in codes, (args, result.output)
        assert paths and set(paths) <= {(name, "pg_catalog, pg_temp"),
                                         ("postgres", "pg_catalog, pg_temp")}, (args, paths)
        if args == ["schedule", "list"] and HAS_PG_CRON:
            assert {d for d, _ in paths} == {name, "postgres"}  # pg_cron's database too
    assert not is_superuser(admin, dbo)
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM public.hijacked").fetchone()[0] == 0
