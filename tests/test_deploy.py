"""pgmaint deploy / uninstall: idempotence, upgrades, concurrency, refusals, roles."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from orchestrator import __version__, deploy, trust
from orchestrator.errors import PgmaintError
from tests.support import (
    SQL_DIR,
    copy_sql,
    deploy_to,
    migration_ids,
    previous_release_sql,
    schema_dump,
)


def test_deploy_into_empty_database(pg_server, make_database):
    name = make_database()
    result = deploy_to(pg_server.dsn(name))
    assert result.changed
    assert result.applied_migrations == migration_ids()
    assert result.stale_routines == []
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0] == __version__
        # yoyo's bookkeeping lives in maint (so uninstall removes it), never in public
        yoyo = conn.execute(
            "SELECT relnamespace::regnamespace::text, relname FROM pg_class"
            " WHERE relname LIKE '%yoyo%' AND relkind = 'r' ORDER BY 2"
        ).fetchall()
        assert yoyo and all(nsp == "maint" for nsp, _ in yoyo)
        assert conn.execute("SELECT count(*) FROM maint._yoyo_migration").fetchone()[0] == len(
            migration_ids()
        )
        roles = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles"
            " WHERE rolname IN ('maint_admin', 'maint_monitor') ORDER BY 1"
        ).fetchall()
        assert roles == [("maint_admin", False), ("maint_monitor", False)]


def test_dry_run_plan_changes_nothing(pg_server, make_database):
    name = make_database()
    with pg_server.connect(name) as conn:
        p = deploy.plan(conn)
        assert p.installed_version is None
        assert p.pending_migrations == migration_ids()
        assert p.files and all(f.state == "new" for f in p.files)
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def test_second_deploy_changes_nothing(pg_server, make_database):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    before = schema_dump(dsn)
    with pg_server.connect(name) as conn:
        xmins = conn.execute(
            "SELECT proname, xmin::text FROM pg_proc WHERE pronamespace = 'maint'::regnamespace"
            " ORDER BY 1"
        ).fetchall()
    second = deploy_to(dsn)
    assert not second.changed
    assert second.applied_migrations == [] and second.applied_files == []
    assert second.plan.up_to_date
    assert schema_dump(dsn) == before
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM maint.deployments").fetchone()[0] == 1
        assert conn.execute(
            "SELECT proname, xmin::text FROM pg_proc WHERE pronamespace = 'maint'::regnamespace"
            " ORDER BY 1"
        ).fetchall() == xmins


def test_changed_function_file_is_reapplied(pg_server, make_database, tmp_path):
    name = make_database()
    dsn = pg_server.dsn(name)
    root = copy_sql(tmp_path)
    deploy_to(dsn, root)
    path = root / "functions" / "maint.version.sql"
    path.write_text(path.read_text().replace(
        "'pgmaint version deployed in this database'", "'the deployed pgmaint version'"))
    result = deploy_to(dsn, root)
    assert result.changed and result.applied_migrations == []
    states = {f.name: f.state for f in result.plan.files}
    assert states["maint.version.sql"] == "changed"
    assert {s for n, s in states.items() if n != "maint.version.sql"} == {"unchanged"}
    with pg_server.connect(name) as conn:
        assert conn.execute(
            "SELECT obj_description('maint.version()'::regprocedure)"
        ).fetchone()[0] == "the deployed pgmaint version"
        assert conn.execute("SELECT count(*) FROM maint.deployments").fetchone()[0] == 2


def test_new_kit_version_is_recorded(pg_server, make_database, monkeypatch):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    monkeypatch.setattr(deploy, "__version__", "99.1.0")
    result = deploy_to(dsn)
    assert result.changed and result.plan.installed_version == __version__
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0] == "99.1.0"


def test_upgrade_applies_a_migration_added_after_the_first_deploy(pg_server, make_database, tmp_path):
    name = make_database()
    dsn = pg_server.dsn(name)
    root = copy_sql(tmp_path)
    deploy_to(dsn, root)
    with pg_server.connect(name) as conn:
        conn.execute(
            "INSERT INTO maint.runs (task, dry_run, source, status, finished_at)"
            " VALUES ('demo', true, 'sql', 'succeeded', now())"
        )
    (root / "migrations" / "0999_add_note_to_runs.sql").write_text(
        "-- test upgrade\nALTER TABLE maint.runs ADD COLUMN note text NOT NULL DEFAULT 'kept';\n"
    )
    result = deploy_to(dsn, root)
    assert result.applied_migrations == ["0999_add_note_to_runs"]
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT task, note FROM maint.runs").fetchall() == [("demo", "kept")]
        assert conn.execute(
            "SELECT migrations FROM maint.deployments ORDER BY id DESC LIMIT 1"
        ).fetchone()[0] == ["0999_add_note_to_runs"]
    assert not deploy_to(dsn, root).changed


def test_incremental_deploy_matches_fresh_deploy(pg_server, make_database, tmp_path):
    """Deploying the previous release, then this one, gives the same schema as deploying this
    one at once, and a kit the CLI trusts (earlier releases granted maint_admin writes on the
    kit's tables). The earlier release is taken from git history."""
    older = previous_release_sql(tmp_path)
    fresh, stepwise = make_database(), make_database()
    deploy_to(pg_server.dsn(fresh))
    deploy_to(pg_server.dsn(stepwise), older)
    result = deploy_to(pg_server.dsn(stepwise))
    assert result.applied_migrations  # the upgrade really applied something
    assert schema_dump(pg_server.dsn(stepwise)) == schema_dump(pg_server.dsn(fresh))
    with psycopg.connect(pg_server.dsn(stepwise)) as conn:
        assert trust.problems(conn)[1] == []


def test_failed_migration_changes_nothing(pg_server, make_database, tmp_path):
    name = make_database()
    root = copy_sql(tmp_path)
    (root / "migrations" / "0999_broken.sql").write_text(
        "CREATE TABLE maint.half_done (id int);\nSELECT 1 / 0;\n"
    )
    with pytest.raises(deploy.DeployError, match=r"migration 0999_broken failed: division by zero"):
        deploy_to(pg_server.dsn(name), root)
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def test_broken_function_file_changes_nothing(pg_server, make_database, tmp_path):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    before = schema_dump(dsn)
    root = copy_sql(tmp_path)
    (root / "functions" / "maint.zz_broken.sql").write_text(
        "CREATE OR REPLACE FUNCTION maint.zz_broken() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
        "CREATE OR REPLACE FUNCTION maint.zz_broken2( RETURNS int;\n"
    )
    with pytest.raises(deploy.DeployError, match=r"maint.zz_broken.sql failed: syntax error"):
        deploy_to(dsn, root)
    assert schema_dump(dsn) == before


def test_foreign_maint_schema_is_refused_and_left_alone(pg_server, make_database):
    name = make_database()
    with pg_server.connect(name) as conn:
        conn.execute("CREATE SCHEMA maint")
        conn.execute("CREATE TABLE maint.settings (key text PRIMARY KEY, value text)")
        conn.execute("INSERT INTO maint.settings VALUES ('owner', 'facilities team')")
    with pytest.raises(deploy.DeployError) as err:
        deploy_to(pg_server.dsn(name))
    message = str(err.value)
    assert 'schema "maint" already exists' in message
    assert "not a pgmaint installation" in message and "maint.settings" in message
    assert "Nothing was changed" in message
    with pg_server.connect(name) as conn:
        assert conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'maint'::regnamespace"
            " AND relkind = 'r'"
        ).fetchall() == [("settings",)]
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%yoyo%'").fetchone() == (0,)
        assert conn.execute("SELECT value FROM maint.settings").fetchone() == ("facilities team",)


