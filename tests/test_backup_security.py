"""Backups under the security model, with real, separate login roles.

* The catalog (maint.backups) is written only through the kit's functions: a maint_admin
  login backs up, verifies and prunes through the CLI, but cannot write the table, and
  the functions refuse illegal transitions.
* Restores (the restore test and ``backup restore``) run as maint_restore: code of the
  backup's object owners (CHECK, domain, index expression, generated column,
  materialized view) never runs with the rights of whoever runs pgmaint.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
import support
from backup_support import (
    ESCALATION_VARIANTS,
    backups_dir,
    catalog_rows,
    escalation_sql,
    is_superuser,
    role_dsn,
    run,
    run_json,
    schema_dump,
    scratch_databases,
    seed,
    tamper_sql,
)
from psycopg import sql

from orchestrator.backup import runas
from orchestrator.db import with_dbname

RESTORE = runas.ROLE


def _drop_db(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def adm(make_role, db):
    """A maint_admin login that can read everything and run restore tests."""
    return support.reader_role(make_role, db, "maint_admin", RESTORE, attributes="CREATEDB")


# --- the catalog ----------------------------------------------------------------------------


def test_maint_admin_backs_up_verifies_and_prunes_but_cannot_write_the_catalog(
    db, pg_server, tmp_path, adm
):
    db.execute("CREATE TABLE public.accounts AS SELECT g AS id FROM generate_series(1, 50) g")
    dsn = role_dsn(pg_server, db.info.dbname, adm)
    ids = []
    for verify in ("restore", "none"):
        code, created = run_json(
            "backup", "create", "--verify", verify, "--dir", str(tmp_path), dsn=dsn
        )
        assert code == 0, created
        ids.append(created["id"])
    code, v = run_json(
        "backup", "verify", str(ids[1]), "--level", "read", "--dir", str(tmp_path), dsn=dsn
    )
    assert code == 0 and v["ok"], v
    result = run(
        "backup", "prune", "--keep-last", "1", "--execute", "--dir", str(tmp_path), dsn=dsn
    )
    assert result.exit_code == 0, result.stderr

    rows = db.execute(
        "SELECT b.id, b.status, b.verify_level, b.created_by, b.verified_by, r.task, r.invoked_by,"
        "       b.detail->>'pruned_by', b.detail ? 'pruned_at'"
        "  FROM maint.backups AS b JOIN maint.runs AS r ON r.id = b.run_id ORDER BY b.id"
    ).fetchall()
    assert rows == [
        (ids[0], "verified", "restore", adm, adm, "backup", adm, adm, True),
        (ids[1], "verified", "read", adm, adm, "backup", adm, None, False),
    ]

    with psycopg.connect(dsn, autocommit=True) as conn:
        for stmt in (
            "INSERT INTO maint.backups (format) VALUES ('custom')",
            "UPDATE maint.backups SET status = 'verified', error = NULL",
            "DELETE FROM maint.backups",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
    assert [r[1] for r in catalog_rows(db)] == ["verified", "verified"]


@pytest.fixture
def adm_conn(db, pg_server, adm):
    with psycopg.connect(role_dsn(pg_server, db.info.dbname, adm), autocommit=True) as conn:
        yield conn


def _run(conn, task="backup"):
    return conn.execute("SELECT maint.run_start(%s, '{}', false)", (task,)).fetchone()[0]


def test_catalog_functions_refuse_illegal_transitions(db, pg_server, adm_conn):
    c = adm_conn
    errors = psycopg.errors

    with pytest.raises(errors.NoDataFound, match="no run with id"):
        c.execute("SELECT maint.backup_start(-1, 'custom')")
    verify_run = _run(c, "backup-verify")
    with pytest.raises(errors.InvalidParameterValue, match="not of backup"):
        c.execute("SELECT maint.backup_start(%s, 'custom')", (verify_run,))
    run_id = _run(c)
    with pytest.raises(errors.InvalidParameterValue, match="invalid backup format"):
        c.execute("SELECT maint.backup_start(%s, 'tar')", (run_id,))

    running = c.execute("SELECT (maint.backup_start(%s, 'custom')).id", (run_id,)).fetchone()[0]
    # another session cannot write through this session's run
    with (
        psycopg.connect(pg_server.dsn(db.info.dbname), autocommit=True) as other,
        pytest.raises(errors.InsufficientPrivilege, match="belongs to session"),
    ):
        other.execute(
            "SELECT maint.backup_finish(%s, %s, 'failed', p_error => 'x')", (run_id, running)
        )
    # completing needs a path, a size and the manifest's sha256; failing needs an error
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="has no path"):
        c.execute(
            "SELECT maint.backup_finish(%s, %s, 'completed', 1, repeat('a', 64))", (run_id, running)
        )
    c.execute("SELECT maint.backup_progress(%s, %s, '/b/1')", (run_id, running))
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="cannot move"):
        c.execute("SELECT maint.backup_progress(%s, %s, '/elsewhere')", (run_id, running))
    with pytest.raises(errors.InvalidParameterValue, match="sha256"):
        c.execute("SELECT maint.backup_finish(%s, %s, 'completed', 1, 'abc')", (run_id, running))
    with pytest.raises(errors.InvalidParameterValue, match="needs the error"):
        c.execute("SELECT maint.backup_finish(%s, %s, 'failed')", (run_id, running))
    with pytest.raises(errors.InvalidParameterValue, match="invalid outcome"):
        c.execute("SELECT maint.backup_finish(%s, %s, 'verified')", (run_id, running))
    # a running backup cannot be verified or pruned
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="still running"):
        c.execute(
            "SELECT maint.backup_record_verification(%s, %s, '/b/1', 'read', true, 'ok')",
            (verify_run, running),
        )
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="still running"):
        c.execute("SELECT maint.backup_mark_pruned(%s, %s, '/b/1')", (run_id, running))

    c.execute(
        "SELECT maint.backup_finish(%s, %s, 'completed', 10, repeat('a', 64))", (run_id, running)
    )
    # finished is final: never back to running, never completed twice
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="already completed"):
        c.execute(
            "SELECT maint.backup_finish(%s, %s, 'failed', p_error => 'late')", (run_id, running)
        )
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="already completed"):
        c.execute("SELECT maint.backup_progress(%s, %s, p_pg_dump_version => '1')", (run_id, running))

    # a backup whose dump failed has nothing to verify
    failed = c.execute("SELECT (maint.backup_start(%s, 'custom')).id", (run_id,)).fetchone()[0]
    c.execute("SELECT maint.backup_progress(%s, %s, '/b/2')", (run_id, failed))
    c.execute("SELECT maint.backup_finish(%s, %s, 'failed', p_error => 'pg_dump died')", (run_id, failed))
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="nothing to verify"):
        c.execute(
            "SELECT maint.backup_record_verification(%s, %s, '/b/2', 'read', true, 'ok')",
            (verify_run, failed),
        )
    with pytest.raises(errors.InvalidParameterValue, match="invalid verify level"):
        c.execute(
            "SELECT maint.backup_record_verification(%s, %s, '/b/1', 'deep', true, 'ok')",
            (verify_run, running),
        )
    # another database's backup (same id, other path) is not touched
    assert c.execute(
        "SELECT maint.backup_record_verification(%s, %s, '/other/1', 'read', false, 'bad')",
        (verify_run, running),
    ).fetchone() == (False,)
    assert c.execute(
        "SELECT maint.backup_record_verification(%s, %s, '/b/1', 'read', false, 'bad block')",
        (verify_run, running),
    ).fetchone() == (True,)
    # a verification that failed can be repeated and succeed
    assert c.execute(
        "SELECT maint.backup_record_verification(%s, %s, '/b/1', 'read', true, 'ok')",
        (verify_run, running),
    ).fetchone() == (True,)
    assert c.execute("SELECT maint.backup_mark_pruned(%s, %s, '/b/1')", (run_id, running)).fetchone() == (
        True,
    )
    # closed runs cannot write any more
    c.execute("SELECT maint.run_finish(%s, 'succeeded')", (run_id,))
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="already closed"):
        c.execute("SELECT maint.backup_start(%s, 'custom')", (run_id,))
    rows = db.execute(
        "SELECT status, error, verify_level, detail ? 'pruned_at' FROM maint.backups ORDER BY id"
    ).fetchall()
    assert rows == [("verified", None, "read", True), ("failed", "pg_dump died", "none", False)]


# --- restores as maint_restore -----------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(ESCALATION_VARIANTS))
def test_owner_code_in_a_restore_test_never_runs_as_superuser(
    db, db_dsn, tmp_path, admin, make_role, variant
):
    owner = make_role()
    db.execute(escalation_sql(variant, owner))
    assert not is_superuser(admin, owner)
    # the CLI runs as postgres, a superuser
    code, created = run_json(
        "backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert not is_superuser(admin, owner)
    # the owner's code failed inside the restore, and the verification says so
    assert code == 5, created
    problems = created["verify"]["problems"]
    assert len(problems) == 1 and problems[0].startswith("pg_restore failed:"), problems
    assert "superuser" in problems[0], problems
    row = catalog_rows(db)[-1]
    assert row[1] == "failed" and row[2] == "restore" and "pg_restore failed" in row[3]
    assert scratch_databases(admin) == []

    # `backup restore` as postgres: the same code fails the same way, nothing is left
    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        result = run(
            "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path),
            dsn=db_dsn,
        )
        assert result.exit_code == 1
        assert "pg_restore failed" in result.stderr and "superuser" in result.stderr
        assert not is_superuser(admin, owner)
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone() is None
    finally:
        _drop_db(admin, target)


MULTI_OWNER = """
CREATE SCHEMA shop AUTHORIZATION {o1};
CREATE SCHEMA "two words" AUTHORIZATION {o2};
SET ROLE {o1};
-- proves the restore runs with maint_restore as the SESSION user (not SET ROLE)
CREATE FUNCTION shop.restored_safely() RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT pg_catalog.current_database() = {src} OR session_user = 'maint_restore' $$;
CREATE DOMAIN shop.positive AS integer CHECK (VALUE > 0);
CREATE TYPE shop.mood AS ENUM ('ok', 'meh');
CREATE TYPE shop.pair AS (a integer, b text);
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qty shop.positive NOT NULL,
    mood shop.mood,
    CHECK (shop.restored_safely())
);
INSERT INTO shop.orders (qty, mood) SELECT g, 'ok' FROM generate_series(1, 30) AS g;
CREATE SEQUENCE shop.tickets;
SELECT setval('shop.tickets', 77);
CREATE VIEW shop.big AS SELECT * FROM shop.orders WHERE qty > 10;
CREATE MATERIALIZED VIEW shop.totals AS SELECT count(*) AS n FROM shop.orders;
CREATE AGGREGATE shop.total(integer) (SFUNC = int4pl, STYPE = integer);
CREATE TABLE shop.secret (id integer, who text);
INSERT INTO shop.secret SELECT g, 'x' FROM generate_series(1, 10) AS g;
ALTER TABLE shop.secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE shop.secret FORCE ROW LEVEL SECURITY;
CREATE POLICY few ON shop.secret USING (id < 4);
SELECT lo_from_bytea(0, 'owned by o1');
GRANT USAGE ON SCHEMA shop TO {o2};
GRANT SELECT ON shop.orders TO {o2};
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO {o2};
RESET ROLE;
SET ROLE {o2};
CREATE TABLE "two words"."a table" (x integer);
INSERT INTO "two words"."a table" VALUES (1), (2);
RESET ROLE;
CREATE FUNCTION public.noop_evt() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER pgmaint_test_evt ON ddl_command_start EXECUTE FUNCTION public.noop_evt();
"""


@pytest.fixture
def spaced_role(admin):
    """A login role whose name has a space (TOC lines are not quoted)."""
    name = f"r two {uuid.uuid4().hex[:6]}"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    for (datname,) in admin.execute(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
    ).fetchall():
        try:
            with psycopg.connect(admin.info.dsn, dbname=datname, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        except psycopg.Error:
            pass
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def multi_owner(db, make_role, spaced_role):
    o1 = make_role()
    db.execute(
        MULTI_OWNER.format(
            o1=f'"{o1}"', o2=sql.Identifier(spaced_role).as_string(db),
            src=sql.Literal(db.info.dbname).as_string(db),
        )
    )
    return o1, spaced_role


def _owners(dsn: str) -> list[tuple[str, str]]:
    """(object, owner) of every object of the database with an owner (but
    pg_database_owner and the bootstrap superuser, which pg_shdepend does not record).
    Default privileges are about their role's future objects: not owned objects."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT pg_describe_object(classid, objid, 0), refobjid::regrole::text
                 FROM pg_shdepend
                WHERE deptype = 'o' AND dbid = (SELECT oid FROM pg_database
                                                 WHERE datname = current_database())
                  AND classid <> 'pg_default_acl'::regclass
                ORDER BY 1"""
        ).fetchall()


def _database_owner(admin, name: str) -> str:
    return admin.execute(
        "SELECT datdba::regrole::text FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()[0]


def test_restore_test_of_a_database_with_several_owners(db, db_dsn, tmp_path, admin, multi_owner):
    code, created = run_json(
        "backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0, created
    v = created["verify"]
    assert v["ok"], v["problems"]
    assert f"restored as {RESTORE} (no password needed)" in v["notes"]
    assert any(n.startswith("1 event trigger(s) not restored") for n in v["notes"]), v["notes"]
    # FORCE ROW LEVEL SECURITY hid no rows: not from pg_dump (the archive's counts), not from
    # the restored database's counts (which the verification found equal)
    counts = {name.rsplit(".", 1)[1]: n for name, n in v["archive_rows"].items()}
    assert counts["secret"] == 10 and counts["orders"] == 30


def test_backup_restore_as_superuser_hands_everything_back(
    db, db_dsn, tmp_path, admin, multi_owner
):
    o1, o2 = multi_owner
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path),
            dsn=db_dsn,
        )
        assert code == 0, r
        target_dsn = with_dbname(db_dsn, target)
        assert f"restored as {RESTORE} (no password needed)" in r["notes"]
        assert r["owners"][o1] > 5 and r["owners"][o2] == 2  # schema and table
        # what postgres owned (the kit, public.noop_evt(), the database) is not handed to
        # it: it stays maint_restore's, each object listed with the statement giving it back
        withheld = r["superuser_owned"]
        assert {w["owner"] for w in withheld} == {"postgres"} and "postgres" not in r["owners"]
        objects = {w["object"] for w in withheld}
        assert {"routine public.noop_evt()", f"database {target}", "schema maint"} <= objects
        assert len(r["kept"]) == len(withheld)  # nothing else stayed behind
        assert _database_owner(admin, target) == RESTORE
        source_owners = _owners(db_dsn)  # pg_shdepend leaves out the bootstrap superuser
        assert [x for x in _owners(target_dsn) if x[1] != RESTORE] == source_owners
        notes = "\n".join(r["notes"])
        assert "privileges restored" in notes and "1 event trigger(s) not restored" in notes
        with psycopg.connect(target_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM shop.secret").fetchone()[0] == 10
            assert conn.execute("SELECT last_value FROM shop.tickets").fetchone()[0] == 77

        # after the review an administrator runs the listed statements and creates the
        # event trigger: the same definitions, owners, privileges and default privileges
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            for w in withheld:
                conn.execute(w["statement"])
            conn.execute(
                "CREATE EVENT TRIGGER pgmaint_test_evt ON ddl_command_start"
                " EXECUTE FUNCTION public.noop_evt()"
            )
        assert _owners(target_dsn) == source_owners
        assert _database_owner(admin, target) == _database_owner(admin, db.info.dbname)
        assert schema_dump(target_dsn) == schema_dump(db_dsn)
    finally:
        _drop_db(admin, target)


def test_restored_code_cannot_tamper_its_way_to_superuser_through_the_hand_back(
    db, db_dsn, pg_server, tmp_path, admin, make_role
):
    """The restore runs every owner's code as maint_restore, which owns every restored
    object meanwhile: o1's CHECK replaces postgres' function and postgres' event trigger
    function, and sets and grants on the database. None of that reaches a superuser."""
    o1 = make_role()
    db.execute(tamper_sql(o1))
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    target, other = (f"t_restored_{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path),
            dsn=db_dsn,
        )
        assert code == 0, r
        target_dsn = with_dbname(db_dsn, target)
        # the restored code did run (as maint_restore) and replaced postgres' function
        with psycopg.connect(target_dsn) as conn:
            tampered = conn.execute(
                "SELECT prosecdef, pg_get_userbyid(proowner) FROM pg_proc"
                " WHERE oid = 'public.report()'::regprocedure"
            ).fetchone()
        # ... but what postgres owned in the backup stays maint_restore's: listed, not handed over
        assert tampered == (True, RESTORE)
        kept = {k["object"]: k for k in r["superuser_owned"]}
        assert kept["routine public.report()"]["owner"] == "postgres"
        assert kept["routine public.report()"]["statement"] == (
            'ALTER ROUTINE public.report() OWNER TO "postgres"'
        )
        assert "routine public.on_ddl()" in kept
        assert f"database {target}" in kept and _database_owner(admin, target) == RESTORE
        assert "postgres" not in r["owners"] and r["owners"][o1] >= 3  # schema, table, function
        assert any(
            k.startswith("routine public.report() (postgres in the backup is a superuser")
            for k in r["kept"]
        )
        notes = "\n".join(r["notes"])
        assert "owned by a superuser in the backup" in notes and "review" in notes
        assert "1 event trigger(s) not restored" in notes

        # route 1: o1 calls the function postgres would have owned
        with (
            psycopg.connect(role_dsn(pg_server, target, o1), autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("SELECT public.report()")
        assert not is_superuser(admin, o1)
        # route 2: a superuser's DDL in the restored database fires no event trigger
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone()[0] == 0
            conn.execute("CREATE TABLE public.after_restore (x integer)")
        assert not is_superuser(admin, o1)
        # route 3: nothing maint_restore set or granted on the database survives the hand-over
        assert admin.execute(
            "SELECT count(*) FROM pg_db_role_setting AS s JOIN pg_database AS d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s",
            (target,),
        ).fetchone()[0] == 0
        assert admin.execute(
            "SELECT has_database_privilege(%s, %s, 'CREATE')", (o1, target)
        ).fetchone()[0] is False
        assert "database settings and grants set during the restore reset" in notes

        # a non-superuser's restore resets the database the same way (it stays maint_restore's)
        adm = support.reader_role(make_role, db, "maint_admin", RESTORE, attributes="CREATEDB")
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", other, "--dir", str(tmp_path),
            dsn=role_dsn(pg_server, db.info.dbname, adm),
        )
        assert code == 0, r
        assert "database settings and grants set during the restore reset" in "\n".join(r["notes"])
        assert admin.execute(
            "SELECT count(*) FROM pg_db_role_setting AS s JOIN pg_database AS d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s",
            (other,),
        ).fetchone()[0] == 0
        assert admin.execute(
            "SELECT has_database_privilege(%s, %s, 'CREATE')", (o1, other)
        ).fetchone()[0] is False
        assert not is_superuser(admin, o1)
    finally:
        _drop_db(admin, target)
        _drop_db(admin, other)


def test_roles_that_can_become_superuser_are_given_nothing(
    db, db_dsn, tmp_path, admin, make_role
):
    """A member of a superuser role can give its objects to that role: it is treated as
    one, by the hand-back and by --owner (as are CREATEROLE before PostgreSQL 16 and
    members of pg_execute_server_program / pg_write_server_files)."""
    from orchestrator.backup import owners as backup_owners

    member = make_role("postgres")
    plain = make_role()
    creator = make_role(attributes="CREATEROLE")
    programs = make_role("pg_execute_server_program")
    powerful = backup_owners.powerful(db)
    assert powerful["postgres"] == "a superuser"
    assert powerful[member] == "able to become a superuser (member of postgres)"
    assert powerful[programs] == "able to become a superuser (member of pg_execute_server_program)"
    assert powerful.get(creator) == (
        "able to become a superuser (CREATEROLE)" if db.info.server_version < 160000 else None
    )
    assert plain not in powerful and RESTORE not in powerful and "pg_database_owner" not in powerful

    db.execute(
        sql.SQL("CREATE TABLE public.m (x integer); ALTER TABLE public.m OWNER TO {};"
                " CREATE TABLE public.p (x integer); ALTER TABLE public.p OWNER TO {}").format(
            sql.Identifier(member), sql.Identifier(plain)
        )
    )
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path),
            dsn=db_dsn,
        )
        assert code == 0, r
        assert r["owners"][plain] == 1 and member not in r["owners"]
        (m,) = [w for w in r["superuser_owned"] if w["owner"] == member]
        assert m["object"] == "table public.m" and m["why"] == powerful[member]
        with psycopg.connect(with_dbname(db_dsn, target)) as conn:
            assert conn.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.m'::regclass"
            ).fetchone()[0] == RESTORE
        refused = run(
            "backup", "restore", str(created["id"]), "--into", "t_never", "--owner", member,
            "--dir", str(tmp_path), dsn=db_dsn,
        )
        assert refused.exit_code == 3
        assert f"--owner {member} is able to become a superuser (member of postgres)" in refused.stderr
    finally:
        _drop_db(admin, target)


def test_backup_restore_to_a_named_owner_and_as_a_non_superuser(
    db, db_dsn, pg_server, tmp_path, admin, make_role, multi_owner
):
    o1, _o2 = multi_owner
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    new_owner = make_role()
    adm = support.reader_role(make_role, db, "maint_admin", RESTORE, new_owner, attributes="CREATEDB")
    adm_dsn = role_dsn(pg_server, db.info.dbname, adm)
    targets = [f"t_restored_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        # a superuser giving everything to one role
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", targets[0], "--owner", new_owner,
            "--dir", str(tmp_path), dsn=db_dsn,
        )
        assert code == 0, r
        assert {o for _x, o in _owners(with_dbname(db_dsn, targets[0]))} == {new_owner}
        assert _database_owner(admin, targets[0]) == new_owner

        # a non-superuser: everything stays maint_restore's, privileges are not restored
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", targets[1], "--dir", str(tmp_path),
            dsn=adm_dsn,
        )
        assert code == 0, r
        owners = {owner for _obj, owner in _owners(with_dbname(db_dsn, targets[1]))}
        assert owners == {RESTORE}
        assert _database_owner(admin, targets[1]) == RESTORE
        notes = "\n".join(r["notes"])
        assert "stay owned by maint_restore" in notes and "privileges (GRANT/REVOKE) not restored" in notes
        assert "1 event trigger(s) not restored" in notes
        with psycopg.connect(with_dbname(db_dsn, targets[1])) as conn:
            assert conn.execute("SELECT count(*) FROM shop.orders").fetchone()[0] == 30

        # ... or goes to a role the non-superuser is a member of
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", targets[2], "--owner", new_owner,
            "--dir", str(tmp_path), dsn=adm_dsn,
        )
        assert code == 0, r
        assert {o for _x, o in _owners(with_dbname(db_dsn, targets[2]))} == {new_owner}
        assert _database_owner(admin, targets[2]) == new_owner
        # never to a role it could not become
        refused = run(
            "backup", "restore", str(created["id"]), "--into", "t_never", "--owner", o1,
            "--dir", str(tmp_path), dsn=adm_dsn,
        )
        assert refused.exit_code == 3 and f"GRANT {o1} TO {adm}" in refused.stderr
        # nor to a superuser: the backup's SECURITY DEFINER code would run as one
        refused = run(
            "backup", "restore", str(created["id"]), "--into", "t_never", "--owner", "postgres",
            "--dir", str(tmp_path), dsn=db_dsn,
        )
        assert refused.exit_code == 3 and "--owner postgres is a superuser" in refused.stderr
    finally:
        for t in targets:
            _drop_db(admin, t)


def test_extensions_are_created_first_by_a_superuser_and_fail_clearly_otherwise(
    db, db_dsn, pg_server, tmp_path, admin, make_role
):
    db.execute(
        "CREATE SCHEMA ext; CREATE EXTENSION pg_stat_statements SCHEMA ext;"
        " CREATE EXTENSION hstore; CREATE TABLE public.kv (h hstore);"
        " INSERT INTO public.kv VALUES ('a=>1'), ('b=>2')"
    )
    code, created = run_json(
        "backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0, created
    assert (
        "extensions created by postgres before the restore: hstore, pg_stat_statements"
        in created["verify"]["notes"]
    )
    # pg_stat_statements is untrusted: maint_restore cannot create it
    adm = support.reader_role(make_role, db, "maint_admin", RESTORE, attributes="CREATEDB")
    result = run(
        "backup", "verify", str(created["id"]), "--level", "restore", "--dir", str(tmp_path),
        dsn=role_dsn(pg_server, db.info.dbname, adm),
    )
    assert result.exit_code == 5
    assert 'permission denied to create extension "pg_stat_statements"' in result.stderr
    assert "an untrusted extension needs a superuser" in result.stderr
    assert scratch_databases(admin) == []


# --- maint_restore itself --------------------------------------------------------------------


def test_missing_or_unsafe_restore_role_is_refused(db, db_dsn, pg_server, tmp_path, admin, make_role):
    code, _created = run_json(
        "backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0
    verify = ("backup", "verify", "--level", "restore", "--dir", str(tmp_path))

    group = "pg_read_all_data" if db.info.server_version >= 140000 else "pg_read_all_stats"
    admin.execute(f"GRANT {group} TO {RESTORE}")
    try:
        result = run(*verify, dsn=db_dsn)
    finally:
        admin.execute(f"REVOKE {group} FROM {RESTORE}")
    assert result.exit_code == 3
    assert f"role {RESTORE} is not safe to restore as (member of {group})" in result.stderr

    admin.execute(f"ALTER ROLE {RESTORE} RENAME TO {RESTORE}_away")
    try:
        result = run(*verify, dsn=db_dsn)
    finally:
        admin.execute(f"ALTER ROLE {RESTORE}_away RENAME TO {RESTORE}")
    assert result.exit_code == 3
    assert f"CREATE ROLE {RESTORE} LOGIN NOINHERIT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    # a non-superuser that may not create databases owned by maint_restore
    adm = support.reader_role(make_role, db, "maint_admin", attributes="CREATEDB")
    result = run(*verify, dsn=role_dsn(pg_server, db.info.dbname, adm))
    assert result.exit_code == 3
    assert f"GRANT {RESTORE} TO {adm}" in result.stderr
    assert scratch_databases(admin) == []


def test_create_verify_restore_refuses_before_dumping_when_maint_restore_cannot_be_used(
    db, db_dsn, tmp_path, admin
):
    """The restore role is checked before pg_dump runs, not after a dump that then could
    not be verified."""
    from orchestrator.backup import files

    def attempt():
        result = run("backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn)
        assert result.exit_code == 3
        assert len(result.stderr.strip().splitlines()) == 1
        # no pg_dump ran: nothing on disk, the attempt's row failed with the reason
        assert files.scan(backups_dir(tmp_path, db)) == []
        row = db.execute(
            "SELECT b.status, b.error, b.bytes, r.status FROM maint.backups AS b"
            "  JOIN maint.runs AS r ON r.id = b.run_id ORDER BY b.id DESC LIMIT 1"
        ).fetchone()
        assert row[0] == "failed" and row[2] is None and row[3] == "failed", row
        return result.stderr, row[1]

    admin.execute(f"ALTER ROLE {RESTORE} RENAME TO {RESTORE}_away")
    try:
        stderr, error = attempt()
    finally:
        admin.execute(f"ALTER ROLE {RESTORE}_away RENAME TO {RESTORE}")
    assert f"CREATE ROLE {RESTORE} LOGIN NOINHERIT" in stderr and f"role {RESTORE} does not exist" in error

    admin.execute(f"ALTER ROLE {RESTORE} NOLOGIN")
    try:
        stderr, error = attempt()
    finally:
        admin.execute(f"ALTER ROLE {RESTORE} LOGIN")
    assert f"role {RESTORE} cannot log in" in stderr and f"ALTER ROLE {RESTORE} LOGIN" in error

    # with the role usable again the same command dumps and verifies
    code, created = run_json("backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0 and created["verify"]["ok"], created


@pytest.fixture
def restore_role_needs_a_password(admin):
    """pg_hba.conf: maint_restore must give a password (everyone else keeps trust)."""
    hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
    original = hba.read_text()
    hba.write_text(f"local all {RESTORE} scram-sha-256\nhost all {RESTORE} all scram-sha-256\n" + original)
    admin.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(original)
        admin.execute("SELECT pg_reload_conf()")


def test_one_time_password_when_maint_restore_cannot_log_in_without_one(
    db, db_dsn, pg_server, tmp_path, admin, make_role, monkeypatch, restore_role_needs_a_password
):
    import subprocess

    from orchestrator.backup import load as backup_load

    password = "pgmaint-test-" + uuid.uuid4().hex
    monkeypatch.setattr(runas.secrets, "token_urlsafe", lambda _n: password)
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(args, **kw):
        seen.append((list(args), dict(kw.get("env") or {})))
        return real_run(args, **kw)

    monkeypatch.setattr(backup_load.subprocess, "run", spy)
    real_popen = subprocess.Popen

    def spy_popen(args, **kw):  # pg_restore 17+ into a server before 17 goes through psql
        seen.append((list(args), dict(kw.get("env") or {})))
        return real_popen(args, **kw)

    monkeypatch.setattr(backup_load.subprocess, "Popen", spy_popen)
    # log every statement of the CLI's session: the password must not show up
    db.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(db.info.dbname)))
    log = Path(pg_server.directory) / "pg" / "server.log"
    log_start = log.stat().st_size
    seed(db)
    code, created = run_json(
        "backup", "create", "--verify", "restore", "--dir", str(tmp_path), dsn=db_dsn
    )
    db.execute(sql.SQL("ALTER DATABASE {} RESET log_statement").format(sql.Identifier(db.info.dbname)))
    assert code == 0, created
    assert created["verify"]["ok"], created["verify"]["problems"]
    assert any("one-time password" in n for n in created["verify"]["notes"])
    # removed afterwards; no expiry as before ('infinity': VALID UNTIL cannot be reset to NULL)
    assert admin.execute(
        "SELECT rolpassword IS NULL, coalesce(rolvaliduntil = 'infinity', true) FROM pg_authid"
        " WHERE rolname = %s",
        (RESTORE,),
    ).fetchone() == (True, True)
    restores = [(a, e) for a, e in seen
                if (Path(a[0]).name == "pg_restore" and "--exit-on-error" in a)
                or (Path(a[0]).name == "psql" and "ON_ERROR_STOP=1" in a)]
    assert restores and all(e.get("PGPASSWORD") == password for _a, e in restores)
    assert all(password not in " ".join(a) for a, _e in seen)
    with log.open("rb") as f:
        f.seek(log_start)
        text = f.read().decode(errors="replace")
    assert f"ALTER ROLE \"{RESTORE}\" PASSWORD 'SCRAM-SHA-256$" in text  # logged: a verifier
    assert password not in text
    assert password not in json.dumps(created)

    # a role that may not set passwords gets one line saying how to let maint_restore in
    adm = support.reader_role(make_role, db, "maint_admin", RESTORE, attributes="CREATEDB")
    result = run(
        "backup", "verify", "--level", "restore", "--dir", str(tmp_path),
        dsn=role_dsn(pg_server, db.info.dbname, adm),
    )
    assert result.exit_code == 3
    msg = result.stderr.strip()
    assert len(msg.splitlines()) == 1
    assert f"cannot connect as {RESTORE}" in msg and "pg_hba.conf" in msg and ".pgpass" in msg
    assert f"the restore never runs as {adm}" in msg
    assert scratch_databases(admin) == []


def test_one_time_password_is_renewed_for_each_new_session(
    db, db_dsn, tmp_path, admin, monkeypatch, restore_role_needs_a_password
):
    """A restore that outlasts the password's validity still opens its later sessions
    (here: 2 seconds, and pg_restore made to take 3)."""
    import time

    from orchestrator.backup import load as backup_load

    seed(db)
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    monkeypatch.setattr(runas, "PASSWORD_VALID_SECONDS", 2)
    real = backup_load.pg_restore

    def slow(*args, **kw):
        proc = real(*args, **kw)
        time.sleep(3)
        return proc

    monkeypatch.setattr(backup_load, "pg_restore", slow)
    verify = ("backup", "verify", str(created["id"]), "--level", "restore", "--dir", str(tmp_path))
    code, v = run_json(*verify, dsn=db_dsn)
    assert code == 0 and v["ok"], v
    assert any("one-time password (valid 2 seconds for each new session" in n for n in v["notes"])
    # the control: without renewal the session after pg_restore cannot log in any more
    monkeypatch.setattr(runas.Login, "renew", lambda self: None)
    code, v = run_json(*verify, dsn=db_dsn)
    assert code == 5, v
    assert v["problems"][0].startswith("could not read the restored scratch database")
    assert "password authentication failed" in v["problems"][0]
    assert admin.execute(
        "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = %s", (RESTORE,)
    ).fetchone()[0]


def test_one_time_password_is_removed_when_the_restore_fails(
    db, db_dsn, pg_server, tmp_path, admin, make_role, monkeypatch, restore_role_needs_a_password
):
    """pg_restore fails (the owner's CHECK needs more than maint_restore may do) while
    maint_restore logs in with a one-time password: the password is gone afterwards,
    whether a superuser or a CREATEROLE role set it."""
    from orchestrator.backup import load as backup_load

    owner = make_role()
    db.execute(escalation_sql("check", owner))
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    # each failing pg_restore ran with a one-time password that was set at that moment
    during: list[tuple[bool, bool]] = []
    real = backup_load.pg_restore

    def spy(tools, archive, listing, conninfo, env, **kw):
        set_now = admin.execute(
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (RESTORE,)
        ).fetchone()[0]
        during.append(("PGPASSWORD" in env, set_now))
        return real(tools, archive, listing, conninfo, env, **kw)

    monkeypatch.setattr(backup_load, "pg_restore", spy)

    def password_gone() -> bool:
        return admin.execute(
            "SELECT rolpassword IS NULL AND coalesce(rolvaliduntil = 'infinity', true)"
            "  FROM pg_authid WHERE rolname = %s",
            (RESTORE,),
        ).fetchone()[0]

    verify = ("backup", "verify", str(created["id"]), "--level", "restore", "--dir", str(tmp_path))
    code, v = run_json(*verify, dsn=db_dsn)
    assert code == 5 and v["problems"][0].startswith("pg_restore failed:"), v
    assert password_gone()

    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    result = run(
        "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path), dsn=db_dsn
    )
    assert result.exit_code == 1 and "pg_restore failed" in result.stderr
    assert password_gone()
    assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone() is None

    creator = support.reader_role(make_role, db, "maint_admin", RESTORE, attributes="CREATEDB CREATEROLE")
    if db.info.server_version >= 160000:  # CREATEROLE alters only roles it has ADMIN OPTION on
        admin.execute(f"GRANT {RESTORE} TO {creator} WITH ADMIN OPTION")
    code, v = run_json(*verify, dsn=role_dsn(pg_server, db.info.dbname, creator))
    assert code == 5 and v["problems"][0].startswith("pg_restore failed:"), v
    assert password_gone()
    assert during == [(True, True)] * 3
    assert not is_superuser(admin, owner)
    assert scratch_databases(admin) == []
