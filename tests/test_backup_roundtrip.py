"""create -> verify at every level -> restore into a new database -> same data and schema."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from backup_support import backups_dir, catalog_rows, run, run_json, schema_dump, seed
from psycopg import conninfo

from orchestrator.backup import facts
from orchestrator.db import with_dbname


def _facts(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return facts.collect(conn)


def _user_tables(f: dict) -> dict:
    return {
        (r["schema"], r["name"]): r.get("rows", r.get("last_value"))
        for r in f["relations"]
        if r["schema"] != "maint"
    }


@pytest.fixture
def seeded(db, db_dsn):
    seed(db)
    return db_dsn


def test_round_trip_custom_format(db, seeded, tmp_path, admin):
    code, created = run_json(
        "backup", "create", "--dir", str(tmp_path), "--verify", "restore", dsn=seeded
    )
    assert code == 0, created
    assert created["status"] == "verified"
    assert created["large_objects"] == 1
    assert created["verify"]["ok"] and created["verify"]["level"] == "restore"
    backup_id = created["id"]

    manifest = json.loads(
        (
            backups_dir(tmp_path, db) / created["path"].rsplit("/", 1)[1] / "manifest.json"
        ).read_text()
    )
    recorded = {(r["schema"], r["name"]): r for r in manifest["facts"]["relations"]}
    # no table counted during the dump: the restore verification counts the archive's rows,
    # leaf partitions counted, parent not a data table
    assert manifest["facts"]["table_rows"] == "archive"
    assert all("rows" not in r for r in recorded.values() if r["kind"] == "r")
    counted = created["verify"]["archive_rows"]
    assert counted["Sales.Customers"] == 200
    assert counted["Sales.orders_2025"] + counted["Sales.orders_2026"] == 1500
    assert counted['Ünïcode Schema.Tëxt "quoted" Table'] == 3
    assert ("Sales", "orders") not in recorded
    # a materialized view's rows are not in the archive (a restore refreshes it): counted
    # in the snapshot
    assert recorded[("Sales", "City Totals")]["kind"] == "m"
    assert recorded[("Sales", "City Totals")]["rows"] == 4
    assert recorded[("Ünïcode Schema", 'Tëxt "quoted" Table_k_seq')]["last_value"] == 41
    assert manifest["facts"]["large_objects"] == 1

    for level in ("list", "read", "restore"):
        code, v = run_json(
            "backup", "verify", str(backup_id), "--level", level, "--dir", str(tmp_path), dsn=seeded
        )
        assert code == 0, v
        assert v["ok"] and v["level"] == level

    row = catalog_rows(db)[-1]
    assert row[0] == backup_id and row[1] == "verified" and row[2] == "restore"
    assert row[4] == manifest["bytes"]
    # the catalog row has the total, verify.json every table
    detail = db.execute(
        "SELECT detail -> 'verify' FROM maint.backups WHERE id = %s", (backup_id,)
    ).fetchone()[0]
    assert "archive_rows" not in detail
    assert detail["archive_rows_total"] == sum(counted.values())
    assert detail["archive_tables_counted"] == len(counted)
    # the scratch databases are gone
    left = admin.execute(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgmaint_verify_%'"
    ).fetchone()[0]
    assert left == 0

    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        code, r = run_json(
            "backup",
            "restore",
            str(backup_id),
            "--into",
            target,
            "--dir",
            str(tmp_path),
            dsn=seeded,
        )
        assert code == 0, r
        target_dsn = with_dbname(seeded, target)
        restored = _facts(target_dsn)
        assert _user_tables(restored) == _user_tables(_facts(seeded))
        expected = {
            **manifest["facts"],
            "relations": [
                {**r, "rows": counted[f"{r['schema']}.{r['name']}"]} if r["kind"] == "r" else r
                for r in manifest["facts"]["relations"]
            ],
        }
        assert facts.compare(expected, restored) == []
        with psycopg.connect(target_dsn) as conn:
            assert (
                conn.execute(
                    'SELECT v FROM "Ünïcode Schema"."Tëxt ""quoted"" Table" ORDER BY k LIMIT 1'
                ).fetchone()[0]
                == "Grüße 🐘"
            )
            assert (
                conn.execute(
                    "SELECT lo_get(picture) FROM inventory.items WHERE picture IS NOT NULL"
                ).fetchone()[0]
                == b"\x89PNG\r\n"
            )
            # identity and serial continue where the source stopped
            assert (
                conn.execute(
                    'INSERT INTO "Sales"."Customers" ("Name") VALUES (\'new\') RETURNING id'
                ).fetchone()[0]
                == 201
            )
        # everything here was postgres': it stays maint_restore's until an administrator
        # has reviewed it and runs the listed statements
        # schema public: pg_database_owner's from 15, before that the bootstrap superuser's
        assert r["owners"] == ({"pg_database_owner": 1} if db.info.server_version >= 150000 else {})
        assert {w["owner"] for w in r["superuser_owned"]} == {"postgres"}
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            for w in r["superuser_owned"]:
                conn.execute(w["statement"])
        assert schema_dump(target_dsn) == schema_dump(seeded)

        # an existing database is never overwritten without --force
        again = run(
            "backup",
            "restore",
            str(backup_id),
            "--into",
            target,
            "--dir",
            str(tmp_path),
            dsn=seeded,
        )
        assert again.exit_code == 3
        assert "already exists" in again.stderr
        forced = run(
            "backup",
            "restore",
            str(backup_id),
            "--into",
            target,
            "--force",
            "--dir",
            str(tmp_path),
            dsn=seeded,
        )
        assert forced.exit_code == 0, forced.stderr
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_directory_format_parallel_with_globals(db, seeded, tmp_path, admin):
    code, created = run_json(
        "backup",
        "create",
        "--format",
        "directory",
        "--jobs",
        "2",
        "--globals",
        "--dir",
        str(tmp_path),
        "--verify",
        "read",
        dsn=seeded,
    )
    assert code == 0, created
    assert created["status"] == "verified" and created["format"] == "directory"
    path = backups_dir(tmp_path, db) / created["path"].rsplit("/", 1)[1]
    manifest = json.loads((path / "manifest.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    assert "database.d/toc.dat" in names and "globals.sql" in names
    assert "CREATE ROLE maint_admin" in (path / "globals.sql").read_text()

    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        result = run(
            "backup",
            "restore",
            str(created["id"]),
            "--into",
            target,
            "--jobs",
            "2",
            "--dir",
            str(tmp_path),
            dsn=seeded,
        )
        assert result.exit_code == 0, result.stderr
        assert "globals first" in result.stdout
        assert _user_tables(_facts(with_dbname(seeded, target))) == _user_tables(_facts(seeded))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_list_shows_backups_from_manifests(db, db_dsn, tmp_path):
    ids = []
    for verify in ("none", "list"):
        code, created = run_json(
            "backup", "create", "--dir", str(tmp_path), "--verify", verify, dsn=db_dsn
        )
        assert code == 0
        ids.append(created["id"])
    (backups_dir(tmp_path, db) / ".partial-20200101T000000Z-99").mkdir()
    code, rows = run_json("backup", "list", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids[0]]["status"] == "completed" and by_id[ids[0]]["verified"] is None
    assert by_id[ids[1]]["status"] == "verified" and by_id[ids[1]]["verified"] == "list"
    assert [r["status"] for r in rows if r["id"] is None] == ["garbage"]
    assert [r[1] for r in catalog_rows(db)] == ["completed", "verified"]
    human = run("backup", "list", "--dir", str(tmp_path), dsn=db_dsn)
    assert f"{ids[1]}" in human.stdout and "verified" in human.stdout


def test_non_superuser_with_maint_admin_can_back_up_and_verify(db, pg_server, tmp_path, make_role):
    db.execute("CREATE TABLE public.accounts AS SELECT g AS id FROM generate_series(1, 50) g")
    # the restore test runs as maint_restore: the role creates a database owned by it
    if db.info.server_version >= 140000:
        role = make_role("maint_admin", "pg_read_all_data", "maint_restore", attributes="CREATEDB")
    else:  # 13 has no pg_read_all_data: SELECT on what pg_dump reads, the kit's tables too
        role = make_role("maint_admin", "maint_restore", attributes="CREATEDB")
        db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, maint TO {role}")
        db.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, maint TO {role}")
    # (Server.dsn(..., user=) collides with its own user keyword)
    dsn = conninfo.make_conninfo(pg_server.dsn(db.info.dbname), user=role)
    code, created = run_json(
        "backup", "create", "--verify", "restore", "--globals", "--dir", str(tmp_path), dsn=dsn
    )
    assert code == 0, created
    assert created["status"] == "verified"
    assert "restored as maint_restore (no password needed)" in created["verify"]["notes"]
    row = db.execute("SELECT status, verify_level, created_by, verified_by FROM maint.backups").fetchone()
    assert row == ("verified", "restore", role, role)


def test_a_role_that_may_not_read_a_table_is_refused_before_the_dump(db, pg_server, tmp_path, make_role):
    db.execute('CREATE TABLE public."Secret Notes" AS SELECT g AS id FROM generate_series(1, 5) g')
    role = make_role("maint_admin")
    dsn = conninfo.make_conninfo(pg_server.dsn(db.info.dbname), user=role)
    code, created = run_json("backup", "create", "--dir", str(tmp_path), dsn=dsn)
    assert code == 3, created
    assert created is None or created.get("status") != "completed"
    result = run("backup", "create", "--dir", str(tmp_path), dsn=dsn)
    assert f"role {role} may not read" in result.output
    assert 'public."Secret Notes"' in result.output and "pg_read_all_data" in result.output
    assert not list(tmp_path.rglob("*.dump"))


def test_each_restore_reads_the_toc_and_checks_maint_restore_once(
    db, db_dsn, tmp_path, admin, monkeypatch
):
    import subprocess

    from orchestrator.backup import runas as backup_runas

    db.execute("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 10) g")
    code, created = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, created
    calls: list[str] = []  # every child program's first argument, and each role check
    real_run, real_check = subprocess.run, backup_runas.check_role

    def run_spy(args, **kw):
        calls.append(args[1])
        return real_run(args, **kw)

    monkeypatch.setattr(subprocess, "run", run_spy)
    monkeypatch.setattr(
        backup_runas, "check_role", lambda conn: calls.append("check_role") or real_check(conn)
    )
    code, v = run_json(
        "backup", "verify", str(created["id"]), "--level", "restore", "--dir", str(tmp_path),
        dsn=db_dsn,
    )
    assert code == 0 and v["ok"], v
    assert calls.count("--list") == 1 and calls.count("check_role") == 1, calls
    calls.clear()
    target = f"t_restored_{uuid.uuid4().hex[:8]}"
    try:
        code, r = run_json(
            "backup", "restore", str(created["id"]), "--into", target, "--dir", str(tmp_path),
            dsn=db_dsn,
        )
        assert code == 0, r
        assert calls.count("--list") == 1 and calls.count("check_role") == 1, calls
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
