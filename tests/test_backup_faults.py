"""Fault injection: killed pg_dump, killed run, damaged files, locks, concurrency, space,
version mismatch, missing kit, passwords."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import psycopg
import pytest
from backup_support import backups_dir, catalog_rows, pids_of, run, run_json, spawn

from orchestrator.backup import toc as backup_toc
from orchestrator.backup import tools as backup_tools
from orchestrator.backup import verify
from orchestrator.db import with_dbname


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def blocked(db, pg_server):
    """A table locked ACCESS EXCLUSIVE by another session (pg_dump cannot start)."""
    db.execute("CREATE TABLE public.blocker (id int); INSERT INTO public.blocker VALUES (1)")
    other = psycopg.connect(pg_server.dsn(db.info.dbname))
    other.execute("LOCK TABLE public.blocker IN ACCESS EXCLUSIVE MODE")
    yield other
    other.rollback()
    other.close()


def _created(tmp_path: Path, conn: psycopg.Connection) -> list[Path]:
    d = backups_dir(tmp_path, conn)
    return sorted(d.iterdir()) if d.exists() else []


def test_killed_pg_dump_leaves_no_backup_and_a_failed_row(db, db_dsn, tmp_path, blocked):
    proc = spawn(
        "backup", "create", "--dir", str(tmp_path), "--lock-wait-timeout", "60s", dsn=db_dsn
    )
    try:
        pid = _wait_for(lambda: pids_of("pg_dump", str(tmp_path)), what="pg_dump")[0]
        partial = _wait_for(
            lambda: list(backups_dir(tmp_path, db).glob(".partial-*/*")),
            what="the partial dump file",
        )
        assert partial[0].name == "database.dump"
        # a second run on the same database while the first holds the task lock: exit 4
        second = run("backup", "create", "--dir", str(tmp_path), dsn=db_dsn)
        assert second.exit_code == 4, second.stderr
        assert "already running" in second.stderr
        os.kill(pid, signal.SIGKILL)
        blocked.rollback()
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1
    assert "killed by signal 9" in err
    assert "Traceback" not in err
    assert _created(tmp_path, db) == []  # no backup, no manifest, no partial
    [row] = catalog_rows(db)
    assert row[1] == "failed" and "killed by signal 9" in row[3]
    run_row = db.execute(
        "SELECT status FROM maint.runs WHERE task = 'backup' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert run_row == ("failed",)


def test_killed_run_is_swept_by_the_next_run(db, db_dsn, tmp_path, blocked):
    proc = spawn(
        "backup", "create", "--dir", str(tmp_path), "--lock-wait-timeout", "60s", dsn=db_dsn
    )
    _wait_for(lambda: list(backups_dir(tmp_path, db).glob(".partial-*/*")), what="partial")
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator and its pg_dump, no cleanup at all
    proc.wait(timeout=30)
    blocked.rollback()
    leftovers = _created(tmp_path, db)
    assert [p.name.startswith(".partial-") for p in leftovers] == [True]
    assert catalog_rows(db)[0][1] == "running"

    code, data = run_json(
        "backup", "create", "--dir", str(tmp_path), "--verify", "none", dsn=db_dsn
    )
    assert code == 0, data
    assert data["swept"] == [leftovers[0].name]
    assert data["abandoned_rows_failed"] == 1
    assert [p.name for p in _created(tmp_path, db)] == [Path(data["path"]).name]
    rows = catalog_rows(db)
    assert [r[1] for r in rows] == ["failed", "completed"]
    assert "abandoned" in rows[0][3]


def test_access_exclusive_lock_fails_fast_with_a_clear_message(db, db_dsn, tmp_path, blocked):
    t0 = time.monotonic()
    result = run(
        "backup", "create", "--dir", str(tmp_path), "--lock-wait-timeout", "1s", dsn=db_dsn
    )
    assert time.monotonic() - t0 < 20
    assert result.exit_code == 1
    msg = result.stderr.strip()
    assert len(msg.splitlines()) == 1
    assert "--lock-wait-timeout 1s" in msg
    assert "blocker held AccessExclusiveLock" in msg
    assert _created(tmp_path, db) == []
    assert catalog_rows(db)[0][1] == "failed"


@pytest.fixture
def backup(db, db_dsn, tmp_path):
    # enough data that the table of contents (the kit's ~700 kB of function bodies among it)
    # sits well inside the first half of the dump
    db.execute(
        "CREATE TABLE public.filler AS SELECT g, md5(g::text) AS h "
        "FROM generate_series(1, 100000) AS g"
    )
    code, data = run_json(
        "backup",
        "create",
        "--dir",
        str(tmp_path),
        "--compress",
        "0",
        "--verify",
        "none",
        dsn=db_dsn,
    )
    assert code == 0, data
    return data


def test_bit_flip_fails_verify_with_exit_5(db, db_dsn, tmp_path, backup):
    dump = Path(backup["path"]) / "database.dump"
    raw = bytearray(dump.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    dump.write_bytes(bytes(raw))
    result = run(
        "backup", "verify", "--latest", "--level", "read", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert result.exit_code == 5
    assert "sha256 differs" in result.stderr
    row = catalog_rows(db)[-1]
    assert row[1] == "failed" and "sha256" in row[3]


def test_truncated_dump_fails_verify_and_read_catches_it_without_hashes(
    db, db_dsn, tmp_path, backup
):
    dump = Path(backup["path"]) / "database.dump"
    size = dump.stat().st_size
    with dump.open("r+b") as f:
        f.truncate(size // 2)
    result = run(
        "backup", "verify", str(backup["id"]), "--level", "list", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert result.exit_code == 5
    assert "bytes, manifest says" in result.stderr
    # the table of contents sits before the data: only reading every block catches it
    tools = backup_tools.find_tools(db.info.server_version)
    assert backup_toc.read(tools, dump).entries
    problems = verify.read_through(tools, dump)
    assert problems and "could not read" in problems[0]


def test_list_level_catches_a_table_missing_from_the_archive(db, db_dsn, tmp_path, backup):
    manifest_path = Path(backup["path"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["facts"]["relations"].append(
        {"oid": 1, "schema": "public", "name": "ghost", "kind": "r", "rows": 3}
    )
    manifest_path.write_text(json.dumps(manifest))
    result = run("backup", "verify", "--level", "list", "--dir", str(tmp_path), dsn=db_dsn)
    assert result.exit_code == 5
    assert "no data entry for public.ghost" in result.stderr


def test_restore_level_reports_every_difference(db, db_dsn, tmp_path, backup, admin):
    manifest_path = Path(backup["path"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for rel in manifest["facts"]["relations"]:
        if rel["name"] == "filler":
            rel["rows"] = 99999
    views = manifest["facts"]["objects"]["views"]  # the kit's own views count too
    manifest["facts"]["objects"]["views"] = views + 7
    manifest_path.write_text(json.dumps(manifest))
    code, v = run_json("backup", "verify", "--level", "restore", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 5
    assert '"public"."filler": 100000 rows, expected 99999' in v["problems"]
    assert f"views: {views} after restore, expected {views + 7}" in v["problems"]
    assert (
        admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgmaint_verify_%'"
        ).fetchone()[0]
        == 0
    )


def test_insufficient_space_is_refused(db, db_dsn, tmp_path):
    result = run("backup", "create", "--dir", str(tmp_path), "--reserve", "900000TB", dsn=db_dsn)
    assert result.exit_code == 3
    assert "not enough free space" in result.stderr
    assert _created(tmp_path, db) == []
    assert catalog_rows(db)[0][1] == "failed"


def test_older_pg_dump_is_refused(db, db_dsn, tmp_path, monkeypatch):
    major = db.info.server_version // 10000  # client tools one major release older than the server
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        exe = bindir / name
        exe.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {major - 1}.9'\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(backup_tools.BINDIR_ENV, str(bindir))
    result = run("backup", "create", "--dir", str(tmp_path / "b"), dsn=db_dsn)
    assert result.exit_code == 3
    assert f"needs pg_dump {major} or newer" in result.stderr and f"found: {major - 1}" in result.stderr
    [row] = catalog_rows(db)
    assert row[1] == "failed" and f"needs pg_dump {major}" in row[3]


def test_without_the_kit_it_says_deploy(make_database, pg_server, tmp_path):
    result = run("backup", "create", "--dir", str(tmp_path), dsn=pg_server.dsn(make_database()))
    assert result.exit_code == 1
    assert "run 'pgmaint deploy'" in result.stderr


def test_usage_errors_exit_2(db_dsn, tmp_path):
    assert run("backup", "create", "--jobs", "2", "--dir", str(tmp_path), dsn=db_dsn).exit_code == 2
    assert (
        run(
            "backup", "create", "--compress", "brotli", "--dir", str(tmp_path), dsn=db_dsn
        ).exit_code
        == 2
    )
    zstd = run("backup", "create", "--compress", "zstd:3", "--dir", str(tmp_path), dsn=db_dsn)
    assert zstd.exit_code == 2 and "needs pg_dump 16" in zstd.stderr
    assert run("backup", "prune", "--dir", str(tmp_path), dsn=db_dsn).exit_code == 2


def test_password_never_reaches_argv_logs_or_manifest(db, pg_server, tmp_path):
    db.execute("ALTER ROLE CURRENT_USER PASSWORD 's3cret-pw'")  # trust auth ignores it
    dsn = with_dbname(pg_server.dsn(db.info.dbname, password="s3cret-pw"), db.info.dbname)
    target, env = backup_tools.child_conninfo(dsn)
    assert "s3cret" not in target and env["PGPASSWORD"] == "s3cret-pw"
    result = run("--json", "backup", "create", "--dir", str(tmp_path), dsn=dsn)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert "s3cret" not in result.stdout + result.stderr
    assert "s3cret" not in (Path(data["path"]) / "manifest.json").read_text()
    assert "s3cret" not in json.dumps(catalog_rows(db), default=str)
    db.execute("ALTER ROLE CURRENT_USER PASSWORD NULL")


def test_scratch_database_of_a_killed_verification_is_dropped(db, db_dsn, tmp_path, admin):
    code, _backup = run_json(
        "backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0
    leftover = f"{verify.scratch_prefix(db)}99_dead01"
    admin.execute(f'CREATE DATABASE "{leftover}"')
    other_db = "pgmaint_verify_1_99_keepme"  # another source database's: not ours to drop
    admin.execute(f'CREATE DATABASE "{other_db}"')
    try:
        code, v = run_json(
            "backup", "verify", "--level", "restore", "--dir", str(tmp_path), dsn=db_dsn
        )
        assert code == 0, v
        assert "dropped 1 scratch database(s) of an earlier run" in v["notes"]
        names = {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}
        assert leftover not in names and other_db in names
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{leftover}"')
        admin.execute(f'DROP DATABASE IF EXISTS "{other_db}"')


def test_sigterm_stops_pg_dump_and_cleans_up(db, db_dsn, tmp_path, blocked):
    proc = spawn(
        "backup", "create", "--dir", str(tmp_path), "--lock-wait-timeout", "60s", dsn=db_dsn
    )
    try:
        pg_dump = _wait_for(lambda: pids_of("pg_dump", str(tmp_path)), what="pg_dump")[0]
        _wait_for(lambda: list(backups_dir(tmp_path, db).glob(".partial-*/*")), what="partial")
        proc.send_signal(signal.SIGTERM)  # the orchestrator only, as systemd would
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143
    assert "terminated by signal 15" in err and "Traceback" not in err
    assert not Path(f"/proc/{pg_dump}").exists() or pids_of("pg_dump", str(tmp_path)) == []
    assert _created(tmp_path, db) == []
    [row] = catalog_rows(db)
    assert row[1] == "failed" and row[3] == "terminated by signal 15"


def test_sigterm_stops_a_fleet_backup_and_every_target_cleans_up(db, pg_server, make_database, tmp_path):
    """A fleet backup's dumps run in worker threads, which cannot catch a signal: the main
    thread ends them, each target's backup fails as a failed dump does (no files, catalog row
    'failed'), a target whose turn had not come is not started, and the summary comes out."""
    from support import deploy_to

    names = [db.info.dbname, make_database(), make_database()]
    for name in names[1:]:
        deploy_to(pg_server.dsn(name))
    holders = []
    try:
        for name in names[:2]:  # the first two dumps wait for a lock; the third waits its turn
            with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
                conn.execute("CREATE TABLE public.blocker (id int)")
            holder = psycopg.connect(pg_server.dsn(name))
            holder.execute("LOCK TABLE public.blocker IN ACCESS EXCLUSIVE MODE")
            holders.append(holder)
        inventory = tmp_path / "pgmaint.toml"
        inventory.write_text("".join(f'[targets.t{i}]\ndsn = "{pg_server.dsn(n)}"\n\n'
                                     for i, n in enumerate(names)))
        out_dir = tmp_path / "backups"
        proc = spawn("--json", "backup", "create", "--inventory", str(inventory), "--all",
                     "--parallel", "2", "--dir", str(out_dir), "--lock-wait-timeout", "60s",
                     dsn=pg_server.dsn(names[0]))
        try:
            _wait_for(lambda: len(pids_of("pg_dump", str(out_dir))) == 2, what="two pg_dumps")
            proc.send_signal(signal.SIGTERM)  # the orchestrator only, as systemd would
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for holder in holders:
            holder.close()
    assert proc.returncode == 143, err
    assert "terminated by signal 15; stopping the running dumps" in err and "Traceback" not in err
    assert pids_of("pg_dump", str(out_dir)) == []
    rows = {r["target"]: r for r in json.loads(out)["targets"]}
    assert [rows[f"t{i}"]["error"] for i in range(3)] == ["terminated by signal 15"] * 3
    assert [p for p in out_dir.rglob("*") if p.is_file()] == []  # no dump, no partial file
    for i, name in enumerate(names):
        with psycopg.connect(pg_server.dsn(name)) as conn:
            statuses = [(r[1], r[3]) for r in catalog_rows(conn)]
        assert statuses == ([] if i == 2 else [("failed", "terminated by signal 15")]), (name, statuses)
