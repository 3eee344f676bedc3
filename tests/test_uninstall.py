"""pgmaint uninstall counts the archived rows it would lose before it drops the kit."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import psycopg
import pytest
from click.testing import CliRunner

from orchestrator import deploy, uninstall_guard
from orchestrator.cli import cli
from orchestrator.errors import PgmaintError
from tests.cleanup_support import LOG, count, make_log
from tests.support import deploy_to

KIT_SCHEMAS = ["maint", "maint_archive", "maint_exec"]
UNRESTORED = "SELECT coalesce(sum(rows_archived - rows_restored), 0) FROM maint.archive_summary"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def kit_schemas(db: psycopg.Connection) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('maint', 'maint_exec', 'maint_archive')"
        " ORDER BY 1")]


def archive_two_runs(db: psycopg.Connection) -> int:
    """Two executed retention runs with rows in the archive; one more whose rows were put
    back. Returns the archived rows never restored."""
    make_log(db, rows=300)  # row g is g hours old
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days')")
    db.execute(f"CALL maint.apply_retention(dry_run => false, only_table => '{LOG}')")  # ~60 rows
    db.execute("CALL maint.apply_retention()")  # a dry run archives nothing
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '9 days')")
    db.execute("CALL maint.apply_retention(dry_run => false)")  # 24 more
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '8 days')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    undone = db.execute("SELECT max(run_id) FROM maint.archive_summary").fetchone()[0]
    db.execute("CALL maint.undo_run(%s)", (undone,))
    return count(db, UNRESTORED)


def test_nothing_unrestored_keeps_the_plain_yes(db, db_dsn):
    make_log(db, rows=300)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days', archive => false)")
    db.execute("CALL maint.apply_retention(dry_run => false)")  # removes rows, archives none
    db.execute("CALL maint.apply_retention()")
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '9 days')")
    db.execute("CALL maint.apply_retention(dry_run => false)")  # archived, then put back
    run_id = db.execute("SELECT max(run_id) FROM maint.archive_summary").fetchone()[0]
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert count(db, "SELECT count(*) FROM maint.archive_sets WHERE restored_by IS NOT NULL") > 0
    assert uninstall_guard.count(db) == uninstall_guard.AtRisk()

    refused = invoke("--dsn", db_dsn, "uninstall")
    assert refused.exit_code == 2 and "pass --yes to confirm" in refused.stderr
    assert "lost" not in refused.stderr and kit_schemas(db) == KIT_SCHEMAS

    done = invoke("--dsn", db_dsn, "uninstall", "--yes")
    assert done.exit_code == 0, done.output
    assert "removed schema maint" in done.stdout and "warning" not in done.stderr
    assert kit_schemas(db) == []


def test_unrestored_rows_are_counted_and_need_yes(db, db_dsn):
    left = archive_two_runs(db)
    assert left > 50
    runs = count(db, "SELECT count(DISTINCT run_id) FROM maint.archive_summary"
                     " WHERE rows_archived > rows_restored")
    assert runs == 2
    loss = (f"schema maint in database {db.info.dbname!r} holds {left:,} archived rows of 2 runs "
            "that were never restored (in 2 tables of schema maint_archive); they will be lost")

    refused = invoke("--dsn", db_dsn, "uninstall")  # no terminal, no --yes
    assert refused.exit_code == 2, refused.output
    assert loss in refused.stderr and "Pass --yes to uninstall anyway; nothing was changed" in refused.stderr
    assert kit_schemas(db) == KIT_SCHEMAS

    done = invoke("--dsn", db_dsn, "--json", "uninstall", "--yes")
    assert done.exit_code == 0, done.output
    assert f"warning: {loss}" in done.stderr
    assert '"unrestored_rows": ' + str(left) in done.stdout and '"unrestored_runs": 2' in done.stdout
    assert kit_schemas(db) == []
    assert count(db, f"SELECT count(*) FROM {LOG}") > 0  # the application's table stays


def test_tables_left_in_maint_archive_are_counted_and_dropped(db, db_dsn):
    """A table in maint_archive that no archive set records (left by hand, or by an
    interrupted purge) is at risk too; an object outside the kit that depends on one
    stops the uninstall."""
    db.execute("CREATE TABLE maint_archive.app_users (run_id bigint, payload text)")
    db.execute("CREATE TABLE maint_archive.app_log (run_id bigint, payload text)"
               " PARTITION BY LIST (run_id)")
    db.execute("CREATE TABLE maint_archive.app_log_1 PARTITION OF maint_archive.app_log"
               " FOR VALUES IN (1)")  # a partition is part of its table, not one more
    assert uninstall_guard.count(db) == uninstall_guard.AtRisk(archive_tables=2)

    refused = invoke("--dsn", db_dsn, "uninstall")
    assert refused.exit_code == 2
    assert "schema maint_archive holds 2 archive tables; they will be lost" in refused.stderr

    db.execute("CREATE VIEW public.archived_logs AS SELECT * FROM maint_archive.app_log")
    blocked = invoke("--dsn", db_dsn, "uninstall", "--yes")
    assert blocked.exit_code == 1 and "view public.archived_logs" in blocked.stderr
    db.execute("DROP VIEW public.archived_logs")

    done = invoke("--dsn", db_dsn, "uninstall", "--yes")
    assert done.exit_code == 0, done.output
    assert "removed schema maint and maint_exec and maint_archive" in done.stdout
    assert kit_schemas(db) == []


def test_rows_archived_after_the_count_stop_the_uninstall(db, db_dsn, pg_server):
    confirmed = uninstall_guard.count(db)
    assert confirmed.nothing
    make_log(db, rows=300)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days')")

    def meanwhile(conn: psycopg.Connection) -> None:
        # another session's cleanup run commits archived rows while uninstall is under way
        with pg_server.connect(db.info.dbname) as other:
            other.execute("CALL maint.apply_retention(dry_run => false)")
        uninstall_guard.no_more_than(confirmed)(conn)

    with psycopg.connect(db_dsn, autocommit=True) as conn, \
            pytest.raises(PgmaintError, match=r"holds \d+ archived rows of 1 run that were never "
                                              r"restored.*nothing was changed"):
        deploy.uninstall(conn, db_dsn, before_drop=meanwhile)
    assert kit_schemas(db) == KIT_SCHEMAS
    assert count(db, UNRESTORED) > 0


def test_an_untrusted_kit_s_archive_is_not_read_and_needs_yes(pg_server, admin, make_role,
                                                              make_database, db):
    """dbo, a non-superuser database owner who deployed the kit, replaces the summary view
    with one whose function makes dbo a superuser when a superuser reads it: uninstall
    must not read it (the kit is untrusted), and says the archive was not counted."""
    dbo = make_role()
    name = make_database(owner=dbo)
    deploy_to(pg_server.dsn(name, user=dbo))
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute(
            "CREATE FUNCTION public.escalate() RETURNS bigint LANGUAGE plpgsql AS $$"
            f' BEGIN ALTER ROLE "{dbo}" SUPERUSER; RETURN 0; END $$')
        conn.execute("CREATE OR REPLACE VIEW maint.archive_summary AS"
                     " SELECT 1::bigint AS run_id, 't'::text AS source_table,"
                     " public.escalate() AS rows_archived, 0::bigint AS rows_restored,"
                     " 0::bigint AS bytes, now() AS first_archived_at, now() AS last_archived_at,"
                     " now() AS keep_until, false AS rows_estimated")
    dsn = pg_server.dsn(name)

    refused = invoke("--dsn", dsn, "uninstall")
    assert not admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (dbo,)).fetchone()[0]
    assert refused.exit_code == 2, refused.output
    assert "holds an archive of removed rows that was not counted (the kit is not trusted: " \
           f"schema maint is owned by {dbo}" in refused.stderr
    assert "Pass --yes to uninstall anyway; nothing was changed" in refused.stderr

    done = invoke("--dsn", dsn, "uninstall", "--yes")
    assert done.exit_code == 0, done.output
    assert "warning: schema maint" in done.stderr and "was not counted" in done.stderr
    assert not admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (dbo,)).fetchone()[0]
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def _uninstall_at_a_terminal(dsn: str, answer: str) -> tuple[int, str]:
    """Run ``pgmaint uninstall`` with a pseudo-terminal as stdin/stdout/stderr, type
    ``answer`` at the prompt; (exit code, everything it printed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--dsn", dsn, "uninstall"],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and b"to uninstall anyway" in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, out.decode(errors="replace")


def test_at_a_terminal_the_database_name_must_be_typed(db, db_dsn):
    left = archive_two_runs(db)
    code, out = _uninstall_at_a_terminal(db_dsn, "yes")
    assert code == 1, out
    assert f"holds {left:,} archived rows of 2 runs that were never restored" in out
    assert f"Type the database name ({db.info.dbname}) to uninstall anyway" in out
    assert "not confirmed; nothing was changed" in out
    assert kit_schemas(db) == KIT_SCHEMAS

    code, out = _uninstall_at_a_terminal(db_dsn, db.info.dbname)
    assert code == 0, out
    assert "removed schema maint" in out and kit_schemas(db) == []