def _waiting_advisory(conn: psycopg.Connection, pid: int) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
        " AND NOT granted)", (pid,),
    ).fetchone()[0]


def test_a_deploy_waits_for_the_deploy_lock(pg_server, make_database):
    name = make_database()
    holder = pg_server.connect(name)
    holder.execute("SELECT pg_advisory_lock(%s, %s)", deploy.DEPLOY_LOCK)
    conn = pg_server.connect(name)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = deploy.deploy(conn)
        except Exception as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not _waiting_advisory(holder, conn.info.backend_pid):
        assert time.monotonic() < deadline, "deploy never waited for the lock"
        time.sleep(0.05)
    assert holder.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None
    holder.execute("SELECT pg_advisory_unlock(%s, %s)", deploy.DEPLOY_LOCK)
    thread.join(20)
    holder.close()
    conn.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].changed  # type: ignore[attr-defined]


def test_concurrent_deploys_serialize(pg_server, make_database):
    name = make_database()
    barrier = threading.Barrier(3)
    results: list[object] = []

    def run() -> None:
        with pg_server.connect(name) as conn:
            barrier.wait()
            try:
                results.append(deploy.deploy(conn))
            except Exception as exc:  # pragma: no cover - reported below
                results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, deploy.DeployResult) for r in results), results
    assert sorted(r.changed for r in results) == [False, False, True]  # type: ignore[attr-defined]
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM maint.deployments").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM maint._yoyo_migration").fetchone()[0] == len(
            migration_ids()
        )


def test_deploy_lock_timeout_is_a_clear_error(pg_server, make_database):
    name = make_database()
    with pg_server.connect(name) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", deploy.DEPLOY_LOCK)
        with pytest.raises(deploy.DeployError, match="holds the deploy lock"):
            deploy_to(pg_server.dsn(name), lock_timeout="200ms")


