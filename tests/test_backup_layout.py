"""Where backups go (<root>/<system identifier>/<database>/), backups of the layout before,
restore by catalog id, and the journal rows of restore and prune."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from backup_support import backups_dir, run, run_json, seed
from psycopg import sql

from orchestrator import deploy
from orchestrator.backup import toc
from orchestrator.backup.tools import find_tools
from orchestrator.backup.verify import archive_rows
from orchestrator.sandbox import Sandbox, SandboxInfo


def system_identifier(conn: psycopg.Connection) -> str:
    return str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])


def runs(conn: psycopg.Connection, task: str) -> list[tuple]:
    return conn.execute(
        "SELECT status, dry_run, parameters, detail, error FROM maint.runs WHERE task = %s ORDER BY id",
        (task,),
    ).fetchall()


def drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def other_server(pg_bindir: Path) -> Iterator[SandboxInfo]:
    """A second throwaway server (its own system identifier)."""
    base = Path(tempfile.mkdtemp(prefix="pgmaint-second-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    try:
        yield box.start(fast=True, cron=False, bindir=pg_bindir)
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_the_layout_has_the_system_identifier(db, db_dsn, tmp_path):
    code, data = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0, data
    sysid = system_identifier(db)
    assert db.execute("SELECT maint.backup_system_identifier()").fetchone()[0] == sysid
    path = Path(data["path"])
    assert path.parent == tmp_path / sysid / db.info.dbname == backups_dir(tmp_path, db)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["system_identifier"] == sysid
    row = db.execute("SELECT path FROM maint.backups WHERE id = %s", (data["id"],)).fetchone()
    assert row == (str(path),)


def test_two_servers_with_the_same_database_never_share_a_directory(
    db, db_dsn, tmp_path, other_server
):
    name = db.info.dbname
    with psycopg.connect(other_server.conninfo(), autocommit=True) as admin2:
        admin2.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn2 = other_server.conninfo(name)
    with psycopg.connect(dsn2, autocommit=True) as db2:
        deploy.deploy(db2)
        db2.execute("CREATE TABLE only_on_two (x int)")
        sysid2 = system_identifier(db2)
    assert sysid2 != system_identifier(db)
    code1, one = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
    code2, two = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=dsn2)
    assert (code1, code2) == (0, 0)
    # both catalogs start at id 1: same database name, same id, different directories
    assert one["id"] == two["id"] == 1
    assert Path(one["path"]).parent == tmp_path / system_identifier(db) / name
    assert Path(two["path"]).parent == tmp_path / sysid2 / name
    for dsn, mine in ((db_dsn, one), (dsn2, two)):
        code, listed = run_json("backup", "list", "--dir", str(tmp_path), dsn=dsn)
        assert code == 0 and [r["path"] for r in listed] == [mine["path"]]
        code, verified = run_json("backup", "verify", "1", "--level", "list", "--dir", str(tmp_path), dsn=dsn)
        assert code == 0 and verified["path"] == mine["path"]


def _make_legacy(db: psycopg.Connection, root: Path, data: dict) -> Path:
    """Move a backup to where pgmaint wrote it before the system identifier was part of the
    layout (<root>/<database>/), with a manifest as it wrote it then, and its catalog row."""
    old = Path(data["path"])
    legacy = root / db.info.dbname / old.name
    legacy.parent.mkdir(parents=True, exist_ok=True)
    old.rename(legacy)
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["system_identifier"]
    # and the tables' rows counted in the snapshot (what pg_dump read, so the archive's)
    del manifest["facts"]["table_rows"]
    tools = find_tools(db.info.server_version)
    archive = legacy / manifest["dump"]
    rows = archive_rows(tools, archive, toc.read(tools, archive))
    for rel in manifest["facts"]["relations"]:
        if rel["kind"] == "r":
            rel["rows"] = rows[rel["oid"]]
    (legacy / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # as the catalog of the older version recorded it (the test runs as superuser)
    db.execute("UPDATE maint.backups SET path = %s WHERE id = %s", (str(legacy), data["id"]))
    return legacy


def test_backups_of_the_old_layout_stay_readable(db, db_dsn, tmp_path, admin):
    seed(db)
    made = []
    for _ in range(3):
        code, data = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)
        assert code == 0
        made.append(data)
    legacy = [_make_legacy(db, tmp_path, d) for d in made[:2]]
    new = Path(made[2]["path"])
    # list: both layouts, oldest first
    code, listed = run_json("backup", "list", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0
    assert [(r["id"], r["path"]) for r in listed] == [
        (made[0]["id"], str(legacy[0])), (made[1]["id"], str(legacy[1])), (made[2]["id"], str(new))
    ]
    text = run("backup", "list", "--dir", str(tmp_path), dsn=db_dsn)
    assert "written before the layout had the server's system identifier" in text.stdout
    # verify by id (and the catalog row follows), restore by id from --dir and from the catalog
    code, verified = run_json(
        "backup", "verify", str(made[0]["id"]), "--level", "restore", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0 and verified["ok"], verified
    assert verified["archive_rows"] == {}  # compared with the manifest's counts, as before
    assert db.execute("SELECT status FROM maint.backups WHERE id = %s", (made[0]["id"],)).fetchone() == (
        "verified",
    )
    try:
        for args in (["--dir", str(tmp_path)], []):
            code, restored = run_json(
                "backup", "restore", str(made[1]["id"]), "--into", "pgmaint_legacy_copy", "--force", *args,
                dsn=db_dsn,
            )
            assert code == 0, restored
            assert restored["backup_id"] == made[1]["id"]
    finally:
        drop(admin, "pgmaint_legacy_copy")
    # prune counts both layouts together and deletes the oldest, wherever it is
    code, pruned = run_json(
        "backup", "prune", "--keep-last", "2", "--execute", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0
    assert [d["path"] for d in pruned["delete"]] == [str(legacy[0])]
    assert not legacy[0].exists() and legacy[1].exists() and new.exists()
    assert db.execute(
        "SELECT detail ? 'pruned_at' FROM maint.backups WHERE id = %s", (made[0]["id"],)
    ).fetchone() == (True,)


def test_restore_finds_a_backup_by_catalog_id_and_is_journaled(
    db, db_dsn, pg_server, tmp_path, admin, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    seed(db)
    code, data = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path / "else"), dsn=db_dsn)
    assert code == 0
    try:
        # no --dir, and the default ./backups knows nothing of it: the catalog does
        code, restored = run_json(
            "backup", "restore", str(data["id"]), "--into", "pgmaint_by_id", dsn=db_dsn
        )
        assert code == 0, restored
        with psycopg.connect(pg_server.dsn("pgmaint_by_id")) as copy:
            assert copy.execute('SELECT count(*) FROM "Sales".orders').fetchone() == (1500,)
        # refused (target exists): journaled as failed, with the reason
        result = run("backup", "restore", str(data["id"]), "--into", "pgmaint_by_id", dsn=db_dsn)
        assert result.exit_code == 3
    finally:
        drop(admin, "pgmaint_by_id")
    journal = runs(db, "backup-restore")
    assert [(r[0], r[1]) for r in journal] == [("succeeded", False), ("failed", False)]
    ok, refused = journal
    assert ok[2]["backup_id"] == data["id"] and ok[2]["into"] == "pgmaint_by_id"
    assert ok[3]["path"] == data["path"] and ok[3]["into"] == "pgmaint_by_id"
    assert "already exists" in refused[4]
    # no lock left behind: the next restore can run
    assert db.execute(
        "SELECT holder_pid FROM maint.task_locks WHERE task = 'backup-restore'"
    ).fetchone() == (None,)


def test_restore_by_id_says_in_one_line_when_the_catalog_does_not_know_it_or_the_files_are_gone(
    db, db_dsn, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the default directory ./backups
    code, data = run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path / "else"), dsn=db_dsn)
    assert code == 0

    def refused(backup_id: int) -> str:
        result = run("backup", "restore", str(backup_id), "--into", "pgmaint_never", dsn=db_dsn)
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    line = refused(999)
    assert "backup 999 is not in the catalog" in line and "--dir" in line
    shutil.rmtree(data["path"])
    line = refused(data["id"])
    assert f"the files of backup {data['id']} are gone: {data['path']}" in line
    # a pruned backup says so
    create = ("backup", "create", "--verify", "none", "--dir", str(tmp_path / "else"))
    code, again = run_json(*create, dsn=db_dsn)
    code, _ = run_json(*create, dsn=db_dsn)
    code, _ = run_json(
        "backup", "prune", "--keep-last", "1", "--execute", "--dir", str(tmp_path / "else"), dsn=db_dsn
    )
    assert code == 0
    assert f"backup {again['id']} was pruned at" in refused(again["id"])
    # a failed restore's journal row holds the same line
    assert runs(db, "backup-restore")[-1][4] == refused(again["id"]).removeprefix("Error: ")


def test_prune_dry_run_is_journaled_as_a_dry_run(db, db_dsn, tmp_path):
    for _ in range(2):
        assert run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)[0] == 0
    code, _ = run_json("backup", "prune", "--keep-last", "1", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0
    code, _ = run_json("backup", "prune", "--keep-last", "1", "--execute", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0
    prunes = [r for r in runs(db, "backup") if r[2].get("prune")]
    assert [(r[0], r[1], r[3]["deleted"]) for r in prunes] == [
        ("succeeded", True, 0),
        ("succeeded", False, 1),
    ]
    assert prunes[0][3]["would_delete"] == 1


def test_system_identifier_is_for_maint_monitor_not_public(db, pg_server, make_role):
    monitor = make_role("maint_monitor")
    nobody = make_role()
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA maint TO {}").format(sql.Identifier(nobody)))
    sysid = system_identifier(db)
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor)) as conn:
        assert conn.execute("SELECT maint.backup_system_identifier()").fetchone() == (sysid,)
    with (
        psycopg.connect(pg_server.dsn(db.info.dbname, user=nobody)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT maint.backup_system_identifier()")


def test_list_needs_maint_monitor_and_restore_maint_admin(db, db_dsn, pg_server, tmp_path, make_role):
    """list reads the system identifier through the kit (maint_monitor); restore is journaled
    (maint_admin): without them, one line and exit 1, before anything is restored."""
    assert run_json("backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn)[0] == 0
    monitor = make_role("maint_monitor")
    outsider = make_role("maint_restore", attributes="CREATEDB")
    as_monitor = pg_server.dsn(db.info.dbname, user=monitor)
    as_outsider = pg_server.dsn(db.info.dbname, user=outsider)
    code, listed = run_json("backup", "list", "--dir", str(tmp_path), dsn=as_monitor)
    assert code == 0 and len(listed) == 1
    for args in (("list",), ("restore", "1", "--into", "pgmaint_never")):
        result = run("backup", *args, "--dir", str(tmp_path), dsn=as_outsider)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "permission denied" in lines[0], result.stderr
    assert db.execute("SELECT count(*) FROM pg_database WHERE datname = 'pgmaint_never'").fetchone() == (0,)
    # the monitor may read, not restore: no journal row without maint_admin
    result = run("backup", "restore", "1", "--into", "pgmaint_never", "--dir", str(tmp_path), dsn=as_monitor)
    assert result.exit_code == 1 and "permission denied" in result.stderr
    assert runs(db, "backup-restore") == []
