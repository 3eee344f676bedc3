"""Custom health checks: a team's own query, run by the runner like a built-in check (status
rules, unknown on error, history, formats), with the rights of the maint_admin member who added
it, and refused when it could change anything."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner
from health_support import run_one
from psycopg import sql

from orchestrator.cli import cli


@pytest.fixture
def author(db, pg_server, make_role):
    """A maint_admin member who may read public.app_users and public.logins, and a
    connection as that role."""
    role = make_role("maint_admin")
    db.execute("CREATE TABLE public.app_users (id int PRIMARY KEY, name text NOT NULL,"
               " is_admin boolean NOT NULL)")
    db.execute("CREATE TABLE public.logins (user_name text NOT NULL, ok boolean NOT NULL,"
               " at timestamptz NOT NULL DEFAULT now())")
    db.execute(sql.SQL("GRANT SELECT ON public.app_users, public.logins TO {}").format(sql.Identifier(role)))
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=role), autocommit=True) as conn:
        yield role, conn


def admins(db, n: int) -> None:
    db.execute("DELETE FROM public.app_users")
    db.execute("INSERT INTO public.app_users SELECT g, 'u' || g, g <= %s FROM generate_series(1, 10) g", (n,))


def test_custom_value_check_admin_count(db, author):
    role, conn = author
    conn.execute("SELECT maint.add_custom_check('app_admins',"
                 " 'SELECT count(*) FROM public.app_users WHERE is_admin',"
                 " warn => 3, crit => 5, description => 'administrators of the application',"
                 " category => 'security', remediation => 'review who holds is_admin')")
    for n, status in [(2, "ok"), (3, "warning"), (6, "critical")]:
        admins(db, n)
        [row] = run_one(db, "app_admins")
        assert (row["status"], row["value"], row["category"]) == (status, n, "security")
        assert row["detail"] == (f"administrators of the application: {n} "
                                 "(warning at or above 3, critical at or above 5)")
        assert row["metadata"]["author"] == role
        assert (row["remediation"] == "review who holds is_admin") == (status != "ok")
    # history and events, like any check
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['app_admins'])")
    history = db.execute("SELECT status FROM maint.health_history WHERE check_name = 'app_admins'").fetchone()
    event = db.execute("SELECT severity FROM maint.events WHERE object LIKE 'app_admins%'").fetchone()
    assert history == ("critical",) and event == ("critical",)
    # thresholds change through check_configure, like any check
    conn.execute("SELECT maint.check_configure('app_admins', warn => 10, crit => 20)")
    assert run_one(db, "app_admins")[0]["status"] == "ok"


def test_custom_value_check_below(db, author):
    _, conn = author
    conn.execute("SELECT maint.add_custom_check('app_admins_present', 'SELECT count(*) FROM public.app_users"
                 " WHERE is_admin', warn => 1, crit => 0, below => true)")
    admins(db, 0)
    assert run_one(db, "app_admins_present")[0]["status"] == "critical"
    admins(db, 1)
    assert run_one(db, "app_admins_present")[0]["status"] == "warning"
    admins(db, 2)
    assert run_one(db, "app_admins_present")[0]["status"] == "ok"


def test_custom_findings_check_failed_logins(db, db_dsn, author):
    _, conn = author
    conn.execute("""SELECT maint.add_custom_check('failed_logins',
        'SELECT user_name AS object_name, count(*) AS value,
                pg_catalog.format(''%s failed logins in the last hour'', count(*)) AS detail,
                pg_catalog.max(at) AS last_at
           FROM public.logins WHERE NOT ok AND at > now() - interval ''1 hour'' GROUP BY user_name',
        warn => 5, crit => 20, category => 'security', unit => 'logins')""")
    assert [(r["status"], r["object_name"]) for r in run_one(db, "failed_logins")] == [("ok", None)]
    for name, n in [("mallory", 25), ("bob", 6)]:
        db.execute("INSERT INTO public.logins (user_name, ok) SELECT %s, false FROM generate_series(1, %s)",
                   (name, n))
    db.execute("INSERT INTO public.logins (user_name, ok, at) SELECT 'old', false, now() - interval '2 hours'"
               " FROM generate_series(1, 50)")
    db.execute("INSERT INTO public.logins (user_name, ok) VALUES ('alice', true)")
    rows = sorted(run_one(db, "failed_logins"), key=lambda r: r["object_name"])
    assert [(r["object_name"], r["status"], r["value"]) for r in rows] == [("bob", "warning", 6),
                                                                           ("mallory", "critical", 25)]
    assert rows[1]["detail"] == "25 failed logins in the last hour" and rows[1]["unit"] == "logins"
    assert "last_at" in rows[1]["metadata"]
    # the CLI shows it like any check, with Nagios exit codes
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "check", "--format", "nagios",
                                      "--only", "failed_logins"])
    assert result.exit_code == 2, result.output
    assert "failed_logins" in result.output and "mallory" in result.output


def test_custom_check_runs_with_its_authors_rights_not_the_callers(db, author, pg_server, make_role):
    role, conn = author
    conn.execute("SELECT maint.add_custom_check('who_runs', 'SELECT CURRENT_USER::text AS object_name,"
                 " ''info'' AS status')")
    [row] = run_one(db, "who_runs")                 # db is a superuser
    assert row["object_name"] == role
    monitor = make_role("maint_monitor")            # a monitor may read it, run as the author
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as mon:
        assert run_one(mon, "who_runs")[0]["object_name"] == role
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute("SELECT maint.add_custom_check('x', 'SELECT 1')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute("SELECT maint._custom_check_shape(10, 'SELECT 1')")
    # what the author may not read is refused when it is added, though the server's jobs run as superuser
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match=f"fails when its author {role} runs it: permission denied for table pg_authid"):
        conn.execute("SELECT maint.add_custom_check('su', 'SELECT count(*) FROM pg_catalog.pg_authid')")
    db.execute("CREATE TABLE public.secrets (v text)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table secrets"):
        conn.execute("SELECT maint.add_custom_check('sec', 'SELECT count(*) FROM public.secrets')")
    left = db.execute("SELECT count(*) FROM maint.check_config WHERE check_name IN ('su', 'sec')").fetchone()
    assert left == (0,)
    # an author who leaves maint_admin no longer has it run
    db.execute(sql.SQL("REVOKE maint_admin FROM {}").format(sql.Identifier(role)))
    [row] = run_one(db, "who_runs")
    assert row["status"] == "unknown" and "no longer a member of maint_admin" in row["detail"]


@pytest.mark.parametrize(("query", "error", "message"), [
    ("SELECT count(*) FROM public.app_users; DROP TABLE public.app_users", psycopg.errors.SyntaxError,
     "must be one SELECT statement"),
    ("SELECT count(*) FROM public.app_users -- x", psycopg.errors.SyntaxError, "no \";\", comments"),
    ("SELECT $$x$$", psycopg.errors.SyntaxError, "$"),
    ("WITH d AS (DELETE FROM public.app_users RETURNING 1) SELECT count(*) FROM d",
     psycopg.errors.InvalidParameterValue, "data-modifying statements in WITH"),
    ("SELECT count(*) FROM public.app_users FOR UPDATE", psycopg.errors.InvalidParameterValue,
     "FOR UPDATE"),
    ("SELECT pg_catalog.nextval('public.s')", psycopg.errors.InsufficientPrivilege,
     "function nextval(regclass) (volatile"),
    ("SELECT pg_catalog.length(pg_catalog.set_config('a.b', 'c', false))",
     psycopg.errors.InsufficientPrivilege, "function set_config(text,text,boolean) (volatile"),
    ("SELECT pg_catalog.pg_terminate_backend(1)::int", psycopg.errors.InsufficientPrivilege,
     "function pg_terminate_backend(integer"),
    ("SELECT public.f()", psycopg.errors.InsufficientPrivilege, "function public.f() (not built in)"),
    ("SELECT pg_catalog.length(pg_catalog.query_to_xml('select 1', true, true, '')::text)",
     psycopg.errors.InsufficientPrivilege, "runs SQL of its own"),
    ("SELECT count(*), 2 AS two FROM public.app_users", psycopg.errors.InvalidParameterValue,
     "returns either one number"),
    ("SELECT name FROM public.app_users", psycopg.errors.InvalidParameterValue, "returns either one number"),
    ("UPDATE public.app_users SET name = 'x'", psycopg.errors.InvalidParameterValue, "one SELECT statement"),
])
def test_custom_check_queries_that_could_change_anything_are_refused(db, author, query, error, message):
    _, conn = author
    db.execute("CREATE SEQUENCE public.s")
    db.execute("CREATE FUNCTION public.f() RETURNS int STABLE LANGUAGE sql AS 'SELECT 1'")
    db.execute("GRANT ALL ON SEQUENCE public.s TO PUBLIC")
    with pytest.raises(error) as exc:
        conn.execute("SELECT maint.add_custom_check('bad', %s)", (query,))
    assert message in str(exc.value), str(exc.value)
    assert db.execute("SELECT count(*) FROM maint.check_config WHERE check_name = 'bad'").fetchone()[0] == 0
    assert db.execute("SELECT last_value FROM public.s").fetchone()[0] == 1


def test_custom_check_errors_are_unknown_and_withhold_table_data(db, author):
    _, conn = author
    db.execute("CREATE TABLE public.texts (v text)")
    db.execute("INSERT INTO public.texts VALUES ('42')")
    db.execute(sql.SQL("GRANT SELECT ON public.texts TO {}").format(sql.Identifier(author[0])))
    conn.execute("SELECT maint.add_custom_check('casts', 'SELECT sum(v::int) FROM public.texts')")
    assert run_one(db, "casts")[0]["value"] == 42
    db.execute("INSERT INTO public.texts VALUES ('secret-value')")
    [row] = run_one(db, "casts")
    assert row["status"] == "unknown" and "secret-value" not in row["detail"]
    assert "data exception (SQLSTATE 22P02)" in row["detail"]
    db.execute("DROP TABLE public.texts")
    [row] = run_one(db, "casts")
    assert row["status"] == "unknown" and "no longer passes its checks" in row["detail"]
    assert 'relation "public.texts" does not exist' in row["detail"]
    # the other checks go on
    assert {r["status"] for r in run_one(db, "superusers")} <= {"ok", "warning"}


def test_custom_check_names_and_drop(db, author):
    _, conn = author
    with pytest.raises(psycopg.errors.DuplicateObject, match="is a built-in check"):
        conn.execute("SELECT maint.add_custom_check('superusers', 'SELECT 1')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid check name"):
        conn.execute("SELECT maint.add_custom_check('Bad Name', 'SELECT 1')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="wrong way round"):
        conn.execute("SELECT maint.add_custom_check('x', 'SELECT 1', warn => 5, crit => 1)")
    conn.execute("SELECT maint.add_custom_check('one', 'SELECT 1', warn => 1)")
    assert run_one(db, "one")[0]["status"] == "warning"
    conn.execute("SELECT maint.add_custom_check('one', 'SELECT 0', warn => 1)")   # replaced
    assert run_one(db, "one")[0]["status"] == "ok"
    assert conn.execute("SELECT maint.drop_custom_check('one')").fetchone()[0] is True
    assert conn.execute("SELECT maint.drop_custom_check('one')").fetchone()[0] is False
    assert conn.execute("SELECT maint.drop_custom_check('superusers')").fetchone()[0] is False
    kept = db.execute("SELECT count(*) FROM maint.check_config WHERE check_name = 'superusers'").fetchone()
    assert kept == (1,)