def test_second_database_reuses_the_roles(pg_server, make_database):
    first, second = make_database(), make_database()
    deploy_to(pg_server.dsn(first))
    deploy_to(pg_server.dsn(second))
    with pg_server.connect(second) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0] == __version__
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('maint_admin', 'maint_monitor')"
        ).fetchone()[0] == 2


def test_non_superuser_database_owner_can_deploy(pg_server, make_role, make_database):
    owner = make_role()  # NOSUPERUSER NOCREATEROLE; the roles exist already (template deploy)
    name = make_database(owner=owner)
    result = deploy_to(pg_server.dsn(name, user=owner))
    assert result.changed
    with pg_server.connect(name) as conn:
        assert conn.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'maint'"
        ).fetchone()[0] == owner
        assert conn.execute("SELECT maint.version()").fetchone()[0] == __version__


def test_missing_roles_stop_with_the_statements_to_run(pg_server, make_role, make_database, admin):
    owner = make_role()
    name = make_database(owner=owner)
    admin.execute("ALTER ROLE maint_monitor RENAME TO maint_monitor_away")
    admin.execute("ALTER ROLE maint_admin RENAME TO maint_admin_away")
    try:
        with pytest.raises(deploy.DeployError) as err:
            deploy_to(pg_server.dsn(name, user=owner))
    finally:
        admin.execute("ALTER ROLE maint_monitor_away RENAME TO maint_monitor")
        admin.execute("ALTER ROLE maint_admin_away RENAME TO maint_admin")
    message = str(err.value)
    assert "role maint_monitor does not exist" in message
    for statement in ("CREATE ROLE maint_monitor NOLOGIN;", "CREATE ROLE maint_admin NOLOGIN;",
                      "GRANT pg_monitor TO maint_monitor;", "GRANT maint_monitor TO maint_admin;"):
        assert statement in message
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def test_uninstall_removes_schema_and_kit_jobs_only(pg_server, pg_cron, make_database, admin):
    name, other = make_database(), make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    with pg_server.connect(name) as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO public.orders SELECT g, md5(g::text) FROM generate_series(1, 500) g")
        checksum = conn.execute(
            "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM public.orders o"
        ).fetchone()[0]
    jobs = {"maint:test-job": name, "nightly-report": name, "maint:other-db": other}
    for job, database in jobs.items():
        admin.execute("SELECT cron.schedule_in_database(%s, '0 3 * * *', 'SELECT 1', %s)",
                      (job, database))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result = deploy.uninstall(conn, dsn)
        assert result.removed_jobs == ["maint:test-job"]
        left = {r[0] for r in admin.execute("SELECT jobname FROM cron.job")}
        assert {"nightly-report", "maint:other-db"} <= left and "maint:test-job" not in left
        assert result.dropped_schemas == ["maint", "maint_exec", "maint_archive"]
        with pg_server.connect(name) as conn:
            assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None
            assert conn.execute("SELECT to_regnamespace('maint_exec')").fetchone()[0] is None
            assert conn.execute(
                "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM public.orders o"
            ).fetchone()[0] == checksum
        roles = admin.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('maint_admin', 'maint_monitor')"
        ).fetchone()[0]
        assert roles == 2
    finally:
        for job in jobs:
            admin.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s", (job,))


def test_uninstall_refuses_when_user_objects_depend_on_the_kit(pg_server, make_database):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    with pg_server.connect(name) as conn:
        conn.execute("CREATE VIEW public.recent_runs AS SELECT id, task FROM maint.runs")
        with pytest.raises(PgmaintError, match=r"view public.recent_runs.*nothing was changed"):
            deploy.uninstall(conn, dsn)
        assert conn.execute("SELECT maint.version()").fetchone()[0] == __version__


def test_uninstall_of_a_database_without_the_kit(pg_server, make_database):
    name = make_database()
    with pg_server.connect(name) as conn, pytest.raises(PgmaintError, match="not installed"):
        deploy.uninstall(conn, pg_server.dsn(name))


def test_force_reapplies_unchanged_function_files(pg_server, make_database):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    with pg_server.connect(name) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION maint.version() RETURNS text LANGUAGE sql"
                     " SET search_path = pg_catalog AS $$ SELECT 'tampered' $$")
    assert not deploy_to(dsn).changed  # the files did not change: nothing to do
    forced = deploy_to(dsn, force=True)
    assert forced.changed and "maint.version.sql" in forced.applied_files
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0] == __version__


