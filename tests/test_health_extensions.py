"""Extension and upgrade-risk checks: extension_in_public, extension_update_available,
reg_type_columns (against pg_upgrade itself) and function_search_path."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from health_support import configure, find, only_ok, run_one, sessions
from psycopg import sql

from orchestrator import deploy
from orchestrator.sandbox import Sandbox, free_port

CHECKS = ("extension_in_public", "extension_update_available", "reg_type_columns", "function_search_path")


def names(rows: list[dict]) -> set[str]:
    return {r["object_name"] for r in rows if r["status"] != "ok"}


def older_version(db: psycopg.Connection, ext: str) -> str:
    """An installable version of ext below this server's default, with an update path to it
    (pg_trgm: 1.3 on every major from 13 to 18)."""
    row = db.execute(
        """
        SELECT p.source FROM pg_extension_update_paths(%s) AS p
          JOIN pg_available_extensions AS a ON a.name = %s
          JOIN pg_available_extension_versions AS v ON v.name = a.name AND v.version = p.source
         WHERE p.target = a.default_version AND p.path IS NOT NULL
         ORDER BY length(p.path) DESC LIMIT 1
        """,
        (ext, ext),
    ).fetchone()
    assert row, f"no older version of {ext} on this server"
    return row[0]


def public_is_writable(db: psycopg.Connection) -> bool:
    return db.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]


# -- a database fresh from deploy ----------------------------------------------------------


def test_a_new_database_with_the_kit_has_no_finding(db):
    for check in CHECKS:
        assert only_ok(run_one(db, check)), check
    # the kit's committing procedures have no SET clause; they pass on their first statement
    pinned_in_body = db.execute(
        r"""
        SELECT count(*) FROM pg_proc p
         WHERE p.pronamespace = 'maint'::regnamespace AND p.prokind = 'p'
           AND p.proconfig IS NULL
           AND p.prosrc ~ ('\mBEGIN\s+PERFORM pg_catalog\.set_config\(''search_path'', '
                           '''pg_catalog, pg_temp'', true\);')
        """
    ).fetchone()[0]
    assert pinned_in_body >= 12


# -- extension_in_public --------------------------------------------------------------------


def test_extension_in_public_moved_by_its_fix(db):
    db.execute("CREATE SCHEMA ext")
    db.execute("CREATE EXTENSION citext SCHEMA ext")  # not in public: silent
    assert only_ok(run_one(db, "extension_in_public"))
    db.execute("CREATE EXTENSION pg_trgm SCHEMA public")
    row = find(run_one(db, "extension_in_public"), "pg_trgm")
    # 13 and 14 let every role create in public: anyone can plant overloads there
    assert row["status"] == ("warning" if public_is_writable(db) else "info")
    assert row["object_type"] == "extension"
    assert row["metadata"]["relocatable"] is True
    assert row["fix_sql"] == (
        "CREATE SCHEMA IF NOT EXISTS extensions; ALTER EXTENSION pg_trgm SET SCHEMA extensions;"
    )
    if not public_is_writable(db):
        db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        row = find(run_one(db, "extension_in_public"), "pg_trgm")
        assert row["status"] == "warning"
        assert "CVE-2018-1058" in row["detail"]
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "extension_in_public"))
    schema = db.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
    ).fetchone()[0]
    assert schema == "extensions"
    # what uses it by OID follows it; unqualified calls need the schema on the search_path
    assert db.execute("SELECT extensions.similarity('abc', 'abd') > 0").fetchone()[0]


def test_extension_in_public_target_schema_is_quoted(db):
    db.execute("CREATE EXTENSION pg_trgm SCHEMA public")
    configure(db, "extension_in_public", params={"target_schema": "Shared Ext"})
    row = find(run_one(db, "extension_in_public"), "pg_trgm")
    assert row["fix_sql"] == (
        'CREATE SCHEMA IF NOT EXISTS "Shared Ext"; ALTER EXTENSION pg_trgm SET SCHEMA "Shared Ext";'
    )
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "extension_in_public"))


def test_extension_in_public_not_relocatable_has_no_fix(db):
    available = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT name FROM pg_available_extension_versions"
            " WHERE NOT relocatable AND schema IS NULL AND name IN ('xml2', 'plpgsql_check')"
        ).fetchall()
    }
    ext = "xml2" if "xml2" in available else "plpgsql_check"
    assert ext in available, "no non-relocatable contrib extension on this server"
    db.execute(sql.SQL("CREATE EXTENSION {} SCHEMA public").format(sql.Identifier(ext)))
    row = find(run_one(db, "extension_in_public"), ext)
    assert row["metadata"]["relocatable"] is False
    assert row["fix_sql"] is None
    assert "not relocatable" in row["remediation"]
    assert f"CREATE EXTENSION {ext} SCHEMA extensions" in row["remediation"]
    # what the remediation says PostgreSQL does
    db.execute("CREATE SCHEMA extensions")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="does not support SET SCHEMA"):
        db.execute(sql.SQL("ALTER EXTENSION {} SET SCHEMA extensions").format(sql.Identifier(ext)))


# -- extension_update_available ------------------------------------------------------------


def test_extension_update_available_and_its_fix(db):
    db.execute("CREATE SCHEMA ext")
    db.execute("CREATE EXTENSION pg_trgm SCHEMA ext")  # the default version: silent
    assert only_ok(run_one(db, "extension_update_available"))
    db.execute("DROP EXTENSION pg_trgm")
    old = older_version(db, "pg_trgm")
    default = db.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_trgm'"
    ).fetchone()[0]
    db.execute(sql.SQL("CREATE EXTENSION pg_trgm SCHEMA ext VERSION {}").format(sql.Literal(old)))
    row = find(run_one(db, "extension_update_available"), "pg_trgm")
    assert row["status"] == "warning"
    assert row["fix_sql"] == "ALTER EXTENSION pg_trgm UPDATE;"
    assert row["metadata"]["installed_version"] == old
    assert row["metadata"]["default_version"] == default
    assert row["metadata"]["update_path"].startswith(f"{old}--")
    assert f"at version {old}, but this server's files default to {default}" in row["detail"]
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "extension_update_available"))
    assert db.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'"
    ).fetchone()[0] == default


def test_extension_update_without_a_path_is_info_without_fix(db):
    db.execute("CREATE SCHEMA ext")
    db.execute("CREATE EXTENSION pg_trgm SCHEMA ext")
    # what an upgrade leaves when the scripts of the installed version are gone: a version
    # this server's files know nothing about (set in the catalog of this throwaway database)
    db.execute("UPDATE pg_extension SET extversion = '0.9' WHERE extname = 'pg_trgm'")
    row = find(run_one(db, "extension_update_available"), "pg_trgm")
    assert row["status"] == "info"
    assert row["fix_sql"] is None
    assert "no update path from 0.9" in row["detail"]
    with pytest.raises(psycopg.Error, match="has no update path from version"):
        db.execute("ALTER EXTENSION pg_trgm UPDATE")


# -- reg_type_columns -----------------------------------------------------------------------

REG_CASES = """
CREATE TABLE reg_t (id int, f regproc, fs regprocedure[], o regoper,
                    ok_c regclass, ok_t regtype, ok_r regrole, ok_ts regtype[]);
CREATE INDEX reg_t_f ON reg_t (f);
CREATE DOMAIN reg_cfg AS regconfig;
CREATE TABLE reg_dom (id int, d reg_cfg);
CREATE TYPE reg_pair AS (a int, b regoperator);
CREATE TABLE reg_comp (id int, p reg_pair);
CREATE TABLE reg_row (id int, r reg_dom);
CREATE TYPE reg_rng AS RANGE (subtype = regnamespace);
CREATE TABLE reg_range (id int, rr reg_rng);
CREATE TABLE reg_other (id int, coll regcollation, dict regdictionary);
CREATE MATERIALIZED VIEW reg_mv AS SELECT f FROM reg_t;
CREATE VIEW reg_v AS SELECT f FROM reg_t;
CREATE TABLE reg_part (id int, op regoperator) PARTITION BY RANGE (id);
CREATE TABLE reg_part_1 PARTITION OF reg_part FOR VALUES FROM (0) TO (10);
CREATE TABLE reg_parent (id int, f regproc);
CREATE TABLE reg_child () INHERITS (reg_parent);
CREATE TABLE reg_gone (id int, f regproc);
ALTER TABLE reg_gone DROP COLUMN f;
"""
# what pg_upgrade lists for REG_CASES (tables_using_reg.txt of PostgreSQL 15's pg_upgrade)
REG_FOUND = {
    "public.reg_t.f",
    "public.reg_t.fs",
    "public.reg_t.o",
    "public.reg_t_f.f",  # the index
    "public.reg_dom.d",  # a domain
    "public.reg_comp.p",  # a composite type
    "public.reg_row.r",  # a table's row type containing a domain
    "public.reg_range.rr",  # a range
    "public.reg_other.coll",
    "public.reg_other.dict",
    "public.reg_mv.f",  # a materialized view (not the view)
    "public.reg_part_1.op",  # the partition (the partitioned table stores nothing)
    "public.reg_parent.f",
    "public.reg_child.f",
}


def test_reg_type_columns_follow_pg_upgrades_rule(db):
    db.execute("CREATE TABLE plain (a regclass, b regtype, c regrole, d oid, e text)")
    assert only_ok(run_one(db, "reg_type_columns"))  # pg_upgrade accepts these
    db.execute(REG_CASES)
    db.execute("CREATE TEMP TABLE reg_tmp (f regproc)")  # temporary: pg_upgrade skips them
    rows = run_one(db, "reg_type_columns")
    assert names(rows) == REG_FOUND
    assert {r["status"] for r in rows} == {"warning"}
    row = find(rows, "public.reg_t.f")
    assert row["object_type"] == "column"
    assert "pg_upgrade refuses" in row["detail"]
    assert row["metadata"]["reg_types"] == "regproc"
    assert row["fix_sql"] == "ALTER TABLE public.reg_t ALTER COLUMN f TYPE text USING f::text;"
    assert find(rows, "public.reg_t.fs")["fix_sql"] == (
        "ALTER TABLE public.reg_t ALTER COLUMN fs TYPE text[] USING fs::text[];"
    )
    # a partition is changed through its partitioned table
    assert find(rows, "public.reg_part_1.op")["fix_sql"] == (
        "ALTER TABLE public.reg_part ALTER COLUMN op TYPE text USING op::text;"
    )
    # an inherited column on its parent; the nested types name what they contain
    assert find(rows, "public.reg_child.f")["fix_sql"] is None
    assert "inherited" in find(rows, "public.reg_child.f")["remediation"]
    row = find(rows, "public.reg_row.r")
    assert row["fix_sql"] is None
    assert row["metadata"]["reg_types"] == "regconfig"
    assert "public.reg_dom, which contains regconfig" in row["detail"]
    assert find(rows, "public.reg_mv.f")["fix_sql"] is None
    assert find(rows, "public.reg_t_f.f")["metadata"]["relkind"] == "i"

    # the fixes run, and the values survive as names
    db.execute("INSERT INTO reg_part VALUES (1, '+(integer,integer)')")
    db.execute("DROP MATERIALIZED VIEW reg_mv")
    db.execute("DROP VIEW reg_v")
    for name in ("public.reg_t.f", "public.reg_t.fs", "public.reg_part_1.op"):
        db.execute(find(rows, name)["fix_sql"])
    after = names(run_one(db, "reg_type_columns"))
    assert after == REG_FOUND - {
        "public.reg_t.f", "public.reg_t.fs", "public.reg_t_f.f", "public.reg_part_1.op", "public.reg_mv.f"
    }
    assert db.execute("SELECT op, op::regoperator::oid <> 0 FROM reg_part").fetchone() == (
        "+(integer,integer)", True
    )


@pytest.fixture
def old_cluster(pg_bindir: Path) -> Iterator[tuple[Sandbox, Path]]:
    """A throwaway server of its own (pg_upgrade --check needs it stopped) and its bindir."""
    if not (pg_bindir / "pg_upgrade").is_file():
        pytest.skip(f"no pg_upgrade in {pg_bindir} (the npm server packages ship none)")
    base = Path(tempfile.mkdtemp(prefix="pgmaint-upgrade-"))
    base.chmod(0o755)
    box = Sandbox(base / "old")
    try:
        box.start(fast=True, cron=False, bindir=pg_bindir)
        yield box, base
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def pg_upgrade_check(box: Sandbox, base: Path, bindir: Path) -> tuple[int, str, set[str]]:
    """Stop the old cluster, initdb a new one as the sandbox does and run pg_upgrade --check
    between them; return its exit code, output and the columns it listed in
    tables_using_reg.txt (as schema.table.column)."""
    box.stop()
    work = base / "work"
    work.mkdir()
    new_data = work / "new"
    runas: list[str] = []
    if Sandbox._as_server_user():
        shutil.chown(work, "postgres")
        runas = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*runas, *cmd], cwd=work, capture_output=True, text=True,
                              timeout=120, check=False)

    initdb = run(str(bindir / "initdb"), "-D", str(new_data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--data-checksums", "--nosync")
    assert initdb.returncode == 0, initdb.stderr
    proc = run(str(bindir / "pg_upgrade"), "--check", "-U", "postgres",
               "-b", str(bindir), "-B", str(bindir), "-d", str(box.data), "-D", str(new_data),
               "-s", str(work), "-p", str(free_port()), "-P", str(free_port()))
    listed: set[str] = set()
    for report in new_data.glob("pg_upgrade_output.d/*/tables_using_reg.txt"):
        listed |= {
            line.strip() for line in report.read_text().splitlines() if line.startswith("  ")
        }
    return proc.returncode, proc.stdout + proc.stderr, listed


@pytest.mark.slow
def test_reg_type_columns_match_what_pg_upgrade_refuses(old_cluster, pg_bindir):
    box, base = old_cluster
    info = box.info()
    with psycopg.connect(info.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE upg")
    with psycopg.connect(info.conninfo("upg"), autocommit=True) as conn:
        deploy.deploy(conn)  # the kit's own tables must not be listed
        conn.execute(REG_CASES)
        ours = {f"upg:{r['object_name']}" for r in run_one(conn, "reg_type_columns")}
    code, output, listed = pg_upgrade_check(box, base, pg_bindir)
    assert code != 0, output
    assert "Checking for reg* data types in user tables" in output
    # pg_upgrade writes nspname.relname.attname unquoted, per database; our names quote
    # where needed (none of these need it)
    assert {f"upg:{name}" for name in listed} == ours == {f"upg:{n}" for n in REG_FOUND}


# -- function_search_path -------------------------------------------------------------------


def test_function_search_path_unpinned_function_and_its_fix(db):
    db.execute("CREATE TABLE items (id int)")
    db.execute("INSERT INTO items VALUES (1), (2)")
    db.execute(
        "CREATE FUNCTION count_items() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM items'"
    )
    db.execute(
        "CREATE FUNCTION pinned() RETURNS int LANGUAGE sql SET search_path = '' AS 'SELECT 1'"
    )
    db.execute(
        'CREATE SCHEMA "My App"; CREATE FUNCTION "My App"."Odd Name"(a int, b text) RETURNS int'
        " LANGUAGE plpgsql AS 'BEGIN RETURN a; END'"
    )
    db.execute("CREATE PROCEDURE tidy() LANGUAGE sql AS 'DELETE FROM items WHERE id < 0'")
    db.execute(  # a function may pin it in its body too (a SET clause is the better way)
        "CREATE FUNCTION body_pinned() RETURNS int LANGUAGE plpgsql AS $$BEGIN "
        "PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); RETURN 1; END$$"
    )
    if db.info.server_version >= 140000:  # SQL-standard bodies are bound when created
        db.execute("CREATE FUNCTION std_body(a int) RETURNS int LANGUAGE sql RETURN a + 1")
    db.execute("CREATE EXTENSION pg_trgm")  # extension members are the extension's business
    rows = run_one(db, "function_search_path")
    assert names(rows) == {
        "public.count_items()", '"My App"."Odd Name"(integer,text)', "public.tidy()"
    }
    # a procedure that does not commit takes a SET clause like a function
    tidy = find(rows, "public.tidy()")
    assert tidy["object_type"] == "procedure"
    assert tidy["metadata"]["commits"] is False
    assert tidy["fix_sql"] == "ALTER PROCEDURE public.tidy() SET search_path = public, pg_temp;"
    row = find(rows, "public.count_items()")
    assert row["status"] == "warning"
    assert row["object_type"] == "function"
    assert "does not pin search_path" in row["detail"]
    assert row["fix_sql"] == "ALTER FUNCTION public.count_items() SET search_path = public, pg_temp;"
    odd = find(rows, '"My App"."Odd Name"(integer,text)')
    assert odd["fix_sql"] == (
        'ALTER FUNCTION "My App"."Odd Name"(integer,text) SET search_path = "My App", pg_temp;'
    )
    for fix in (row["fix_sql"], odd["fix_sql"], tidy["fix_sql"]):
        db.execute(fix)
    assert only_ok(run_one(db, "function_search_path"))
    # pinned to its own schema, it still finds its table whatever the caller's path
    db.execute("SET search_path = pg_catalog")
    assert db.execute("SELECT public.count_items()").fetchone()[0] == 2
    db.execute("CALL public.tidy()")


def test_security_definer_functions_are_reported_once_by_secdef_search_path(db):
    db.execute(
        "CREATE FUNCTION secdef_open() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'"
    )
    assert only_ok(run_one(db, "function_search_path"))
    assert find(run_one(db, "secdef_search_path"), "public.secdef_open()")["status"] == "warning"


PROCS = {
    # no pin at all, commits
    "p_open": "BEGIN COMMIT; END",
    # pins only after something else ran
    "p_later": "BEGIN RAISE NOTICE 'first'; "
               "PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); COMMIT; END",
    # session-wide (false): leaks to the caller, not accepted
    "p_session": "BEGIN PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false); "
                 "COMMIT; END",
    # the kit's pattern, after a label, a DECLARE section and comments: accepted
    "p_first": "<<main>> DECLARE v_begin int := 1; BEGIN -- pin it first\n"
               "  /* as the kit does */"
               " PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);"
               " CREATE TABLE IF NOT EXISTS public.p_first_ran (id int); COMMIT;"
               " PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); END",
}


def create_procs(db: psycopg.Connection) -> None:
    for name, body in PROCS.items():
        db.execute(
            sql.SQL("CREATE PROCEDURE {}() LANGUAGE plpgsql AS {}").format(
                sql.Identifier(name), sql.Literal(body)
            )
        )


def test_function_search_path_committing_procedures(db):
    create_procs(db)
    rows = run_one(db, "function_search_path")
    assert names(rows) == {"public.p_open()", "public.p_later()", "public.p_session()"}
    for row in rows:
        assert row["status"] == "warning"
        assert row["object_type"] == "procedure"
        assert row["metadata"]["commits"] is True
        # a SET clause would break them: no fix_sql, the first-statement pin instead
        assert row["fix_sql"] is None
        assert "PERFORM pg_catalog.set_config('search_path', 'public, pg_temp', true);" in row["remediation"]
    assert "does not pin search_path" in find(rows, "public.p_open()")["detail"]
    assert "not as its first statement" in find(rows, "public.p_later()")["detail"]
    # the accepted procedure commits; with a SET clause PostgreSQL refuses its COMMIT
    db.execute("CALL p_first()")
    db.execute("ALTER PROCEDURE p_first() SET search_path = public, pg_temp")
    with pytest.raises(psycopg.errors.InvalidTransactionTermination):
        db.execute("CALL p_first()")


def test_function_search_path_body_pin_with_a_schema_others_may_create_in(db, make_role):
    other = make_role()
    db.execute("CREATE SCHEMA tools")
    db.execute(
        "CREATE PROCEDURE p_tools() LANGUAGE plpgsql AS $$BEGIN "
        "PERFORM pg_catalog.set_config('search_path', 'tools, pg_temp', true); COMMIT; END$$"
    )
    db.execute(
        "CREATE PROCEDURE p_user() LANGUAGE plpgsql AS $$BEGIN "
        "PERFORM pg_catalog.set_config('search_path', '\"$user\", pg_catalog', true); COMMIT; END$$"
    )
    rows = run_one(db, "function_search_path")
    assert names(rows) == {"public.p_user()"}  # tools: only its owner may create there
    assert find(rows, "public.p_user()")["metadata"]["writable_schemas"] == "$user"
    db.execute(sql.SQL("GRANT CREATE ON SCHEMA tools TO {}").format(sql.Identifier(other)))
    rows = run_one(db, "function_search_path")
    row = find(rows, "public.p_tools()")
    assert row["status"] == "warning"
    assert row["metadata"]["body_search_path"] == "tools, pg_temp"
    assert row["metadata"]["writable_schemas"] == "tools"
    assert "roles other than its owner may create objects in tools" in row["detail"]
    db.execute(sql.SQL("REVOKE CREATE ON SCHEMA tools FROM {}").format(sql.Identifier(other)))
    assert names(run_one(db, "function_search_path")) == {"public.p_user()"}


# -- a monitoring role ----------------------------------------------------------------------


def test_a_monitoring_role_sees_the_same_findings(db, pg_server, make_role):
    monitor = make_role("maint_monitor")
    db.execute(
        sql.SQL("CREATE EXTENSION pg_trgm SCHEMA public VERSION {}").format(
            sql.Literal(older_version(db, "pg_trgm"))
        )
    )
    db.execute("CREATE TABLE reg_t (f regprocedure)")
    db.execute("CREATE FUNCTION open_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    create_procs(db)
    expected = {check: run_one(db, check) for check in CHECKS}
    assert all(names(rows) for rows in expected.values())
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        # the catalog is enough: the monitor may not read the table itself
        assert mon.execute("SELECT has_table_privilege('public.reg_t', 'SELECT')").fetchone()[0] is False
        for check in CHECKS:
            rows = run_one(mon, check)
            assert "unknown" not in {r["status"] for r in rows}, rows
            assert [(r["status"], r["object_name"], r["fix_sql"]) for r in rows] == [
                (r["status"], r["object_name"], r["fix_sql"]) for r in expected[check]
            ]
