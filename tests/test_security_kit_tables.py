"""Issue 10: the kit's tables are written only through its functions; rules only do what
their author may do; maint_monitor sees findings, never data it cannot read; task locks
cannot be squatted by roles without kit access."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.backup_support import run
from tests.health_support import wait_for
from tests.security_support import is_superuser, make_cast, owner_grants


@pytest.fixture
def cast(db, pg_server, make_role):
    c = make_cast(db, pg_server, make_role)
    owner_grants(db, c.owner1, f'GRANT USAGE ON SCHEMA shop TO "{c.adm}", "{c.mon}"; '
                               f'GRANT SELECT, DELETE ON shop.log TO "{c.adm}"')
    return c


WRITES = [
    "INSERT INTO maint.cleanup_rules (kind, target_schema, target_table, time_column, keep)"
    " VALUES ('retention', 'pg_catalog', 'pg_authid', 'rolvaliduntil', '0')",
    "UPDATE maint.cleanup_rules SET target_schema = 'pg_catalog', target_table = 'pg_authid'",
    "DELETE FROM maint.cleanup_rules",
    "INSERT INTO maint.archive (run_id, source_table, \"row\") VALUES (1, 'pg_catalog.pg_authid', '{}')",
    "UPDATE maint.archive SET source_table = 'pg_catalog.pg_authid'",
    "DELETE FROM maint.archive",
    "SELECT * FROM maint.archive",
    "INSERT INTO maint.archive_sets (run_id, source_table, storage, archive_table, owner_oid, keep_until)"
    " VALUES (1, 'pg_catalog.pg_authid', 'rows', 'set_1', 10, now())",
    "UPDATE maint.archive_sets SET source_table = 'pg_catalog.pg_authid'",
    "DELETE FROM maint.archive_sets",
    "CREATE TABLE maint_archive.set_999 (rolname name, rolsuper boolean)",
    "DELETE FROM maint.runs",
    "UPDATE maint.runs SET status = 'succeeded'",
    "INSERT INTO maint.runs (task, dry_run, source) VALUES ('retention', false, 'sql')",
    "INSERT INTO maint.backups (status, format, verify_level) VALUES ('verified', 'custom', 'restore')",
    "UPDATE maint.backups SET status = 'verified'",
    "UPDATE maint.check_config SET enabled = false",
    "INSERT INTO maint.health_history (check_name, status) VALUES ('superusers', 'ok')",
    "DELETE FROM maint.health_history",
    "INSERT INTO maint.task_locks (task, holder_pid, holder_key) VALUES ('retention', 1, 1)",
    "UPDATE maint.task_locks SET holder_pid = NULL",
]


# every archived row the reader may see, through maint.archive_rows (row data read as each
# table's owner, only of tables the reader may SELECT and sees every row of)
ALL_ARCHIVED = "SELECT count(*) FROM maint.runs AS r CROSS JOIN LATERAL maint.archive_rows(r.id) AS a"


@pytest.mark.parametrize("statement", WRITES, ids=[w.split(" (")[0][:40] for w in WRITES])
def test_maint_admin_has_no_direct_write_on_the_kits_tables(db, cast, statement):
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege):
        adm.execute(statement)


def test_the_functions_still_let_maint_admin_do_its_job(db, cast):
    with cast.as_role(cast.adm) as adm:
        rule = adm.execute(
            "SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')").fetchone()[0]
        adm.execute("SELECT maint.enable_rule(%s, false)", (rule,))
        adm.execute("SELECT maint.enable_rule(%s, true)", (rule,))
        adm.execute("SELECT maint.check_configure('superusers', warn => 5)")
        adm.execute("SELECT maint.check_clear('superusers', 'warn')")
        adm.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")
        adm.execute("CALL maint.apply_retention(dry_run => false)")
        adm.execute("CALL maint.purge_runs(keep => '0', dry_run => false)")
        adm.execute("CALL maint.purge_archive(older_than => '1 year', dry_run => false)")
        # the archive of a table adm may read, through maint.archive_rows
        assert adm.execute(ALL_ARCHIVED).fetchone()[0] == 10
        adm.execute("SELECT maint.remove_rule(%s)", (rule,))
    assert db.execute(
        "SELECT warn FROM maint.check_config WHERE check_name = 'superusers'").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM maint.health_history").fetchone()[0] == 1


def test_a_rule_needs_its_authors_select_and_delete_when_added_and_at_every_run(db, cast):
    # the reproduction: no privilege on shop.secrets
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                       match=r"may not SELECT on shop\.secrets"):
        adm.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '1 day')")
    owner_grants(db, cast.owner1, f'GRANT SELECT ON shop.secrets TO "{cast.adm}"')
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                       match=r"may not DELETE on shop\.secrets"):
        adm.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '1 day')")
    owner_grants(db, cast.owner1, f'GRANT DELETE ON shop.secrets TO "{cast.adm}"')
    with cast.as_role(cast.adm) as adm:
        adm.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '5 days 12 hours')")
    # owner1 takes DELETE back: the superuser's run (the nightly job) skips the rule and says why
    owner_grants(db, cast.owner1, f'REVOKE DELETE ON shop.secrets FROM "{cast.adm}"')
    db.execute("CALL maint.apply_retention(dry_run => false)")
    status, error = db.execute("SELECT status, error FROM maint.runs WHERE task = 'retention'").fetchone()
    assert status == "partial" and f"its author role {cast.adm} may not DELETE on shop.secrets" in error
    assert db.execute("SELECT count(*) FROM shop.secrets").fetchone()[0] == 20
    # an author that no longer exists
    db.execute("UPDATE maint.cleanup_rules SET created_by = 'gone_role'")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert "does not exist any more" in db.execute(
        "SELECT error FROM maint.runs WHERE task = 'retention' ORDER BY id DESC LIMIT 1").fetchone()[0]


def test_a_superuser_that_set_role_is_recorded_as_that_role(db, cast):
    db.execute(f'SET ROLE "{cast.adm}"')
    try:
        db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '1 day')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not a role of this session"):
            db.execute("SELECT maint._add_retention_policy('nobody_at_all', 'shop.log', 'at', '2 days')")
    finally:
        db.execute("RESET ROLE")
    assert db.execute("SELECT created_by FROM maint.cleanup_rules").fetchone()[0] == cast.adm
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                       match="not a role of this session"):
        adm.execute("SELECT maint._add_retention_policy('postgres', 'shop.secrets', 'at', '2 days')")


def test_the_monitor_sees_findings_never_data_it_cannot_read(db, cast):
    """mon cannot read shop.secrets: previews withhold counts and keys, the journal withholds
    an error that would quote a secret value, the archive is closed to it (counts only)."""
    owner_grants(db, cast.owner1, f'GRANT SELECT, DELETE ON shop.secrets TO "{cast.adm}"')
    with cast.as_role(cast.adm) as adm:
        # its condition fails on the data: 'invalid input syntax for type integer: "hush-5"'
        adm.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '4 days 12 hours',"
                    " condition => 'secret::integer > 0')")
        adm.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '5 days 12 hours')")
    with pytest.raises(psycopg.errors.TriggeredActionException):
        db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    with cast.as_role(cast.mon) as mon:
        rows = mon.execute(
            "SELECT would_delete, table_rows, sample_keys, error FROM maint.preview_retention()").fetchall()
        assert all(r[:3] == (None, None, None) and "preview withheld" in r[3] for r in rows)
        journal = mon.execute("SELECT error, detail::text FROM maint.runs").fetchall()
        assert "hush" not in str(journal) and "withheld" in str(journal)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute("SELECT * FROM maint.archive")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute(ALL_ARCHIVED)
        assert mon.execute("SELECT sum(rows_archived) FROM maint.archive_summary").fetchone()[0] == 15
    with cast.as_role(cast.adm) as adm:  # adm may read shop.secrets: previews and archive rows
        assert adm.execute(ALL_ARCHIVED).fetchone()[0] == 15
        assert adm.execute(
            "SELECT sample_keys FROM maint.preview_retention() WHERE error IS NULL").fetchone()[0] == []
    with cast.as_role(cast.adm) as adm:
        owner_grants(db, cast.owner1, f'REVOKE SELECT ON shop.secrets FROM "{cast.adm}"')
        assert adm.execute(ALL_ARCHIVED).fetchone()[0] == 0


def test_squatting_a_task_lock_is_impossible_without_kit_access_and_harmless(db, cast, db_dsn, tmp_path):
    """The issue's reproduction: nobody takes the advisory keys the landed kit used for
    retention and backups (retention failed as 'already running', backup exited 4); the kit
    now keeps its locks in maint.task_locks, which only its functions write."""
    with cast.as_role(cast.nobody) as nobody:
        assert nobody.execute(
            "SELECT pg_try_advisory_lock(1835100526, hashtext('pgmaint:retention')),"
            " pg_try_advisory_lock(1835100526, hashtext('pgmaint:backup'))").fetchone() == (True, True)
        # and the liveness keys the kit hands out next
        nobody.execute("SELECT pg_try_advisory_lock(1835100527, k) FROM generate_series(1, 20) k")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            nobody.execute("SELECT maint.try_task_lock('retention')")
        db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
        db.execute("CALL maint.apply_retention(dry_run => false)")
        status = db.execute("SELECT status FROM maint.runs WHERE task = 'retention'").fetchone()
        assert status == ("succeeded",)
        backup = run("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
        assert backup.exit_code == 0, backup.output
    # a kit role holding the lock is named: pid, role, application
    with cast.as_role(cast.adm, application_name="nightly-ops") as adm:
        assert adm.execute("SELECT maint.try_task_lock('retention')").fetchone() == (True,)
        with pytest.raises(psycopg.errors.LockNotAvailable) as err:
            db.execute("CALL maint.apply_retention()")
        text = str(err.value)
        pid = adm.info.backend_pid
        assert f"session {pid}, role {cast.adm}, application 'nightly-ops'" in text
    # its session ended (a backend exits shortly after its client closes): the lock is free
    wait_for(lambda: db.execute("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)",
                                (pid,)).fetchone()[0], 10, "the session to end")
    db.execute("CALL maint.apply_retention()")


def test_a_lock_held_in_an_open_transaction_names_its_holder(db, cast, pg_server):
    with cast.as_role(cast.adm, application_name="a-long-one") as adm:
        adm.execute("BEGIN")
        adm.execute("SELECT maint.try_task_lock('optimize')")
        holder = f"session {adm.info.backend_pid}, role {cast.adm}, application 'a-long-one'"
        with pytest.raises(psycopg.errors.LockNotAvailable, match=holder):
            db.execute("SELECT maint.run_start('optimize', '{}', true)")
        # a task whose lock row that transaction is creating: named as uncommitted
        adm.execute("SELECT maint.try_task_lock('demo')")
        with pytest.raises(psycopg.errors.LockNotAvailable, match="has not committed yet"):
            db.execute("SELECT maint.run_start('demo', '{}', true)")
        adm.execute("ROLLBACK")
    run = db.execute("SELECT maint.run_start('demo', '{}', true)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'succeeded')", (run,))


def test_forged_undo_through_the_archive_needs_the_kits_owner(db, cast):
    """Even the kit's owner writing a forged row into a real run's archive cannot make undo
    create a role: the target is refused before anything is inserted."""
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    run_id = db.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    forged = Jsonb({"rolname": "evil", "rolsuper": True})
    db.execute("INSERT INTO maint.archive (run_id, source_table, \"row\")"
               " VALUES (%s, 'pg_catalog.pg_authid', %s)", (run_id, forged))
    with pytest.raises(psycopg.Error):
        db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'evil'").fetchone()[0] == 0
    assert not is_superuser(db, cast.adm)


def test_forged_archive_set_cannot_restore_into_the_catalog_and_sets_are_their_owners(db, cast):
    """A set row pointing at pg_catalog.pg_authid (as only the kit's owner could write it) is
    refused before anything is inserted; the archive tables belong to the table's owner, and
    maint_admin reads none of them directly (only maint.archive_rows, for tables it may read)."""
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    run_id = db.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    set_table, owner = db.execute(
        "SELECT s.archive_table, pg_get_userbyid(c.relowner) FROM maint.archive_sets AS s"
        " JOIN pg_class AS c ON c.oid = ('maint_archive.' || s.archive_table)::regclass").fetchone()
    assert owner == cast.owner1
    with cast.as_role(cast.adm) as adm:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute(f"SELECT * FROM maint_archive.{set_table}")
        assert adm.execute("SELECT count(*) FROM maint.archive_rows(%s)", (run_id,)).fetchone()[0] == 10
    with cast.as_role(cast.mon) as mon, pytest.raises(psycopg.errors.InsufficientPrivilege):
        mon.execute("SELECT * FROM maint.archive_rows(%s)", (run_id,))
    # the owner may not create anything in maint_archive outside the kit's steps
    with cast.as_role(cast.owner1) as o, pytest.raises(psycopg.errors.InsufficientPrivilege):
        o.execute("CREATE TABLE maint_archive.mine (x int)")
    left = db.execute("SELECT count(*) FROM shop.log").fetchone()[0]
    db.execute("UPDATE maint.archive_sets SET source_table = 'pg_catalog.pg_authid'")
    with pytest.raises(psycopg.Error, match="pg_authid"):
        db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == left
    assert not is_superuser(db, cast.adm) and not is_superuser(db, cast.owner1)


def test_a_parent_with_another_owners_policies_is_never_read_as_the_childs_owner(db, cast, make_role):
    """The reviewer's reproduction: owner2's parent table has a policy calling owner2's code;
    an orphan rule would read it as owner1 (the child's owner), running owner2's code with
    owner1's rights. Refused when added, and a policy added later refuses the run and the
    preview, without running owner2's code."""
    owner2 = make_role()
    db.execute(f'CREATE SCHEMA shop2 AUTHORIZATION "{owner2}"')
    owner_grants(db, owner2, f"""
        CREATE TABLE shop2.parent (id int PRIMARY KEY);
        INSERT INTO shop2.parent SELECT g FROM generate_series(1, 5) g;
        CREATE TABLE shop2.hits (n int);
        CREATE FUNCTION shop2.pol() RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN INSERT INTO shop2.hits VALUES (1); RETURN true; END $f$;
        GRANT USAGE ON SCHEMA shop2 TO "{cast.owner1}", "{cast.adm}";
        GRANT SELECT ON shop2.parent TO "{cast.owner1}", "{cast.adm}";
        GRANT INSERT ON shop2.hits TO PUBLIC; GRANT EXECUTE ON FUNCTION shop2.pol() TO PUBLIC;""")
    owner_grants(db, cast.owner1, """
        CREATE TABLE shop.child (id int PRIMARY KEY, parent_id int);
        INSERT INTO shop.child SELECT g, g FROM generate_series(1, 8) g;""" +
        f' GRANT SELECT, DELETE ON shop.child TO "{cast.adm}"')
    # added before the policy exists (by the superuser, who sees every row)
    rule = db.execute("SELECT maint.add_orphan_rule('shop.child', ARRAY['parent_id'],"
                      " 'shop2.parent', ARRAY['id'])").fetchone()[0]
    owner_grants(db, owner2, "ALTER TABLE shop2.parent ENABLE ROW LEVEL SECURITY;"
                             " CREATE POLICY p ON shop2.parent USING (shop2.pol())")
    row = db.execute("SELECT orphans, error FROM maint.find_orphans()").fetchone()
    assert row[0] is None and "row-level security and another owner" in row[1]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security and another owner"):
        db.execute("SELECT maint.add_orphan_rule('shop.child', ARRAY['id'], 'shop2.parent', ARRAY['id'])")
    # adm, who sees none of owner2's rows, is refused anyway
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                       match="row-level security"):
        adm.execute("SELECT maint.add_orphan_rule('shop.child', ARRAY['id'], 'shop2.parent', ARRAY['id'])")
    with pytest.raises(psycopg.errors.TriggeredActionException, match="1 of 1 rules failed"):
        db.execute("CALL maint.clean_orphans(dry_run => false, force => true)")
    error = db.execute("SELECT detail->'rules'->%s->>'error' FROM maint.runs WHERE task = 'orphans'",
                       (str(rule),)).fetchone()[0]
    assert "row-level security and another owner" in error
    assert db.execute("SELECT count(*) FROM shop2.hits").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM shop.child").fetchone()[0] == 8


def test_keys_of_user_types_are_never_compared_as_the_owner(db, cast):
    """A dedupe key of a domain (whose checks and operators are someone's code): refused.
    Enums and rows of built-in types compare with built-in code: accepted."""
    owner_grants(db, cast.owner1, f"""
        CREATE DOMAIN shop.code AS text CHECK (shop.note('code') IS NULL OR true);
        CREATE TYPE shop.pair AS (a int, b int);
        CREATE TABLE shop.pairs (id int PRIMARY KEY, c shop.code, p shop.pair, d shop.status);
        GRANT SELECT, DELETE ON shop.pairs TO "{cast.adm}";""")
    with cast.as_role(cast.adm) as adm:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"shop\.pairs\.c \(shop\.code\)"):
            adm.execute("SELECT maint.add_dedupe_rule('shop.pairs', ARRAY['c'])")
        adm.execute("SELECT maint.add_dedupe_rule('shop.pairs', ARRAY['d', 'p'])")