def test_non_transactional_migration_runs_on_its_own(pg_server, make_database, tmp_path):
    name = make_database()
    dsn = pg_server.dsn(name)
    root = copy_sql(tmp_path)
    deploy_to(dsn, root)
    (root / "migrations" / "0998_index_runs_concurrently.sql").write_text(
        "-- an index built without blocking writes to the journal\n"
        "-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_source_idx ON maint.runs (source);\n"
    )
    result = deploy_to(dsn, root)
    assert result.applied_migrations == ["0998_index_runs_concurrently"]
    with pg_server.connect(name) as conn:
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'maint.runs_source_idx'::regclass"
        ).fetchone() == (True,)
        assert conn.execute(
            "SELECT count(*) FROM maint._yoyo_migration WHERE migration_id = '0998_index_runs_concurrently'"
        ).fetchone() == (1,)
    assert not deploy_to(dsn, root).changed


def test_uninstall_drops_the_executors_and_a_second_deploy_works(pg_server, make_role, make_database):
    owner1 = make_role()
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    with pg_server.connect(name) as conn:
        # an executor as the kit makes them: in maint_exec, owned by the table's owner
        conn.execute("CREATE FUNCTION maint_exec.exec_owner1() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute(f'ALTER FUNCTION maint_exec.exec_owner1() OWNER TO "{owner1}"')
        assert deploy.uninstall(conn, dsn).dropped_schemas == ["maint", "maint_exec", "maint_archive"]
        assert conn.execute("SELECT to_regnamespace('maint_exec')").fetchone()[0] is None
    again = deploy_to(dsn)
    assert again.changed and again.applied_migrations == migration_ids()


def test_uninstall_refuses_when_user_objects_depend_on_the_executors(pg_server, make_database):
    name = make_database()
    dsn = pg_server.dsn(name)
    deploy_to(dsn)
    with pg_server.connect(name) as conn:
        conn.execute("CREATE FUNCTION maint_exec.exec_x() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE VIEW public.uses_exec AS SELECT maint_exec.exec_x() AS x")
        with pytest.raises(PgmaintError, match=r"view public.uses_exec.*nothing was changed"):
            deploy.uninstall(conn, dsn)
        assert conn.execute("SELECT to_regnamespace('maint_exec') IS NOT NULL").fetchone()[0]


def release_before(migration: str, tmp_path: Path) -> Path:
    """The sql/ tree as it was just before ``migration`` was added (from git history)."""
    root = SQL_DIR.parent
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: no earlier release")
    added = subprocess.run(
        [git, "log", "--diff-filter=A", "--format=%H", "-1", "--", f"sql/migrations/{migration}"],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout.strip()
    archive = subprocess.run([git, "archive", "--format=tar", f"{added}^", "sql"], cwd=root,
                             capture_output=True, check=False)
    if not added or archive.returncode != 0:
        pytest.skip(f"history before {migration} is not available")
    target = tmp_path / f"before-{migration}"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "sql"


def test_foreign_maint_exec_schema_is_refused_and_left_alone(pg_server, make_database, tmp_path):
    fresh = make_database()
    with pg_server.connect(fresh) as conn:
        conn.execute("CREATE SCHEMA maint_exec")
        conn.execute("CREATE TABLE maint_exec.jobs (id int)")
    with pytest.raises(deploy.DeployError) as err:
        deploy_to(pg_server.dsn(fresh))
    message = str(err.value)
    assert 'schema "maint_exec" already exists' in message and "maint_exec.jobs" in message
    assert "ALTER SCHEMA maint_exec RENAME TO" in message and "Nothing was changed" in message
    with pg_server.connect(fresh) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None

    # a kit from before the executors, and a schema of the same name created since
    older = make_database()
    dsn = pg_server.dsn(older)
    deploy_to(dsn, release_before("0090_security_model.sql", tmp_path))
    with pg_server.connect(older) as conn:
        conn.execute("CREATE SCHEMA maint_exec")
        conn.execute("CREATE TABLE maint_exec.jobs (id int)")
    with pytest.raises(deploy.DeployError, match='schema "maint_exec" already exists'):
        deploy_to(dsn)
    with pg_server.connect(older) as conn:
        assert deploy.uninstall(conn, dsn).dropped_schemas == ["maint"]
        assert conn.execute("SELECT to_regclass('maint_exec.jobs')").fetchone()[0] == "maint_exec.jobs"


def test_uninstall_by_a_non_superuser_says_which_jobs_it_cannot_see(pg_server, make_role, make_database, db):
    """(``db``: the template deploy, as a superuser, created the kit's roles.)"""
    owner = make_role()
    name = make_database(owner=owner)
    dsn = pg_server.dsn(name, user=owner)
    deploy_to(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = deploy.uninstall(conn, dsn)
    assert result.removed_jobs == [] and result.dropped_schemas == ["maint", "maint_exec", "maint_archive"]
    assert result.cron_note is not None
    # cron.database_name is hidden from roles without pg_read_all_settings
    assert result.cron_note.startswith(f"{owner} may not read pg_cron's settings: kit jobs for this"
                                       " database, if any, are left; a superuser removes them with")
