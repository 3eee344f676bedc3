"""Fleet options on ``run``, ``undo``, ``schedule install/list`` and ``backup
create/verify/list/prune`` over two servers: kit databases on both, one with the same name on
each (backups must not collide), one without the kit, one unreachable target."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fleet_support import run_cli, second_server, target_toml, unreachable_dsn, write_inventory

from orchestrator import deploy

SAME = "fleet_same"  # a kit database of this name on both servers
ALL = ["main", "other/app", "other/bare", f"other/{SAME}", "down"]


@pytest.fixture(scope="module")
def other(pg_bindir):
    with second_server(pg_bindir, {"app": True, "bare": False, SAME: True}) as info:
        yield info


@pytest.fixture(scope="module")
def main_db(pg_server):
    """A kit database named like one of the second server's, on the session's server."""
    with pg_server.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SAME}")
        with pg_server.connect(SAME) as kit:
            deploy.deploy(kit)
        yield pg_server.dsn(SAME)
        conn.execute(f"DROP DATABASE {SAME} WITH (FORCE)")


@pytest.fixture(scope="module")
def inventory(tmp_path_factory, main_db, other):
    server_dsn = f"host={other.socket_dir} port={other.port} user={other.user}"
    text = (target_toml("main", main_db, ["good"])
            + target_toml("other", server_dsn, ["good"], 'databases = "all"\nexclude = ["postgres"]')
            + target_toml("down", unreachable_dsn()))
    return str(write_inventory(tmp_path_factory.mktemp("fleet-commands"), text))


def rows(result) -> dict[str, dict]:
    return {r["target"]: r for r in json.loads(result.output)["targets"]}


def one_row_each(output: str, names: list[str]) -> None:
    """Every target has exactly one line of the summary table starting with its name."""
    lines = output.splitlines()
    for name in names:
        assert sum(1 for line in lines if line.startswith(f"│ {name} ")) == 1, (name, output)


def seed_log(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.fleet_log (id bigint PRIMARY KEY, at timestamptz)")
        conn.execute("TRUNCATE public.fleet_log")
        conn.execute("INSERT INTO public.fleet_log SELECT g, now() - (g - 0.5) * interval '1 day'"
                     " FROM generate_series(1, 50) AS g")
        if not conn.execute("SELECT count(*) FROM maint.rules").fetchone()[0]:
            conn.execute("SELECT maint.add_retention_policy('public.fleet_log', 'at', '20 days')")


def log_rows(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM public.fleet_log").fetchone()[0]


def test_run_all_over_the_fleet_then_undo_on_one_target(inventory, main_db, other):
    app = other.conninfo("app")
    seed_log(main_db)
    seed_log(app)
    result = run_cli("--json", "run", "all", "--all", "--inventory", inventory, "--parallel", "4")
    by = rows(result)
    assert list(by) == ALL
    assert result.exit_code == json.loads(result.output)["exit_code"] == 1  # bare and down failed
    for name in ("main", "other/app"):
        assert by[name]["ok"] and by[name]["dry_run"] is True and by[name]["rows_examined"] == 30, by[name]
    assert by[f"other/{SAME}"]["ok"] and by[f"other/{SAME}"]["rows_examined"] == 0
    assert not by["other/bare"]["ok"] and "not installed" in by["other/bare"]["error"]
    assert not by["down"]["ok"] and "cannot connect" in by["down"]["error"]
    assert log_rows(main_db) == log_rows(app) == 50  # a dry run

    result = run_cli("run", "all", "--execute", "--force", "--tag", "good", "--inventory", inventory)
    assert result.exit_code == 1, result.output  # other/bare
    one_row_each(result.output, ALL[:-1])
    assert "4 target(s), 3 ok; not ok: other/bare (failed)" in result.output
    assert log_rows(main_db) == log_rows(app) == 20
    journaled = {}
    for name, dsn in (("main", main_db), ("other/app", app)):
        with psycopg.connect(dsn, autocommit=True) as conn:
            journaled[name] = conn.execute(
                "SELECT id, rows_affected FROM maint.runs WHERE task = 'cleanup_all' AND NOT dry_run"
                " ORDER BY id DESC LIMIT 1").fetchone()
        assert journaled[name][1] == 30
        assert f"pgmaint undo {journaled[name][0]} --target {name}" in result.output

    run_id = str(journaled["main"][0])
    refused = run_cli("undo", run_id, "--all", "--inventory", inventory)
    assert refused.exit_code == 2
    assert "undo works on one target; --target/--tag/--all chose 5" in refused.output
    assert run_cli("undo", run_id, "--target", "other", "--inventory", inventory).exit_code == 2  # 3 dbs
    undone = run_cli("--json", "undo", run_id, "--target", "main", "--inventory", inventory)
    assert undone.exit_code == 0, undone.output
    assert json.loads(undone.output)["target"] == "main" and json.loads(undone.output)["rows_affected"] == 30
    assert log_rows(main_db) == 50 and log_rows(app) == 20

    plan = run_cli("--json", "run", "optimize", "--tag", "good", "--inventory", inventory)
    assert set(rows(plan)) == set(ALL[:-1]) and rows(plan)["main"]["outcome"] == "dry_run"
    assert plan.exit_code == 1 and not rows(plan)["other/bare"]["ok"]


def test_schedule_install_and_list_per_target(inventory, main_db, pg_server, pg_cron):
    listed = run_cli("--json", "schedule", "list", "--all", "--inventory", inventory)
    by = rows(listed)
    assert listed.exit_code == 1 and list(by) == ALL
    assert by["main"]["ok"] and {j["state"] for j in by["main"]["jobs"]} == {"not installed"}
    assert "pg_cron is not available" in by["other/app"]["error"]  # the second server has none

    try:
        installed = run_cli("--json", "schedule", "install", "--target", "main", "--target", "other/app",
                            "--include", "purge", "--inventory", inventory)
        by = rows(installed)
        assert installed.exit_code == 1 and list(by) == ["main", "other/app"], installed.output
        assert by["main"]["outcome"].startswith("applied ") and by["main"]["cron_database"] == "postgres"
        assert "pg_cron is not available" in by["other/app"]["error"]
        again = run_cli("schedule", "install", "--target", "main", "--target", "other/app", "--include",
                        "purge", "--inventory", inventory)
        assert again.exit_code == 1
        one_row_each(again.output, ["main", "other/app"])
        assert "up to date" in again.output
        assert "2 target(s), 1 ok; not ok: other/app (failed)" in again.output

        listed = run_cli("schedule", "list", "--tag", "good", "--inventory", inventory)
        assert listed.exit_code == 1
        assert any(line.startswith("│ main ") and f"maint:purge-history@{SAME}" in line
                   and "installed" in line for line in listed.output.splitlines()), listed.output
        assert run_cli("schedule", "install", "--all", "--host", "--inventory", inventory).exit_code == 2
    finally:
        with pg_server.connect() as admin:
            admin.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s"
                          " OR jobname LIKE 'maint:cron-details-trim@%%'", (SAME,))


def test_backups_of_the_fleet_never_collide_and_verify(inventory, tmp_path, main_db, other):
    root = tmp_path / "backups"
    created = run_cli("--json", "backup", "create", "--all", "--parallel", "4", "--dir", str(root),
                      "--inventory", inventory)
    by = rows(created)
    assert list(by) == ALL and created.exit_code == 1  # bare (not installed) and down: errors
    good = ["main", "other/app", f"other/{SAME}"]
    for name in good:
        assert by[name]["outcome"] == "completed" or by[name]["outcome"] == "verified", by[name]
    paths = {name: Path(by[name]["path"]) for name in good}
    # same database name on two servers: two directories, under each server's system identifier
    assert paths["main"].parent.name == paths[f"other/{SAME}"].parent.name == SAME
    assert paths["main"].parent != paths[f"other/{SAME}"].parent
    assert paths["main"].parent.parent.parent == paths[f"other/{SAME}"].parent.parent.parent == root.resolve()
    assert all(p.exists() for p in paths.values())

    # a test restore of each (one at a time per server: maint_restore is the server's)
    verified = run_cli("--json", "backup", "verify", "--all", "--latest", "--level", "restore",
                       "--dir", str(root), "--inventory", inventory)
    vby = rows(verified)
    assert verified.exit_code == 1 and list(vby) == ALL
    for name in good:
        assert vby[name]["outcome"] == "verified" and vby[name]["backup_id"] == by[name]["backup_id"]
        assert vby[name]["level"] == "restore"
        assert Path(vby[name]["path"]) == paths[name]
    assert "not installed" in vby["other/bare"]["error"] and "cannot connect" in vby["down"]["error"]

    second = run_cli("backup", "create", "--target", "main", "--dir", str(root), "--inventory", inventory)
    assert second.exit_code == 0, second.output

    listed = run_cli("backup", "list", "--all", "--dir", str(root), "--inventory", inventory)
    assert listed.exit_code == 1
    lines = listed.output.splitlines()
    for name, count in zip(good, [2, 1, 1], strict=True):  # its summary row and a row per backup
        assert sum(1 for line in lines if line.startswith(f"│ {name} ")) == 1 + count, listed.output
    data = rows(run_cli("--json", "backup", "list", "--all", "--dir", str(root), "--inventory", inventory))
    assert [len(data[name]["backups"]) for name in good] == [2, 1, 1]
    assert data["main"]["directory"] != data[f"other/{SAME}"]["directory"]

    pruned = run_cli("--json", "backup", "prune", "--all", "--keep-last", "1", "--dir", str(root),
                     "--inventory", inventory)
    pby = rows(pruned)
    assert pruned.exit_code == 1 and list(pby) == ALL
    assert [len(pby[name]["delete"]) for name in good] == [1, 0, 0]
    assert pby["main"]["outcome"] == "would delete 1, kept 1"
    assert all(Path(p["path"]).exists() for p in pby["main"]["delete"])  # a dry run
    assert run_cli("backup", "verify", "7", "--all", "--inventory", inventory).exit_code == 2
    job = run_cli("backup", "create", "--all", "--job", "nightly", "--inventory", inventory)
    assert job.exit_code == 2 and "--job is for the timer of one database" in job.output


def test_a_closed_window_skips_its_target_only(inventory, tmp_path, main_db):
    opens = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    with psycopg.connect(main_db, autocommit=True) as conn:
        conn.execute("SELECT maint.add_window('fleet-test', 'daily', %s, '1 hour'::interval,"
                     " ARRAY['backup_create', 'optimize'], 'UTC')", (opens,))
    try:
        args = ["--target", "main", "--target", "other/app", "--dir", str(tmp_path), "--inventory", inventory]
        result = run_cli("--json", "backup", "create", *args)
        by = rows(result)
        assert result.exit_code == 0, result.output
        assert by["main"]["outcome"] == "skipped" and "fleet-test" in by["main"]["note"]
        assert by["other/app"]["outcome"] in ("completed", "verified")
        forced = rows(run_cli("--json", "backup", "create", *args[:2], *args[4:],
                              "--override-window", "test"))
        assert forced["main"]["outcome"] in ("completed", "verified"), forced
        with psycopg.connect(main_db, autocommit=True) as conn:  # the override is journaled with the run
            reason = conn.execute("SELECT parameters -> 'window_override' ->> 'reason' FROM maint.runs"
                                  " WHERE task = 'backup' ORDER BY id DESC LIMIT 1").fetchone()
        assert reason == ("test",)
        optimize = rows(run_cli("--json", "run", "optimize", "--execute", "--target", "main",
                                "--inventory", inventory))
        assert optimize["main"]["outcome"] == "skipped"
    finally:
        with psycopg.connect(main_db, autocommit=True) as conn:
            conn.execute("SELECT maint.drop_window('fleet-test')")