def test_row_level_security_limits_rules_and_the_archive_to_roles_that_see_every_row(db, cast):
    """The reviewer's reproduction: under a policy adm sees only its own rows of shop.notes;
    a rule it wrote would delete (as the owner) every row, and maint.archive_rows would show
    it the others' rows. Rules need an author that sees every row; the archive view too."""
    owner_grants(db, cast.owner1, f"""
        CREATE TABLE shop.notes (id int PRIMARY KEY, at timestamptz NOT NULL, who text, body text);
        INSERT INTO shop.notes SELECT g, now() - interval '9 days', CASE WHEN g <= 5 THEN '{cast.adm}'
                                      ELSE 'someone' END, 'body ' || g FROM generate_series(1, 10) g;
        ALTER TABLE shop.notes ENABLE ROW LEVEL SECURITY;
        CREATE POLICY mine ON shop.notes USING (who = current_user);
        GRANT SELECT, DELETE ON shop.notes TO "{cast.adm}";""")
    with cast.as_role(cast.adm) as adm:
        assert adm.execute("SELECT count(*) FROM shop.notes").fetchone()[0] == 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            adm.execute("SELECT maint.add_retention_policy('shop.notes', 'at', '1 day')")
    db.execute("SELECT maint.add_retention_policy('shop.notes', 'at', '1 day')")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    archived = db.execute(
        "SELECT sum(rows_archived) FROM maint.archive_summary WHERE source_table = 'shop.notes'")
    assert archived.fetchone()[0] == 10
    assert db.execute(ALL_ARCHIVED).fetchone()[0] == 10
    with cast.as_role(cast.adm) as adm:
        assert adm.execute(ALL_ARCHIVED).fetchone()[0] == 0
    # undo puts rows back as the owner, past the policy: an undoer needs to see every row too
    owner_grants(db, cast.owner1, f'GRANT INSERT ON shop.notes TO "{cast.adm}"')
    run_id = db.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                        match="row-level security"):
        adm.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.notes").fetchone()[0] == 0
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.notes").fetchone()[0] == 10
